"""Spread one exploration's plans over worker processes, with the same report as a serial run.

Every plan runs on a freshly reset world and its result depends on nothing but the plan and the seed, so
plans can run anywhere and be put back in order. A `PlanPool` of `jobs` forks `jobs - 1` workers from
the exploring process (they inherit the scenario and everything it imported, picklable or not) and runs
the rest of the plans in that process, on its own session: one core's worth of work is never shipped to a
process that has to start, run its own clean run and send every result back. Each worker calls the
scenario's `isolate(worker)` to take resources of its own (a database file, say), builds its own
`RunSession` and clean run, then runs the chunks of plans it is handed. Results are put back in the order
the plans were given, so pruning, grouping and the report are exactly those of a serial run.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.util
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigurationError, HarnessError, ScenarioError

if TYPE_CHECKING:
    from harness.explore.runner import RunResult, RunSession
    from harness.explore.scenario import Scenario
    from harness.injection.plans import Plan

__all__ = ["MIN_PLANS_PER_WORKER", "PlanPool", "PlanRun"]

#: Seconds a failed phase waits for the chunks its workers still hold before the pool is terminated.
SETTLE_S = 30.0

#: Below this many plans a phase runs in the exploring process: starting a worker (its world, its clean
#: run) costs about as much as a few dozen plans.
MIN_PLANS_PER_WORKER = 40


@dataclass(frozen=True)
class PlanRun:
    """One plan to run, and what to record of it."""

    plan: Plan
    recording: bool = False
    record_from: int = 1

    def on(self, session: RunSession) -> RunResult:
        """Run the plan on `session`, recording as asked."""
        return session.run(self.plan, recording=self.recording, record_from=self.record_from)


# The worker process's session, built once by `_start`.
_session: RunSession | None = None
_failure: BaseException | None = None
_tracing = contextlib.ExitStack()


def _start(scenario: Scenario, options: dict[str, Any], counter: Any) -> None:
    global _session, _failure
    with counter.get_lock():
        counter.value += 1
        worker = counter.value
    try:
        from harness.explore.runner import RunSession

        if scenario.isolate is not None:
            try:
                scenario.isolate(worker)
            except Exception as err:
                raise ScenarioError(f"isolate of scenario {scenario.name!r} raised {err!r} in worker {worker}") from err
        _session = RunSession(scenario, **options)
        _session.baseline()
        # On for the worker's life, as the exploring process keeps it on for a whole phase: entered for
        # each plan, muting the loggers and patching the HTTP clients cost a quarter of a plan.
        _tracing.enter_context(_session.tracing())
        # ... and off before the worker's last `os._exit`, which the session refuses while it is on.
        multiprocessing.util.Finalize(None, _tracing.close, exitpriority=10)
    except BaseException as exc:  # said when the worker is handed its first plan
        _failure = exc


def _run_chunk(runs: Sequence[PlanRun]) -> list[RunResult]:
    if _failure is not None:
        raise _failure if isinstance(_failure, HarnessError) else ScenarioError(
            f"a worker process could not start: {_failure!r}"
        )
    assert _session is not None
    return [run.on(_session) for run in runs]


class PlanPool:
    """`jobs` processes running plans of one scenario: `jobs - 1` forked workers and the exploring process
    itself, on `session` (which must be tracing while `run` runs, as it is for a serial phase); use as a
    context manager."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        session: RunSession,
        engine: Any,
        seed: int,
        backend: str | None,
        attempt_timeout: float | None,
        jobs: int,
    ) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ConfigurationError("parallel exploration needs fork(), which this platform lacks; use jobs=1")
        if jobs < 2:
            raise ConfigurationError(f"a plan pool needs jobs >= 2 (one is this process), not {jobs}")
        self.scenario = scenario
        self.jobs = jobs
        self.workers = jobs - 1
        self._session = session
        self._options = {"engine": engine, "seed": seed, "backend": backend, "attempt_timeout": attempt_timeout}
        self._pool: Any = None

    def __enter__(self) -> PlanPool:
        context = multiprocessing.get_context("fork")
        counter = context.Value("i", 0)
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads may deadlock: the workers only run
            # plans, never the locks of threads they did not inherit.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            # Everything this process holds is left out of the workers' garbage collections: a collection
            # would walk (and so copy, page by page) the whole inherited heap in every worker.
            gc.freeze()
            try:
                self._pool = context.Pool(
                    self.workers, initializer=_start, initargs=(self.scenario, self._options, counter))
            finally:
                gc.unfreeze()
        return self

    def run(self, runs: Sequence[PlanRun], tell: Callable[[], None] | None = None) -> list[RunResult]:
        """Run `runs` on the workers and in this process; the results in the same order.

        The workers take chunks from the front, each kept two chunks ahead so none waits for the next;
        this process takes single plans from the back, and looks for finished chunks between them. Chunks
        shrink as the plans left do, so where the two meet each side has only a plan or two to finish."""
        if not runs:
            return []
        results: list[RunResult | None] = [None] * len(runs)
        waiting: dict[int, Any] = {}  # first plan's index -> the chunk's AsyncResult
        front, back = 0, len(runs)

        def collect(block: bool) -> None:
            if block and waiting:
                waiting[min(waiting)].wait()
            for start in [start for start, chunk in waiting.items() if chunk.ready()]:
                chunk = waiting.pop(start).get()
                results[start:start + len(chunk)] = chunk
                if tell is not None:
                    for _ in chunk:
                        tell()

        try:
            while front < back or waiting:
                while front < back and len(waiting) < 2 * self.workers:
                    # Large chunks cost less to hand out; small ones keep every process busy to the end.
                    end = front + max(1, min(16, (back - front) // (self.jobs * 4)))
                    waiting[front] = self._pool.apply_async(_run_chunk, (runs[front:end],))
                    front = end
                if front < back:
                    back -= 1
                    results[back] = runs[back].on(self._session)
                    if tell is not None:
                        tell()
                    collect(block=False)
                else:
                    collect(block=True)
        except Exception:
            # The pool is terminated next. A worker killed while it sends a result keeps the result queue's
            # lock for ever, and terminating then hangs; so let the chunks in hand finish first (they are
            # short: a failing worker answers at once). Not on Ctrl-C, which the workers received too.
            deadline = time.monotonic() + SETTLE_S
            for chunk in waiting.values():
                chunk.wait(max(0.0, deadline - time.monotonic()))
            raise
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if exc_type is None:
            pool.close()
        else:
            pool.terminate()
        pool.join()
