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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from harness.engines._bridge import Bridge, BridgedEngine, Decision
from harness.engines.base import Hooks, Job, JobRecord, check_json_args
from harness.errors import ConfigurationError

__all__ = ["DramatiqEngine"]

_MODULES_WITH_CLOCK = (
    "dramatiq.worker",
    "dramatiq.brokers.stub",
    "dramatiq.brokers.redis",
    "dramatiq.middleware.age_limit",
)
_clocks = threading.local()
_installed = False


def _millis() -> int:
    clock = getattr(_clocks, "current", None)
    return int(clock.time() * 1000) if clock is not None else int(time.time() * 1000)


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
    """

    name = "dramatiq"

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        seed: int = 0,
        hooks: Hooks | None = None,
        middleware: list[Middleware] | None = None,
    ) -> None:
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        _install_clock()
        self.bridge = Bridge(self)
        if middleware is None:
            middleware = [m() for m in default_middleware if m is not TimeLimit]
        self.broker = StubBroker(middleware=middleware)
        self.broker.add_middleware(_Observe(self), before=Retries)
        self._actors: dict[str, dramatiq.Actor] = {}
        self._jobs: dict[str, Job] = {}
        self._queues: list[str] = []
        self._message: Any = None
        self._outcomes: dict[str, tuple[BaseException, Decision]] = {}
        self._retry_eta: dict[str, float] = {}
        self._dying: dict[str, BaseException] = {}
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

    def step(self) -> bool:
        # Jobs that enqueue jobs reach this engine, as in Sidekiq, whoever called step().
        with self.activate(), self._virtual():
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
        etas = [item.priority for item in self._delayed_items()]
        return min(etas) / 1000 if etas else None

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
                if job is None:
                    raise  # a native actor: Dramatiq's middleware decides, with the actor's options
                count = 0 if record.retry_count is None else record.retry_count + 1
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

    def _resolve(self, job: Job | str | Any) -> tuple[dramatiq.Actor, str]:
        if isinstance(job, str):
            if job not in self._actors:
                raise ConfigurationError(f"no job named {job!r} is registered on the dramatiq engine")
            return self._actors[job], job
        self.register(job)
        name = job.name if isinstance(job, Job) else job.actor_name
        return self._actors[name], name

    def enqueue(
        self, job: Job | str | Any, *args: Any, delay: float | None = None, at: float | None = None
    ) -> str | None:
        actor, name = self._resolve(job)
        arguments = check_json_args(name, args)
        now = self.clock.time()
        when = at if at is not None else (now + delay if delay else None)
        message: Message[Any] = Message(
            queue_name=actor.queue_name,
            actor_name=name,
            args=tuple(arguments),
            kwargs={},
            options={},
            message_id=str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
            message_timestamp=int(now * 1000),
        )
        record = self.bridge.record(message.message_id, name, arguments, actor.queue_name, run_at=when)

        def push() -> str:
            with self._virtual():
                millis = None if when is None else max(0, round((when - now) * 1000))
                self.broker.enqueue(message, delay=millis)
            return message.message_id

        return self.bridge.push(record, push)

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

    def reset(self) -> None:
        self.broker.flush_all()
        for thread in self._consumers.values():
            while True:
                try:
                    thread.delay_queue.get_nowait()
                except Empty:
                    break
        self._build_consumers()
        self._outcomes.clear()
        self._retry_eta.clear()
        self._dying.clear()
        self._ids = random.Random(self.seed ^ 0x1D5)
        self.bridge.reset()

    def close(self) -> None:
        self.broker.close()


def _consumer(thread: Any) -> Any:
    """The broker consumer of a consumer thread that is never started (set in `_add_consumers`)."""
    return thread.consumer
