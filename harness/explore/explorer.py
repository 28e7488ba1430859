"""The explorer: record a clean run, enumerate every plan to a depth, prune equivalent ones, run the rest,
and report the violating plans as stories with replay commands.

Pruning: a crash at a line point leaves the world exactly as it was when that line was about to run, and
the retry starts from there. Two crash points of one attempt at which the world's signature (journal,
engine events, the scenario's `fingerprint`) is the same therefore lead to the same outcome, and only one
of them is run. Without a `fingerprint` the explorer cannot see the app's own state (its database), so it
prunes nothing and runs every plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigurationError
from harness.explore.report import Report, UnsafePlan
from harness.explore.runner import Execution, Injector, RunResult, run_plan
from harness.explore.stories import tell
from harness.injection.lines import LineTracer, Targets
from harness.injection.plans import CALL_FAULTS, CallPoint, Duplicate, FaultStep, Plan
from harness.invariants import _CleanRunMarker, effect_counts, effects_match

if TYPE_CHECKING:
    from harness.engines.base import Engine
    from harness.explore.scenario import Scenario
    from harness.world import World

__all__ = ["Explorer", "explore"]

Progress = Callable[[int, int], None]


@dataclass
class _Candidate:
    plan: Plan
    signature: Hashable | None = None


@dataclass
class _Outcome:
    result: RunResult
    equivalents: int = 0


@dataclass
class _Stats:
    run: int = 0
    pruned: int = 0
    outcomes: list[_Outcome] = field(default_factory=list)


class Explorer:
    """Explores one scenario on one engine. Reuses one world for every plan."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        engine: str | Engine = "sim",
        seed: int = 0,
        backend: str | None = None,
        ref: str | None = None,
    ) -> None:
        from harness.world import World

        self.scenario = scenario
        self.seed = seed
        self.ref = ref
        self.world: World = World.build(engine, seed=seed)
        self.engine_name = self.world.engine.name
        for job in (scenario.job, *scenario.jobs):
            self.world.engine.register(job)
        if scenario.configure is not None:
            scenario.configure(self.world)
        self.tracer = LineTracer(
            Targets(include=scenario.target_modules, exclude=list(scenario.exclude)), backend=backend
        )
        self.injector = Injector(self.world, self.tracer, scenario.reset)
        if scenario.fingerprint is not None:
            fingerprint = scenario.fingerprint
            world = self.world
            self.injector.fingerprint = lambda: fingerprint(world)
        self.world.engine.hooks.observers.append(self.injector)
        self._extra_invariants: list[Any] = []
        self._baseline: RunResult | None = None
        self._muted = False

    # -- running --------------------------------------------------------------------------------
    @contextmanager
    def tracing(self) -> Iterator[None]:
        """The line tracer installed (once, however deeply nested) and the engines' loggers muted: they
        log every failed attempt with its traceback, and thousands of planned failures would bury the
        report."""
        if self.tracer.installed or self._muted:
            yield  # already on (the settrace backend is switched on per attempt by the injector)
            return
        import logging

        # Their children too: RQ's worker attaches its own handlers to `rq.worker` and `rq.job`, which a
        # disabled `rq` does not silence.
        engines = ("rq", "dramatiq", "celery", "kombu")
        known = [name for name, logger in logging.root.manager.loggerDict.items()
                 if isinstance(logger, logging.Logger) and name.split(".", 1)[0] in engines]
        loggers = [logging.getLogger(name) for name in sorted({*engines, *known})]
        saved = [logger.disabled for logger in loggers]
        self._muted = True
        try:
            for logger in loggers:
                logger.disabled = True
            if self.injector.lazy_tracer:
                yield
            else:
                with self.tracer:
                    yield
        finally:
            self._muted = False
            for logger, was in zip(loggers, saved, strict=True):
                logger.disabled = was

    def _run(
        self,
        plan: Plan,
        *,
        recording: bool = False,
        record_from: int = 1,
        before_run: Callable[[], None] | None = None,
    ) -> RunResult:
        return run_plan(
            self.scenario,
            self.world,
            self.injector,
            plan,
            recording=recording,
            record_from=record_from,
            invariants=self._extra_invariants,
            before_run=before_run,
        )

    def baseline(self) -> RunResult:
        """The clean run: its points, and its effects as the built-in invariant's reference."""
        if self._baseline is None:
            markers = [i for i in self.scenario.invariants if isinstance(i, _CleanRunMarker)]
            with self.tracing():
                result = run_plan(self.scenario, self.world, self.injector, (), recording=True)
            expected = effect_counts(self.world)
            if markers:
                self._extra_invariants = [m.bind(expected) for m in markers]
            elif self.scenario.compare_to_clean_run:
                self._extra_invariants = [effects_match(expected)]
            self._baseline = result
        return self._baseline

    def replay(self, plan: Plan) -> RunResult:
        """Run one plan again, recording every attempt (for stories and replays)."""
        self.baseline()
        with self.tracing():
            return self._run(plan, recording=True)

    # -- enumeration ----------------------------------------------------------------------------
    @staticmethod
    def _single_faults(executions: Sequence[Execution], after: int = 0) -> list[_Candidate]:
        candidates: list[_Candidate] = []
        for execution in executions:
            if execution.index <= after:
                continue
            signatures = execution.signatures if len(execution.signatures) == len(execution.lines) else None
            for i, point in enumerate(execution.lines):
                sig = signatures[i] if signatures is not None else None
                candidates.append(_Candidate((FaultStep(execution.index, point, "crash"),), sig))
            for call, had_effect in execution.calls:
                for fault, phase in CALL_FAULTS:
                    if phase == "after" and not had_effect:
                        continue
                    at = CallPoint(call.service, call.operation, call.call, phase)
                    candidates.append(_Candidate((FaultStep(execution.index, at, fault),)))
        return candidates

    def _run_candidates(
        self,
        candidates: Sequence[_Candidate],
        prefix: Plan,
        stats: _Stats,
        prune: bool,
        progress: Progress | None,
        total: int,
        recording_after: bool = False,
    ) -> None:
        seen: dict[Hashable, _Outcome] = {}
        for candidate in candidates:
            if prune and candidate.signature is not None and candidate.signature in seen:
                seen[candidate.signature].equivalents += 1
                stats.pruned += 1
                continue
            plan = prefix + candidate.plan
            step = candidate.plan[0]
            record_from = step.attempt + 1 if isinstance(step, FaultStep) else 1
            result = self._run(plan, recording=recording_after, record_from=record_from)
            outcome = _Outcome(result)
            stats.run += 1
            stats.outcomes.append(outcome)
            if candidate.signature is not None:
                seen[candidate.signature] = outcome
            if progress is not None:
                progress(stats.run + stats.pruned, total)

    def explore(
        self,
        *,
        depth: int = 1,
        examples: int = 0,
        prune: bool = True,
        duplicate: bool = True,
        routing: bool = False,
        progress: Progress | None = None,
    ) -> Report:
        """Exhaustive to `depth` (1 or 2), then `examples` Hypothesis-generated deeper plans."""
        if depth not in (0, 1, 2):
            raise ConfigurationError(f"depth must be 0, 1 or 2 (deeper plans come from examples=), not {depth}")
        if examples < 0:
            raise ConfigurationError(f"examples must be >= 0, not {examples}")
        started = time.perf_counter()
        baseline = self.baseline()
        stats = _Stats()
        unsafe: list[UnsafePlan] = []
        if baseline.violations:
            unsafe.append(self._unsafe((), baseline, 0))
        with self.tracing():
            singles = self._single_faults(baseline.executions) if depth >= 1 else []
            if duplicate and depth >= 1:
                singles.append(_Candidate((Duplicate(),)))
            self._run_candidates(singles, (), stats, prune, progress, len(singles), recording_after=depth >= 2)
            depth1 = list(stats.outcomes)
            failing_singles = {o.result.plan for o in depth1 if o.result.violations}
            if depth >= 2:
                for parent in depth1:
                    first = parent.result.plan[0]
                    if parent.result.violations or not isinstance(first, FaultStep):
                        continue
                    if not parent.result.fired:
                        continue
                    seconds = self._single_faults(parent.result.executions, after=first.attempt)
                    self._run_candidates(seconds, parent.result.plan, stats, prune, progress, len(seconds))
            for outcome in stats.outcomes:
                result = outcome.result
                if not result.violations:
                    continue
                if len(result.plan) > 1 and any((step,) in failing_singles for step in result.plan):
                    continue  # not minimal: one of its faults fails alone
                unsafe.append(self._unsafe(result.plan, result, outcome.equivalents))
            if examples:
                from harness.explore.search import search_deeper

                found, searched = search_deeper(self, baseline, examples=examples, seed=self.seed)
                stats.run += searched
                if found is not None and all(u.plan != found.plan for u in unsafe):
                    unsafe.append(self._unsafe(found.plan, found, 0))
        routing_rows: list[dict[str, Any]] = []
        if routing:
            from harness.explore.routing import check_routing

            routing_rows = check_routing(self)
        return Report.build(
            explorer=self,
            baseline=baseline,
            plans_run=stats.run + 1,
            plans_pruned=stats.pruned,
            unsafe=unsafe,
            safe_lines=self._line_verdicts(stats.outcomes),
            routing=routing_rows,
            duration_s=time.perf_counter() - started,
        )

    # -- reporting helpers ----------------------------------------------------------------------
    def _unsafe(self, plan: Plan, result: RunResult, equivalents: int) -> UnsafePlan:
        return UnsafePlan(
            plan=plan,
            violations=list(result.violations),
            story=result.story or tell(plan, self.replay(plan), self.world),
            replay=self.replay_command(plan),
            equivalents=equivalents,
        )

    @staticmethod
    def _line_verdicts(outcomes: Sequence[_Outcome]) -> dict[tuple[str, int], bool]:
        """(file, line) -> True when every crash there was safe, False when one was not."""
        verdicts: dict[tuple[str, int], bool] = {}
        for outcome in outcomes:
            plan = outcome.result.plan
            if len(plan) != 1 or not isinstance(plan[0], FaultStep) or plan[0].fault != "crash":
                continue
            point = plan[0].point
            key = (point.file, point.line)  # type: ignore[union-attr]
            verdicts[key] = verdicts.get(key, True) and not outcome.result.violations
        return verdicts

    def replay_command(self, plan: Plan) -> str:
        from harness.explore.report import scenario_ref
        from harness.injection.plans import plan_to_json

        if self.ref is None:
            self.ref = scenario_ref(self.scenario)
        ref, plan_json = self.ref, plan_to_json(plan)
        if ":" not in ref:  # not importable as module:attr (a scenario built inside a test): say it in Python
            return (f"Explorer(<scenario {ref}>, engine={self.engine_name!r}, seed={self.seed})"
                    f".replay(plan_from_json('{plan_json}'))")
        return f"harness explore {ref} --engine {self.engine_name} --seed {self.seed} --replay '{plan_json}'"

    def close(self) -> None:
        self.world.close()


def explore(
    scenario: Scenario,
    *,
    engine: str | Engine = "sim",
    depth: int = 1,
    examples: int = 0,
    seed: int = 0,
    routing: bool = False,
    prune: bool = True,
    progress: Progress | None = None,
) -> Report:
    """Explore `scenario` and return its report; `report.assert_safe()` raises when it is unsafe."""
    explorer = Explorer(scenario, engine=engine, seed=seed)
    try:
        return explorer.explore(depth=depth, examples=examples, routing=routing, prune=prune, progress=progress)
    finally:
        explorer.close()
