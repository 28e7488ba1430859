"""The worker side of real-worker mode: a probe job and each engine's native worker, run in a subprocess.

`python -m harness.engines._workers_probe ENGINE` reads its settings from the environment (set by
`harness.engines.workers.RealWorker`) and runs the engine's own worker against a real broker. The probe
job marks each start in a directory, then blocks until the harness drops a release file there, so the
harness can kill the worker at a known point of the job. The delivery job (`deliver`) runs an app's own
job instead, as one of several deliveries of it at once.
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

from harness._imports import load_attr

__all__ = ["deliver", "probe", "settings"]


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


_prepared: list[str] = []


def deliver(group: str, delivery: int, target: str, args: list[Any]) -> None:
    """Run the job `target` with `args` as delivery number `delivery` of `group`: mark the start, wait
    (on its first run) until every delivery of the group has started, run the job, mark how it ended.
    An exception is marked and raised again, so the engine retries the delivery as it would any job.
    What the job enqueues goes to an engine of its own that never runs it: each delivery is one job."""
    conf = settings()
    folder = Path(conf["probe_dir"])
    if conf.get("setup") and not _prepared:
        load_attr(conf["setup"])()
        _prepared.append(conf["setup"])
    name = f"{group}-{delivery}"
    run = len(list(folder.glob(f"{name}.start.*"))) + 1
    _mark(folder / f"{name}.start.{run}", json.dumps({"at": time.time(), "pid": os.getpid()}))
    if run == 1:
        deadline = time.monotonic() + conf.get("barrier_s", 15.0)
        while len(list(folder.glob(f"{group}-*.start.1"))) < conf["deliveries"] and time.monotonic() < deadline:
            time.sleep(0.005)
    from harness.engines.base import Job
    from harness.engines.sim import SimEngine

    job = load_attr(target)
    fn = job.fn if isinstance(job, Job) else job
    try:
        with SimEngine().activate():
            fn(*args)
    except Exception as exc:
        _mark(folder / f"{name}.failed.{run}",
              json.dumps({"at": time.time(), "error": f"{type(exc).__name__}: {exc}"}))
        raise
    _mark(folder / f"{name}.done.{run}", json.dumps({"at": time.time()}))


def _run_rq(conf: dict[str, Any]) -> None:
    from redis import Redis
    from rq import Queue

    from harness.engines._rq_worker import rq_worker_class

    connection = Redis.from_url(conf["redis_url"])
    # The forking worker: the job runs in a work horse, as in production.
    worker = rq_worker_class()(
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
    delay_ms = int(conf.get("retry_delay", 1.0) * 1000)
    dramatiq.actor(  # type: ignore[call-overload]
        deliver, actor_name="deliver", queue_name=conf["queue"], max_retries=conf.get("retries", 0),
        min_backoff=delay_ms, max_backoff=delay_ms, broker=broker,
    )
    worker = Worker(broker, queues={conf["queue"]}, worker_threads=1, worker_timeout=100)
    if conf.get("prefetch"):
        worker.queue_prefetch = conf["prefetch"]
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
        # With a prefetch, a busy worker would hold a second delivery of the same job back from another.
        worker_prefetch_multiplier=conf.get("prefetch", 4),
    )
    app.task(
        probe,
        name="probe",
        shared=False,
        acks_late=conf.get("acks_late", False),
        reject_on_worker_lost=conf.get("reject_on_worker_lost", False),
    )
    app.task(
        deliver,
        name="deliver",
        shared=False,
        acks_late=bool(conf.get("prefetch")),  # acknowledged on start, the next message would be reserved
        autoretry_for=(Exception,),
        max_retries=conf.get("retries", 0),
        default_retry_delay=conf.get("retry_delay", 1.0),
        retry_backoff=False,
        retry_jitter=False,
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
