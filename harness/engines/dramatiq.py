"""Dramatiq behind the engine protocol, run deterministically on a StubBroker and a virtual clock.

Dramatiq's own code does the work: its `Retries` middleware decides and schedules retries, its
consumer code moves due delayed messages back to their queue, its worker code runs the actor and acks
or nacks the message into the dead-letter queue. The harness only replaces the threads with one loop
(`step`) and the wall clock with `engine.clock` (`current_millis` is bound by name in several modules).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from queue import Empty, PriorityQueue
from typing import Any

import dramatiq
import dramatiq.worker as _dq_worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, q_name
from dramatiq.message import Message
from dramatiq.middleware import Middleware, Retries, default_middleware
from dramatiq.middleware.time_limit import TimeLimit

from harness.clock import VirtualClock
from harness.engines._bridge import Bridge, BridgedEngine, is_unwinding
from harness.engines._retry_rule import Decision
from harness.engines.base import Hooks, Job, JobRecord, RetryPolicy, _current, check_json_args
from harness.errors import ConfigurationError

__all__ = ["DramatiqEngine"]

_MODULES_WITH_CLOCK = (
    "dramatiq.worker",
    "dramatiq.brokers.stub",
    "dramatiq.brokers.redis",
    "dramatiq.middleware.age_limit",
)
#: Dramatiq's RedisBroker default: a worker silent this long is dead, and its unacked messages requeued.
DEFAULT_HEARTBEAT_TIMEOUT_MS = 60_000
_clocks = threading.local()
_installed = False
_sends_routed = False


def _millis() -> int:
    clock = getattr(_clocks, "current", None)
    return int(clock.time() * 1000) if clock is not None else int(time.time() * 1000)


def _route_native_sends() -> None:
    """Once per process: `send` / `send_with_options` of an actor declared on any other broker, made
    while a `DramatiqEngine` is current (inside its `step()` or `activate()`), reaches that engine: a
    chain written natively (`next_actor.send(order_id)`) runs on the engine under test."""
    global _sends_routed
    if _sends_routed:
        return
    original = dramatiq.Actor.send_with_options

    def send_with_options(
        actor: Any, *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, delay: Any = None,
        **options: Any,
    ) -> Any:
        engine = _current.get()
        if isinstance(engine, DramatiqEngine) and actor.broker is not engine.broker:
            return engine._send_native(actor, args, kwargs, delay, options)
        return original(actor, args=args, kwargs=kwargs, delay=delay, **options)

    # Patched on the class, once: the check above sends every other call on to the original.
    dramatiq.Actor.send_with_options = send_with_options  # type: ignore[method-assign,assignment]
    _sends_routed = True


def _install_clock() -> None:
    """Bind Dramatiq's `current_millis` to whichever virtual clock is driving this thread, if any."""
    global _installed
    if _installed:
        return
    import importlib

    for name in _MODULES_WITH_CLOCK:
        try:
            module = importlib.import_module(name)
        except ImportError:  # the Redis broker needs redis; the stub broker does not
            continue
        if hasattr(module, "current_millis"):
            module.current_millis = _millis  # type: ignore[attr-defined]
    _installed = True


class _Dead(Exception):
    """Raised by a harness job's wrapper when Sidekiq would kill it: Dramatiq dead-letters it at once."""


class _Escaper(Middleware):
    """The last middleware, so the first Dramatiq tells of a processed message: a harness error that
    escaped the attempt, or the death of the worker, leaves the worker here, before `Retries` or
    callbacks could route it."""

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if is_unwinding(exception):
            assert exception is not None
            raise exception


class _Observe(Middleware):
    """Dramatiq middleware that reports each message's fate to the bridge."""

    def __init__(self, engine: DramatiqEngine) -> None:
        self.engine = engine

    def before_process_message(self, broker: Any, message: Any) -> None:
        self.engine._message = message

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        if delay is not None and message.message_id in self.engine.bridge.records:
            self.engine._retry_eta[message.message_id] = message.options["eta"] / 1000

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        engine = self.engine
        record = engine._record_for(message)
        outcome = engine._outcomes.pop(message.message_id, None)
        eta = engine._retry_eta.pop(message.message_id, None)
        if exception is None and outcome is None:
            engine.bridge.succeeded(record)
            return
        exc, decision = outcome if outcome is not None else (exception, None)
        assert exc is not None
        engine.bridge.failed(record, exc)
        if eta is not None:
            engine.bridge.retry_scheduled(record, eta)
        elif message.failed:
            engine._dying[message.message_id] = exc
        elif decision is not None:
            engine.bridge.settle(record, exc, decision)  # discarded or retry=False: acked, not dead-lettered

    def after_nack(self, broker: Any, message: Any) -> None:
        exc = self.engine._dying.pop(message.message_id, None)
        if exc is not None:
            record = self.engine._record_for(message)
            self.engine.bridge.died(record, exc, dead_set=True)


class DramatiqEngine(BridgedEngine):
    """Dramatiq on an in-memory `StubBroker`, single-threaded, on a virtual clock.

    Register harness jobs (`@job`) or your own actors (`register(actor)`: the actor is re-declared on
    this engine's broker under the same name, with its own options: max_retries, min_backoff,
    max_backoff, retry_when, throws, on_failure, on_retry_exhausted).

    An injected crash is the death of the worker: its unacked message is redelivered
    `heartbeat_timeout_ms` later (Dramatiq's Redis broker default, 60 s), with no retry counted.
    """

    name = "dramatiq"

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        seed: int = 0,
        hooks: Hooks | None = None,
        middleware: list[Middleware] | None = None,
        heartbeat_timeout_ms: int = DEFAULT_HEARTBEAT_TIMEOUT_MS,
    ) -> None:
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        timeout = heartbeat_timeout_ms
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
            raise ConfigurationError(f"heartbeat_timeout_ms must be a non-negative int, not {heartbeat_timeout_ms!r}")
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        _install_clock()
        _route_native_sends()
        self.bridge = Bridge(self)
        if middleware is None:
            middleware = [m() for m in default_middleware if m is not TimeLimit]
        self.broker = StubBroker(middleware=middleware)
        self.broker.add_middleware(_Observe(self), before=Retries)
        self.broker.add_middleware(_Escaper())
        self._actors: dict[str, dramatiq.Actor] = {}
        self._jobs: dict[str, Job] = {}
        self._queues: list[str] = []
        self._message: Any = None
        self._outcomes: dict[str, tuple[BaseException, Decision]] = {}
        self._retry_eta: dict[str, float] = {}
        self._dying: dict[str, BaseException] = {}
        #: Messages a crashed worker held unacked: (redelivery time, seq, message, record).
        self._orphans: list[tuple[float, int, Message[Any], JobRecord]] = []
        self._seq = 0
        self._ids = random.Random(seed ^ 0x1D5)
        self._build_consumers()

    # -- driving Dramatiq's own worker pieces ----------------------------------------------------------
    def _build_consumers(self) -> None:
        self._work_queue: PriorityQueue[Any] = PriorityQueue()
        self._consumers: dict[str, _dq_worker.ConsumerThread] = {}
        for queue in self._queues:
            self._add_consumers(queue)
        self._worker = _dq_worker.WorkerThread(
            broker=self.broker, consumers=self._consumers, work_queue=self._work_queue, worker_timeout=0
        )

    def _add_consumers(self, queue: str) -> None:
        # Threads are built for their methods only and never started: the loop below is the worker.
        for name, prefetch in ((queue, 1), (dq_name(queue), 1_000_000)):
            thread = _dq_worker.ConsumerThread(
                broker=self.broker,
                queue_name=name,
                prefetch=prefetch,
                work_queue=self._work_queue,
                worker_timeout=0,
            )
            thread.consumer = self.broker.consume(name, prefetch=prefetch, timeout=0)
            self._consumers[name] = thread

    @contextmanager
    def _virtual(self) -> Iterator[None]:
        previous = getattr(_clocks, "current", None)
        _clocks.current = self.clock
        try:
            yield
        finally:
            _clocks.current = previous

    def _pull_delayed(self) -> None:
        """Take delayed messages off the broker and release the due ones, as a consumer thread does."""
        for queue in self._queues:
            thread = self._consumers[dq_name(queue)]
            while (message := next(_consumer(thread))) is not None:
                thread.handle_message(message)
            thread.handle_delayed_messages()

    def _crashed(self, record: JobRecord, crash: BaseException) -> None:
        """The worker died mid-message. Dramatiq acks only after processing, so the message sat in the
        dead worker's ack set; the Redis broker's maintenance puts it back on its queue once that
        worker's heartbeat is `heartbeat_timeout_ms` old. The same message: no retry is counted."""
        self.bridge.crashed(record, crash)
        self._seq += 1
        due = self.clock.time() + self.heartbeat_timeout_ms / 1000
        self._orphans.append((due, self._seq, self._message._message, record))
        self._orphans.sort(key=lambda orphan: orphan[:2])

    def _release_orphans(self) -> None:
        now = self.clock.time()
        while self._orphans and self._orphans[0][0] <= now:
            _, _, message, record = self._orphans.pop(0)
            # Straight onto the queue, as the broker's maintenance script moves it: no enqueue hooks.
            self.broker.queues[message.queue_name].put(message.encode())
            self.bridge.recovered(record)

    def step(self) -> bool:
        # Jobs that enqueue jobs reach this engine, as in Sidekiq, whoever called step().
        with self.activate(), self._virtual(), self.bridge.unwinding(self._crashed):
            self._release_orphans()
            self._pull_delayed()
            for queue in self._queues:
                message = next(_consumer(self._consumers[queue]))
                if message is None:
                    continue
                self._consumers[queue].handle_message(message)
                item = self._work_queue.get_nowait()
                with self.bridge.seeded_global_random():
                    self._worker.process_message(item.message)
                return True
        return False

    def next_due(self) -> float | None:
        with self._virtual():
            self._pull_delayed()
        due = [item.priority / 1000 for item in self._delayed_items()]
        if self._orphans:
            due.append(self._orphans[0][0])
        return min(due) if due else None

    def _delayed_items(self) -> list[Any]:
        return [item for q in self._queues for item in list(self._consumers[dq_name(q)].delay_queue.queue)]

    # -- jobs ------------------------------------------------------------------------------------------
    def register(self, job: Job | Any) -> None:
        if isinstance(job, Job):
            if job.name in self._jobs:
                return
            max_retries = job.options.max_retries
            options = {"max_retries": max_retries or 0, "throws": (_Dead,)}
            self._declare(job.name, job.options.queue, 0, self._wrap(job.fn, job), options)
            self._jobs[job.name] = job
        elif isinstance(job, dramatiq.Actor):
            if job.actor_name in self._actors:
                return
            self._declare(
                job.actor_name, job.queue_name, job.priority, self._wrap(job.fn, None), dict(job.options)
            )
        else:
            raise ConfigurationError(
                f"cannot register {job!r}: pass a harness job (@harness.job) or a dramatiq actor"
            )

    def _declare(
        self, name: str, queue: str, priority: int, fn: Callable[..., Any], options: dict[str, Any]
    ) -> None:
        unknown = set(options) - set(self.broker.actor_options)
        if unknown:
            # Dramatiq ignores options no middleware declares; a test must not silently drop them.
            raise ConfigurationError(
                f"actor {name} uses {sorted(unknown)}, which no middleware of this engine declares; "
                "build the engine with middleware=[...] that includes the middleware declaring them"
            )
        actor = dramatiq.Actor(
            fn, broker=self.broker, actor_name=name, queue_name=queue, priority=priority, options=options
        )
        self._actors[name] = actor
        if queue not in self._queues:
            self._queues.append(queue)
            self._add_consumers(queue)

    def _wrap(self, fn: Callable[..., Any], job: Job | None) -> Callable[..., Any]:
        engine = self

        def run(*args: Any, **kwargs: Any) -> Any:
            message = engine._message
            record = engine._record_for(message)
            try:
                return engine.bridge.run_attempt(record, lambda: fn(*args, **kwargs))
            except BaseException as exc:
                if job is None or is_unwinding(exc):
                    raise  # a native actor: Dramatiq's middleware decides, with the actor's options
                # The record is brought up to date first: hooks see it after the failure, as in Sidekiq.
                count = engine.bridge.note_failure(record, exc, job.options)
                decision = engine.bridge.decide(job, count, exc, record)
                engine._outcomes[message.message_id] = (exc, decision)
                if decision.kind == "retry":
                    assert decision.delay is not None
                    raise dramatiq.Retry(delay=int(decision.delay * 1000)) from exc
                if decision.kind == "dead":
                    raise _Dead(str(exc)) from exc
                return None  # discard and retry=False: Dramatiq cannot fail without dead-lettering

        run.__name__ = getattr(fn, "__name__", "job")
        return run

    def retry_policy(self, job: Job | str | Any, options: Mapping[str, Any] | None = None) -> RetryPolicy:
        """A harness job's policy, or a native actor's as Dramatiq's `Retries` middleware reads it: the
        actor's `max_retries` (else the middleware's, 20 by default) and `throws`; failed messages go to
        the dead-letter queue."""
        if isinstance(job, str):
            job = self._jobs.get(job) or self._resolve(job)[0]
        if isinstance(job, Job) or not isinstance(job, dramatiq.Actor):
            return super().retry_policy(job, options)
        retries = next((m for m in self.broker.middleware if isinstance(m, Retries)), None)
        name = job.actor_name
        if retries is None:
            return RetryPolicy(0, source=f"actor {name}: no Retries middleware on this engine")
        actor_options = {**job.options, **(options or {})}
        if actor_options.get("retry_when", retries.retry_when) is not None:
            raise ConfigurationError(
                f"actor {name} decides its retries with retry_when, which gives no number of retries to "
                "check routing against; give it max_retries=N (and throws=(...) for permanent errors)"
            )
        max_retries = actor_options.get("max_retries", retries.max_retries)
        if max_retries is None:
            raise ConfigurationError(
                f"actor {name} retries without end (max_retries=None); give it max_retries=N to check routing"
            )
        throws = actor_options.get("throws") or ()
        return RetryPolicy(
            max_retries=int(max_retries),
            dead=True,
            never_retry_on=tuple(throws) if isinstance(throws, tuple | list) else (throws,),
            source=f"actor {name}: max_retries={max_retries}"
            + ("" if "max_retries" in actor_options else " (the Retries middleware's default)"),
        )

    def _resolve(self, job: Job | str | Any) -> tuple[dramatiq.Actor, str]:
        if isinstance(job, str):
            if job not in self._actors:
                raise ConfigurationError(f"no job named {job!r} is registered on the dramatiq engine")
            return self._actors[job], job
        self.register(job)
        name = job.name if isinstance(job, Job) else job.actor_name
        return self._actors[name], name

    def enqueue(
        self,
        job: Job | str | Any,
        *args: Any,
        delay: float | None = None,
        at: float | None = None,
        **options: Any,
    ) -> str | None:
        """Push a job; `options` are Dramatiq message options (what `actor.send_with_options` takes:
        `max_retries`, `on_failure`, ...), each declared by a middleware of this engine."""
        message = self._push_message(job, args, delay, at, options)
        return None if message is None else message.message_id

    def _push_message(
        self, job: Job | str | Any, args: Sequence[Any], delay: float | None, at: float | None, options: dict[str, Any]
    ) -> Message[Any] | None:
        actor, name = self._resolve(job)
        unknown = set(options) - set(self.broker.actor_options)
        if unknown:
            raise ConfigurationError(
                f"message options {sorted(unknown)} for {name} are declared by no middleware of this engine; "
                f"known: {sorted(self.broker.actor_options)}"
            )
        arguments = check_json_args(name, args)
        now = self.clock.time()
        when = at if at is not None else (now + delay if delay else None)
        message: Message[Any] = Message(
            queue_name=actor.queue_name,
            actor_name=name,
            args=tuple(arguments),
            kwargs={},
            options=dict(options),
            message_id=str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
            message_timestamp=int(now * 1000),
        )
        record = self.bridge.record(message.message_id, name, arguments, actor.queue_name, run_at=when)

        def push() -> str:
            with self._virtual():
                millis = None if when is None else max(0, round((when - now) * 1000))
                self.broker.enqueue(message, delay=millis)
            return message.message_id

        return message if self.bridge.push(record, push) is not None else None

    def _send_native(
        self, actor: Any, args: Sequence[Any], kwargs: dict[str, Any] | None, delay: Any, options: dict[str, Any]
    ) -> Message[Any] | None:
        """`actor.send(...)` made while this engine is current (a chain written natively): the message
        comes here, to the actor re-declared on this engine's broker, instead of the team's broker."""
        if kwargs:
            raise ConfigurationError(
                f"{actor.actor_name} was sent keyword arguments {sorted(kwargs)}; the harness's engines "
                "carry positional arguments only: send them positionally"
            )
        if isinstance(delay, timedelta):
            delay = delay.total_seconds() * 1000
        seconds = None if delay is None else delay / 1000
        return self._push_message(actor, args, seconds, None, options)

    def _record_for(self, message: Any) -> JobRecord:
        return self.bridge.record(
            message.message_id, message.actor_name, list(message.args), q_name(message.queue_name)
        )

    # -- inspecting ------------------------------------------------------------------------------------
    def _snapshot(self, message: Any, run_at: float | None = None) -> JobRecord:
        record = self._record_for(message)
        copy = JobRecord(**record.to_dict())
        if run_at is not None:
            copy.run_at = run_at
        return copy

    def queued(self, queue: str | None = None) -> list[JobRecord]:
        names = [queue] if queue is not None else self._queues
        out = []
        for name in names:
            if name in self.broker.queues:
                out += [self._snapshot(Message.decode(data)) for data in list(self.broker.queues[name].queue)]
        return out

    def _delayed(self, retries: bool) -> list[JobRecord]:
        with self._virtual():
            self._pull_delayed()
        items = sorted(self._delayed_items(), key=lambda item: item.priority)
        return [
            self._snapshot(item.message, item.priority / 1000)
            for item in items
            if bool(item.message.options.get("retries")) == retries
        ]

    def scheduled(self) -> list[JobRecord]:
        return self._delayed(retries=False)

    def retries(self) -> list[JobRecord]:
        return self._delayed(retries=True)

    def dead(self) -> list[JobRecord]:
        return [self._snapshot(message) for message in reversed(self.broker.dead_letters)]

    def forget(self) -> list[JobRecord]:
        lost = [*self.queued(), *self.scheduled(), *self.retries(), *(orphan[3] for orphan in self._orphans)]
        self._flush_broker()
        self._orphans.clear()  # a dead worker's unacknowledged messages are in Redis too
        for record in lost:
            self.bridge.lost(record, cause="broker")
        return lost

    def _flush_broker(self) -> None:
        """Every queue, delay queue and dead letter gone, including what consumers had pulled into their
        delay queues."""
        self.broker.flush_all()
        for thread in self._consumers.values():
            while True:
                try:
                    thread.delay_queue.get_nowait()
                except Empty:
                    break

    def reset(self) -> None:
        self._flush_broker()
        self._build_consumers()
        self._outcomes.clear()
        self._retry_eta.clear()
        self._dying.clear()
        self._orphans.clear()
        self._seq = 0
        self._ids = random.Random(self.seed ^ 0x1D5)
        self.bridge.reset()

    def close(self) -> None:
        self.broker.close()


def _consumer(thread: Any) -> Any:
    """The broker consumer of a consumer thread that is never started (set in `_add_consumers`)."""
    return thread.consumer
