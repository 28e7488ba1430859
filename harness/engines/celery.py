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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from celery import Celery, signals
from celery.app.task import Task
from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from harness.clock import VirtualClock
from harness.engines._bridge import Bridge, BridgedEngine
from harness.engines._retry_rule import Decision
from harness.engines.base import Hooks, Job, JobRecord, RetryPolicy, _current, check_json_args
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
#: kombu's Redis transport restores an unacknowledged message this long after its delivery.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0
_engines = itertools.count()
_CONTROL = (Retry, Ignore, Reject)
#: `apply_async` options the engine sets itself.
_RESERVED_OPTIONS = frozenset({"task_id", "connection", "producer", "args", "kwargs", "link", "link_error", "shadow"})
_publishes_routed = False


def _route_native_publishes() -> None:
    """Once per process: `apply_async` (and so `delay`) of a task of any other app, called while a
    `CeleryEngine` is current (inside its `step()` or `activate()`), reaches that engine: a chain written
    natively (`next_task.delay(order_id)`) runs on the engine under test."""
    global _publishes_routed
    if _publishes_routed:
        return
    original = Task.apply_async

    def apply_async(
        task: Task, args: Any = None, kwargs: Any = None, task_id: Any = None, producer: Any = None,
        link: Any = None, link_error: Any = None, shadow: Any = None, **options: Any,
    ) -> Any:
        engine = _current.get()
        if isinstance(engine, CeleryEngine) and task.app is not engine.app:
            return engine._apply_native(task, args, kwargs, (link, link_error), options)
        return original(task, args, kwargs, task_id, producer, link, link_error, shadow, **options)

    # Patched on the class, once: the check above sends every other call on to the original.
    Task.apply_async = apply_async
    _publishes_routed = True


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
    max_retries=N)`, with `acks_late=True, reject_on_worker_lost=True`; `register(task)` re-declares
    your own task on this engine's app with its own settings (autoretry_for, max_retries,
    retry_backoff, acks_late, ...) and its own Task base class (`on_failure`, `on_retry`, `on_success`
    overrides included).

    An injected crash is the death of the worker (on Redis): an early-acknowledged task is lost; an
    `acks_late` one is redelivered `visibility_timeout` seconds after its delivery (kombu's default,
    an hour; 0 stands for RabbitMQ, which redelivers as the dead worker's connection closes), with no
    retry counted.
    """

    name = "celery"

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        seed: int = 0,
        hooks: Hooks | None = None,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT_S,
    ) -> None:
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        if not isinstance(visibility_timeout, int | float) or not visibility_timeout >= 0:
            raise ConfigurationError(f"visibility_timeout must be >= 0 seconds, not {visibility_timeout!r}")
        self.visibility_timeout = float(visibility_timeout)
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
        #: Unacknowledged messages of a crashed worker: (redelivery time, seq, message, record).
        self._orphans: list[tuple[float, int, Any, JobRecord]] = []
        #: The message being executed, its task, and when it was delivered (for a crash's redelivery).
        self._running: tuple[Any, Task, float] | None = None
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
        _route_native_publishes()

    def _qname(self, queue: str) -> str:
        return f"{self._prefix}.{queue}"

    # -- jobs ------------------------------------------------------------------------------------------
    def register(self, job: Job | Task) -> None:
        if isinstance(job, Job):
            if job.name not in self._tasks:
                self._jobs[job.name] = job
                # What a careful team sets so that a killed worker's task runs again: acknowledge after the
                # run (kombu redelivers an unacknowledged message), and requeue when a pool child dies.
                settings = {
                    "max_retries": job.options.max_retries or 0,
                    "acks_late": True,
                    "reject_on_worker_lost": True,
                }
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
            except Exception as exc:
                if job is None:
                    raise
                # The record is brought up to date first: hooks see it after the failure, as in Sidekiq.
                count = engine.bridge.note_failure(record, exc, job.options)
                decision = engine.bridge.decide(job, count, exc, record)
                engine._decisions[self.request.id] = decision
                if decision.kind == "retry":
                    raise self.retry(exc=exc, countdown=decision.delay, max_retries=job.options.max_retries) from exc
                raise
            # Anything else (a worker's death or a harness error carried by the bridge, SystemExit) is a
            # BaseException, which Celery's tracer lets leave the worker untouched: `step()` sees it.

        run.__name__ = name.rsplit(".", 1)[-1]
        # Shared tasks of every app land in this one when it is finalised; ours replaces the user's.
        self.app.tasks.pop(name, None)
        task = self.app.task(run, name=name, bind=True, base=base, shared=False, **settings)
        self._tasks[name] = task
        self._task_queue[name] = queue
        self._serve(queue)

    def _resolve(self, job: Job | Task | str) -> Task:
        if isinstance(job, str):
            if job not in self._tasks:
                raise ConfigurationError(f"no job named {job!r} is registered on the celery engine")
            return self._tasks[job]
        self.register(job)
        return self._tasks[job.name if isinstance(job, Job) else _evaluated(job).name]

    def retry_policy(self, job: Job | Task | str, options: Mapping[str, Any] | None = None) -> RetryPolicy:
        """A harness job's policy, or a native task's settings: `max_retries` (Celery's default 3),
        `autoretry_for` / `dont_autoretry_for`; a failed task is kept as a FAILURE result unless its
        results are ignored."""
        if isinstance(job, str):
            job = self._jobs.get(job) or self._resolve(job)
        if isinstance(job, Job) or not isinstance(job, Task):
            return super().retry_policy(job, options)
        task = _evaluated(job)
        max_retries = task.max_retries
        if max_retries is None:
            raise ConfigurationError(
                f"task {task.name} retries without end (max_retries=None); give it max_retries=N to check routing"
            )
        autoretry = tuple(getattr(task, "autoretry_for", ()) or ())
        kept = not task.ignore_result or bool(getattr(task, "store_errors_even_if_ignored", False))
        how = f"autoretry_for={autoretry!r}" if autoretry else "retried only where it calls self.retry()"
        return RetryPolicy(
            max_retries=int(max_retries),
            dead=kept,
            retry_on=autoretry,
            never_retry_on=tuple(getattr(task, "dont_autoretry_for", ()) or ()),
            source=f"task {task.name}: max_retries={max_retries}, {how}",
        )

    def enqueue(
        self,
        job: Job | Task | str,
        *args: Any,
        delay: float | None = None,
        at: float | None = None,
        **options: Any,
    ) -> str | None:
        """Push a task; `options` are `apply_async` options as production code passes them: `queue=`
        (served by this engine too), `countdown=` / `eta=` (seconds from now / a datetime on the virtual
        clock), and what Celery carries in the message (`priority`, `expires`, `headers`, ...)."""
        task = self._resolve(job)
        reserved = set(options) & _RESERVED_OPTIONS
        if reserved:
            raise ConfigurationError(
                f"apply_async options {sorted(reserved)} of {task.name} belong to the engine here; leave them out"
            )
        countdown, eta = options.pop("countdown", None), options.pop("eta", None)
        if delay is None and countdown is not None:
            delay = float(countdown)
        if at is None and eta is not None:
            at = eta.timestamp() if isinstance(eta, datetime) else float(eta)
        arguments = check_json_args(task.name, args)
        now = self.clock.time()
        when = at if at is not None else (now + delay if delay else None)
        task_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        queue = options.pop("queue", None) or self._task_queue[task.name]
        self._serve(queue)
        record = self.bridge.record(task_id, task.name, arguments, queue, run_at=when)

        def push() -> str:
            eta = None if when is None or when <= now else datetime.fromtimestamp(when, UTC)
            task.apply_async(
                args=arguments,
                task_id=task_id,
                eta=eta,
                queue=self._qname(queue),
                connection=self._connection,
                **options,
            )
            return task_id

        return self.bridge.push(record, push)

    def _serve(self, queue: str) -> None:
        if queue not in self._queues:
            self._queues.append(queue)
            self._ready[queue] = deque()

    def _apply_native(
        self, task: Task, args: Any, kwargs: Any, links: tuple[Any, Any], options: dict[str, Any]
    ) -> Any:
        """`task.delay(...)` / `task.apply_async(...)` of a team's own task made while this engine is
        current (a chain written natively): the task is published here, re-declared on this engine's
        app, instead of on the team's broker."""
        name = _evaluated(task).name
        if kwargs:
            raise ConfigurationError(
                f"{name} was sent keyword arguments {sorted(kwargs)}; the harness's engines carry positional "
                "arguments only: pass them positionally"
            )
        if any(links):
            raise ConfigurationError(f"{name} was sent with link/link_error callbacks, which this engine does not run")
        task_id = self.enqueue(task, *(args or ()), **options)
        return None if task_id is None else self.app.AsyncResult(task_id)

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
        self.bridge.failed(record, exc)
        self.bridge.retry_scheduled(record, self._eta.pop(request.id, self.clock.time()))

    def _on_failure(
        self, sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any
    ) -> None:
        if not self._mine(sender) or task_id is None or exception is None:
            return
        record = self._record_for(task_id)
        exc = exception
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
        self._release_orphans()
        self._release_due()
        for queue in self._queues:
            if self._ready[queue]:
                message = self._ready[queue].popleft()
                # Jobs that enqueue jobs reach this engine, as in Sidekiq, whoever called step().
                with self.activate(), self.bridge.unwinding(self._crashed):
                    self._execute(message)
                return True
        return False

    def _crashed(self, record: JobRecord, crash: BaseException) -> None:
        """The worker died mid-task. Early acknowledgement (Celery's default) acked the message as the
        task started: it is lost. With `acks_late` it was still unacknowledged, and the Redis transport
        restores it `visibility_timeout` after its delivery: the same message, no retry counted."""
        assert self._running is not None
        message, task, delivered_at = self._running
        self.bridge.crashed(record, crash)
        if not task.acks_late:
            self.bridge.lost(record)
            return
        self._orphans.append((delivered_at + self.visibility_timeout, next(self._seq), message, record))
        self._orphans.sort(key=lambda orphan: orphan[:2])

    def _release_orphans(self) -> None:
        now = self.clock.time()
        while self._orphans and self._orphans[0][0] <= now:
            _, _, message, record = self._orphans.pop(0)
            self._ready.setdefault(record.queue, deque()).append(message)
            self.bridge.recovered(record)

    def _execute(self, message: Any) -> None:
        task = self.app.tasks[message.headers["task"]]
        self._running = (message, task, self.clock.time())
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
        due = [pending[0][0] for pending in (self._held, self._orphans) if pending]
        return min(due) if due else None

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

    def forget(self) -> list[JobRecord]:
        lost = [*self.queued(), *self.scheduled(), *self.retries(), *(orphan[3] for orphan in self._orphans)]
        self._pull()
        for queue in self._queues:
            self._ready[queue].clear()
        self._held.clear()
        self._orphans.clear()  # unacknowledged messages wait in the broker too (Redis' unacked hash)
        self._eta.clear()
        for record in lost:
            self.bridge.lost(record, cause="broker")
        return lost

    def reset(self) -> None:
        self._pull()
        for queue in self._queues:
            self._ready[queue].clear()
        self._held.clear()
        self._orphans.clear()
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
