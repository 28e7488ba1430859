"""What the Dramatiq, RQ and Celery backends share: one job's record, the event log, the hooks.

Each backend lets its engine decide (retry, dead-letter, fail) and reports what the engine did through a
`Bridge`, which keeps Sidekiq-shaped records, appends events and calls the normalised hooks. Harness
jobs (declared with `@job`) also get their routing decided here, with Sidekiq's rules, so that a
backend only has to translate a `Decision` into its engine's native mechanism.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from harness.engines.base import Engine, Event, EventKind, Job, JobOptions, JobRecord, Stats
from harness.errors import InjectedCrash

__all__ = ["Bridge", "Decision", "WorkerCrashed", "decide", "sidekiq_delay"]

_log = logging.getLogger("harness.engines")
_BEFORE_FAILURE = frozenset({EventKind.ENQUEUED, EventKind.STARTED, EventKind.SUCCEEDED})


class WorkerCrashed(Exception):
    """An `InjectedCrash` carried across an engine that does not retry `BaseException`s."""

    def __init__(self, crash: BaseException) -> None:
        super().__init__(str(crash))
        self.crash = crash


def sidekiq_delay(count: int, rng: random.Random) -> float:
    """Sidekiq's default delay before retry number `count + 1`: count**4 + 15 s plus jitter."""
    return float(count**4 + 15 + rng.randrange(10 * (count + 1)))


@dataclass(frozen=True)
class Decision:
    """What Sidekiq would do with a failed attempt of a harness job.

    `retry` (after `delay` seconds), `dead` (exhausted or killed: exhausted block, dead set, death
    handlers), `discard` (death handlers only; `exhausted` says whether the exhausted block runs
    first, as it does for `dead=False`), `drop` (`retry=False`: nothing but the error handlers).
    """

    kind: Literal["retry", "dead", "discard", "drop"]
    delay: float | None = None
    exhausted: bool = False


def decide(
    options: JobOptions, count: int, exc: BaseException, record: JobRecord, rng: random.Random
) -> Decision:
    """Route the failure whose retry count (after it) is `count`, with Sidekiq's order of checks."""
    max_retries = options.max_retries
    if max_retries is None:
        return Decision("drop")
    if count >= max_retries:
        return Decision("dead", exhausted=True) if options.dead else Decision("discard", exhausted=True)
    answer: Any = None
    if options.retry_in is not None:
        try:
            answer = options.retry_in(count, exc, record)
        except Exception:  # Sidekiq reports the broken rule and falls back to its formula
            _log.exception("retry_in of %s raised; using the default delay", record.job)
            answer = None
    if answer == "kill":
        return Decision("dead", exhausted=True) if options.dead else Decision("discard", exhausted=True)
    if answer == "discard":
        return Decision("discard")
    if isinstance(answer, float) and math.isfinite(answer):
        answer = int(answer)  # Sidekiq takes whole seconds (Ruby's Float#to_i)
    if isinstance(answer, int) and not isinstance(answer, bool) and answer > 0:
        return Decision("retry", float(answer + rng.randrange(10 * (count + 1))))
    return Decision("retry", sidekiq_delay(count, rng))


class Bridge:
    """The normalised side of a native backend: records, events, stats, hooks and observers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rng = random.Random(engine.seed)
        self.records: dict[str, JobRecord] = {}
        self.events: list[Event] = []
        self.stats = Stats()
        #: The one attempt running now (backends are single-threaded), for hooks that see only ids.
        self.current: JobRecord | None = None
        self._global_random: Any = None

    def reset(self) -> None:
        self.rng = random.Random(self.engine.seed)
        self.records.clear()
        self.events.clear()
        self.stats = Stats()
        self.current = None
        self._global_random = None

    # -- records and events --------------------------------------------------------------------------
    def record(self, job_id: str, name: str, args: list[Any], queue: str, **fields: Any) -> JobRecord:
        """The record of `job_id`, created on first sight (jobs enqueued by other jobs included)."""
        found = self.records.get(job_id)
        if found is None:
            found = JobRecord(
                id=job_id, job=name, args=list(args), queue=queue, enqueued_at=self.engine.clock.time()
            )
            self.records[job_id] = found
        for key, value in fields.items():
            setattr(found, key, value)
        return found

    def emit(self, kind: EventKind, record: JobRecord, **detail: Any) -> None:
        # Events that follow a failure carry the number of the attempt that failed, not the next one.
        attempt = record.attempt if kind in _BEFORE_FAILURE else record.attempt - 1
        self.events.append(
            Event(self.engine.clock.time(), kind, record.id, record.job, attempt, dict(detail))
        )

    # -- client side -----------------------------------------------------------------------------------
    def push(self, record: JobRecord, do_push: Callable[[], str | None]) -> str | None:
        """Run the client middleware around the engine's own push; None when a middleware stopped it."""
        chain = do_push
        for middleware in reversed(self.engine.hooks.client_middleware):
            chain = _bind(middleware, record, chain)
        pushed = chain()
        if pushed is None:
            self.records.pop(record.id, None)
            return None
        self.emit(EventKind.ENQUEUED, record, queue=record.queue, run_at=record.run_at, args=record.args)
        return record.id

    # -- server side -----------------------------------------------------------------------------------
    def run_attempt(self, record: JobRecord, call: Callable[[], Any]) -> Any:
        """The seam around the job function itself: observers, then server middleware, then `call`."""
        hooks = self.engine.hooks
        attempt = record.attempt
        self.current = record
        self.emit(EventKind.STARTED, record, queue=record.queue)
        for observer in hooks.observers:
            observer.attempt_started(record, attempt)
        chain = call
        for middleware in reversed(hooks.server_middleware):
            chain = _bind(middleware, record, chain)
        try:
            result = chain()
        except BaseException as exc:
            for observer in hooks.observers:
                observer.attempt_finished(record, attempt, exc)
            raise
        for observer in hooks.observers:
            observer.attempt_finished(record, attempt, None)
        return result

    def succeeded(self, record: JobRecord) -> None:
        self.stats.processed += 1
        self.emit(EventKind.SUCCEEDED, record)

    def failed(self, record: JobRecord, exc: BaseException, retry_count: int | None = None) -> None:
        """A failed attempt: count it, write the retry fields, call every error handler."""
        before = record.to_dict()
        now = self.engine.clock.time()
        self.stats.processed += 1
        self.stats.failed += 1
        if record.retry_count is None:
            record.failed_at = now
        else:
            record.retried_at = now
        record.retry_count = (
            (record.retry_count + 1 if record.retry_count is not None else 0)
            if (retry_count is None)
            else retry_count
        )
        record.error_class = type(exc).__name__
        record.error_message = str(exc)[:10_000]
        self.emit(
            EventKind.FAILED, record, error_class=record.error_class, error_message=record.error_message
        )
        # A dead process reports nothing: an injected crash reaches no error handler.
        if not isinstance(exc, InjectedCrash):
            self.error_handlers(exc, before, record)

    def error_handlers(self, exc: BaseException, job_dict: dict[str, Any], record: JobRecord) -> None:
        for handler in self.engine.hooks.error_handlers:
            self.emit(EventKind.ERROR_HANDLER_CALLED, record, error_class=type(exc).__name__)
            _guarded(handler, exc, {"context": "Job raised exception", "job": job_dict})

    def retry_scheduled(self, record: JobRecord, at: float) -> None:
        record.run_at = at
        delay = at - self.engine.clock.time()
        self.emit(EventKind.RETRY_SCHEDULED, record, delay=delay, retry_count=record.retry_count, run_at=at)

    def decide(self, job: Job, count: int, exc: BaseException, record: JobRecord) -> Decision:
        """Sidekiq's routing of a harness job's failure; at exhaustion its exhausted block runs here,
        before the engine files the job anywhere, and may answer "discard" to keep it out of the dead set."""
        decision = decide(job.options, count, exc, record, self.rng)
        callback = job.options.retries_exhausted
        if decision.exhausted and callback is not None:
            self.emit(EventKind.EXHAUSTED_CALLED, record)
            answer = _guarded(callback, record, exc)
            if decision.kind == "dead" and isinstance(answer, str) and answer == "discard":
                return Decision("discard", exhausted=True)
        return decision

    def died(self, record: JobRecord, exc: BaseException, *, dead_set: bool) -> None:
        """The job is over: filed in the dead set, or discarded; then the death handlers."""
        if dead_set:
            self.emit(EventKind.DEAD, record, error_class=type(exc).__name__)
        else:
            record.discarded_at = self.engine.clock.time()
            self.emit(EventKind.DISCARDED, record, error_class=type(exc).__name__)
        self.death_handlers(record, exc)

    def settle(self, record: JobRecord, exc: BaseException, decision: Decision | None) -> None:
        """Finish a job the engine did not retry: `decision` is None for the engine's own death."""
        if decision is None or decision.kind == "dead":
            self.died(record, exc, dead_set=True)
        elif decision.kind == "discard":
            self.died(record, exc, dead_set=False)
        else:  # retry=False: no retry set, no dead set; Sidekiq still runs the death handlers
            self.death_handlers(record, exc)

    def death_handlers(self, record: JobRecord, exc: BaseException) -> None:
        for handler in self.engine.hooks.death_handlers:
            self.emit(EventKind.DEATH_HANDLER_CALLED, record)
            _guarded(handler, record, exc)

    @contextmanager
    def seeded_global_random(self) -> Iterator[None]:
        """Let an engine that jitters with the `random` module draw from this engine's seed instead."""
        saved = random.getstate()
        random.setstate(self._global_state)
        try:
            yield
        finally:
            self._global_state = random.getstate()
            random.setstate(saved)

    @property
    def _global_state(self) -> Any:
        state = self._global_random
        if state is None:
            state = random.Random(self.engine.seed ^ 0x5EED).getstate()
            self._global_random = state
        return state

    @_global_state.setter
    def _global_state(self, state: Any) -> None:
        self._global_random = state


def _bind(
    middleware: Callable[..., Any], record: JobRecord, call_next: Callable[[], Any]
) -> Callable[[], Any]:
    return lambda: middleware(record, call_next)


def _guarded(handler: Callable[..., Any], *args: Any) -> Any:
    # A broken handler must not change the job's routing; engines log and carry on, and so do we.
    try:
        return handler(*args)
    except Exception:
        _log.exception("handler %r raised", handler)
        return None


class BridgedEngine(Engine):
    """An engine whose events and statistics a `Bridge` keeps (the real engines' in-process modes)."""

    bridge: Bridge

    @property
    def events(self) -> list[Event]:
        return self.bridge.events

    @property
    def stats(self) -> Stats:
        return self.bridge.stats
