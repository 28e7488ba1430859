"""What the reference engine and its testing modes share: the job registry, seeded job ids, the push
through client middleware, one attempt through observers and server middleware, and the event log.

`harness.engines.sim` builds Sidekiq's retry machinery on top; `harness.engines.testing_modes` builds
Sidekiq's fake and inline modes, which have none.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from harness.clock import VirtualClock
from harness.engines._native import describe, job_kind
from harness.engines.base import (
    Engine,
    Event,
    EventKind,
    Hooks,
    Job,
    JobRecord,
    RetryPolicy,
    Stats,
    _current,
    check_json_args,
)
from harness.errors import ConfigurationError, HarnessError

__all__ = ["SimCore"]


class SimCore(Engine):
    """What the reference engine and its testing modes share: registry, ids, push, one attempt, the log."""

    name = "sim"

    def __init__(self, *, clock: VirtualClock | None = None, seed: int = 0, hooks: Hooks | None = None):
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        self._registry: dict[str, Job] = {}
        self._job_of: dict[str, Job] = {}
        self._events: list[Event] = []
        self._stats = Stats()
        #: How many times each job has started (the attempt number observers and events carry).
        self._runs: dict[str, int] = {}
        self._ids = random.Random(f"sim-job-ids:{seed}")

    # -- jobs ---------------------------------------------------------------------------------------
    def register(self, job: Job) -> None:
        """Make `job` enqueueable by name; a later registration under the same name replaces it."""
        if not isinstance(job, Job):
            kind = job_kind(job)
            where = (
                f"; it runs on the {kind} engine (--engine {kind}, engine={kind!r})"
                if kind in ("dramatiq", "celery")
                else "; a plain function runs on the rq engine (--engine rq, engine='rq')" if kind == "function" else ""
            )
            raise ConfigurationError(
                f"the {self.name} engine runs harness jobs only (declare them with @harness.job), not "
                f"{describe(job)}{where}"
            )
        self._registry[job.name] = job

    def _resolve(self, job: Job | str) -> Job:
        if isinstance(job, Job):
            if job.name not in self._registry:
                self._registry[job.name] = job
            return job
        found = self._registry.get(job)
        if found is None:
            known = ", ".join(sorted(self._registry)) or "none yet"
            raise ConfigurationError(
                f"no job named {job!r} is registered (known: {known}); call engine.register(job) "
                "first or enqueue the Job object itself"
            )
        return found

    def retry_policy(self, job: Job | str, options: Mapping[str, Any] | None = None) -> RetryPolicy:
        return super().retry_policy(self._resolve(job) if isinstance(job, str) else job, options)

    def _new_record(self, job: Job, args: Sequence[Any], run_at: float | None) -> JobRecord:
        checked = check_json_args(job.name, args)
        jid = f"{self._ids.getrandbits(96):024x}"
        record = JobRecord(jid, job.name, checked, job.options.queue, self.clock.time(), run_at=run_at)
        self._job_of[jid] = job
        return record

    def _when(self, delay: float | None, at: float | None) -> float | None:
        """Absolute run time for a delayed push, None to push now (Sidekiq pushes past times at once)."""
        if delay is not None and at is not None:
            raise ConfigurationError("pass either delay= (seconds from now) or at= (clock time), not both")
        now = self.clock.time()
        when = None if delay is None and at is None else (now + delay if delay is not None else at)
        if when is None:
            return None
        if not isinstance(when, int | float) or isinstance(when, bool) or not math.isfinite(when):
            raise ConfigurationError(f"delay= and at= must be finite numbers of seconds, not {when!r}")
        return float(when) if when > now else None

    def _push_through_client(self, record: JobRecord, push: Callable[[], None]) -> str | None:
        """Client middleware (outermost first) around `push`; None when one of them stopped it."""

        def innermost() -> str:
            # Logged before the push: an inline engine runs the job inside `push`.
            self._log(EventKind.ENQUEUED, record, queue=record.queue, run_at=record.run_at, args=record.args)
            push()
            return record.id

        chain: Callable[[], str | None] = innermost
        for middleware in reversed(self.hooks.client_middleware):
            chain = partial(middleware, record, chain)
        pushed = chain()
        if pushed is None:
            self._job_of.pop(record.id, None)
            return None
        return record.id

    # -- one attempt --------------------------------------------------------------------------------
    def _attempt(self, record: JobRecord, job: Job) -> BaseException | None:
        """Observers, then server middleware (outermost first) around the job; the exception, if any.

        KeyboardInterrupt and SystemExit propagate: they stop the harness, not the job. So does an error
        raised by an observer, and a `HarnessError` leaving the job: the harness's, not the job's.
        """
        hooks = self.hooks
        # The run number: a redelivered job (its worker crashed) runs again with no retry counted.
        attempt = self._runs[record.id] = self._runs.get(record.id, 0) + 1
        started = self.clock.time()
        self._log(EventKind.STARTED, record, attempt, queue=record.queue)
        for observer in hooks.observers:
            observer.attempt_started(record, attempt)
        args = record.args
        chain: Callable[[], Any] = partial(job.fn, *args)
        for middleware in reversed(hooks.server_middleware):
            chain = partial(middleware, record, chain)
        error: BaseException | None = None
        self._stats.processed += 1
        try:
            chain()
        except (KeyboardInterrupt, SystemExit):
            raise
        except HarnessError as exc:
            # The harness's own error (an enqueue it refuses, say), not the job's failure: the observers
            # hear that the attempt ended, then it leaves `step()`, as an observer's own error does.
            for observer in hooks.observers:
                observer.attempt_finished(record, attempt, exc)
            raise
        except BaseException as exc:
            error = exc
            self._stats.failed += 1
        for observer in hooks.observers:
            observer.attempt_finished(record, attempt, error)
        if error is None:
            self._log(EventKind.SUCCEEDED, record, attempt, duration=self.clock.time() - started)
        return error

    def _log(self, kind: EventKind, record: JobRecord, attempt: int | None = None, **detail: Any) -> None:
        self._events.append(
            Event(
                self.clock.time(),
                kind,
                record.id,
                record.job,
                self._runs.get(record.id, record.attempt) if attempt is None else attempt,
                detail,
            )
        )

    # -- running ------------------------------------------------------------------------------------
    def step(self) -> bool:
        token = _current.set(self)
        try:
            return self._step()
        finally:
            _current.reset(token)

    def _step(self) -> bool:
        raise NotImplementedError

    # -- inspecting ---------------------------------------------------------------------------------
    @property
    def events(self) -> list[Event]:
        return self._events

    @property
    def stats(self) -> Stats:
        return self._stats

    def queue_latency(self, queue: str) -> float:
        """Seconds the oldest job waiting in `queue` has waited (0 when it is empty), as Sidekiq reports."""
        waiting = self.queued(queue)
        if not waiting:
            return 0.0
        return max(0.0, self.clock.time() - waiting[0].enqueued_at)

    def to_dict(self) -> dict[str, Any]:
        """Everything observable, JSON-simple: stats, queues, sets and the event log."""
        return {
            "engine": self.name,
            "seed": self.seed,
            "now": self.clock.time(),
            "stats": {"processed": self._stats.processed, "failed": self._stats.failed},
            "queued": [r.to_dict() for r in self.queued()],
            "scheduled": [r.to_dict() for r in self.scheduled()],
            "retries": [r.to_dict() for r in self.retries()],
            "dead": [r.to_dict() for r in self.dead()],
            "events": [e.to_dict() for e in self._events],
        }

    def to_json(self) -> str:
        """`to_dict()` as canonical JSON: the same seed and the same calls give the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def events_json(self) -> str:
        """The event log alone as canonical JSON."""
        return json.dumps([e.to_dict() for e in self._events], sort_keys=True, separators=(",", ":"))

    def _reset_core(self) -> None:
        self._job_of.clear()
        self._runs.clear()
        self._events = []
        self._stats = Stats()
        self._ids.seed(f"sim-job-ids:{self.seed}")
