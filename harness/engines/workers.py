"""Real-worker mode: a real worker process per engine on a real Redis, killed in the middle of a job.

`RealWorker("rq", "redis://127.0.0.1:6379/13")` starts the engine's own worker in a subprocess (see
`_workers_probe`), enqueues a probe job that marks its start and blocks until released, and
`kill_mid_job()` SIGKILLs (or SIGTERMs) the worker's process group while the job runs. The report says
what the engine then did with the job -- re-ran it, lost it or dead-lettered it -- with the evidence read
from the broker's own state, and how long recovery took.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness._imports import load_attr
from harness.engines._rq_worker import rq_worker_class
from harness.errors import ConfigurationError, EngineUnavailable

__all__ = [
    "AtOnceReport",
    "DeliveryRun",
    "KillReport",
    "LossReport",
    "RealWorker",
    "redis_available",
    "rq_worker_class",
]

Outcome = Literal["recovered", "lost", "dead_lettered", "completed"]


@dataclass
class KillReport:
    """What an engine did with a job whose worker was killed while running it.

    `outcome`: `recovered` (the job ran again), `lost` (nothing will run it again), `dead_lettered`
    (filed as failed) or `completed` (a warm shutdown let it finish). `runs`: how many times the job
    started. `recovery_s`: seconds from the kill to the next start (None if it never restarted).
    `nominal_recovery_s`: how long the engine would wait with its default settings before recovering.
    `forced`: the harness ran the engine's own recovery step early instead of waiting for it.
    `evidence`: the broker state the outcome was read from.
    """

    engine: str
    job_id: str
    signal: str
    outcome: Outcome
    runs: int
    recovery_s: float | None
    nominal_recovery_s: float | None = None
    forced: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossReport:
    """What became of two jobs when the broker's Redis forgot everything (`FLUSHDB`, as a restart without
    persistence leaves it) while a real worker ran the first and the second waited in the queue.

    `running_finished`: the first job, already in the worker's hands, still finished. `queued_ran`: the
    second one ever started. `waited_s`: how long the harness watched for it after the loss.
    """

    engine: str
    running_finished: bool
    queued_ran: bool
    waited_s: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryRun:
    """One run of one delivery: which delivery (1, 2, ...), which run of it (1, then its retries), the
    worker process, when it started and ended (wall clock), and how: `done` or `failed` with `error`."""

    delivery: int
    run: int
    pid: int
    started: float
    ended: float | None
    outcome: Literal["done", "failed", "running"]
    error: str | None = None


@dataclass
class AtOnceReport:
    """The same job delivered `deliveries` times at once to as many real worker processes.

    `overlapped`: every delivery's first run had started before any of them ended, so they really ran
    at the same time (each waits at the start for the others, up to `barrier_s`). `completed`: every
    delivery ended in success, after its retries. `runs`: each run in the order it started. The
    effects of the job are for the caller to read from its own services and database.
    """

    engine: str
    deliveries: int
    overlapped: bool
    completed: bool
    runs: list[DeliveryRun]
    workers: int

    def failures(self) -> dict[str, int]:
        """How many runs failed, by the exception's class name."""
        counts: dict[str, int] = {}
        for run in self.runs:
            if run.outcome == "failed" and run.error:
                name = run.error.split(":", 1)[0]
                counts[name] = counts.get(name, 0) + 1
        return counts


def redis_available(url: str) -> bool:
    """True when a Redis server answers PING at `url`."""
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


class RealWorker:
    """One engine's real worker process against a real Redis, driven and inspected by the harness.

    `settings` tune the engine for the run: `retries` (the probe job's retries), `acks_late` and
    `reject_on_worker_lost` (Celery), `visibility_timeout` (Celery on Redis, s), `broker_url` (Celery
    on RabbitMQ: `amqp://guest:guest@127.0.0.1:5672//`; results stay in Redis), `pool` (Celery:
    prefork or solo), `heartbeat_timeout_ms` and `maintenance_chance` (Dramatiq). The Redis database
    in `redis_url` is flushed on `close()`: give each test its own.
    """

    def __init__(
        self,
        engine: str,
        redis_url: str = "redis://127.0.0.1:6379/13",
        *,
        workdir: str | Path | None = None,
        **settings: Any,
    ) -> None:
        if engine not in _ADAPTERS:
            raise ConfigurationError(f"real-worker mode supports {', '.join(_ADAPTERS)}, not {engine!r}")
        if not redis_available(redis_url):
            raise EngineUnavailable(f"no Redis answers at {redis_url}; start one or pass redis_url=")
        self.engine = engine
        self.redis_url = redis_url
        self.queue = f"harness-{engine}-{uuid.uuid4().hex[:8]}"
        self._tmp = tempfile.TemporaryDirectory(prefix="harness-worker-") if workdir is None else None
        self.probe_dir = Path(workdir if workdir is not None else self._tmp.name)  # type: ignore[union-attr]
        self.settings = {
            "redis_url": redis_url,
            "queue": self.queue,
            "probe_dir": str(self.probe_dir),
            **settings,
        }
        self.adapter = _ADAPTERS[engine](self)
        self.process: subprocess.Popen[bytes] | None = None
        #: Every worker process started and not yet stopped (`deliver_at_once` runs several).
        self.processes: list[subprocess.Popen[bytes]] = []
        self._at_once_conf: dict[str, Any] | None = None
        self._logs: list[Path] = []

    # -- the worker process ---------------------------------------------------------------------------
    def start(self, **overrides: Any) -> None:
        """Start a worker process (its own process group, so a kill takes its children too)."""
        conf = {**self.settings, **overrides}
        log = self.probe_dir / f"worker-{len(self._logs) + 1}.log"
        self._logs.append(log)
        env = {**os.environ, **conf.get("env", {}), "HARNESS_WORKER_SETTINGS": json.dumps(conf)}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "harness.engines._workers_probe", self.engine],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(self.process)

    def send(self, sig: int, job_pids: tuple[int, ...] = ()) -> float:
        """Send `sig` to the worker's process group and to the processes running jobs; when it was sent.

        RQ's work horse calls setsid(), so killing the worker's group alone would spare the job.
        """
        if self.process is None:
            raise ConfigurationError("the worker is not running; call start() first")
        sent = time.time()
        for pid in job_pids:
            if pid != self.process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, sig)
        else:  # as `docker stop` or systemd do: the worker's main process decides what to do
            os.kill(self.process.pid, sig)
        return sent

    def wait_exit(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Kill whatever workers run and reap them."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes = []
        self.process = None
        self._at_once_conf = None

    def close(self) -> None:
        """Stop the worker, flush the Redis database, remove the probe directory."""
        self.stop()
        self.adapter.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RealWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    # -- the probe job --------------------------------------------------------------------------------
    def enqueue_probe(self) -> tuple[str, str]:
        """Push one probe job; its (key, engine job id)."""
        key = uuid.uuid4().hex[:12]
        return key, self.adapter.enqueue(key)

    def starts(self, key: str) -> list[float]:
        return sorted(float(p.read_text().split()[0]) for p in self.probe_dir.glob(f"{key}.start.*"))

    def done(self, key: str) -> int:
        return len(list(self.probe_dir.glob(f"{key}.done.*")))

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.process is not None and self.process.poll() is not None and not predicate():
                time.sleep(0.05)  # the worker exited; let the filesystem settle once more
                return bool(predicate())
            time.sleep(0.05)
        return bool(predicate())

    def release(self, key: str) -> None:
        (self.probe_dir / f"{key}.release").write_text("go")

    # -- the experiments ------------------------------------------------------------------------------
    def deliver_at_once(
        self,
        target: str,
        args: list[Any],
        *,
        deliveries: int = 2,
        setup: str | None = None,
        retries: int = 5,
        retry_delay: float = 1.0,
        barrier_s: float = 15.0,
        timeout: float = 60.0,
    ) -> AtOnceReport:
        """Deliver the job `target` ("package.module:name", a `@job` or a plain function) with `args`
        `deliveries` times at once, each to a worker process of its own, as an engine does when a
        visibility timeout expires while the first worker is still busy or a client enqueues twice.

        `setup` ("package.module:name") runs once in each worker process before its first delivery (to
        point the app at its services and database; the `env` setting reaches it). Each delivery waits
        at its start until all have started, so they overlap; a delivery that fails is retried by the
        engine (`retries`, `retry_delay` seconds apart). Returns when every delivery succeeded or
        `timeout` passed. Each worker fetches one message at a time (no prefetch), so no worker holds
        a second delivery while running the first. A later call with the same settings reuses the
        workers (the job and its arguments may differ); other settings start new ones.
        """
        if deliveries < 2:
            raise ConfigurationError(f"deliveries must be at least 2, got {deliveries}")
        load_attr(target)  # a typo fails here, not in a worker's log
        if setup is not None:
            load_attr(setup)
        group = uuid.uuid4().hex[:10]
        conf = {"deliveries": deliveries, "setup": setup, "retries": retries, "retry_delay": retry_delay,
                "barrier_s": barrier_s, "prefetch": 1}
        alive = [p for p in self.processes if p.poll() is None]
        if self._at_once_conf != conf or len(alive) != deliveries:
            self.stop()  # workers read their settings when they start; the run's own settings stay as given
            for _ in range(deliveries):
                self.start(**conf)
            self._at_once_conf = conf
        for delivery in range(1, deliveries + 1):
            self.adapter.enqueue_delivery(group, delivery, target, list(args), retries, retry_delay)
        def every_delivery_done() -> bool:
            return all(self._runs_of(group, d, "done") for d in range(1, deliveries + 1))

        completed = self.wait_for(every_delivery_done, timeout)
        runs = self._delivery_runs(group)
        firsts = [r for r in runs if r.run == 1]
        ends = [r.ended for r in firsts if r.ended is not None]
        overlapped = len(firsts) == deliveries and (not ends or max(r.started for r in firsts) < min(ends))
        if not completed and not runs:
            raise EngineUnavailable(f"no {self.engine} worker ran a delivery within {timeout:g} s:\n{self.log()}")
        return AtOnceReport(self.engine, deliveries, overlapped, completed, runs, workers=len(self.processes))

    def _runs_of(self, group: str, delivery: int, kind: str) -> list[Path]:
        return sorted(self.probe_dir.glob(f"{group}-{delivery}.{kind}.*"))

    def _delivery_runs(self, group: str) -> list[DeliveryRun]:
        runs = []
        for start in self.probe_dir.glob(f"{group}-*.start.*"):
            delivery = int(start.name.split(".", 1)[0].rsplit("-", 1)[1])
            run = int(start.name.rsplit(".", 1)[1])
            began = json.loads(start.read_text())
            ended, outcome, error = None, "running", None
            for kind in ("done", "failed"):
                mark = start.with_name(f"{group}-{delivery}.{kind}.{run}")
                if mark.exists():
                    end = json.loads(mark.read_text())
                    ended, outcome, error = end["at"], kind, end.get("error")
            runs.append(DeliveryRun(delivery, run, began["pid"], began["at"], ended, outcome, error))  # type: ignore[arg-type]
        return sorted(runs, key=lambda r: (r.started, r.delivery, r.run))

    def lose_broker(self, *, wait: float = 5.0, settle: float = 0.3) -> LossReport:
        """Run one probe job, queue a second behind it, then make the broker forget (`FLUSHDB` on the
        worker's Redis database) and release both: see which ever runs. No error is raised anywhere by
        the loss, so the report reads only what happened."""
        import redis

        first, first_id = self.enqueue_probe()
        self.start()
        if not self.wait_for(lambda: len(self.starts(first)) >= 1, 30.0):
            raise EngineUnavailable(f"the {self.engine} worker never started the probe job:\n{self.log()}")
        second, second_id = self.enqueue_probe()
        time.sleep(settle)
        started_before = len(self.starts(second)) > 0
        client = redis.Redis.from_url(self.redis_url)
        try:
            keys_before = len(client.keys("*"))
            client.flushdb()
        finally:
            client.close()
        self.release(first)
        self.release(second)
        self.wait_for(lambda: self.done(first) >= 1, 10.0)
        self.wait_for(lambda: len(self.starts(second)) >= 1, wait)
        return LossReport(
            self.engine,
            running_finished=self.done(first) >= 1,
            queued_ran=len(self.starts(second)) >= 1,
            waited_s=wait,
            evidence={"keys_flushed": keys_before, "second_started_before_the_loss": started_before,
                      "jobs": [first_id, second_id]},
        )

    def kill_mid_job(
        self,
        *,
        sig: int = signal.SIGKILL,
        target: Literal["worker", "job"] = "worker",
        recovery_timeout: float = 20.0,
        force_recovery: bool = True,
        settle: float = 0.3,
    ) -> KillReport:
        """Run a probe job, hit the worker with `sig` while the job blocks, then see what happens.

        `target="worker"` kills the worker's whole process group and the job's process (a lost machine
        or container); `target="job"` kills only the process running the job (an OOM kill of RQ's work
        horse or of a Celery pool child) and leaves the worker to notice. After a SIGKILL of the worker
        a fresh one is started and given `recovery_timeout` seconds to re-run the job; with
        `force_recovery` the harness runs the engine's own recovery step early where the engine would
        wait minutes (RQ's abandoned-job cleanup). After a SIGTERM the job is released and the worker
        is expected to finish it before exiting.

        `settle` seconds pass between the job's start and the kill, so that the worker's bookkeeping
        of the start (a Celery prefork parent acking the message, RQ's registries) has happened, as it
        has for any job killed later in its run.
        """
        key, job_id = self.enqueue_probe()
        self.start()
        if not self.wait_for(lambda: len(self.starts(key)) >= 1, 30.0):
            raise EngineUnavailable(f"the {self.engine} worker never started the probe job:\n{self.log()}")
        time.sleep(settle)
        pids = tuple(int(p.read_text().split()[1]) for p in self.probe_dir.glob(f"{key}.start.*"))
        if target == "job":
            killed_at = time.time()
            for pid in pids:
                os.kill(pid, sig)
            return self._after_job_kill(key, job_id, killed_at, signal.Signals(sig).name, recovery_timeout)
        # TERM goes to the worker only (a warm shutdown); KILL takes the job's process too.
        killed_at = self.send(sig, pids if sig == signal.SIGKILL else ())
        name = signal.Signals(sig).name
        if sig == signal.SIGTERM:
            time.sleep(0.3)  # the warm shutdown begins while the job still blocks
            self.release(key)
            self.wait_exit(30.0)
            evidence = self.adapter.evidence(job_id)
            finished = self.done(key) >= 1
            return KillReport(
                self.engine,
                job_id,
                name,
                "completed" if finished else "lost",
                len(self.starts(key)),
                None,
                evidence=evidence,
            )
        self.wait_exit(10.0)
        evidence = self.adapter.evidence(job_id)
        self.release(key)  # the next run, if any, must not block
        forced = False
        recovered = False
        if self.adapter.recoverable(evidence):
            self.start()
            if force_recovery:
                forced = self.adapter.force_recovery(job_id)
            self.wait_for(
                lambda: len(self.starts(key)) >= 2 or self.adapter.dead_lettered(job_id), recovery_timeout
            )
            recovered = len(self.starts(key)) >= 2
            if recovered:
                self.wait_for(lambda: self.done(key) >= 1 and self.adapter.settled(job_id), 10.0)
        starts = self.starts(key)
        if recovered:
            outcome: Outcome = "recovered"
        elif self.adapter.dead_lettered(job_id):
            outcome = "dead_lettered"
        else:
            outcome = "lost"
        evidence["after"] = self.adapter.evidence(job_id)
        return KillReport(
            self.engine,
            job_id,
            name,
            outcome,
            len(starts),
            starts[1] - killed_at if len(starts) > 1 else None,
            nominal_recovery_s=self.adapter.nominal_recovery_s(),
            forced=forced,
            evidence=evidence,
        )

    def _after_job_kill(
        self, key: str, job_id: str, killed_at: float, name: str, recovery_timeout: float
    ) -> KillReport:
        """The worker lives on and sees its child die: it retries, fails or requeues the job itself."""
        self.release(key)
        self.wait_for(
            lambda: len(self.starts(key)) >= 2 or self.adapter.dead_lettered(job_id), recovery_timeout
        )
        recovered = len(self.starts(key)) >= 2
        if recovered:
            self.wait_for(lambda: self.done(key) >= 1 and self.adapter.settled(job_id), 10.0)
        starts = self.starts(key)
        outcome: Outcome = (
            "recovered" if recovered else ("dead_lettered" if self.adapter.dead_lettered(job_id) else "lost")
        )
        return KillReport(
            self.engine,
            job_id,
            name,
            outcome,
            len(starts),
            starts[1] - killed_at if len(starts) > 1 else None,
            evidence={"after": self.adapter.evidence(job_id)},
        )


class _Adapter:
    def __init__(self, worker: RealWorker) -> None:
        import redis

        self.worker = worker
        self.conf = worker.settings
        self.redis: Any = redis.Redis.from_url(worker.redis_url)

    def enqueue(self, key: str) -> str:
        raise NotImplementedError

    def enqueue_delivery(self, group: str, delivery: int, target: str, args: list[Any], retries: int,
                         retry_delay: float) -> str:
        """Push one delivery; Dramatiq and Celery retry it as their workers were told, RQ as it is pushed."""
        raise NotImplementedError

    def evidence(self, job_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def recoverable(self, evidence: dict[str, Any]) -> bool:
        return True

    def force_recovery(self, job_id: str) -> bool:
        return False

    def dead_lettered(self, job_id: str) -> bool:
        return False

    def settled(self, job_id: str) -> bool:
        """The engine has finished its bookkeeping of a run that completed."""
        return True

    def nominal_recovery_s(self) -> float | None:
        return None

    def close(self) -> None:
        self.redis.flushdb()
        self.redis.close()


class _RQ(_Adapter):
    def enqueue(self, key: str) -> str:
        from rq import Queue, Retry

        retries = self.conf.get("retries", 0)
        job = Queue(self.conf["queue"], connection=self.redis).enqueue(
            "harness.engines._workers_probe.probe",
            key,
            retry=Retry(max=retries) if retries else None,
            job_timeout=self.conf.get("job_timeout", 180),
        )
        return str(job.id)

    def enqueue_delivery(self, group: str, delivery: int, target: str, args: list[Any], retries: int,
                         retry_delay: float) -> str:
        from rq import Queue, Retry

        job = Queue(self.conf["queue"], connection=self.redis).enqueue(
            "harness.engines._workers_probe.deliver",
            group, delivery, target, args,
            # RQ takes whole seconds between retries.
            retry=Retry(max=retries, interval=math.ceil(retry_delay)) if retries else None,
            job_timeout=self.conf.get("job_timeout", 180),
        )
        return str(job.id)

    def _registries(self) -> tuple[Any, Any]:
        from rq.registry import FailedJobRegistry, StartedJobRegistry

        queue = self.conf["queue"]
        return (
            StartedJobRegistry(queue, connection=self.redis),
            FailedJobRegistry(queue, connection=self.redis),
        )

    def evidence(self, job_id: str) -> dict[str, Any]:
        from rq.job import Job

        started, failed = self._registries()
        members = [m.decode().split(":", 1)[0] for m in self.redis.zrange(started.key, 0, -1)]
        try:
            status = Job.fetch(job_id, connection=self.redis).get_status()
        except Exception:
            status = None
        return {
            "started_registry": job_id in members,
            "status": str(status) if status else None,
            "failed_registry": job_id in failed.get_job_ids(cleanup=False),
        }

    def recoverable(self, evidence: dict[str, Any]) -> bool:
        return bool(evidence["started_registry"])

    def force_recovery(self, job_id: str) -> bool:
        # RQ's own abandoned-job cleanup, run as a worker's maintenance would once the job's heartbeat
        # TTL had run out; waiting for it takes a minute or more plus the maintenance interval.
        started, _ = self._registries()
        # Entries are "<job id>:<execution id>", scored by when the execution's heartbeat expires.
        scores = [
            score
            for member, score in self.redis.zrange(started.key, 0, -1, withscores=True)
            if member.decode().split(":", 1)[0] == job_id
        ]
        if not scores:
            return False
        started.cleanup(timestamp=max(scores) + 1)
        return True

    def dead_lettered(self, job_id: str) -> bool:
        return bool(self.evidence(job_id)["failed_registry"])

    def settled(self, job_id: str) -> bool:
        return self.evidence(job_id)["status"] == "JobStatus.FINISHED"

    def nominal_recovery_s(self) -> float:
        from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL

        return float(DEFAULT_JOB_MONITORING_INTERVAL + 60 + DEFAULT_MAINTENANCE_TASK_INTERVAL)


class _Dramatiq(_Adapter):
    def __init__(self, worker: RealWorker) -> None:
        super().__init__(worker)
        self._redis_ids: dict[str, str] = {}

    def enqueue(self, key: str) -> str:
        return self._send("probe", (key,))

    def enqueue_delivery(self, group: str, delivery: int, target: str, args: list[Any], retries: int,
                         retry_delay: float) -> str:
        return self._send("deliver", (group, delivery, target, args))

    def _send(self, actor: str, args: tuple[Any, ...]) -> str:
        from dramatiq.message import Message

        from harness.engines._workers_probe import dramatiq_broker

        broker = dramatiq_broker(self.conf)
        try:
            broker.declare_queue(self.conf["queue"])
            message: Any = Message(
                queue_name=self.conf["queue"], actor_name=actor, args=args, kwargs={}, options={}
            )
            message = broker.enqueue(message)
        finally:
            broker.close()
        # The Redis broker keys its lists, ack sets and dead letters by a message id of its own.
        self._redis_ids[str(message.message_id)] = message.options["redis_message_id"]
        return str(message.message_id)

    def evidence(self, job_id: str) -> dict[str, Any]:
        queue = self.conf["queue"]
        job_id = self._redis_ids.get(job_id, job_id)
        acked = [
            k.decode() for k in self.redis.scan_iter("dramatiq:__acks__.*") if self.redis.sismember(k, job_id)
        ]
        return {
            "ack_sets": acked,
            "queued": job_id.encode() in self.redis.lrange(f"dramatiq:{queue}", 0, -1),
            "dead_letter_queue": self.redis.zscore(f"dramatiq:{queue}.XQ", job_id) is not None,
        }

    def recoverable(self, evidence: dict[str, Any]) -> bool:
        return bool(evidence["ack_sets"] or evidence["queued"])

    def dead_lettered(self, job_id: str) -> bool:
        return bool(self.evidence(job_id)["dead_letter_queue"])

    def settled(self, job_id: str) -> bool:
        return self.evidence(job_id)["ack_sets"] == []

    def nominal_recovery_s(self) -> float:
        return 60.0  # RedisBroker's heartbeat_timeout; maintenance runs on 0.1 % of its commands


class _Celery(_Adapter):
    def __init__(self, worker: RealWorker) -> None:
        super().__init__(worker)
        from harness.engines._workers_probe import celery_app

        self.app = celery_app(self.conf)

    def enqueue(self, key: str) -> str:
        result = self.app.send_task("probe", args=[key], queue=self.conf["queue"])
        return str(result.id)

    def enqueue_delivery(self, group: str, delivery: int, target: str, args: list[Any], retries: int,
                         retry_delay: float) -> str:
        result = self.app.send_task("deliver", args=[group, delivery, target, args], queue=self.conf["queue"])
        return str(result.id)

    def evidence(self, job_id: str) -> dict[str, Any]:
        if self.conf.get("broker_url", "").startswith("amqp"):
            return self._amqp_evidence(job_id)
        unacked = [
            tag.decode()
            for tag, payload in self.redis.hgetall("unacked").items()
            if job_id.encode() in payload
        ]
        queued = any(job_id.encode() in raw for raw in self.redis.lrange(self.conf["queue"], 0, -1))
        meta = self.redis.get(f"celery-task-meta-{job_id}")
        state = json.loads(meta)["status"] if meta else None
        return {"unacked": unacked, "queued": queued, "result_state": state}

    def _amqp_evidence(self, job_id: str) -> dict[str, Any]:
        # RabbitMQ returns a dead consumer's unacked messages to the queue as its connection closes.
        with self.app.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(self.conf["queue"], passive=True)
        meta = self.redis.get(f"celery-task-meta-{job_id}")
        return {
            "queue_messages": declared.message_count,
            "unacked": [],
            "queued": declared.message_count > 0,
            "result_state": json.loads(meta)["status"] if meta else None,
        }

    def recoverable(self, evidence: dict[str, Any]) -> bool:
        # Acked and gone from the broker: nothing can ever run it again.
        return bool(evidence["unacked"] or evidence["queued"])

    def dead_lettered(self, job_id: str) -> bool:
        return self.evidence(job_id)["result_state"] == "FAILURE"

    def settled(self, job_id: str) -> bool:
        return self.evidence(job_id)["result_state"] == "SUCCESS"

    def nominal_recovery_s(self) -> float:
        if self.conf.get("broker_url", "").startswith("amqp"):
            return 0.0  # redelivered as soon as the dead worker's connection is closed
        return 3600.0  # kombu's Redis visibility_timeout

    def close(self) -> None:
        if self.conf.get("broker_url", "").startswith("amqp"):
            with self.app.connection_for_write() as connection, contextlib.suppress(Exception):
                connection.default_channel.queue_delete(self.conf["queue"])
        self.app.close()
        super().close()


_ADAPTERS: dict[str, type[_Adapter]] = {"rq": _RQ, "dramatiq": _Dramatiq, "celery": _Celery}
