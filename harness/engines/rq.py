"""RQ behind the engine protocol, run deterministically: a SimpleWorker in burst mode on fakeredis.

RQ's own code does the work: `Queue` pushes, the worker's failure path (callbacks, exception handlers,
`Job.retry`, `FailedJobRegistry`), its `ScheduledJobRegistry` and its scheduler's release of due jobs.
The harness runs one job per `step`, in-process, with RQ's clock (`rq.utils.now`, `time.time`) held at
`engine.clock` by time-machine, so retries hours apart follow one another at once.
"""

from __future__ import annotations

import inspect
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import fakeredis
import rq
import time_machine
from rq import Queue, SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob
from rq.job import JobStatus, Retry
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.timeouts import BaseDeathPenalty

from harness.clock import VirtualClock
from harness.engines._bridge import Bridge, BridgedEngine, is_unwinding
from harness.engines._retry_rule import Decision
from harness.engines.base import Hooks, Job, JobRecord, RetryPolicy, _current, check_json_args
from harness.errors import ConfigurationError

__all__ = ["RQEngine"]

#: Native RQ options `enqueue` passes through for a user's own function.
NATIVE_OPTIONS = frozenset(
    {
        "retry",
        "on_success",
        "on_failure",
        "on_stopped",
        "failure_ttl",
        "result_ttl",
        "job_timeout",
        "meta",
        "description",
    }
)


#: `Queue.enqueue_call` parameters that carry RQ options, and the `enqueue` option each becomes here.
_CALL_OPTIONS = {
    "timeout": "job_timeout",
    "result_ttl": "result_ttl",
    "failure_ttl": "failure_ttl",
    "description": "description",
    "meta": "meta",
    "retry": "retry",
    "on_success": "on_success",
    "on_failure": "on_failure",
    "on_stopped": "on_stopped",
}
#: What `Queue.parse_args` returns in RQ 3.x, in order (`enqueue_at` gives it no names).
_PARSED = (
    "func", "timeout", "description", "result_ttl", "ttl", "failure_ttl", "depends_on", "job_id", "at_front",
    "meta", "retry", "repeat", "on_success", "on_failure", "on_stopped", "rate_limit", "pipeline", "unique",
    "args", "kwargs", "webhooks",
)
_enqueues_routed = False


def _route_native_enqueues() -> None:
    """Once per process: `Queue.enqueue` / `enqueue_call` / `enqueue_at` / `enqueue_in` on a queue of any
    other connection, called while an `RQEngine` is current (inside its `step()` or `activate()`), reaches
    that engine: a chain written natively (`Queue("high", connection=redis).enqueue(next_job, ...)`) runs
    on the engine under test, in the queue of that name."""
    global _enqueues_routed
    if _enqueues_routed:
        return
    call_signature = inspect.signature(Queue.enqueue_call)
    original_call, original_at = Queue.enqueue_call, Queue.enqueue_at

    def enqueue_call(queue: Queue, *args: Any, **kwargs: Any) -> Any:
        engine = _current.get()
        if isinstance(engine, RQEngine) and queue.connection is not engine.connection:
            bound = call_signature.bind(queue, *args, **kwargs).arguments
            return engine._enqueue_native(queue.name, bound, None)
        return original_call(queue, *args, **kwargs)

    def enqueue_at(queue: Queue, when: datetime, f: Any, *args: Any, **kwargs: Any) -> Any:
        engine = _current.get()
        if isinstance(engine, RQEngine) and queue.connection is not engine.connection:
            parsed = Queue.parse_args(f, *args, **kwargs)
            if len(parsed) != len(_PARSED):
                raise ConfigurationError(f"enqueue_at of RQ {rq.__version__} cannot be routed to the harness")
            return engine._enqueue_native(queue.name, dict(zip(_PARSED, parsed, strict=True)), when.timestamp())
        return original_at(queue, when, f, *args, **kwargs)

    # Patched on the class, once: the checks above send every other call on to the originals (enqueue and
    # enqueue_in go through these two).
    Queue.enqueue_call = enqueue_call  # type: ignore[method-assign,assignment]
    Queue.enqueue_at = enqueue_at  # type: ignore[method-assign,assignment]
    _enqueues_routed = True


class _NoDeathPenalty(BaseDeathPenalty):
    """Job timeouts use SIGALRM or a timer thread; a deterministic run has neither."""

    def setup_death_penalty(self) -> None:
        pass

    def cancel_death_penalty(self) -> None:
        pass


class RQEngine(BridgedEngine):
    """RQ on fakeredis (or a given Redis connection), one job per `step`, on a virtual clock.

    Harness jobs get `Retry(max=N)` with Sidekiq's delay set per failure; your own functions run
    with what you pass: `engine.enqueue(fn, *args, retry=Retry(max=3, interval=[10, 60]))`.
    `exception_handlers` are RQ worker exception handlers `(job, exc_type, exc, tb)`, run after ours.
    `queues` is the worker's queue list, in priority order, as in `rq worker high default`: RQ's worker
    takes from the first non-empty one. Queues it does not name follow, in the order they first got a job.

    An injected crash is the death of the worker: the job is abandoned in StartedJobRegistry and RQ's
    own cleanup, once its heartbeat expired, retries it (if it has retries left) or fails it.
    """

    name = "rq"

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        seed: int = 0,
        hooks: Hooks | None = None,
        connection: Any = None,
        exception_handlers: list[Callable[..., Any]] | None = None,
        queues: Sequence[str] = (),
    ) -> None:
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        if isinstance(queues, str) or not all(isinstance(q, str) and q for q in queues):
            raise ConfigurationError(f"queues must be a list of queue names in priority order, not {queues!r}")
        self.bridge = Bridge(self)
        # Any: redis-py's sync/async union types do not survive zrange(..., withscores=True).
        self.connection: Any = connection if connection is not None else fakeredis.FakeRedis()
        self._functions: dict[str, Callable[..., Any]] = {}
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, Queue] = {}
        self._decisions: dict[str, Decision] = {}
        self._last_exc: dict[str, BaseException] = {}
        #: The RQ options each function was last enqueued with (its `Retry` lives on the enqueued job).
        self._enqueued_with: dict[str, dict[str, Any]] = {}
        #: Jobs a crashed worker left in StartedJobRegistry (job id -> queue), until RQ's cleanup.
        self._abandoned: dict[str, str] = {}
        self._ids = random.Random(seed ^ 0x52)
        self._user_handlers = list(exception_handlers or [])
        self.job_class = _job_class(self)
        self._worker: SimpleWorker | None = None
        _route_native_enqueues()
        for name in queues:
            self._queue(name)

    # -- the clock ---------------------------------------------------------------------------------------
    @contextmanager
    def _virtual(self) -> Iterator[None]:
        # Everything that reads or writes RQ state runs at virtual time: fakeredis expires keys and
        # RQ cleans registries by the wall clock, which time-machine holds at `engine.clock`.
        with time_machine.travel(self.clock.time(), tick=False):
            yield

    # -- jobs --------------------------------------------------------------------------------------------
    def _queue(self, name: str) -> Queue:
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.connection, job_class=self.job_class)
            self._worker = None
        return self._queues[name]

    def register(self, job: Job | Callable[..., Any]) -> None:
        if isinstance(job, Job):
            self._jobs.setdefault(job.name, job)
            self._functions.setdefault(job.name, job.fn)
            self._queue(job.options.queue)
        elif callable(job):
            self._functions.setdefault(_func_name(job), job)
        else:
            raise ConfigurationError(f"cannot register {job!r}: pass a harness job or a function")

    def enqueue(
        self,
        job: Job | str | Callable[..., Any],
        *args: Any,
        delay: float | None = None,
        at: float | None = None,
        queue: str | None = None,
        **native: Any,
    ) -> str | None:
        """Push a job. For your own function, `queue=` and RQ's options (`retry=Retry(...)`,
        `on_failure=`, `on_success=`, ...) are passed to `Queue.enqueue_call` as they are."""
        unknown = set(native) - NATIVE_OPTIONS
        if unknown:
            raise ConfigurationError(f"unknown RQ options {sorted(unknown)}; use {sorted(NATIVE_OPTIONS)}")
        if isinstance(job, str):
            if job not in self._functions:
                raise ConfigurationError(f"no job named {job!r} is registered on the rq engine")
            job = self._jobs.get(job, self._functions[job])
        self.register(job)
        if isinstance(job, Job):
            name, queue_name = job.name, queue or job.options.queue
            retries = job.options.max_retries
            if retries:
                native.setdefault("retry", Retry(max=retries))
        else:
            name, queue_name = _func_name(job), queue or "default"
        arguments = check_json_args(name, args)
        now = self.clock.time()
        when = at if at is not None else (now + delay if delay else None)
        job_id = uuid.UUID(int=self._ids.getrandbits(128), version=4).hex
        record = self.bridge.record(job_id, name, arguments, queue_name, run_at=when)
        native.setdefault("failure_ttl", 10 * 365 * 86400)  # the dead set outlives any virtual run
        self._enqueued_with[name] = dict(native)

        def push() -> str:
            with self._virtual():
                target = self._queue(queue_name)
                if when is None or when <= now:
                    target.enqueue_call(name, args=arguments, job_id=job_id, **native)
                else:
                    moment = datetime.fromtimestamp(when, UTC)
                    target.enqueue_at(moment, name, *arguments, job_id=job_id, **native)
            return job_id

        return self.bridge.push(record, push)

    def _enqueue_native(self, queue: str, call: dict[str, Any], at: float | None) -> Any:
        """A team's own `Queue.enqueue...` made while this engine is current: the job is enqueued here,
        in the queue of that name, with the RQ options it was given."""
        func = call["func"]
        if isinstance(func, str) and func not in self._functions:
            from rq.utils import import_attribute

            func = import_attribute(func)
        name = func if isinstance(func, str) else _func_name(func)
        if call.get("kwargs"):
            raise ConfigurationError(
                f"{name} was enqueued with keyword arguments {sorted(call['kwargs'])}; the harness's engines "
                "carry positional arguments only: pass them positionally"
            )
        unsupported = sorted(k for k in ("ttl", "depends_on", "job_id", "repeat", "rate_limit", "pipeline", "webhooks")
                             if call.get(k)) + (["at_front"] if call.get("at_front") else [])
        if unsupported:
            raise ConfigurationError(f"{name} was enqueued with {unsupported}, which the rq engine does not model")
        native = {ours: call[theirs] for theirs, ours in _CALL_OPTIONS.items() if call.get(theirs) is not None}
        job_id = self.enqueue(func, *(call.get("args") or ()), at=at, queue=queue, **native)
        if job_id is None:
            return None
        with self._virtual():
            return self.job_class.fetch(job_id, connection=self.connection)

    def retry_policy(
        self, job: Job | str | Callable[..., Any], options: Mapping[str, Any] | None = None
    ) -> RetryPolicy:
        """A harness job's policy, or a native function's: the `Retry(max=N)` it is enqueued with
        (`options`, else the options it was last enqueued with here); without one RQ fails it at once.
        Failed jobs are kept in `FailedJobRegistry`."""
        if isinstance(job, str):
            job = self._jobs.get(job) or self._functions.get(job) or job
        if isinstance(job, Job) or not callable(job):
            return super().retry_policy(job, options)
        name = _func_name(job)
        given = options if options is not None else self._enqueued_with.get(name, {})
        retry = given.get("retry")
        if retry is None:
            return RetryPolicy(0, source=f"{name} enqueued without Retry: RQ fails it at once")
        return RetryPolicy(max_retries=int(retry.max), source=f"{name} enqueued with Retry(max={retry.max})")

    # -- running -----------------------------------------------------------------------------------------
    def _get_worker(self) -> SimpleWorker:
        if self._worker is None:
            self._worker = _worker_class(self)(
                list(self._queues.values()),
                connection=self.connection,
                name=f"harness-rq-{self.seed}",
                job_class=self.job_class,
                exception_handlers=[self._on_exception, *self._user_handlers],
            )
        return self._worker

    def _release_due(self) -> None:
        scheduler = RQScheduler(list(self._queues), connection=self.connection)
        scheduler.prepare_registries(list(self._queues))
        scheduler.enqueue_scheduled_jobs()

    def _crashed(self, record: JobRecord, crash: BaseException) -> None:
        """The worker died mid-job: the job stays in StartedJobRegistry, STARTED, until its heartbeat
        expires (RQ's TTL: 60 s past the monitoring interval); then RQ's own cleanup treats it as
        abandoned (`AbandonedJobError` to the failure callback and exception handlers; retried if it
        has retries left, else failed). The attempt is counted when that cleanup reports it."""
        self.bridge.crashed(record, crash, counted=False)
        self._abandoned[record.id] = record.queue
        self._worker = None  # that worker is dead; the next step starts a fresh one

    def _abandoned_due(self) -> float | None:
        scores = []
        for name in set(self._abandoned.values()):
            key = StartedJobRegistry(name, connection=self.connection).key
            scores += [score for _, score in self.connection.zrange(key, 0, 0, withscores=True)]
        return min(scores) if scores else None

    def _clean_abandoned(self) -> None:
        """RQ's maintenance on the expired StartedJobRegistry entries (a live worker runs it every
        10 minutes; here at the expiry itself), then the fate of each abandoned job told to the bridge."""
        now = self.clock.time()
        handlers = [self._on_exception, *self._user_handlers]
        for name in sorted(set(self._abandoned.values())):
            StartedJobRegistry(
                name, connection=self.connection, job_class=self.job_class, death_penalty_class=_NoDeathPenalty
            ).cleanup(timestamp=now, exception_handlers=handlers)
        for job_id in list(self._abandoned):
            job = self.job_class.fetch(job_id, connection=self.connection)
            if job.get_status(refresh=True) != JobStatus.STARTED:
                del self._abandoned[job_id]
                self._after_failure(job, AbandonedJobError())

    def step(self) -> bool:
        if not self._queues:
            return False
        # Jobs that enqueue jobs reach this engine, as in Sidekiq, whoever called step().
        with self.activate(), self._virtual(), self.bridge.unwinding(self._crashed):
            abandoned = self._abandoned_due()
            if abandoned is not None and abandoned <= self.clock.time():
                self._clean_abandoned()
            due = self._scheduled_due()
            if due is not None and due <= self.clock.time():
                self._release_due()
            # Each of RQ's work() calls registers a worker and tears it down: skip it when idle.
            if not any(self.connection.llen(queue.key) for queue in self._queues.values()):
                return False
            return self._get_worker().work(burst=True, max_jobs=1, logging_level="WARNING")

    def _scheduled_due(self) -> float | None:
        scores = []
        for name in self._queues:
            first = self.connection.zrange(
                ScheduledJobRegistry(name, connection=self.connection).key, 0, 0, withscores=True
            )
            scores += [score for _, score in first]
        return min(scores) if scores else None

    def next_due(self) -> float | None:
        due = [t for t in (self._scheduled_due(), self._abandoned_due()) if t is not None]
        return min(due) if due else None

    def _on_exception(self, job: RQJob, exc_type: Any, exc: BaseException, tb: Any) -> bool:
        """First of RQ's exception handlers: report the failure, and route a harness job."""
        record = self._record_for(job)
        harness_job = self._jobs.get(job.func_name or "")
        self.bridge.failed(record, exc, harness_job.options if harness_job is not None else None)
        if harness_job is not None:
            decision = self.bridge.decide(harness_job, record.retry_count, exc, record)
            self._decisions[job.id] = decision
            if decision.kind == "retry":
                # RQ reads the next interval from this list when it calls Job.retry right after us.
                job.retry_intervals = [decision.delay]  # type: ignore[list-item]  # floats work
            else:
                job.retries_left = 0
        return True

    def _after_failure(self, job: RQJob, exc: BaseException | None) -> None:
        record = self._record_for(job)
        decision = self._decisions.pop(job.id, None)
        status = job.get_status(refresh=True)
        if status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
            score = self.connection.zscore(
                ScheduledJobRegistry(job.origin, connection=self.connection).key, job.id
            )
            self.bridge.retry_scheduled(record, score if score is not None else self.clock.time())
            return
        error = exc if exc is not None else RuntimeError(record.error_message or "failed")
        if decision is not None and decision.kind != "dead":
            # Sidekiq keeps these out of its dead set; RQ always files them, so take them back out.
            FailedJobRegistry(job.origin, connection=self.connection).remove(job.id)
        self.bridge.settle(record, error, decision)

    def _record_for(self, job: RQJob) -> JobRecord:
        return self.bridge.record(job.id, (job.func_name or ""), list(job.args), job.origin)

    # -- inspecting --------------------------------------------------------------------------------------
    def _snapshot(self, job_id: str, run_at: float | None = None) -> JobRecord | None:
        record = self.bridge.records.get(job_id)
        if record is None:
            job = RQJob.fetch(job_id, connection=self.connection)
            record = self._record_for(job)
        copy = JobRecord(**record.to_dict())
        if run_at is not None:
            copy.run_at = run_at
        return copy

    def queued(self, queue: str | None = None) -> list[JobRecord]:
        names = [queue] if queue is not None else list(self._queues)
        with self._virtual():
            ids = [job_id for name in names if name in self._queues for job_id in self._queues[name].job_ids]
            return [r for r in map(self._snapshot, ids) if r is not None]

    def _scheduled(self, retries: bool) -> list[JobRecord]:
        entries: list[tuple[float, str]] = []
        for name in self._queues:
            key = ScheduledJobRegistry(name, connection=self.connection).key
            entries += [
                (score, raw.decode()) for raw, score in self.connection.zrange(key, 0, -1, withscores=True)
            ]
        out = []
        for score, job_id in sorted(entries):
            record = self._snapshot(job_id, score)
            if record is not None and (record.retry_count is not None) == retries:
                out.append(record)
        return out

    def scheduled(self) -> list[JobRecord]:
        return self._scheduled(retries=False)

    def retries(self) -> list[JobRecord]:
        return self._scheduled(retries=True)

    def dead(self) -> list[JobRecord]:
        entries: list[tuple[float, str]] = []
        for name in self._queues:
            key = FailedJobRegistry(name, connection=self.connection).key
            entries += [
                (score, raw.decode()) for raw, score in self.connection.zrange(key, 0, -1, withscores=True)
            ]
        records = [self._snapshot(job_id) for _, job_id in sorted(entries, reverse=True)]
        return [r for r in records if r is not None]

    def forget(self) -> list[JobRecord]:
        with self._virtual():
            lost = [*self.queued(), *self.scheduled(), *self.retries()]
            # RQ keeps everything in Redis: queues, registries, the jobs' own hashes.
            self.connection.flushdb()
        for record in lost:
            self.bridge.lost(record, cause="broker")
        return lost

    def reset(self) -> None:
        self.connection.flushdb()
        self._decisions.clear()
        self._abandoned.clear()
        self._ids = random.Random(self.seed ^ 0x52)
        self._worker = None
        self.bridge.reset()

    def close(self) -> None:
        self._worker = None


def _func_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _job_class(engine: RQEngine) -> type[RQJob]:
    class HarnessJob(RQJob):
        """RQ's Job, resolving functions the engine knows and running them inside the bridge's seam."""

        @property
        def func(self) -> Any:
            found = engine._functions.get(self.func_name or "")
            return found if found is not None else super().func

        def _execute(self) -> Any:
            record = engine._record_for(self)
            return engine.bridge.run_attempt(record, super()._execute)

    return HarnessJob


def _worker_class(engine: RQEngine) -> type[SimpleWorker]:
    class HarnessWorker(SimpleWorker):
        """RQ's in-process worker, with no signal handlers, no timeouts and no command channel, reporting to
        the bridge."""

        death_penalty_class = _NoDeathPenalty

        def _install_signal_handlers(self) -> None:
            pass

        # RQ subscribes each worker to a pub/sub channel for remote commands (kill the horse, shut down),
        # with a listener thread, every time `work()` starts: once per job here. Nothing sends commands to
        # an in-process worker, and stopping that thread can wait up to its 60 s poll after unsubscribing.
        def subscribe(self) -> None:
            pass

        def unsubscribe(self) -> None:
            pass

        def handle_job_success(self, job: RQJob, queue: Queue, *args: Any, **kwargs: Any) -> None:
            super().handle_job_success(job, queue, *args, **kwargs)
            engine.bridge.succeeded(engine._record_for(job))

        def handle_job_failure(self, job: RQJob, queue: Queue, *args: Any, **kwargs: Any) -> None:
            exc = engine._last_exc.pop(job.id, None)
            super().handle_job_failure(job, queue, *args, **kwargs)
            engine._after_failure(job, exc)

        def _finalize_failure(self, job: RQJob, queue: Queue, execution: Any, exc_info: Any) -> None:
            # RQ's failure path (callbacks, handlers, retry, FailedJobRegistry), skipped for a harness
            # error that escaped the attempt: it is not the job's failure, and `step()` raises it.
            if is_unwinding(exc_info[1]):
                return
            super()._finalize_failure(job, queue, execution, exc_info)

        def handle_exception(self, job: RQJob, *exc_info: Any) -> None:
            engine._last_exc[job.id] = exc_info[1]
            super().handle_exception(job, *exc_info)

    return HarnessWorker
