"""Run one plan: reset the world, set the scenario up, run the job with the plan's faults armed, let the
engine retry in virtual time until quiet, and check the invariants.

The `Injector` is an `AttemptObserver`: the engine tells it when each attempt starts and ends, and it
arms the line tracer or schedules a fault on a fake service for the steps of the plan that target that
attempt. It also records what each attempt did (its line points and service calls) when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.engines.base import AttemptObserver, JobRecord
from harness.errors import InjectedCrash, InjectedError, ScenarioError
from harness.injection.lines import LinePoint
from harness.injection.plans import CallPoint, Duplicate, FaultStep, Plan

if TYPE_CHECKING:
    from harness.explore.scenario import Scenario
    from harness.injection.lines import LineTracer
    from harness.world import World

__all__ = ["Execution", "Injector", "RunResult", "run_plan"]


@dataclass
class Execution:
    """One attempt of one job, as the injector saw it."""

    index: int
    job: str
    job_id: str
    attempt: int
    journal_start: int
    journal_end: int = -1
    lines: list[LinePoint] = field(default_factory=list)
    #: Signature of the world as each recorded line was about to run (same order as `lines`).
    signatures: list[Hashable] = field(default_factory=list)
    calls: list[tuple[CallPoint, bool]] = field(default_factory=list)  # (point, had an effect)
    error: str | None = None


@dataclass
class RunResult:
    plan: Plan
    executions: list[Execution]
    violations: list[str]
    fired: list[FaultStep]
    unfired: list[FaultStep]
    #: The run told as a story, written while its world was still there (violating runs only).
    story: str = ""


class Injector(AttemptObserver):
    """Arms the plan's faults at the right attempts; records attempts when `recording` is set."""

    def __init__(self, world: World, tracer: LineTracer | None, reset: Callable[[], None] | None) -> None:
        self.world = world
        self.tracer = tracer
        self.reset_process = reset
        self.fingerprint: Callable[[], Hashable] | None = None
        self.plan_steps: dict[int, list[FaultStep]] = {}
        self.recording = False
        self.record_from = 1
        self.executions: list[Execution] = []
        self.fired: list[FaultStep] = []
        self._armed_calls: list[FaultStep] = []
        self._armed_line: FaultStep | None = None
        # sys.settrace slows every call in the process, so that backend is installed only for the
        # attempts that record or have a line armed; sys.monitoring stays installed (it costs nothing
        # outside target code).
        self.lazy_tracer = tracer is not None and tracer.backend == "settrace"
        self._entered = False

    def begin(self, plan: Plan, *, recording: bool, record_from: int = 1) -> None:
        self.plan_steps = {}
        for step in plan:
            if isinstance(step, FaultStep):
                self.plan_steps.setdefault(step.attempt, []).append(step)
        self.recording = recording
        self.record_from = record_from
        self.executions = []
        self.fired = []

    def _signature(self, execution: Execution) -> Hashable:
        fingerprint = self.fingerprint
        app_state = fingerprint() if fingerprint is not None else None
        return (
            execution.index,
            len(self.world.services.journal),
            len(self.world.engine.events),
            app_state,
        )

    def attempt_started(self, record: JobRecord, attempt: int) -> None:
        index = len(self.executions) + 1
        journal = self.world.services.journal
        execution = Execution(index, record.job, record.id, attempt, len(journal))
        self.executions.append(execution)
        record_this = self.recording and index >= self.record_from
        steps = self.plan_steps.get(index, ())
        tracer = self.tracer
        if tracer is not None and self.lazy_tracer:
            if record_this or any(not isinstance(s.point, CallPoint) for s in steps):
                if not tracer.installed:
                    tracer.__enter__()
                    self._entered = True
            else:
                tracer = None
        if tracer is not None:
            tracer.begin_attempt()
            tracer.record = record_this
            if record_this and self.fingerprint is not None:
                tracer.on_record = lambda point: execution.signatures.append(self._signature(execution))
            else:
                tracer.on_record = None
        self._armed_calls = []
        self._armed_line = None
        for step in steps:
            if isinstance(step.point, CallPoint):
                from fake_services import FaultRule

                point = step.point
                self.world.services.schedule(
                    point.service,
                    FaultRule(fault=step.fault, phase=point.phase, nth=point.call, operation=point.operation),
                )
                self._armed_calls.append(step)
            elif tracer is not None and self._armed_line is None:
                if step.fault == "bug":
                    tracer.arm(step.point, error=InjectedError(f"injected bug at {step.point.where()}"))
                else:
                    tracer.arm(step.point)
                self._armed_line = step

    def attempt_finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        execution = self.executions[-1]
        journal = self.world.services.journal
        execution.journal_end = len(journal)
        execution.error = None if exc is None else type(exc).__name__
        tracer = self.tracer
        if tracer is not None and tracer.installed:
            if self.recording and execution.index >= self.record_from:
                execution.lines = list(tracer.points)
            if self._armed_line is not None:
                if tracer.fired:
                    self.fired.append(self._armed_line)
                tracer.disarm()
            tracer.record = False
            tracer.on_record = None
            if self._entered:
                self._entered = False
                tracer.__exit__(None, None, None)
        if self.recording or self._armed_calls:
            counts: dict[tuple[str, str], int] = {}
            faulted: set[tuple[str, str, int]] = set()
            for entry in journal.entries(since=execution.journal_start):
                key = (entry.service, entry.operation)
                counts[key] = counts.get(key, 0) + 1
                if entry.fault:
                    faulted.add((entry.service, entry.operation, counts[key]))
                if self.recording and execution.index >= self.record_from:
                    execution.calls.append((CallPoint(entry.service, entry.operation, counts[key]), entry.effect))
            for step in self._armed_calls:
                point = step.point
                assert isinstance(point, CallPoint)
                if (point.service, point.operation, point.call) in faulted:
                    self.fired.append(step)
        if self._armed_calls:
            for service in {step.point.service for step in self._armed_calls if isinstance(step.point, CallPoint)}:
                self.world.services.clear_faults(service)
            self._armed_calls = []
        if isinstance(exc, InjectedCrash) and self.reset_process is not None:
            try:
                self.reset_process()
            except Exception as err:
                raise ScenarioError(f"the scenario's reset hook raised {err!r}") from err


def check_invariants(scenario: Scenario, world: World, extra: Sequence[Any] = ()) -> list[str]:
    violations: list[str] = []
    from harness.invariants import _CleanRunMarker

    for invariant in [*extra, *scenario.invariants]:
        if isinstance(invariant, _CleanRunMarker):
            continue  # stands for the explorer's own baseline check, which `extra` holds
        try:
            found = invariant(world)
        except Exception as err:
            name = getattr(invariant, "__name__", repr(invariant))
            raise ScenarioError(f"invariant {name} of scenario {scenario.name!r} raised {err!r}") from err
        if not found:
            continue
        if isinstance(found, str):
            violations.append(found)
        else:
            violations.extend(str(v) for v in found)
    return violations


def run_plan(
    scenario: Scenario,
    world: World,
    injector: Injector,
    plan: Plan,
    *,
    recording: bool = False,
    record_from: int = 1,
    invariants: Sequence[Any] = (),
    before_run: Callable[[], None] | None = None,
) -> RunResult:
    """Run `plan` once on a freshly reset world and return what happened."""
    world.reset()
    if scenario.reset is not None:
        scenario.reset()
    try:
        args = list(scenario.setup(world))
    except Exception as err:
        raise ScenarioError(f"setup of scenario {scenario.name!r} raised {err!r}") from err
    injector.begin(plan, recording=recording, record_from=record_from)
    if before_run is not None:
        before_run()
    engine = world.engine
    with engine.activate():
        engine.enqueue(scenario.job, *args)
        engine.run_until_quiet(max_time=scenario.max_time)
        if any(isinstance(step, Duplicate) for step in plan):
            engine.enqueue(scenario.job, *args)
            engine.run_until_quiet(max_time=scenario.max_time)
    violations = check_invariants(scenario, world, invariants)
    fault_steps = [s for s in plan if isinstance(s, FaultStep)]
    unfired = [s for s in fault_steps if s not in injector.fired]
    result = RunResult(plan, list(injector.executions), violations, list(injector.fired), unfired)
    if violations:
        from harness.explore.stories import tell

        result.story = tell(plan, result, world)
    return result
