"""The worker side of real-worker mode: a probe job and each engine's native worker, run in a subprocess.

`python -m harness.engines._workers_probe ENGINE` reads its settings from the environment (set by
`harness.engines.workers.RealWorker`) and runs the engine's own worker against a real broker. The probe
job marks each start in a directory, then blocks until the harness drops a release file there, so the
harness can kill the worker at a known point of the job.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["probe", "settings"]


def settings() -> dict[str, Any]:
    """The run's settings, as `RealWorker` wrote them into HARNESS_WORKER_SETTINGS."""
    return dict(json.loads(os.environ["HARNESS_WORKER_SETTINGS"]))


def _mark(path: Path, text: str) -> None:
    """Write a mark whole: the harness polls for these files and must never read one half written."""
    partial = path.with_name(f".partial-{path.name}")  # matched by none of the harness's globs
    partial.write_text(text)
    os.replace(partial, path)


def probe(key: str) -> str:
    """Record a start, block until released, record the end. The job every real worker runs."""
    folder = Path(settings()["probe_dir"])
    run = len(list(folder.glob(f"{key}.start.*"))) + 1
    _mark(folder / f"{key}.start.{run}", f"{time.time()} {os.getpid()}")
    while not (folder / f"{key}.release").exists():
        time.sleep(0.02)
    _mark(folder / f"{key}.done.{run}", str(time.time()))
    return key


def _run_rq(conf: dict[str, Any]) -> None:
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis.from_url(conf["redis_url"])
    # The forking worker: the job runs in a work horse, as in production.
    worker = Worker(
        [Queue(conf["queue"], connection=connection)],
        connection=connection,
        name=f"probe-{conf['queue']}-{os.getpid()}",
    )
    worker.work(logging_level="WARNING", with_scheduler=True)


def dramatiq_broker(conf: dict[str, Any]) -> Any:
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(
        url=conf["redis_url"],
        heartbeat_timeout=conf.get("heartbeat_timeout_ms", 60_000),
        maintenance_chance=conf.get("maintenance_chance", 1000),
    )


def _run_dramatiq(conf: dict[str, Any]) -> None:
    import dramatiq
    from dramatiq import Worker

    broker = dramatiq_broker(conf)
    dramatiq.set_broker(broker)
    dramatiq.actor(  # type: ignore[call-overload]
        probe, actor_name="probe", queue_name=conf["queue"], max_retries=conf.get("retries", 0), broker=broker
    )
    worker = Worker(broker, queues={conf["queue"]}, worker_threads=1, worker_timeout=100)
    stopping = threading.Event()
    # Dramatiq's CLI does the same on TERM: stop fetching, let the running message finish.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    worker.start()
    stopping.wait()
    worker.stop(timeout=conf.get("shutdown_timeout_ms", 600_000))
    broker.close()


def celery_app(conf: dict[str, Any]) -> Any:
    from celery import Celery

    broker = conf.get("broker_url") or conf["redis_url"]
    app = Celery(f"probe-{conf['queue']}", broker=broker, backend=conf["redis_url"], set_as_current=False)
    app.conf.update(
        broker_transport_options={
            "visibility_timeout": conf.get("visibility_timeout", 3600),
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        task_default_queue=conf["queue"],
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    app.task(
        probe,
        name="probe",
        shared=False,
        acks_late=conf.get("acks_late", False),
        reject_on_worker_lost=conf.get("reject_on_worker_lost", False),
    )
    return app


def _run_celery(conf: dict[str, Any]) -> None:
    app = celery_app(conf)
    # prefork by default, as deployed: the parent acks from its own event loop while a child runs the
    # task. With "solo" the task blocks that loop, so an early ack is never sent before a kill.
    app.worker_main(
        [
            "worker",
            "-P",
            conf.get("pool", "prefork"),
            "-c",
            "1",
            "-Q",
            conf["queue"],
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"probe-{os.getpid()}@harness",
            "--loglevel",
            "WARNING",
        ]
    )


if __name__ == "__main__":  # pragma: no cover - runs in the worker subprocess
    runners = {"rq": _run_rq, "dramatiq": _run_dramatiq, "celery": _run_celery}
    runners[sys.argv[1]](settings())
