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
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from harness.engines._native import choose_engine, job_name
from harness.errors import ConfigurationError
from harness.explore.parallel import MIN_PLANS_PER_WORKER, PlanPool, PlanRun
from harness.explore.report import Report, UnsafePlan
from harness.explore.runner import Execution, RunResult, RunSession
from harness.explore.stories import tell
from harness.injection.plans import BrokerLoss, Duplicate, FaultStep, Outage, Plan, call_faults, count_points

if TYPE_CHECKING:
    from harness.engines.base import Engine
    from harness.explore.scenario import Scenario
    from harness.world import World

__all__ = ["Explorer", "explore", "scenario_for"]

#: Told how far an exploration is: `progress(phase, done, total)` with phase "depth 1", "depth 2" or
#: "search" (plans run or pruned so far in that phase, and the phase's total; Hypothesis' shrinking can run
#: past its total).
Progress = Callable[[str, int, int], None]


@dataclass
class _Candidate:
    plan: Plan
    signature: Hashable | None = None


@dataclass
class _Outcome:
    result: RunResult
    #: The plans pruned as equivalent to this one: they share its verdict without being run.
    pruned: list[Plan] = field(default_factory=list)

    @property
    def equivalents(self) -> int:
        return len(self.pruned)


@dataclass
class _Batch:
    """Plans to run, in order, and the plans pruned as equivalent to one of them (by its index)."""

    runs: list[PlanRun] = field(default_factory=list)
    pruned: list[tuple[int, Plan]] = field(default_factory=list)


@dataclass
class _Stats:
    run: int = 0
    pruned: int = 0
    outcomes: list[_Outcome] = field(default_factory=list)


class Explorer:
    """Explores one scenario on one engine: enumerates plans, prunes equivalent ones, groups what fails.

    Running plans is its `session`'s job (`RunSession`): one world reused for every plan.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        engine: str | Engine = "sim",
        seed: int = 0,
        backend: str | None = None,
        ref: str | None = None,
        attempt_timeout: float | Literal["scenario"] | None = "scenario",
    ) -> None:
        scenario = _scenario_from(scenario)
        self.session = RunSession(
            scenario, engine=engine, seed=seed, backend=backend, attempt_timeout=attempt_timeout
        )
        self.scenario = scenario
        self.seed = seed
        self.ref = ref
        self.engine_name = self.session.engine_name

    @property
    def world(self) -> World:
        return self.session.world

    def baseline(self) -> RunResult:
        """The clean run (see `RunSession.baseline`)."""
        return self.session.baseline()

    def replay(self, plan: Plan | str | Sequence[Any]) -> RunResult:
        """Run one plan again, recording every attempt (for stories and replays); `plan` may be a report's
        plan, its JSON list or the JSON text."""
        return self.session.replay(plan)

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
                for at, fault in call_faults(call, had_effect):
                    candidates.append(_Candidate((FaultStep(execution.index, at, fault),)))
        return candidates

    @staticmethod
    def _batch(candidates: Sequence[_Candidate], prefix: Plan, prune: bool, batch: _Batch, recording: bool) -> None:
        """Add the plans of `candidates` to `batch`: each is run, or pruned as equivalent to an earlier one
        of the same list whose world had the same signature (decided before anything runs)."""
        seen: dict[Hashable, int] = {}
        for candidate in candidates:
            plan = prefix + candidate.plan
            if prune and candidate.signature is not None and candidate.signature in seen:
                batch.pruned.append((seen[candidate.signature], plan))
                continue
            step = candidate.plan[0]
            record_from = step.attempt + 1 if isinstance(step, FaultStep) else 1
            if candidate.signature is not None:
                seen[candidate.signature] = len(batch.runs)
            batch.runs.append(PlanRun(plan, recording, record_from))

    def _run_batch(self, batch: _Batch, stats: _Stats, tell: Callable[[], None] | None, pool: PlanPool | None) -> None:
        """Run a batch (in this process, or spread over `pool`'s) and add its outcomes in plan order."""
        if pool is not None and len(batch.runs) >= 2 * pool.jobs:  # once started, workers cost little
            results = pool.run(batch.runs, tell)
        else:
            results = []
            for run in batch.runs:
                results.append(run.on(self.session))
                if tell is not None:
                    tell()
        outcomes = [_Outcome(result) for result in results]
        for index, plan in batch.pruned:
            outcomes[index].pruned.append(plan)
            if tell is not None:
                tell()
        stats.run += len(outcomes)
        stats.pruned += len(batch.pruned)
        stats.outcomes.extend(outcomes)

    def explore(
        self,
        *,
        depth: int = 1,
        examples: int = 0,
        prune: bool = True,
        duplicate: bool = True,
        routing: bool = False,
        progress: Progress | None = None,
        jobs: int = 1,
    ) -> Report:
        """Exhaustive to `depth` (1 or 2), then `examples` Hypothesis-generated deeper plans.

        `jobs` > 1 spreads the exhaustive plans over that many worker processes (forked from this one, each
        with a world of its own; see `Scenario.isolate`); the report is the same as a serial run's."""
        if depth not in (0, 1, 2):
            raise ConfigurationError(f"depth must be 0, 1 or 2 (deeper plans come from examples=), not {depth}")
        if examples < 0:
            raise ConfigurationError(f"examples must be >= 0, not {examples}")
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigurationError(f"jobs must be a whole number of processes, at least 1, not {jobs!r}")
        started = time.perf_counter()
        baseline = self.baseline()
        stats = _Stats()
        unsafe: list[UnsafePlan] = []
        if baseline.violations:
            unsafe.append(self._unsafe((), baseline, 0))
        singles = self._single_faults(baseline.executions) if depth >= 1 else []
        if duplicate and depth >= 1:
            singles.append(_Candidate((Duplicate(),)))
        if self.scenario.broker_loss and depth >= 1:
            singles.extend(_Candidate((BrokerLoss(e.index),)) for e in baseline.executions)
        if self.scenario.outages and depth >= 1:
            for e in baseline.executions:
                for service in dict.fromkeys(call.service for call, _ in e.calls):
                    singles.extend(_Candidate((Outage(e.index, service, float(length)),))
                                   for length in self.scenario.outages)
        # Workers are forked before this process installs its tracer, so none inherits it half set up.
        with self._pool(jobs, len(singles) * (1 if depth < 2 else 10)) as pool, self.session.tracing():
            batch = _Batch()
            self._batch(singles, (), prune, batch, recording=depth >= 2)
            self._run_batch(batch, stats, _phase(progress, "depth 1", len(singles)), pool)
            depth1 = list(stats.outcomes)
            failing_singles = {o.result.plan for o in depth1 if o.result.violations}
            if depth >= 2:
                # Every parent's second faults first, so the phase knows its total before it starts.
                families = []
                for parent in depth1:
                    first = parent.result.plan[0]
                    if parent.result.violations or not isinstance(first, FaultStep):
                        continue
                    if not parent.result.fired:
                        continue
                    families.append((parent, self._single_faults(parent.result.executions, after=first.attempt)))
                batch = _Batch()
                for parent, seconds in families:
                    self._batch(seconds, parent.result.plan, prune, batch, recording=False)
                total = sum(len(seconds) for _, seconds in families)
                self._run_batch(batch, stats, _phase(progress, "depth 2", total), pool)
            for outcome in stats.outcomes:
                result = outcome.result
                if not result.violations:
                    continue
                if len(result.plan) > 1 and any((step,) in failing_singles for step in result.plan):
                    continue  # not minimal: one of its faults fails alone
                unsafe.append(self._unsafe(result.plan, result, outcome.equivalents))
            if examples:
                from harness.explore.search import search_deeper

                tell = _phase(progress, "search", examples)
                found, searched = search_deeper(self.session, baseline, examples=examples, seed=self.seed, tell=tell)
                stats.run += searched
                if found is not None and all(u.plan != found.plan for u in unsafe):
                    unsafe.append(self._unsafe(found.plan, found, 0))
        lines, inherited = self._line_verdicts(stats.outcomes)
        from harness.explore.notices import notices

        warnings = notices(
            self.scenario, baseline, [o.result for o in stats.outcomes], self.session.tracer.targets.modules()
        )
        routing_rows: list[dict[str, Any]] = []
        if routing:
            from harness.explore.routing import check_routing

            routing_rows = check_routing(self.session)
        return Report(
            scenario=self.scenario.name,
            engine=self.engine_name,
            seed=self.seed,
            points=count_points(baseline.executions),
            plans_run=stats.run + 1,
            plans_pruned=stats.pruned,
            unsafe=unsafe,
            lines=lines,
            inherited_lines=inherited,
            routing=routing_rows,
            duration_s=time.perf_counter() - started,
            description=self.scenario.description,
            warnings=warnings,
        )

    def _pool(self, jobs: int, plans: int) -> Any:
        """Worker processes for `jobs` > 1, when about `plans` plans are to come, enough to be worth it."""
        from contextlib import nullcontext

        if jobs <= 1 or plans < MIN_PLANS_PER_WORKER * jobs:
            return nullcontext(None)
        return PlanPool(
            self.session.scenario,
            session=self.session,
            engine=self.session.engine_spec,
            seed=self.seed,
            backend=self.session.tracer.backend,
            attempt_timeout=self.session.injector.guard.timeout_s,
            jobs=jobs,
        )

    # -- reporting helpers ----------------------------------------------------------------------
    def _unsafe(self, plan: Plan, result: RunResult, equivalents: int) -> UnsafePlan:
        return UnsafePlan(
            plan=plan,
            violations=list(result.violations),
            story=tell(plan, result),
            timeline=result.timeline,
            replay=self.replay_command(plan),
            equivalents=equivalents,
        )

    @staticmethod
    def _line_verdicts(outcomes: Sequence[_Outcome]) -> tuple[dict[tuple[str, int], bool], frozenset[tuple[str, int]]]:
        """(file, line) -> True when every crash there was safe, False when one was not; and the lines whose
        every crash point was pruned, so their verdict is inherited from an equivalent point that ran."""
        verdicts: dict[tuple[str, int], bool] = {}
        ran: set[tuple[str, int]] = set()
        for outcome in outcomes:
            safe = not outcome.result.violations
            for plan in (outcome.result.plan, *outcome.pruned):
                if len(plan) != 1 or not isinstance(plan[0], FaultStep) or plan[0].fault != "crash":
                    continue
                point = plan[0].point
                key = (point.file, point.line)  # type: ignore[union-attr]
                verdicts[key] = verdicts.get(key, True) and safe
                if plan is outcome.result.plan:
                    ran.add(key)
        return verdicts, frozenset(verdicts.keys() - ran)

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
        self.session.close()


def _scenario_from(target: Any) -> Scenario:
    from harness.explore.scenario import Scenario

    if isinstance(target, str):
        from harness._imports import load_attr

        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise ConfigurationError(f"expected a Scenario or 'module:attr' naming one, got {target!r}")
        found = load_attr(target)
        if not isinstance(found, Scenario):
            raise ConfigurationError(f"{target!r} is a {type(found).__name__}, not a Scenario")
        return found
    if not isinstance(target, Scenario):
        raise ConfigurationError(
            f"an Explorer takes a Scenario (or 'module:attr' naming one), not {type(target).__name__}; "
            "harness.explore(job, args) also takes a bare job with its arguments"
        )
    return target


def _phase(progress: Progress | None, phase: str, total: int) -> Callable[[], None] | None:
    """A counter that tells `progress` of each plan of one phase, run or pruned."""
    if progress is None:
        return None
    done = 0

    def tell() -> None:
        nonlocal done
        done += 1
        progress(phase, done, max(total, done))

    return tell


def explore(
    target: Scenario | Any,
    args: Sequence[Any] | None = None,
    *,
    engine: str | Engine | None = None,
    depth: int = 1,
    examples: int = 0,
    seed: int = 0,
    routing: bool = False,
    prune: bool = True,
    progress: Progress | None = None,
    attempt_timeout: float | Literal["scenario"] | None = "scenario",
    invariants: Sequence[Any] = (),
    configure: Callable[[World], None] | None = None,
    targets: Sequence[str] = (),
    enqueue_options: Mapping[str, Any] | None = None,
) -> Report:
    """Explore a `Scenario` (or `"module:attr"` naming one, as the CLI does), or a bare job run with `args`
    (a `@harness.job`, a Dramatiq actor, a Celery task, or a function with `engine="rq"`), and return its
    report; `report.assert_safe()` raises when it is unsafe. The engine is `engine=`, else the job's own (a
    native job's type names it), else `sim`. `attempt_timeout` (seconds of wall time, None for no limit)
    overrides the scenario's."""
    if isinstance(target, str):
        target = _scenario_from(target)
    scenario = scenario_for(
        target, args, invariants=invariants, configure=configure, targets=targets, enqueue_options=enqueue_options
    )
    explorer = Explorer(
        scenario, engine=choose_engine(scenario.job, engine), seed=seed, attempt_timeout=attempt_timeout
    )
    try:
        return explorer.explore(depth=depth, examples=examples, routing=routing, prune=prune, progress=progress)
    finally:
        explorer.close()


def scenario_for(
    target: Scenario | Any,
    args: Sequence[Any] | None = None,
    *,
    invariants: Sequence[Any] = (),
    configure: Callable[[World], None] | None = None,
    targets: Sequence[str] = (),
    enqueue_options: Mapping[str, Any] | None = None,
) -> Scenario:
    """`target` if it is a `Scenario`, else a scenario that runs the bare job `target` with `args`."""
    from harness.explore.scenario import Scenario

    if isinstance(target, Scenario):
        if args is not None or invariants or configure is not None or targets or enqueue_options:
            raise ConfigurationError(
                f"explore({target.name!r}, ...): a Scenario carries its own args, invariants, configure, targets "
                "and enqueue_options; pass those only with a bare job"
            )
        return target
    name = job_name(target)  # refuses what is not a job, saying what to pass
    arguments = list(args or [])
    return Scenario(
        name=name,
        job=target,
        setup=lambda world: arguments,
        configure=configure,
        invariants=tuple(invariants),
        targets=tuple(targets),
        enqueue_options=dict(enqueue_options or {}),
    )
