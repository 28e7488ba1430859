"""RQ's forking worker as the harness starts it: its real-worker probes and the example shop's worker."""

from __future__ import annotations

import functools

__all__ = ["rq_worker_class"]


@functools.cache
def rq_worker_class() -> type:
    """RQ's forking worker, with a warm shutdown that does not wait on its command channel's listener.

    At a warm shutdown RQ unsubscribes from the worker's command channel, then stops the thread that
    listens to it. The thread wakes for Redis's confirmation; when it wakes before it was told to stop,
    it goes back to a read that lasts a minute, and the shutdown waits that minute (past the grace of
    `docker stop`). Told first, it ends at the confirmation.
    """
    from rq import Worker

    class PromptShutdownWorker(Worker):
        def unsubscribe(self) -> None:
            listener = self.pubsub_thread
            if listener is not None:
                try:
                    listener.stop(timeout=0)  # redis-py 8: trip the flag, do not wait yet
                except TypeError:
                    listener.stop()  # earlier redis-py: stop() only trips the flag
            super().unsubscribe()

    return PromptShutdownWorker
