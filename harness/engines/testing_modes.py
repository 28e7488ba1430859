"""Sidekiq's two testing modes, for tests that want the job's logic without the retry machinery.

`FakeEngine` pushes jobs to in-memory arrays and runs them when asked (`drain_all`, `drain`,
`perform_one`), scheduled ones at once; `InlineEngine` runs each job as it is pushed. Neither retries,
calls error or death handlers, or keeps a dead set: a job's exception reaches the caller, as in Sidekiq.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from harness.engines._retry_rule import error_message
from harness.engines._sim_core import SimCore
from harness.engines.base import EventKind, Job, JobRecord, _current
from harness.errors import ConfigurationError

__all__ = ["FakeEngine", "InlineEngine"]


class _TestingEngine(SimCore):
    """Runs one attempt on demand: observers and server middleware, no retry; exceptions propagate."""

    def _run_now(self, record: JobRecord) -> None:
        token = _current.set(self)
        try:
            attempt = record.attempt
            error = self._attempt(record, self._job_of[record.id])
        finally:
            _current.reset(token)
        if error is not None:
            name, message = type(error).__name__, error_message(error)
            self._log(EventKind.FAILED, record, attempt, error_class=name, error_message=message)
            raise error

    def next_due(self) -> float | None:
        return None  # nothing ever waits on the clock in a testing mode

    def scheduled(self) -> list[JobRecord]:
        return []

    def retries(self) -> list[JobRecord]:
        return []

    def dead(self) -> list[JobRecord]:
        return []


class FakeEngine(_TestingEngine):
    """Sidekiq's fake mode: `enqueue` only records; `drain_all()` runs everything, including the jobs
    those jobs enqueue; jobs enqueued with `delay=`/`at=` run at once too. No retries: the first
    exception propagates to whoever drains, and the job is gone (it was taken off the array first).
    `run_until_quiet()` is `drain_all()`.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._pending: list[JobRecord] = []

    def enqueue(
        self, job: Job | str, *args: Any, delay: float | None = None, at: float | None = None
    ) -> str | None:
        resolved = self._resolve(job)
        record = self._new_record(resolved, args, self._when(delay, at))
        return self._push_through_client(record, partial(self._pending.append, record))

    def jobs(self, job: Job | str | None = None, *, queue: str | None = None) -> list[JobRecord]:
        """Jobs waiting to be drained, in push order (Sidekiq's `Klass.jobs` / `Queues[name]`)."""
        name = job.name if isinstance(job, Job) else job
        return [
            r
            for r in self._pending
            if (name is None or r.job == name) and (queue is None or r.queue == queue)
        ]

    def perform_one(self, job: Job | str | None = None) -> str:
        """Run the oldest waiting job (of `job`, if given); its id."""
        waiting = self.jobs(job)
        if not waiting:
            raise ConfigurationError(f"no {'job' if job is None else _name(job)} is waiting to be performed")
        record = waiting[0]
        self._pending.remove(record)
        self._run_now(record)
        return record.id

    def drain(self, job: Job | str) -> int:
        """Run `job`'s waiting jobs until none is left, including those it enqueues; how many ran."""
        ran = 0
        while self.jobs(job):
            self.perform_one(job)
            ran += 1
        return ran

    def drain_all(self) -> int:
        """Drain job by job, in order of first appearance, until nothing waits (Sidekiq's `drain_all`)."""
        ran = 0
        while self._pending:
            for name in dict.fromkeys(r.job for r in self._pending):
                ran += self.drain(name)
        return ran

    def clear(self, job: Job | str | None = None) -> None:
        """Forget waiting jobs (of `job`, or all)."""
        name = job.name if isinstance(job, Job) else job
        self._pending = [r for r in self._pending if name is not None and r.job != name]

    def _step(self) -> bool:
        if not self._pending:
            return False
        self._run_now(self._pending.pop(0))
        return True

    def run_until_quiet(self, *, max_time: float | None = None, max_steps: int = 1_000_000) -> int:
        return self.drain_all()

    def queued(self, queue: str | None = None) -> list[JobRecord]:
        return self.jobs(queue=queue)

    def reset(self) -> None:
        self._reset_core()
        self._pending = []


class InlineEngine(_TestingEngine):
    """Sidekiq's inline mode: `enqueue` runs the job at once (delays ignored), through client then
    server middleware; an exception propagates to the code that enqueued. Nothing is ever queued.
    """

    def enqueue(
        self, job: Job | str, *args: Any, delay: float | None = None, at: float | None = None
    ) -> str | None:
        resolved = self._resolve(job)
        record = self._new_record(resolved, args, self._when(delay, at))
        run: Callable[[], None] = partial(self._run_now, record)
        return self._push_through_client(record, run)

    def _step(self) -> bool:
        return False

    def queued(self, queue: str | None = None) -> list[JobRecord]:
        return []

    def reset(self) -> None:
        self._reset_core()


def _name(job: Job | str) -> str:
    return job.name if isinstance(job, Job) else job
