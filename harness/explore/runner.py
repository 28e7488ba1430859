"""Run plans: reset the world, set the scenario up, run the job with the plan's faults armed, let the
engine retry in virtual time until quiet, and check the invariants.

A `RunSession` owns what every way of exploring needs: one world for one scenario on one engine, the line
tracer, the injector, the clean run and the invariants it binds, and running or replaying a plan. The
exhaustive explorer, the Hypothesis search, the routing matrix and the stateful machine all drive a session.

The `Injector` is an `AttemptObserver`: the engine tells it when each attempt starts and ends, and it
arms the line tracer or schedules a fault on a fake service for the steps of the plan that target that
attempt. It records on each `Execution` what a story needs (the attempt's outcome, the last service call
it made), and, when asked, every line point and service call of the attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CodeType
from typing import TYPE_CHECKING, Any, Literal

from harness.engines.base import AttemptObserver, JobRecord
from harness.errors import (
    AttemptHungError,
    CleanRunError,
    ConfigurationError,
    HarnessError,
    InjectedCrash,
    InjectedError,
    JobExitError,
    ScenarioError,
)
from harness.explore.guard import DEFAULT_ATTEMPT_TIMEOUT_S, AttemptGuard, AttemptHung, ProcessExit, refusing_exit
from harness.injection.lines import LinePoint
from harness.injection.plans import BrokerLoss, CallPoint, Duplicate, FaultStep, Outage, Plan

if TYPE_CHECKING:
    from harness.engines.base import Engine
    from harness.explore.scenario import Scenario
    from harness.injection.lines import LineTracer
    from harness.world import World

__all__ = ["Execution", "Injector", "RunResult", "RunSession", "check_invariants", "run_plan"]


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
    #: The class name of the exception that ended the attempt (None when it succeeded).
    error: str | None = None
    #: That exception as `Class: message`, and the target code's lines it passed through, outermost (the
    #: job's own line) first, as `file:line`: where a crash struck, and where a failure came from.
    error_text: str | None = None
    stack: tuple[str, ...] = ()
    #: Names of threads the attempt started that were still running when it ended.
    threads_left: tuple[str, ...] = ()
    #: `service.operation` of the last call the attempt made before an injected crash ended it (None
    #: when it made none), written as the attempt ends so that a story needs no live world.
    last_call: str | None = None
    #: Idempotency keys this attempt sent after their service had dropped them (see
    #: `fake_services.idempotency.KeyExpiry`): each request was processed as a new one.
    keys_expired: list[Any] = field(default_factory=list)


@dataclass
class RunResult:
    """What one run of a plan did: each attempt, the violations, and which faults struck."""

    plan: Plan
    executions: list[Execution]
    violations: list[str]
    fired: list[FaultStep]
    unfired: list[FaultStep]
    #: The engine's events of a violating run as plain timeline entries (see `timeline.entries`); empty
    #: for runs that broke nothing, which no report shows.
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: Service calls made while no attempt ran (by a thread a job left running, say): `service.operation`.
    outside_calls: list[str] = field(default_factory=list)
    #: Requests the job made that nothing routed, refused before they left the machine ("POST https://...").
    refused: list[str] = field(default_factory=list)
    #: What the broker forgot at each `BrokerLoss` step: (the execution after which, the jobs' names).
    lost: list[tuple[int, list[str]]] = field(default_factory=list)


#: Recorded events per attempt before the attempt is stopped (each costs about 70 bytes: 140 MB).
MAX_RECORDED_EVENTS = 2_000_000


class Injector(AttemptObserver):
    """Arms the plan's faults at the right attempts; records attempts when `recording` is set."""

    def __init__(
        self,
        world: World,
        tracer: LineTracer | None,
        reset: Callable[[], None] | None,
        *,
        attempt_timeout: float | None = DEFAULT_ATTEMPT_TIMEOUT_S,
    ) -> None:
        self.world = world
        self.guard = AttemptGuard(attempt_timeout, budget=self._over_budget)
        self._threads_before: frozenset[threading.Thread] = frozenset()
        self.tracer = tracer
        self.reset_process = reset
        self.fingerprint: Callable[[], Hashable] | None = None
        #: Code objects of the scenario's job functions: a failure's stack is told from there down.
        self.job_codes: frozenset[CodeType] = frozenset()
        self.plan_steps: dict[int, list[FaultStep]] = {}
        self.outages: dict[int, list[Outage]] = {}
        self._expired_seen = 0
        self.recording = False
        self.record_from = 1
        self.executions: list[Execution] = []
        self.fired: list[FaultStep] = []
        self._armed_calls: list[FaultStep] = []
        self._armed_ids: list[tuple[str, str]] = []
        self._armed_line: FaultStep | None = None
        # sys.settrace slows every call in the process, so that backend is installed only for the
        # attempts that record or have a line armed; sys.monitoring stays installed (it costs nothing
        # outside target code).
        self.lazy_tracer = tracer is not None and tracer.backend == "settrace"
        self._entered = False

    def begin(self, plan: Plan, *, recording: bool, record_from: int = 1) -> None:
        self.plan_steps = {}
        self.outages = {}
        self._expired_seen = 0
        for step in plan:
            if isinstance(step, FaultStep):
                self.plan_steps.setdefault(step.attempt, []).append(step)
            elif isinstance(step, Outage):
                self.outages.setdefault(step.attempt, []).append(step)
        self.recording = recording
        self.record_from = record_from
        self.executions = []
        self.fired = []

    def _target_stack(self, exc: BaseException) -> tuple[str, ...]:
        """`file:line` of each target-code frame `exc` passed through, from the job's own frame down
        (frames above it, such as server middleware, are left out when the job's frame is among them)."""
        targets = self.tracer.targets if self.tracer is not None else None
        stack: list[str] = []
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code in self.job_codes:
                stack.clear()
            if targets is None or targets.matches_file(code.co_filename):
                stack.append(LinePoint(code.co_filename, tb.tb_lineno).where())
            tb = tb.tb_next
        return tuple(stack)

    def add_step(self, step: FaultStep) -> None:
        """Arm one more fault for the attempt `step` names (the stateful machine plans as it goes)."""
        self.plan_steps.setdefault(step.attempt, []).append(step)

    def _signature(self, execution: Execution) -> Hashable:
        fingerprint = self.fingerprint
        app_state = fingerprint() if fingerprint is not None else None
        return (
            execution.index,
            len(self.world.services.journal),
            len(self.world.engine.events),
            app_state,
        )

    def _over_budget(self) -> str | None:
        """A sentence once a recording attempt has recorded more events than memory should hold."""
        tracer = self.tracer
        if tracer is None or not tracer.record or tracer.events <= MAX_RECORDED_EVENTS:
            return None
        return f"ran more than {MAX_RECORDED_EVENTS:,} lines of its own code without finishing"

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
        for outage in self.outages.get(index, ()):
            self._start_outage(outage)
        for step in steps:
            if isinstance(step.point, CallPoint):
                from fake_services import FaultRule

                point = step.point
                rule_id = self.world.services.schedule(
                    point.service,
                    FaultRule(fault=step.fault, phase=point.phase, nth=point.call, operation=point.operation),
                )
                self._armed_calls.append(step)
                self._armed_ids.append((point.service, rule_id))
            elif tracer is not None and self._armed_line is None:
                if step.fault == "bug":
                    tracer.arm(step.point, error=InjectedError(f"injected bug at {step.point.where()}"))
                else:
                    tracer.arm(step.point)
                self._armed_line = step
        self._threads_before = frozenset(threading.enumerate())
        self.guard.start()  # last: the limit counts the job's own time

    def attempt_finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        self.guard.stop()
        execution = self.executions[-1]
        left = [t for t in threading.enumerate() if t not in self._threads_before and t.is_alive()]
        if left:
            execution.threads_left = tuple(sorted(t.name for t in left))
        journal = self.world.services.journal
        execution.journal_end = len(journal)
        execution.error = None if exc is None else type(exc).__name__
        if exc is not None:
            execution.error_text = _error_text(exc)
            execution.stack = self._target_stack(exc)
        if isinstance(exc, InjectedCrash) and execution.journal_end > execution.journal_start:
            last = journal.entries(since=execution.journal_end - 1)[0]
            execution.last_call = f"{last.service}.{last.operation}"
        tracer = self.tracer
        escaped = isinstance(exc, AttemptHung | ProcessExit | SystemExit)
        if tracer is not None and tracer.installed:
            if self.recording and execution.index >= self.record_from and not escaped:
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
        self._disarm_calls()
        store = self.world.services.idempotency
        if len(store.expired) > self._expired_seen:
            execution.keys_expired = list(store.expired[self._expired_seen:])
            self._expired_seen = len(store.expired)
        if escaped and exc is not None:
            raise _escaped(exc, execution, self.guard) from exc
        if isinstance(exc, InjectedCrash) and self.reset_process is not None:
            try:
                self.reset_process()
            except Exception as err:
                raise ScenarioError(f"the scenario's reset hook raised {err!r}") from err

    def abandon(self) -> None:
        """Put the injector back after a run ended by an error that skipped `attempt_finished`."""
        self.guard.stop()
        tracer = self.tracer
        if tracer is not None and tracer.installed:
            tracer.disarm()
            tracer.record = False
            tracer.on_record = None
            if self._entered:
                self._entered = False
                tracer.__exit__(None, None, None)
        self._disarm_calls()

    def _start_outage(self, outage: Outage) -> None:
        """Take a service down from now for the outage's span of the services' clock; the rule stays until
        the world is reset (its window closes it)."""
        from fake_services import FaultRule

        services = self.world.services
        if outage.service not in services.services:
            raise ConfigurationError(f"an outage names the service {outage.service!r}; the services are "
                                     f"{', '.join(services.services)}")
        services.schedule(outage.service, FaultRule(fault="503", for_s=outage.for_s, operation=outage.operation))

    def _disarm_calls(self) -> None:
        """Remove the call faults armed for the attempt that ended (an outage's rule stays)."""
        for service, rule_id in self._armed_ids:
            self.world.services.remove_fault(service, rule_id)
        self._armed_ids = []
        self._armed_calls = []


def check_invariants(scenario: Scenario, world: World, extra: Sequence[Any] = ()) -> list[str]:
    violations: list[str] = []
    from harness.invariants import _CleanRunMarker

    for invariant in [*extra, *scenario.invariants]:
        if isinstance(invariant, _CleanRunMarker):
            continue  # stands for the explorer's own baseline check, which `extra` holds
        name = getattr(invariant, "__name__", repr(invariant))
        try:
            found = invariant(world)
        except AssertionError as err:
            # `assert order.charged == 1, "charged twice"` is an invariant too: its message is the sentence.
            violations.append(str(err) or f"invariant {name} failed (an assert with no message){_where(err)}")
            continue
        except Exception as err:
            raise ScenarioError(f"invariant {name} of scenario {scenario.name!r} raised {err!r}") from err
        if not found:
            continue
        if isinstance(found, str):
            violations.append(found)
        elif isinstance(found, list | tuple) and all(isinstance(v, str) for v in found):
            violations.extend(found)
        else:
            raise ScenarioError(
                f"invariant {name} of scenario {scenario.name!r} returned {found!r}; an invariant returns None "
                "when it holds, or a sentence (or a list of sentences) naming the evidence when it does not"
            )
    return violations


def _escaped(exc: BaseException, execution: Execution, guard: AttemptGuard) -> HarnessError:
    """The harness error for an attempt that hung, ran past its budget or tried to end the process."""
    head = f"attempt {execution.attempt} of {_short(execution.job)}"
    where = f" at {' → '.join(execution.stack)}" if execution.stack else ""
    if isinstance(exc, AttemptHung) and guard.over_budget is not None:
        return AttemptHungError(
            f"{head} {guard.over_budget}{where}: the job loops without end, or does far more than one attempt of "
            "a job should. Explore a smaller piece of it, or narrow `targets` to the code that matters"
        )
    if isinstance(exc, AttemptHung):
        timeout = guard.timeout_s or 0.0
        return AttemptHungError(
            f"{head} was still running after {timeout:g} s of wall time{where}: the job sleeps, waits or loops "
            "where the virtual clock cannot help (a real sleep, a lock, a socket without a timeout). Raise the "
            "limit with Scenario(attempt_timeout=...) or --attempt-timeout if it is only slow"
        )
    code = exc.code if isinstance(exc, ProcessExit | SystemExit) else None
    how = f"called os._exit({code})" if isinstance(exc, ProcessExit) else f"raised SystemExit({code!r})"
    return JobExitError(
        f"{head} {how}{where}: the worker process would have ended there. Raise an exception instead, so the "
        "engine can retry the job"
    )


def _error_text(exc: BaseException) -> str:
    """`Class: message`, and the exception at the root of its chain when a client wrapped it."""
    text = _one_error(exc)
    root, seen = exc, {id(exc)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    return text if root is exc else f"{text} (from {_one_error(root)})"


def _one_error(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the failure it describes
        message = "<message unavailable>"
    return f"{type(exc).__name__}: {message[:300]}" if message else type(exc).__name__


def _where(err: BaseException) -> str:
    """` at file:line` of the innermost frame an exception passed through ('' when it has none)."""
    tb = err.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {LinePoint(tb.tb_frame.f_code.co_filename, tb.tb_lineno).where()}"


def start_plan(
    scenario: Scenario, world: World, injector: Injector, plan: Plan, *, recording: bool = False, record_from: int = 1
) -> list[Any]:
    """Reset the world and the process, set the scenario up and arm `plan`; the job's arguments."""
    world.reset()
    for service, seconds in scenario.key_retention.items():
        try:
            world.services.set_key_retention(service, seconds)
        except (KeyError, ValueError) as err:
            raise ConfigurationError(f"scenario {scenario.name!r}: key_retention for {service!r}: {err}") from None
    if scenario.reset is not None:
        scenario.reset()
    try:
        args = list(scenario.setup(world))
    except Exception as err:
        raise ScenarioError(f"setup of scenario {scenario.name!r} raised {err!r}") from err
    injector.begin(plan, recording=recording, record_from=record_from)
    return args


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
    args = start_plan(scenario, world, injector, plan, recording=recording, record_from=record_from)
    if before_run is not None:
        before_run()
    engine = world.engine
    journal_at_start = len(world.services.journal)
    losses = sorted(step.attempt for step in plan if isinstance(step, BrokerLoss))
    lost: list[tuple[int, list[str]]] = []
    try:
        with engine.activate():
            engine.enqueue(scenario.job, *args, **scenario.enqueue_options)
            _run_until_quiet(engine, scenario.max_time, injector, losses, lost)
            if any(isinstance(step, Duplicate) for step in plan):
                engine.enqueue(scenario.job, *args, **scenario.enqueue_options)
                _run_until_quiet(engine, scenario.max_time, injector, losses, lost)
            if scenario.periodic:
                _tick(scenario, engine, injector, losses, lost)
    except AttemptHungError as hung:
        # A finding, not a broken setup: this plan's faults made an attempt hang. The world is mid-run, so
        # no invariant can be read; the next run starts from a reset world.
        injector.abandon()
        return _result(plan, injector, [str(hung)])
    except SystemExit as exc:  # the reference engine lets it through without telling the observers
        injector.abandon()
        execution = injector.executions[-1] if injector.executions else None
        if execution is None:
            raise
        execution.stack = injector._target_stack(exc)
        raise _escaped(exc, execution, injector.guard) from exc
    except BaseException:
        injector.abandon()
        raise
    violations = check_invariants(scenario, world, invariants)
    refused = list(dict.fromkeys(str(r) for r in world.outbound.refused))
    if refused:
        violations.insert(0, f"the job made {_requests(len(refused))} nobody routed, refused before it left "
                              f"the machine: {', '.join(refused[:3])}{' ...' if len(refused) > 3 else ''}")
    result = _result(plan, injector, violations)
    result.refused = refused
    result.lost = lost
    if violations:
        from harness.explore.timeline import entries

        result.timeline = entries(engine.events)
    inside = sum(e.journal_end - e.journal_start for e in result.executions if e.journal_end >= 0)
    if len(world.services.journal) - journal_at_start > inside:
        result.outside_calls = _outside_calls(world, result.executions, journal_at_start)
    return result


def _run_until_quiet(engine: Any, max_time: float, injector: Injector, losses: list[int],
                     lost: list[tuple[int, list[str]]]) -> None:
    """The engine's own `run_until_quiet`, unless the plan makes the broker forget: then the same loop,
    with the broker's state dropped between two attempts as soon as the planned attempt has ended."""
    if not losses:
        engine.run_until_quiet(max_time=max_time)
        return
    clock = engine.clock
    deadline = clock.time() + max_time
    while True:
        if losses and len(injector.executions) >= losses[0]:
            after = losses.pop(0)
            lost.append((after, [record.job.rsplit(".", 1)[-1] for record in engine.forget()]))
            continue
        if engine.step():
            continue
        due = engine.next_due()
        if due is None or due > deadline:
            return
        if due > clock.time():
            clock.advance_to(due)


def _tick(scenario: Scenario, engine: Any, injector: Injector, losses: list[int],
          lost: list[tuple[int, list[str]]]) -> None:
    """The scenario's periodic jobs, enqueued on their timers after the run went quiet, each tick run
    until quiet again (a scheduler outside the broker: a broker loss does not stop it)."""
    clock = engine.clock
    start = clock.time()
    ticks = sorted((every * n, i) for i, (_, every) in enumerate(scenario.periodic)
                   for n in range(1, int(scenario.periodic_for // every) + 1))
    for offset, i in ticks:
        if start + offset > clock.time():
            clock.advance_to(start + offset)
        engine.enqueue(scenario.periodic[i][0])
        _run_until_quiet(engine, scenario.max_time, injector, losses, lost)


def _requests(count: int) -> str:
    return "a request" if count == 1 else f"{count} requests"


def _result(plan: Plan, injector: Injector, violations: list[str]) -> RunResult:
    fault_steps = [s for s in plan if isinstance(s, FaultStep)]
    unfired = [s for s in fault_steps if s not in injector.fired]
    return RunResult(plan, list(injector.executions), violations, list(injector.fired), unfired)


def _outside_calls(world: World, executions: list[Execution], start: int) -> list[str]:
    """`service.operation` of the journal entries no attempt's window covers."""
    covered: set[int] = set()
    for execution in executions:
        covered.update(range(execution.journal_start, max(execution.journal_end, execution.journal_start)))
    entries = world.services.journal.entries(since=start)
    return [f"{e.service}.{e.operation}" for i, e in enumerate(entries, start) if i not in covered]


def clean_run_problem(scenario: Scenario, result: RunResult, *, changed: bool) -> str | None:
    """Why no verdict can be earned from this clean run, in one paragraph; None when it is sound.

    Sound means: the job ran, every attempt succeeded, and it reached at least one service call or
    changed the app's state as `fingerprint` sees it (unless the scenario says it calls nothing).
    """
    name = scenario.name
    if not result.executions:
        return (
            f"the clean run of scenario {name!r} never ran the job: nothing was enqueued or nothing was served "
            "(a client middleware that stops the push, or a queue the engine does not serve?)"
        )
    if result.refused:
        return (
            f"the clean run of scenario {name!r} made {_requests(len(result.refused))} that nothing routes: "
            f"{', '.join(result.refused[:3])}{' ...' if len(result.refused) > 3 else ''}. The harness refused "
            f"{'it' if len(result.refused) == 1 else 'them'} (never sent). Map each host to a fake in "
            "`configure` (world.outbound.map(url, service)) or "
            "declare its answer (world.outbound.route(method, url, status=..., json=...))"
        )
    hung = [v for v in result.violations if "of wall time" in v and "still running" in v]
    if hung:
        return f"the clean run of scenario {name!r} hung: {hung[0]}"
    failed = [e for e in result.executions if e.error is not None]
    if failed:
        first = failed[0]
        where = f" at {' → '.join(first.stack)}" if first.stack else ""
        more = f" ({len(failed)} of {len(result.executions)} attempts failed)" if len(failed) > 1 else ""
        return (
            f"the clean run of scenario {name!r} failed: attempt {first.attempt} of {_short(first.job)} raised "
            f"{first.error_text or first.error}{where}{more}. A run with no fault must succeed before faults "
            "can be judged: is every client of the job pointed at the fake services (`configure`), and does "
            "`setup` prepare what the job needs?"
        )
    reached = any(e.calls for e in result.executions)
    if not reached and not changed and not scenario.calls_nothing:
        return (
            f"the clean run of scenario {name!r} reached no fake service and changed nothing its fingerprint "
            "sees, so no fault could strike it and no verdict would be earned. Point the job's clients at the "
            "fake services in `configure` (or map their hosts); if the job truly calls nothing, say so with "
            "Scenario(calls_nothing=True)"
        )
    return None


def _short(job: str) -> str:
    return job.rsplit(".", 1)[-1]


def _function_code(job: Any) -> CodeType | None:
    """The code object of a job's own function: a harness `Job`, a Dramatiq actor, a Celery task, a
    plain function (RQ), or anything that keeps its function in `__wrapped__`."""
    for candidate in (getattr(job, "fn", None), getattr(job, "__wrapped__", None), getattr(job, "run", None), job):
        code = getattr(candidate, "__code__", None)
        if isinstance(code, CodeType):
            return code
    return None


#: Loggers of the engines, muted while a session explores (see `RunSession.tracing`).
_ENGINE_LOGGERS = ("rq", "dramatiq", "celery", "kombu")


class RunSession:
    """One scenario on one world: what every way of exploring it needs.

    It builds the world (engine, fake services, clock), registers the scenario's jobs, runs its
    `configure`, and owns the line tracer and the injector. `baseline()` is the clean run, recorded once;
    it binds the built-in invariant (effects equal the clean run's). `run(plan)` runs one plan on the
    reset world, `replay(plan)` runs it recording every attempt, `start(plan)` only sets a run up (for
    drivers that step the engine themselves) and `check()` reads the invariants on the world as it is.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        engine: str | Engine = "sim",
        seed: int = 0,
        backend: str | None = None,
        attempt_timeout: float | Literal["scenario"] | None = "scenario",
    ) -> None:
        from harness.injection.lines import LineTracer, Targets
        from harness.world import World

        self.scenario = scenario
        self.seed = seed
        #: The engine as asked for (a name, or an Engine), so that worker processes can build their own.
        self.engine_spec = engine
        self.world: World = World.build(engine, seed=seed)
        self.engine_name = self.world.engine.name
        try:
            # Targets first: a typo there is bad usage, said at once on every engine, before any job runs.
            self.tracer = LineTracer(
                Targets(include=scenario.target_modules, exclude=list(scenario.exclude)), backend=backend
            )
            self.tracer.targets.resolve()
            periodic = [job for job, _ in scenario.periodic if job not in scenario.jobs]
            for job in (scenario.job, *scenario.jobs, *periodic):
                self.world.engine.register(job)
            if scenario.configure is not None:
                try:
                    scenario.configure(self.world)
                except HarnessError:
                    raise
                except Exception as err:
                    raise ScenarioError(f"configure of scenario {scenario.name!r} raised {err!r}") from err
        except BaseException:
            self.world.close()
            raise
        timeout = scenario.attempt_timeout if attempt_timeout == "scenario" else attempt_timeout
        try:
            self.injector = Injector(self.world, self.tracer, scenario.reset, attempt_timeout=timeout)
        except ValueError as err:
            self.world.close()
            raise ConfigurationError(str(err)) from None
        self.injector.job_codes = frozenset(filter(None, map(_function_code, (scenario.job, *scenario.jobs))))
        if scenario.fingerprint is not None:
            fingerprint = scenario.fingerprint
            world = self.world
            self.injector.fingerprint = lambda: fingerprint(world)
        self.world.engine.hooks.observers.append(self.injector)
        #: The clean run's own invariants (bound once it ran), checked before the scenario's.
        self.invariants: list[Any] = []
        self._baseline: RunResult | None = None
        self._muted = False
        #: What drivers of this session build once from its clean run (the search's strategy, say).
        self.cache: dict[str, Any] = {}

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
        known = [name for name, logger in logging.root.manager.loggerDict.items()
                 if isinstance(logger, logging.Logger) and name.split(".", 1)[0] in _ENGINE_LOGGERS]
        loggers = [logging.getLogger(name) for name in sorted({*_ENGINE_LOGGERS, *known})]
        saved = [logger.disabled for logger in loggers]
        self._muted = True
        try:
            for logger in loggers:
                logger.disabled = True
            with refusing_exit(), self.world.outbound.active():
                if self.injector.lazy_tracer:
                    yield
                else:
                    with self.tracer:
                        yield
        finally:
            self._muted = False
            for logger, was in zip(loggers, saved, strict=True):
                logger.disabled = was

    def baseline(self) -> RunResult:
        """The clean run: its points, and its effects as the built-in invariant's reference."""
        if self._baseline is None:
            from harness.invariants import _CleanRunMarker, effect_counts, effects_match

            scenario = self.scenario
            markers = [i for i in scenario.invariants if isinstance(i, _CleanRunMarker)]
            seen: list[Hashable] = []

            def before_run() -> None:
                if scenario.fingerprint is not None:
                    seen.append(scenario.fingerprint(self.world))

            with self.tracing():
                result = run_plan(scenario, self.world, self.injector, (), recording=True, before_run=before_run)
            if scenario.fingerprint is not None:
                seen.append(scenario.fingerprint(self.world))
            problem = clean_run_problem(scenario, result, changed=len(set(seen)) > 1)
            if problem is not None:
                raise CleanRunError(problem)
            expected = effect_counts(self.world)
            if markers:
                self.invariants = [m.bind(expected) for m in markers]
            elif self.scenario.compare_to_clean_run:
                self.invariants = [effects_match(expected)]
            self._baseline = result
        return self._baseline

    def run(
        self,
        plan: Plan,
        *,
        recording: bool = False,
        record_from: int = 1,
        before_run: Callable[[], None] | None = None,
    ) -> RunResult:
        """Run `plan` once on the reset world (the clean run must have run: it binds the invariants)."""
        with self.tracing():
            return run_plan(
                self.scenario,
                self.world,
                self.injector,
                plan,
                recording=recording,
                record_from=record_from,
                invariants=self.invariants,
                before_run=before_run,
            )

    def replay(self, plan: Plan | str | Sequence[Any]) -> RunResult:
        """Run one plan again, recording every attempt (for stories and replays). The plan may also be a
        report's JSON text or `plan` list; anything else is refused with a `ConfigurationError`."""
        from harness.injection.plans import as_plan

        steps = as_plan(plan)
        self.baseline()
        return self.run(steps, recording=True)

    def start(self, plan: Plan = ()) -> list[Any]:
        """Set a run up without running it: reset, set up, arm `plan`; returns the job's arguments."""
        self.baseline()
        return start_plan(self.scenario, self.world, self.injector, plan)

    def check(self) -> list[str]:
        """The invariants (the clean run's, then the scenario's) on the world as it is now."""
        return check_invariants(self.scenario, self.world, self.invariants)

    def close(self) -> None:
        self.world.close()
