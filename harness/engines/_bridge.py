"""What the Dramatiq, RQ and Celery backends share: one job's record, the event log, the hooks.

Each backend lets its engine decide (retry, dead-letter, fail) and reports what the engine did through a
`Bridge`, which keeps Sidekiq-shaped records, appends events and calls the normalised hooks. Harness
jobs (declared with `@job`) also get their routing decided here, by Sidekiq's rule
(`harness.engines._retry_rule`, the one `sim` follows), so that a backend only has to translate a
`Decision` into its engine's native mechanism.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

from harness.engines._retry_rule import (
    DEATH_HANDLER_FAILED,
    JOB_RAISED,
    Decision,
    decide,
    error_message,
    record_failure,
)
from harness.engines.base import Engine, Event, EventKind, Job, JobOptions, JobRecord, Stats, caused_by
from harness.errors import HarnessError, InjectedCrash

__all__ = ["Bridge", "BridgedEngine", "is_unwinding"]

_log = logging.getLogger("harness.engines")
#: A native job's failures are all counted: its engine, not Sidekiq's rule, decides what follows.
_NATIVE = JobOptions()


class _Unwind(BaseException):
    """Carries what is not the job's failure out through an engine's worker code: an error of the
    harness's own (`_Escape`), or the death of the worker process (`_Died`).

    A `BaseException`, so that Celery's tracer lets it through; Dramatiq's worker and RQ's catch even
    those, and their adapters stop it there (see `Bridge.unwinding`).
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


class _Escape(_Unwind):
    """An error of the harness's own left the attempt: `step()` raises it."""


class _Died(_Unwind):
    """The worker process died mid-attempt (an injected crash): the engine's delivery decides what follows."""


class Bridge:
    """The normalised side of a native backend: records, events, stats, hooks and observers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rng = random.Random(engine.seed)
        self.records: dict[str, JobRecord] = {}
        self.events: list[Event] = []
        self._attempts: dict[str, int] = {}
        #: The payload before a failure whose fields were written and whose report is still to come.
        self._before: dict[str, dict[str, Any]] = {}
        self.stats = Stats()
        #: The one attempt running now (backends are single-threaded), for hooks that see only ids.
        self.current: JobRecord | None = None
        #: An error of the harness's own that left an attempt: `unwinding()` raises it out of `step()`.
        self.escaped: BaseException | None = None
        #: The attempt whose worker died (an injected crash), for the engine's `on_crash` in `unwinding()`.
        self.crash: tuple[JobRecord, BaseException] | None = None
        self._global_random: Any = None

    def reset(self) -> None:
        self.rng = random.Random(self.engine.seed)
        self.records.clear()
        self.events.clear()
        self._attempts.clear()
        self._before.clear()
        self.stats = Stats()
        self.current = None
        self.escaped = None
        self.crash = None
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
        # Every event carries the number of the job's attempt that is running or ran last (1 before any).
        attempt = self._attempts.get(record.id, 1)
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
        """The seam around the job function itself: observers, then server middleware, then `call`.

        What the harness raises is not the job's failure: an error raised by an observer (the injector:
        a target that does not resolve, a scenario's reset hook that breaks), or a `HarnessError` leaving
        the job (an enqueue the harness refuses), stops the attempt and leaves `step()` as it is, as on
        `sim`; the engine does not route it. Nor is an injected crash: the worker process died there,
        and what becomes of its job is the engine's delivery's business (see `unwinding`).
        """
        hooks = self.engine.hooks
        # The run number: a redelivered job (its worker crashed) runs again with no retry counted.
        attempt = self._attempts[record.id] = self._attempts.get(record.id, 0) + 1
        self.current = record
        if record.run_at is not None:
            # A retry or scheduled job was moved to its queue when it fell due: Sidekiq's poller pushes
            # it again, which stamps `enqueued_at` and leaves no `run_at`.
            record.enqueued_at, record.run_at = record.run_at, None
        self.emit(EventKind.STARTED, record, queue=record.queue)
        try:
            for observer in hooks.observers:
                observer.attempt_started(record, attempt)
        except BaseException as exc:
            raise self._escape(exc) from None
        chain = call
        for middleware in reversed(hooks.server_middleware):
            chain = _bind(middleware, record, chain)
        try:
            result = chain()
        except BaseException as exc:
            self._finished(record, attempt, exc)
            if isinstance(exc, HarnessError):
                raise self._escape(exc) from None
            if caused_by(exc, InjectedCrash):
                self.crash = (record, exc)
                raise _Died(exc) from None
            raise
        self._finished(record, attempt, None)
        return result

    def _finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        try:
            for observer in self.engine.hooks.observers:
                observer.attempt_finished(record, attempt, exc)
        except BaseException as error:
            raise self._escape(error) from None

    def _escape(self, error: BaseException) -> _Escape:
        self.escaped = error
        return _Escape(error)

    @contextmanager
    def unwinding(self, on_crash: Callable[[JobRecord, BaseException], None]) -> Iterator[None]:
        """Around one step of the engine's worker code: once that code has unwound, an error that
        escaped an attempt is raised here, as itself, and a crashed attempt is handed to `on_crash`
        (the engine's model of its worker's death: redelivery, loss, abandonment)."""
        # The carried error is raised below, outside any handler, with its own cause kept.
        with suppress(_Unwind):
            yield
        error, self.escaped = self.escaped, None
        crash, self.crash = self.crash, None
        if error is not None:
            raise error
        if crash is not None:
            on_crash(*crash)

    def succeeded(self, record: JobRecord) -> None:
        self.stats.processed += 1
        self.emit(EventKind.SUCCEEDED, record)

    def note_failure(self, record: JobRecord, exc: BaseException, options: JobOptions | None = None) -> int | None:
        """Write a failed attempt's fields (Sidekiq's rule, `options` of a harness job) once; the new
        `retry_count`. An adapter calls it before routing, so that hooks see the record after the failure
        (as Sidekiq's do); `failed` calls it for engines that report the failure first."""
        if record.id not in self._before:
            self._before[record.id] = record.to_dict()
            record_failure(record, exc, self.engine.clock.time(), options or _NATIVE)
        return record.retry_count

    def failed(self, record: JobRecord, exc: BaseException, options: JobOptions | None = None) -> None:
        """A failed attempt: count it, write the retry fields, call every error handler."""
        self.note_failure(record, exc, options)
        before = self._before.pop(record.id)
        self.stats.processed += 1
        self.stats.failed += 1
        self.emit(EventKind.FAILED, record, error_class=type(exc).__name__, error_message=error_message(exc))
        self.error_handlers(exc, before, record)

    # -- a worker that died mid-attempt ------------------------------------------------------------------
    def crashed(self, record: JobRecord, exc: BaseException, *, counted: bool = True) -> None:
        """The attempt's worker died: nothing is routed or reported (a dead process reports nothing).
        `counted=False` when the engine reports the attempt itself later (RQ's abandoned-job cleanup)."""
        if counted:
            self.stats.processed += 1
            self.stats.failed += 1
        self.emit(EventKind.CRASHED, record, error_class=type(exc).__name__)

    def recovered(self, record: JobRecord) -> None:
        """A dead worker's job went back to its queue, as it was: no retry counted."""
        self.emit(EventKind.RECOVERED, record, queue=record.queue)

    def lost(self, record: JobRecord, **detail: Any) -> None:
        """A job is gone for good: a dead worker's, acknowledged before it ran, or (`cause="broker"`) one
        the broker forgot."""
        self.emit(EventKind.LOST, record, **detail)

    def error_handlers(
        self, exc: BaseException, job_dict: dict[str, Any], record: JobRecord, context: str = JOB_RAISED
    ) -> None:
        for handler in self.engine.hooks.error_handlers:
            self.emit(EventKind.ERROR_HANDLER_CALLED, record, error_class=type(exc).__name__, context=context)
            _guarded(handler, exc, {"context": context, "job": job_dict})

    def report_hook_error(self, record: JobRecord, error: BaseException, context: str) -> None:
        """A hook (retry_in, retries_exhausted, a death handler) raised: Sidekiq tells the error handlers."""
        self.error_handlers(error, record.to_dict(), record, context)

    def retry_scheduled(self, record: JobRecord, at: float) -> None:
        record.run_at = at
        delay = at - self.engine.clock.time()
        self.emit(EventKind.RETRY_SCHEDULED, record, delay=delay, retry_count=record.retry_count, run_at=at)

    def decide(self, job: Job, count: int | None, exc: BaseException, record: JobRecord) -> Decision:
        """Sidekiq's routing of a harness job's failure (`harness.engines._retry_rule.decide`); at
        exhaustion its exhausted block runs here, before the engine files the job anywhere."""
        return decide(
            job.options,
            count,
            exc,
            record,
            self.rng,
            report=partial(self.report_hook_error, record),
            exhausted_called=partial(self.emit, EventKind.EXHAUSTED_CALLED, record),
        )

    def died(self, record: JobRecord, exc: BaseException, *, dead_set: bool, reason: str | None = None) -> None:
        """The job is over: filed in the dead set, or discarded (`reason` says why); then the death handlers."""
        if dead_set:
            self.emit(EventKind.DEAD, record, error_class=type(exc).__name__)
        else:
            record.discarded_at = self.engine.clock.time()
            self.emit(EventKind.DISCARDED, record, error_class=type(exc).__name__, reason=reason)
        self.death_handlers(record, exc)

    def settle(self, record: JobRecord, exc: BaseException, decision: Decision | None) -> None:
        """Finish a job the engine did not retry: `decision` is None for the engine's own death."""
        if decision is None or decision.kind == "dead":
            self.died(record, exc, dead_set=True)
        elif decision.kind == "discard":
            self.died(record, exc, dead_set=False, reason=decision.reason)
        else:  # retry=False: no retry set, no dead set; Sidekiq still runs the death handlers
            self.death_handlers(record, exc)

    def death_handlers(self, record: JobRecord, exc: BaseException) -> None:
        for handler in self.engine.hooks.death_handlers:
            self.emit(EventKind.DEATH_HANDLER_CALLED, record, error_class=type(exc).__name__)
            try:
                handler(record, exc)
            except Exception as handler_error:
                self.report_hook_error(record, handler_error, DEATH_HANDLER_FAILED)

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


def is_unwinding(exc: BaseException | None) -> bool:
    """Whether `exc` carries a harness error or a worker's death out of an attempt: the engine's own
    failure path must not route it."""
    return isinstance(exc, _Unwind)


def _bind(
    middleware: Callable[..., Any], record: JobRecord, call_next: Callable[[], Any]
) -> Callable[[], Any]:
    return lambda: middleware(record, call_next)


def _guarded(handler: Callable[..., Any], *args: Any) -> Any:
    # A broken error handler must not change the job's routing; Sidekiq logs it and carries on.
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
