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
import os
import signal
import sys
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigurationError, HarnessError, ScenarioError

if TYPE_CHECKING:
    from harness.explore.runner import RunResult, RunSession
    from harness.explore.scenario import Scenario
    from harness.injection.plans import Plan

__all__ = ["MIN_PLANS_PER_WORKER", "PlanPool", "PlanRun"]

#: How a worker ends: the real `os._exit`, taken before any session's guard could stand in for it.
_end_process = os._exit

#: Seconds a worker has to end once told to (it ends at once, unless a job keeps it from reading);
#: then it is killed.
STOP_S = 10.0

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


def _serve(scenario: Scenario, options: dict[str, Any], worker: int, conn: Connection,
           inherited: Sequence[Connection]) -> None:
    """A worker's life: take the resources of its own, build its session and clean run, then run the
    chunks of plans `conn` brings until it brings None (or closes), sending back each chunk's results."""
    for other in inherited:  # the exploring process's ends of earlier workers' pipes, forked with it
        other.close()
    # Ctrl-C reaches the whole process group; the exploring process answers it and stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    session: RunSession | None = None
    failure: BaseException | None = None
    code = 0
    tracing = contextlib.ExitStack()
    try:
        try:
            from harness.explore.runner import RunSession

            if scenario.isolate is not None:
                try:
                    scenario.isolate(worker)
                except Exception as err:
                    raise ScenarioError(
                        f"isolate of scenario {scenario.name!r} raised {err!r} in worker {worker}") from err
            session = RunSession(scenario, **options)
            session.baseline()
            # On for the worker's life, as the exploring process keeps it on for a whole phase: entered for
            # each plan, muting the loggers and patching the HTTP clients cost a quarter of a plan.
            tracing.enter_context(session.tracing())
        except BaseException as exc:  # said when the worker is handed its first plans
            failure = exc
        while True:
            try:
                runs = conn.recv()
            except EOFError:  # the exploring process is gone
                return
            if runs is None:
                return
            try:
                if failure is not None:
                    raise failure if isinstance(failure, HarnessError) else ScenarioError(
                        f"worker {worker} could not start: {failure!r}")
                assert session is not None
                reply: tuple[str, Any] = ("done", [run.on(session) for run in runs])
            except Exception as exc:
                reply = ("failed", exc)
            try:
                conn.send(reply)
            except OSError:  # the exploring process is gone
                return
            except Exception as exc:  # a result or an exception that does not pickle
                conn.send(("failed", ScenarioError(f"worker {worker} could not send back what it ran: {exc!r}")))
    except BaseException:  # the exploring process learns of it from the closed pipe and the exit code
        traceback.print_exc()
        code = 1
    finally:
        try:
            tracing.close()
            conn.close()
        finally:
            # Ended here, past any thread a job left running: at a normal exit the process would wait for
            # the thread, and the exploration for the process. (The real `_exit`: the session's guards
            # refuse it while they are on.)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            _end_process(code)


@dataclass
class _Worker:
    number: int
    process: Any
    conn: Connection
    #: The chunks handed to it and not yet answered, oldest first: (first plan's index, end index).
    chunks: deque[tuple[int, int]] = field(default_factory=deque)


class PlanPool:
    """`jobs` processes running plans of one scenario: `jobs - 1` forked workers and the exploring process
    itself, on `session` (which must be tracing while `run` runs, as it is for a serial phase); use as a
    context manager.

    Each worker has a pipe of its own and no thread of the exploring process serves it: that process
    hands out chunks and reads results between its own plans. Threads (multiprocessing's pool starts
    three) would each have to wait for a core the busy processes hold, at every start and every result.
    """

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
        self._started: list[_Worker] = []

    def __enter__(self) -> PlanPool:
        context = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads may deadlock: the workers only run
            # plans, never the locks of threads they did not inherit.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            # Everything this process holds is left out of the workers' garbage collections: a collection
            # would walk (and so copy, page by page) the whole inherited heap in every worker.
            gc.freeze()
            try:
                for number in range(1, self.workers + 1):
                    ours, theirs = context.Pipe(duplex=True)
                    inherited = [w.conn for w in self._started]
                    process = context.Process(
                        target=_serve, args=(self.scenario, self._options, number, theirs, inherited),
                        name=f"harness-plans-{number}", daemon=True)
                    process.start()
                    theirs.close()
                    self._started.append(_Worker(number, process, ours))
            except BaseException:
                self._stop(kill=True)
                raise
            finally:
                gc.unfreeze()
        return self

    def run(self, runs: Sequence[PlanRun], tell: Callable[[], None] | None = None) -> list[RunResult]:
        """Run `runs` on the workers and in this process; the results in the same order.

        The workers take chunks from the front, each kept two chunks ahead so none waits for the next;
        this process takes single plans from the back, and reads finished chunks between them. Chunks
        shrink as the plans left do, so where the two meet each side has only a plan or two to finish."""
        if not runs:
            return []
        results: list[RunResult | None] = [None] * len(runs)
        workers = self._started
        front, back = 0, len(runs)

        def collect(block: bool) -> None:
            waiting = [w.conn for w in workers if w.chunks]
            if not waiting:
                return
            for ready in wait(waiting, timeout=None if block else 0):
                worker = next(w for w in workers if w.conn is ready)
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError):
                    worker.process.join(1.0)
                    raise ScenarioError(
                        f"worker {worker.number} of the exploration ended (exit code {worker.process.exitcode}) "
                        "with plans in hand; a job may have killed its process") from None
                start, end = worker.chunks.popleft()
                if kind != "done":
                    raise payload
                results[start:end] = payload
                if tell is not None:
                    for _ in payload:
                        tell()

        while front < back or any(w.chunks for w in workers):
            for worker in workers:
                while front < back and len(worker.chunks) < 2:
                    # Large chunks cost less to hand out; small ones keep every process busy to the end.
                    end = front + max(1, min(16, (back - front) // (self.jobs * 4)))
                    worker.conn.send(runs[front:end])
                    worker.chunks.append((front, end))
                    front = end
            if front < back:
                back -= 1
                results[back] = runs[back].on(self._session)
                if tell is not None:
                    tell()
                collect(block=False)
            else:
                collect(block=True)
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    def _stop(self, *, kill: bool) -> None:
        started, self._started = self._started, []
        for worker in started:
            if kill:
                worker.process.terminate()
            else:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in started:
            worker.process.join(STOP_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        # After a failure, or on Ctrl-C (which the workers received too), the workers may be mid-chunk.
        self._stop(kill=exc_type is not None)
