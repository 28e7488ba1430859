"""Celery behind the engine protocol, run deterministically through Celery's own worker request path.

Tasks are published with `apply_async` onto kombu's in-memory transport; each `step` takes one due
message and runs it as a worker does (`celery.worker.request.Request.execute`: ack, trace, signals,
`on_failure`/`on_retry`, the autoretry wrapper, `Task.retry` publishing the retry message). What the
harness replaces is the consumer loop and the clock: the app's `now()` reads `engine.clock`, so a
retry's ETA is virtual time, and messages with a future ETA wait here as they would in worker memory.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Celery, signals
from celery.app.task import Task
from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from harness.clock import VirtualClock
from harness.engines._bridge import Bridge, BridgedEngine, Decision, WorkerCrashed
from harness.engines.base import Hooks, Job, JobRecord, check_json_args
from harness.errors import ConfigurationError

__all__ = ["CeleryEngine"]

#: A native task's settings that the engine copies onto its own app, unchanged.
NATIVE_SETTINGS = (
    "autoretry_for",
    "dont_autoretry_for",
    "retry_kwargs",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "max_retries",
    "default_retry_delay",
    "acks_late",
    "reject_on_worker_lost",
    "ignore_result",
)
_engines = itertools.count()
_CONTROL = (Retry, Ignore, Reject)


class _VirtualApp(Celery):
    """A Celery app whose notion of now (countdown -> ETA) is the engine's clock."""

    harness_clock: VirtualClock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.harness_clock.time(), UTC)


class _DictBackend(KeyValueStoreBackend):
    """Celery's key-value result backend on a dict of this app's own (the memory cache is process-wide)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return self._data.get(key)

    def mget(self, keys: Any) -> list[Any]:
        return [self._data.get(key) for key in keys]

    def set(self, key: Any, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: Any) -> None:
        self._data.pop(key, None)

    def incr(self, key: Any) -> int:
        self._data[key] = int(self._data.get(key) or 0) + 1
        return int(self._data[key])


class CeleryEngine(BridgedEngine):
    """Celery on `memory://`, one task per `step`, on a virtual clock.

    Harness jobs become bound tasks that call `self.retry(countdown=<Sidekiq's delay>,
    max_retries=N)`; `register(task)` re-declares your own task on this engine's app with its own
    settings (autoretry_for, max_retries, retry_backoff, acks_late, ...) and its own Task base class
    (`on_failure`, `on_retry`, `on_success` overrides included).
    """

    name = "celery"

    def __init__(
        self, *, clock: VirtualClock | None = None, seed: int = 0, hooks: Hooks | None = None
    ) -> None:
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        self.bridge = Bridge(self)
        self._prefix = f"harness{next(_engines)}"
        self.app = _VirtualApp(
            self._prefix, broker="memory://", backend=f"{__name__}:_DictBackend", set_as_current=False
        )
        self.app.harness_clock = self.clock
        self.app.finalize(auto=True)
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            result_serializer="json",
            task_create_missing_queues=True,
            broker_connection_retry_on_startup=False,
        )
        self._tasks: dict[str, Task] = {}
        self._task_queue: dict[str, str] = {}
        self._jobs: dict[str, Job] = {}
        self._queues: list[str] = []
        self._ready: dict[str, deque[Any]] = {}
        self._held: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._eta: dict[str, float] = {}
        self._decisions: dict[str, Decision] = {}
        self._dead_ids: list[str] = []
        self._ids = random.Random(seed ^ 0xCE1)
        self._connection = self.app.connection_for_write()
        self._channel = self._connection.default_channel
        self._receivers = [
            (signals.before_task_publish, self._on_publish),
            (signals.task_success, self._on_success),
            (signals.task_retry, self._on_retry),
            (signals.task_failure, self._on_failure),
        ]
        for signal, receiver in self._receivers:
            signal.connect(receiver, weak=False)

    def _qname(self, queue: str) -> str:
        return f"{self._prefix}.{queue}"

    # -- jobs ------------------------------------------------------------------------------------------
    def register(self, job: Job | Task) -> None:
        if isinstance(job, Job):
            if job.name not in self._tasks:
                self._jobs[job.name] = job
                settings = {"max_retries": job.options.max_retries or 0}
                self._declare(job.name, job.options.queue, job.fn, settings, Task, bind_user=False, job=job)
        elif isinstance(job, Task):
            job = _evaluated(job)
            if job.name not in self._tasks:
                raw = type(job).__dict__.get("run")
                bind = not isinstance(raw, staticmethod)
                fn: Any = raw.__func__ if isinstance(raw, staticmethod) else raw
                settings = {key: getattr(job, key) for key in NATIVE_SETTINGS if hasattr(job, key)}
                base = next(c for c in type(job).__mro__[1:] if issubclass(c, Task))
                queue = _native_queue(job)
                self._declare(job.name, queue, fn, settings, base, bind_user=bind)
        else:
            raise ConfigurationError(f"cannot register {job!r}: pass a harness job or a Celery task")

    def _declare(
        self,
        name: str,
        queue: str,
        fn: Callable[..., Any],
        settings: dict[str, Any],
        base: type[Task],
        *,
        bind_user: bool,
        job: Job | None = None,
    ) -> None:
        engine = self

        def run(self: Task, *args: Any, **kwargs: Any) -> Any:
            record = engine._record_for(self.request.id, name, list(args), queue)

            def call() -> Any:
                return fn(self, *args, **kwargs) if bind_user else fn(*args, **kwargs)

            try:
                return engine.bridge.run_attempt(record, call)
            except _CONTROL:
                raise
            except BaseException as exc:
                # Celery's tracer lets BaseException escape the worker; a crash is a failed attempt.
                error = exc if isinstance(exc, Exception) else WorkerCrashed(exc)
                if job is None:
                    if error is exc:
                        raise
                    raise error from exc
                decision = engine.bridge.decide(job, self.request.retries, exc, record)
                engine._decisions[self.request.id] = decision
                if decision.kind == "retry":
                    raise self.retry(
                        exc=error, countdown=decision.delay, max_retries=job.options.max_retries
                    ) from exc
                if error is exc:
                    raise
                raise error from exc

        run.__name__ = name.rsplit(".", 1)[-1]
        # Shared tasks of every app land in this one when it is finalised; ours replaces the user's.
        self.app.tasks.pop(name, None)
        task = self.app.task(run, name=name, bind=True, base=base, shared=False, **settings)
        self._tasks[name] = task
        self._task_queue[name] = queue
        if queue not in self._queues:
            self._queues.append(queue)
            self._ready[queue] = deque()

    def _resolve(self, job: Job | Task | str) -> Task:
        if isinstance(job, str):
            if job not in self._tasks:
                raise ConfigurationError(f"no job named {job!r} is registered on the celery engine")
            return self._tasks[job]
        self.register(job)
        return self._tasks[job.name if isinstance(job, Job) else _evaluated(job).name]

    def enqueue(
        self, job: Job | Task | str, *args: Any, delay: float | None = None, at: float | None = None
    ) -> str | None:
        task = self._resolve(job)
        arguments = check_json_args(task.name, args)
        now = self.clock.time()
        when = at if at is not None else (now + delay if delay else None)
        task_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        queue = self._task_queue[task.name]
        record = self.bridge.record(task_id, task.name, arguments, queue, run_at=when)

        def push() -> str:
            eta = None if when is None or when <= now else datetime.fromtimestamp(when, UTC)
            task.apply_async(
                args=arguments,
                task_id=task_id,
                eta=eta,
                queue=self._qname(queue),
                connection=self._connection,
            )
            return task_id

        return self.bridge.push(record, push)

    # -- signals -----------------------------------------------------------------------------------------
    def _mine(self, sender: Any) -> bool:
        return getattr(sender, "app", None) is self.app

    def _on_publish(self, sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers and headers.get("id") in self.bridge.records and headers.get("eta"):
            self._eta[headers["id"]] = datetime.fromisoformat(headers["eta"]).timestamp()

    def _on_success(self, sender: Any = None, **_: Any) -> None:
        if self._mine(sender):
            self.bridge.succeeded(self._record_for(sender.request.id))

    def _on_retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        if not self._mine(sender):
            return
        record = self._record_for(request.id)
        exc = getattr(reason, "exc", None) or reason
        self.bridge.failed(record, _unwrap(exc))
        self.bridge.retry_scheduled(record, self._eta.pop(request.id, self.clock.time()))

    def _on_failure(
        self, sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any
    ) -> None:
        if not self._mine(sender) or task_id is None or exception is None:
            return
        record = self._record_for(task_id)
        exc = _unwrap(exception)
        self.bridge.failed(record, exc)
        decision = self._decisions.pop(task_id, None)
        if decision is None or decision.kind == "dead":
            self._dead_ids.append(task_id)
        self.bridge.settle(record, exc, decision)

    def _record_for(
        self, task_id: str, name: str = "", args: list[Any] | None = None, queue: str = "default"
    ) -> JobRecord:
        return self.bridge.record(task_id, name, args or [], queue)

    # -- running -----------------------------------------------------------------------------------------
    def _pull(self) -> None:
        """Take every published message off the transport, as a worker's consumer prefetches them."""
        for queue in self._queues:
            while (message := self._channel.basic_get(self._qname(queue), no_ack=False)) is not None:
                eta = message.headers.get("eta")
                due = datetime.fromisoformat(eta).timestamp() if eta else None
                if due is not None and due > self.clock.time():
                    self._held.append((due, next(self._seq), message))
                    self._held.sort(key=lambda held: held[:2])
                else:
                    self._ready[queue].append(message)

    def _release_due(self) -> None:
        now = self.clock.time()
        while self._held and self._held[0][0] <= now:
            _, _, message = self._held.pop(0)
            queue = message.delivery_info.get("routing_key", "").split(".", 1)[-1]
            self._ready.setdefault(queue, deque()).append(message)

    def step(self) -> bool:
        self._pull()
        self._release_due()
        for queue in self._queues:
            if self._ready[queue]:
                message = self._ready[queue].popleft()
                # Jobs that enqueue jobs reach this engine, as in Sidekiq, whoever called step().
                with self.activate():
                    self._execute(message)
                return True
        return False

    def _execute(self, message: Any) -> None:
        task = self.app.tasks[message.headers["task"]]
        request = Request(
            message,
            app=self.app,
            task=task,
            hostname=f"{self._prefix}@harness",
            on_ack=message.ack_log_error,
            on_reject=message.reject_log_error,
            connection_errors=(),
        )
        with self.bridge.seeded_global_random():
            request.execute()

    def next_due(self) -> float | None:
        self._pull()
        return self._held[0][0] if self._held else None

    # -- inspecting --------------------------------------------------------------------------------------
    def _snapshot(self, task_id: str, run_at: float | None = None) -> JobRecord:
        copy = JobRecord(**self._record_for(task_id).to_dict())
        if run_at is not None:
            copy.run_at = run_at
        return copy

    def queued(self, queue: str | None = None) -> list[JobRecord]:
        self._pull()
        self._release_due()
        names = [queue] if queue is not None else self._queues
        return [self._snapshot(m.headers["id"]) for name in names for m in self._ready.get(name, ())]

    def scheduled(self) -> list[JobRecord]:
        self._pull()
        return [
            self._snapshot(m.headers["id"], due) for due, _, m in self._held if not m.headers.get("retries")
        ]

    def retries(self) -> list[JobRecord]:
        self._pull()
        return [self._snapshot(m.headers["id"], due) for due, _, m in self._held if m.headers.get("retries")]

    def dead(self) -> list[JobRecord]:
        """Tasks whose final state in Celery's result backend is FAILURE, most recent first."""
        failed = [i for i in self._dead_ids if self.app.AsyncResult(i).state == "FAILURE"]
        return [self._snapshot(task_id) for task_id in reversed(failed)]

    def reset(self) -> None:
        self._pull()
        for queue in self._queues:
            self._ready[queue].clear()
        self._held.clear()
        self.app.backend._data.clear()
        self._dead_ids.clear()
        self._eta.clear()
        self._decisions.clear()
        self._ids = random.Random(self.seed ^ 0xCE1)
        self.bridge.reset()

    def close(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers = []
        self._connection.release()


def _unwrap(exc: BaseException) -> BaseException:
    return exc.crash if isinstance(exc, WorkerCrashed) else exc


def _evaluated(task: Task) -> Task:
    """The task behind a lazy `@app.task` proxy (apps that are not finalised hand out proxies)."""
    getter = getattr(task, "_get_current_object", None)
    return getter() if getter is not None else task


def _native_queue(task: Task) -> str:
    """The queue a native task is routed to by its own app: `queue=` on the task, or its routes."""
    declared = type(task).__dict__.get("queue")
    if declared:
        return str(declared)
    route = task.app.amqp.router.route({}, task.name, (), {})
    queue = route.get("queue")
    name = getattr(queue, "name", queue)
    return "default" if not name or name == task.app.conf.task_default_queue else str(name)
