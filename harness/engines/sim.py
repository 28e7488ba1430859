"""The reference engine: Sidekiq's retry, dead-set, handler and shutdown rules, in-process and deterministic.

Single-threaded on a `VirtualClock`; every random draw (retry jitter, weighted queue picks, job ids) comes
from the seed, so one seed always gives the same event log, byte for byte. Fast enough to run thousands of
exploration plans: `reset()` clears a few containers and a 26-attempt life to the dead set takes well
under a millisecond of bookkeeping.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Literal

from harness.clock import VirtualClock
from harness.engines._retry_rule import (
    DEATH_HANDLER_FAILED,
    JOB_RAISED,
    MAX_ERROR_MESSAGE,
    decide,
    default_retry_delay,
    error_message,
    record_failure,
)
from harness.engines._sim_core import SimCore
from harness.engines.base import EventKind, Hooks, Job, JobRecord, caused_by
from harness.errors import ConfigurationError, InjectedCrash, Shutdown

__all__ = [
    "DEFAULT_DEAD_MAX_JOBS",
    "DEFAULT_DEAD_TIMEOUT_S",
    "DEFAULT_RECOVER_AFTER_S",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "MAX_ERROR_MESSAGE",
    "SimCore",
    "SimEngine",
    "default_retry_delay",
]

_log = logging.getLogger("harness.engines.sim")

DEFAULT_DEAD_MAX_JOBS = 10_000
DEFAULT_DEAD_TIMEOUT_S = 180 * 24 * 3600
DEFAULT_SHUTDOWN_TIMEOUT = 25.0
#: A dead Sidekiq process's heartbeat expires after 60 s; super_fetch recovers its jobs from then on.
DEFAULT_RECOVER_AFTER_S = 60.0


QueueSpec = Sequence[str] | Mapping[str, int]


class _QueueOrder:
    """Which queue the next fetch takes from, as Sidekiq's fetcher decides.

    A list is strict priority (the first non-empty queue wins); a dict of weights picks among the
    non-empty queues with probability proportional to weight (Sidekiq's shuffled, weight-repeated list
    gives exactly that). All weights 0 means strict, in the dict's order; all 1 means random. Queues
    nobody configured come last, in name order (see `SimEngine`).
    """

    def __init__(self, queues: QueueSpec, strict: bool | None) -> None:
        if isinstance(queues, str) or not queues:
            raise ConfigurationError(
                f"queues must be a non-empty list of names or a dict of weights, not {queues!r}"
            )
        if isinstance(queues, Mapping):
            weights = dict(queues)
            for name, weight in weights.items():
                if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                    raise ConfigurationError(
                        f"queue weight of {name!r} must be a non-negative int, not {weight!r}"
                    )
            weighted = not all(w == 0 for w in weights.values()) if strict is None else not strict
        else:
            weights = dict.fromkeys(queues, 1)
            weighted = strict is False
        for name in weights:
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"queue names must be non-empty strings, not {name!r}")
        self.configured: list[str] = list(weights)
        # Sidekiq repeats each queue max(weight, 1) times before shuffling.
        self.weights: list[int] = [max(w, 1) for w in weights.values()]
        self.weighted = weighted and len(self.configured) > 1

    def mode(self) -> Literal["strict", "weighted"]:
        return "weighted" if self.weighted else "strict"


class SimEngine(SimCore):
    """Sidekiq in one thread on a virtual clock. The rules it follows are in docs/engines/sim.md.

    `queues`: a list in strict priority order, or a dict of weights (`{"critical": 3, "default": 1}`),
    weighted picks drawn from the seed; `strict` forces strict order (True) or equal-weight random
    order (False) instead. A job pushed to a queue nobody configured still runs, after every
    configured queue, in queue-name order: a test that forgot a queue name should see its job run,
    not hang with it stuck (a real Sidekiq process would never fetch it). `unknown_queues="refuse"`
    turns that into an error at enqueue time instead.

    `dead_max_jobs` / `dead_timeout_s` bound the dead set, trimmed on each insert exactly as Sidekiq
    trims it (`ZREMRANGEBYSCORE` by age, then `ZREMRANGEBYRANK 0 -max`, which leaves at most
    `dead_max_jobs - 1` entries). `shutdown_timeout` is Sidekiq's `-t` (25 s).

    `fetch` says what a crash (`harness.InjectedCrash`: the worker process died mid-job) does to the
    job. `"super"` (the default) is Sidekiq Pro's super_fetch: the job stays in the dead process's
    private queue and goes back to its queue `recover_after` seconds later (60: a dead process's
    heartbeat expires then), untouched: no retry counted, no handler called. That is the book's
    line-by-line assessment ("the process dies after line N, then the job runs again"). `"basic"` is
    Sidekiq OSS's BRPOP fetch: the job left Redis when it was fetched and is lost.
    """

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        seed: int = 0,
        hooks: Hooks | None = None,
        queues: QueueSpec = ("default",),
        strict: bool | None = None,
        unknown_queues: Literal["run", "refuse"] = "run",
        dead_max_jobs: int = DEFAULT_DEAD_MAX_JOBS,
        dead_timeout_s: float = DEFAULT_DEAD_TIMEOUT_S,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        fetch: Literal["super", "basic"] = "super",
        recover_after: float = DEFAULT_RECOVER_AFTER_S,
    ) -> None:
        super().__init__(clock=clock, seed=seed, hooks=hooks)
        if fetch not in ("super", "basic"):
            raise ConfigurationError(
                f"fetch must be 'super' (a crashed worker's job runs again) or 'basic' (it is lost), not {fetch!r}"
            )
        if not isinstance(recover_after, int | float) or not recover_after >= 0:
            raise ConfigurationError(f"recover_after must be >= 0 seconds, not {recover_after!r}")
        self.fetch = fetch
        self.recover_after = float(recover_after)
        if unknown_queues not in ("run", "refuse"):
            raise ConfigurationError(f"unknown_queues must be 'run' or 'refuse', not {unknown_queues!r}")
        if not isinstance(dead_max_jobs, int) or dead_max_jobs < 0:
            raise ConfigurationError(f"dead_max_jobs must be a non-negative int, not {dead_max_jobs!r}")
        if shutdown_timeout < 0:
            raise ConfigurationError(f"shutdown_timeout must be >= 0 seconds, not {shutdown_timeout!r}")
        self._order = _QueueOrder(queues, strict)
        self._weight_of = dict(zip(self._order.configured, self._order.weights, strict=True))
        self.unknown_queues = unknown_queues
        self.dead_max_jobs = dead_max_jobs
        self.dead_timeout_s = float(dead_timeout_s)
        self.shutdown_timeout = float(shutdown_timeout)
        self._jitter = random.Random(seed)
        self._queue_rng = random.Random(f"sim-queues:{seed}")
        self._queues: dict[str, deque[JobRecord]] = {}
        self._fetch_order: list[str] = []
        self._scheduled: list[tuple[float, int, JobRecord]] = []
        self._retries: list[tuple[float, int, JobRecord]] = []
        #: Jobs a crashed worker held, until super_fetch recovers them: (recovery time, seq, record).
        self._orphans: list[tuple[float, int, JobRecord]] = []
        self._dead: deque[tuple[float, JobRecord]] = deque()
        self._seq = 0
        self._running: JobRecord | None = None
        self._pushed_back = False
        self._quiet = False
        self._term_at: float | None = None
        self._deadline: float | None = None
        self._term_timeout = self.shutdown_timeout
        self._unlisten: Callable[[], None] | None = None
        self._reset_queues()

    @property
    def queue_mode(self) -> Literal["strict", "weighted"]:
        """How the next queue is chosen: strict priority, or weighted random from the seed."""
        return self._order.mode()

    # -- pushing ------------------------------------------------------------------------------------
    def enqueue(
        self, job: Job | str, *args: Any, delay: float | None = None, at: float | None = None, **options: Any
    ) -> str | None:
        """Push now, in `delay` seconds, or at clock time `at`; the job's id, or None if a client
        middleware stopped the push. Works from inside a running job (a chain)."""
        if options:
            raise ConfigurationError(
                f"the sim engine takes no engine options at enqueue ({', '.join(sorted(options))}); they belong "
                "to a native engine (explore the scenario on it), or to the job's own @job options"
            )
        resolved = self._resolve(job)
        queue = resolved.options.queue
        if queue not in self._queues and self.unknown_queues == "refuse":
            raise ConfigurationError(
                f"{resolved.name} goes to queue {queue!r}, which this engine does not serve "
                f"(queues: {', '.join(self._order.configured)}); add it to queues= or pass "
                "unknown_queues='run'"
            )
        record = self._new_record(resolved, args, self._when(delay, at))
        return self._push_through_client(record, partial(self._push, record))

    def _push(self, record: JobRecord) -> None:
        if record.run_at is None:
            self._queue(record.queue).append(record)
        else:
            self._seq += 1
            heapq.heappush(self._scheduled, (record.run_at, self._seq, record))

    def _queue(self, name: str) -> deque[JobRecord]:
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = deque()
            extras = sorted(n for n in self._queues if n not in self._weight_of)
            self._fetch_order = self._order.configured + extras
        return found

    # -- running ------------------------------------------------------------------------------------
    def _step(self) -> bool:
        if self._quiet:
            return False
        now = self.clock.time()
        retries, scheduled = self._retries, self._scheduled
        # Sidekiq's poller moves due retries first, then due scheduled jobs, to the tail of their queues.
        while retries and retries[0][0] <= now:
            self._enqueue_due(heapq.heappop(retries)[2], now)
        while scheduled and scheduled[0][0] <= now:
            self._enqueue_due(heapq.heappop(scheduled)[2], now)
        orphans = self._orphans
        while orphans and orphans[0][0] <= now:
            # super_fetch hands an orphan back to the far end of its queue, as it was (no retry counted).
            orphan = heapq.heappop(orphans)[2]
            self._queue(orphan.queue).append(orphan)
            self._log(EventKind.RECOVERED, orphan, queue=orphan.queue)
        record = self._fetch()
        if record is None:
            return False
        self._perform(record)
        return True

    def _enqueue_due(self, record: JobRecord, now: float) -> None:
        record.run_at = None
        record.enqueued_at = now
        self._queue(record.queue).append(record)

    def _fetch(self) -> JobRecord | None:
        queues = self._queues
        if self._order.weighted:
            ready = [name for name in self._order.configured if queues[name]]
            if len(ready) == 1:
                return queues[ready[0]].popleft()
            if ready:
                weights = [self._weight_of[name] for name in ready]
                return queues[self._queue_rng.choices(ready, weights)[0]].popleft()
        for name in self._fetch_order:
            waiting = queues[name]
            if waiting:
                return waiting.popleft()
        return None

    def next_due(self) -> float | None:
        if self._quiet:
            return None
        due = [heap[0][0] for heap in (self._scheduled, self._retries, self._orphans) if heap]
        if self._term_at is not None:
            if self._term_at <= self.clock.time():
                self._on_clock(self.clock.time())
                return None
            due.append(self._term_at)
        return min(due) if due else None

    def drain(self) -> int:
        """Run every job that is due now, without moving the clock; the number run."""
        ran = 0
        while self.step():
            ran += 1
        return ran

    def advance_to_next(self) -> float | None:
        """Move the clock to the next due job (or pending TERM); that time, or None if nothing waits."""
        due = self.next_due()
        if due is not None and due > self.clock.time():
            self.clock.advance_to(due)
        return due

    def _perform(self, record: JobRecord) -> None:
        job = self._job_of[record.id]
        self._running = record
        self._pushed_back = False
        try:
            error = self._attempt(record, job)
        finally:
            self._running = None
        if error is None:
            return
        attempt = self._runs[record.id]
        if caused_by(error, InjectedCrash):
            self._crashed(record, error, attempt)
            return
        if caused_by(error, Shutdown):
            # At least once: the job goes back untouched (no retry count, no handlers) and runs again.
            # A Shutdown with no TERM behind it stops fetching too, as it ends a Sidekiq processor.
            if not self._pushed_back:
                self._push_back(record, None)
            self._quiet = True
            return
        self._fail(job, record, error, attempt)

    # -- failure routing, in Sidekiq's order ---------------------------------------------------------
    def _fail(self, job: Job, record: JobRecord, exc: BaseException, attempt: int) -> None:
        before = record.to_dict()
        now = self.clock.time()
        self._log(EventKind.FAILED, record, attempt, error_class=type(exc).__name__, error_message=error_message(exc))
        count = record_failure(record, exc, now, job.options)
        decision = decide(
            job.options,
            count,
            exc,
            record,
            self._jitter,
            report=partial(self._report_hook_error, record, attempt),
            exhausted_called=partial(self._log, EventKind.EXHAUSTED_CALLED, record, attempt),
        )
        if decision.kind == "retry":
            assert decision.delay is not None and count is not None
            run_at = now + decision.delay
            record.run_at = run_at
            self._seq += 1
            heapq.heappush(self._retries, (run_at, self._seq, record))
            self._log(
                EventKind.RETRY_SCHEDULED, record, attempt, delay=decision.delay, retry_count=count, run_at=run_at
            )
        else:
            if decision.kind == "dead":
                self._kill(record)
                self._log(EventKind.DEAD, record, attempt, error_class=record.error_class)
            elif decision.kind == "discard":
                record.discarded_at = self.clock.time()
                self._log(EventKind.DISCARDED, record, attempt, reason=decision.reason)
            # retry=False ("drop") keeps no record anywhere; Sidekiq's global retry handler still runs
            # the death handlers.
            self._death_handlers(record, exc, attempt)
        self._error_handlers(exc, {"context": JOB_RAISED, "job": before}, record, attempt)

    def _crashed(self, record: JobRecord, crash: BaseException, attempt: int) -> None:
        """The worker process died mid-attempt. A dead process reports nothing: no retry is scheduled,
        no handler runs. With super_fetch the job waits in the dead process's private queue until a
        live process recovers it (`recover_after` seconds); with basic fetch it left Redis when it was
        fetched, and is gone."""
        self._log(EventKind.CRASHED, record, attempt, error_class=type(crash).__name__, fetch=self.fetch)
        if self.fetch == "basic":
            self._log(EventKind.LOST, record, attempt)
            return
        self._seq += 1
        heapq.heappush(self._orphans, (self.clock.time() + self.recover_after, self._seq, record))

    def _report_hook_error(self, record: JobRecord, attempt: int, error: BaseException, context: str) -> None:
        """A hook of the job (retry_in, retries_exhausted, a death handler) raised: tell the error handlers."""
        self._error_handlers(error, {"context": context, "job": record.to_dict()}, record, attempt)

    def _kill(self, record: JobRecord) -> None:
        now = self.clock.time()
        dead = self._dead
        dead.append((now, record))
        cutoff = now - self.dead_timeout_s
        while dead and dead[0][0] <= cutoff:
            dead.popleft()
        # ZREMRANGEBYRANK dead 0 -max: ranks 0 .. len-max inclusive (with -0 meaning rank 0).
        last = len(dead) - self.dead_max_jobs if self.dead_max_jobs else 0
        for _ in range(last + 1):
            dead.popleft()

    def _death_handlers(self, record: JobRecord, exc: BaseException, attempt: int) -> None:
        for handler in self.hooks.death_handlers:
            self._log(EventKind.DEATH_HANDLER_CALLED, record, attempt, error_class=type(exc).__name__)
            try:
                handler(record, exc)
            except Exception as handler_error:
                self._report_hook_error(record, attempt, handler_error, DEATH_HANDLER_FAILED)

    def _error_handlers(
        self, exc: BaseException, context: dict[str, Any], record: JobRecord, attempt: int
    ) -> None:
        for handler in self.hooks.error_handlers:
            self._log(
                EventKind.ERROR_HANDLER_CALLED,
                record,
                attempt,
                error_class=type(exc).__name__,
                context=context["context"],
            )
            try:
                handler(exc, context)
            except Exception:  # Sidekiq logs a broken error handler and carries on
                _log.exception("an error handler raised while reporting %s", type(exc).__name__)

    # -- quiet and shutdown ---------------------------------------------------------------------------
    @property
    def state(self) -> Literal["running", "quiet", "stopping", "stopped"]:
        """`running`; `quiet` (fetching stopped); `stopping` (TERM received, a job still runs);
        `stopped` (TERM received, nothing runs)."""
        if not self._quiet:
            return "running"
        if self._deadline is None:
            return "quiet"
        return "stopping" if self._running is not None else "stopped"

    def quiet(self) -> None:
        """Stop fetching jobs and moving due ones to their queues (Sidekiq's TSTP); a running job goes on."""
        self._quiet = True

    def start(self) -> None:
        """Fetch again after `quiet()` or `shutdown()`; pushed-back jobs run first (queue heads)."""
        self._quiet = False
        self._term_at = None
        self._deadline = None
        self._listen(False)

    def shutdown(self, timeout: float | None = None, *, at: float | None = None) -> None:
        """Sidekiq's TERM, now or when the clock reaches `at`: go quiet, give a running job `timeout`
        seconds (default `shutdown_timeout`), then push it back to the head of its queue and raise
        `harness.Shutdown` into it.

        In one thread a job is "still running" while it sleeps on the clock, so a job is interrupted
        at the first clock move that reaches the deadline (the PUSHED_BACK event records the deadline).
        `start()` resumes.
        """
        grace = self.shutdown_timeout if timeout is None else float(timeout)
        if grace < 0:
            raise ConfigurationError(f"timeout must be >= 0 seconds, not {timeout!r}")
        self._term_timeout = grace
        now = self.clock.time()
        self._term_at = now if at is None or at <= now else float(at)
        self._listen(True)
        if self._term_at <= now:
            self._on_clock(now)

    def _listen(self, on: bool) -> None:
        if on and self._unlisten is None:
            self._unlisten = self.clock.on_advance(self._on_clock)
        elif not on and self._unlisten is not None:
            unlisten, self._unlisten = self._unlisten, None
            # The clock may have been swapped in between; then there is nothing left to remove.
            with contextlib.suppress(ValueError):
                unlisten()

    def _on_clock(self, now: float) -> None:
        if self._term_at is not None and now >= self._term_at:
            self._quiet = True
            self._deadline = self._term_at + self._term_timeout
            self._term_at = None
        running = self._running
        if running is not None and self._deadline is not None and now >= self._deadline:
            if not self._pushed_back:
                self._push_back(running, self._deadline)
            raise Shutdown(f"{running.job} ({running.id}) still ran when the shutdown deadline passed")

    def _push_back(self, record: JobRecord, deadline: float | None) -> None:
        # A copy goes back, as Sidekiq requeues the payload: the running attempt may yet swallow the
        # Shutdown and finish, and then the job runs twice.
        self._pushed_back = True
        copy = replace(record, args=list(record.args))
        self._queue(record.queue).appendleft(copy)
        self._log(EventKind.PUSHED_BACK, record, queue=record.queue, deadline=deadline)

    # -- inspecting ---------------------------------------------------------------------------------
    def queued(self, queue: str | None = None) -> list[JobRecord]:
        if queue is not None:
            return list(self._queues.get(queue, ()))
        return [record for name in self._fetch_order for record in self._queues[name]]

    def scheduled(self) -> list[JobRecord]:
        return [entry[2] for entry in sorted(self._scheduled)]

    def retries(self) -> list[JobRecord]:
        return [entry[2] for entry in sorted(self._retries)]

    def dead(self) -> list[JobRecord]:
        return [record for _, record in reversed(self._dead)]

    # -- lifecycle ----------------------------------------------------------------------------------
    def forget(self) -> list[JobRecord]:
        orphans = [entry[2] for entry in sorted(self._orphans)]
        lost = [*self.queued(), *self.scheduled(), *self.retries(), *orphans]
        for queue in self._queues.values():
            queue.clear()
        self._scheduled.clear()
        self._retries.clear()
        self._orphans.clear()  # super_fetch's private queues live in Redis too
        self._dead.clear()
        for record in lost:
            self._log(EventKind.LOST, record, cause="broker")
        return lost

    def _reset_queues(self) -> None:
        self._queues = {name: deque() for name in self._order.configured}
        self._fetch_order = list(self._order.configured)

    def reset(self) -> None:
        self._reset_core()
        self._reset_queues()
        self._scheduled.clear()
        self._retries.clear()
        self._orphans.clear()
        self._dead.clear()
        self._seq = 0
        self._jitter.seed(self.seed)
        self._queue_rng.seed(f"sim-queues:{self.seed}")
        self._running = None
        self._pushed_back = False
        self.start()

    def close(self) -> None:
        self._listen(False)
