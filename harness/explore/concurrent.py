"""The same job delivered twice at once: deliveries interleaved by a deterministic scheduler.

At-least-once engines run one job twice at the same moment: a visibility timeout expires while the first
worker is still busy (Celery's `acks_late` with a long task, SQS), an engine recovers an "orphaned" job
that is in fact still running, a client enqueues the same work twice. A check-then-act that is safe under
sequential retries is not safe then: a search before a send sends twice if both deliveries search before
either sends.

Each delivery runs the job's function in a thread of its own, but only one runs at a time: a delivery
pauses before every line of target code (the scenario's `targets`, less its `exclude`), and the scheduler
says who runs next. By default the running delivery goes on until it ends; a *schedule* names the steps
at which the scheduler switches to another one instead (a preemption), so every interleaving is
reproducible and replays from its JSON.

The search is systematic, with a bound on preemptions (a small bound finds most real races): from each
interleaving run, every further preemption after its last one is tried, fewest preemptions first. A
preemption is tried only before a step that touches something shared (a call to a fake service, a change
to what the scenario's `fingerprint` sees): a step that touches nothing commutes with whatever the other
delivery does, so switching before it ends as switching after it. Those skipped are counted as pruned.
`samples` adds seeded random interleavings beyond the bound, and `examples` lets Hypothesis generate
schedules (any switches, past the bound too) and shrink the first unsafe one it meets to the fewest,
earliest switches.

A delivery that fails is handed back to the engine, which runs the job again on its own schedule (as its
retry would); follow-up jobs the deliveries enqueued run there too. The scenario's invariants, with the
built-in one (effects equal a single delivery's clean run), judge the world once the engine is quiet.

What the scheduler cannot control is said, never ignored: a delivery that does not reach its next line
within `step_timeout` seconds is blocked outside it (a lock the other delivery holds, an open database
transaction, a socket), which is an error naming the line; a thread a delivery starts runs outside the
scheduler, which is a warning in the report.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from harness.engines._native import job_function
from harness.errors import ConfigurationError, HarnessError
from harness.explore.runner import RunSession, check_invariants
from harness.explore.scenario import Scenario
from harness.injection.lines import LinePoint

__all__ = ["ConcurrencyReport", "DeliveryBlocked", "Interleaving", "Interleavings", "explore_concurrent"]

#: Steps one interleaving may take before it is taken for a loop that never ends.
MAX_STEPS = 20_000


class DeliveryBlocked(HarnessError):
    """A delivery stopped somewhere the scheduler cannot see: waiting on something another delivery
    holds, or on the outside world. The interleaving cannot go on deterministically."""


class _Abandoned(BaseException):
    """Raised into a paused delivery when its interleaving is given up."""


@dataclass(frozen=True)
class Step:
    """One turn of one delivery: from the line it was paused at (`where`; "start" for its first turn) to
    the next line it paused at, or its end."""

    delivery: int
    where: str
    enabled: tuple[int, ...]
    #: `service.operation` of each call to a fake service the step made.
    calls: tuple[str, ...] = ()
    #: Whether the step changed what the scenario's fingerprint sees.
    changed: bool = False

    @property
    def visible(self) -> bool:
        return bool(self.calls) or self.changed


@dataclass
class Interleaving:
    """One run of the deliveries under one schedule, and what it left."""

    #: The schedule: (step index, delivery) at each step where the scheduler did not let the running
    #: delivery go on (or, when it ended, did not take the first one still paused).
    switches: tuple[tuple[int, int], ...]
    steps: list[Step]
    #: The error each failed delivery raised, as `Class: message`.
    errors: dict[int, str]
    violations: list[str] = field(default_factory=list)
    #: Threads the deliveries started, which ran outside the scheduler.
    threads: list[str] = field(default_factory=list)
    #: Attempts the engine ran once the deliveries were done (retries, follow-up jobs).
    afterwards: list[str] = field(default_factory=list)

    @property
    def preemptions(self) -> int:
        return _preemptions(self.steps)

    def schedule_json(self) -> str:
        return json.dumps({"deliveries": _deliveries(self.steps), "switches": [list(s) for s in self.switches]},
                          separators=(",", ":"))

    def story(self) -> str:
        return tell(self)


@dataclass
class ConcurrencyReport:
    scenario: str
    engine: str
    seed: int
    deliveries: int
    preemptions: int
    interleavings_run: int
    pruned: int
    duration_s: float
    unsafe: list[Interleaving]
    warnings: list[str] = field(default_factory=list)
    #: How many interleavings saw a delivery fail, by the error's class (a lock turning the second
    #: delivery away shows here).
    failures: dict[str, int] = field(default_factory=dict)
    #: The command that replays an interleaving, less its schedule (the CLI sets it).
    replay: str = ""
    #: Interleavings run beyond the bound (seeded random samples and Hypothesis examples).
    beyond: int = 0

    @property
    def safe(self) -> bool:
        return not self.unsafe

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "engine": self.engine, "seed": self.seed, "deliveries": self.deliveries,
            "preemptions": self.preemptions, "interleavings_run": self.interleavings_run, "pruned": self.pruned,
            "beyond_the_bound": self.beyond,
            "verdict": "SAFE" if self.safe else "UNSAFE", "warnings": self.warnings, "failures": self.failures,
            "unsafe": [{"schedule": json.loads(u.schedule_json()), "preemptions": u.preemptions,
                        "story": u.story(), "violations": u.violations} for u in self.unsafe],
        }

    def to_text(self) -> str:
        verdict = "SAFE" if self.safe else "UNSAFE"
        lines = [
            f"{self.scenario}, {self.deliveries} deliveries at once, on {self.engine} (seed {self.seed}): {verdict}",
            f"  interleavings: {self.interleavings_run} run with up to {self.preemptions} preemption(s)"
            + (f" ({self.beyond} of them beyond that, sampled or generated)" if self.beyond else "")
            + f", {self.pruned} pruned as equivalent; {self.duration_s:.2f} s",
        ]
        lines.extend(f"  warning: {w}" for w in self.warnings)
        if self.failures:
            told = ", ".join(f"{name} in {count}" for name, count in sorted(self.failures.items()))
            lines.append(f"  deliveries failed (and the engine ran them again): {told} interleaving(s)")
        for n, unsafe in enumerate(self.unsafe, 1):
            lines.append(f"  [{n}] {unsafe.story()}")
            lines.extend(f"      violation: {v}" for v in unsafe.violations)
            if self.replay:
                lines.append(f"      replay: {self.replay} '{unsafe.schedule_json()}'")
            else:
                lines.append(f"      schedule: {unsafe.schedule_json()}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _deliveries(steps: Sequence[Step]) -> int:
    return max((max(s.enabled) for s in steps if s.enabled), default=0) + 1


def _preemptions(steps: Sequence[Step]) -> int:
    """Switches away from a delivery that could have gone on."""
    count = 0
    for before, step in itertools.pairwise(steps):
        if before.delivery in step.enabled and step.delivery != before.delivery:
            count += 1
    return count


def _letter(delivery: int) -> str:
    return chr(ord("A") + delivery) if delivery < 26 else f"#{delivery + 1}"


def tell(run: Interleaving) -> str:
    """The interleaving as it happened: each delivery's stretch, its calls, and where it was stopped."""
    parts: list[str] = []
    steps = run.steps
    i = 0
    while i < len(steps):
        who = steps[i].delivery
        calls: list[str] = []
        j = i
        while j < len(steps) and steps[j].delivery == who:
            calls.extend(steps[j].calls)
            j += 1
        again = next((s for s in steps[j:] if s.delivery == who), None)
        did = f"called {', '.join(calls)}" if calls else "called no service"
        if again is not None:
            parts.append(f"delivery {_letter(who)} {did} and was stopped before `{again.where}`")
        elif who in run.errors:
            parts.append(f"delivery {_letter(who)} {did} and failed with {run.errors[who]}")
        else:
            parts.append(f"delivery {_letter(who)} {did} and ran to the end")
        i = j
    if run.afterwards:
        parts.append(f"then the engine ran {', '.join(run.afterwards)}")
    return "; ".join(parts)


class _Control:
    """The baton the deliveries pass: one runs, the others wait at their last line."""

    def __init__(self, count: int, timeout: float) -> None:
        self.cond = threading.Condition()
        self.count = count
        self.timeout = timeout
        self.turn: int | None = None
        self.state = ["new"] * count  # new, paused, running, done
        self.where = ["start"] * count
        self.errors: dict[int, BaseException] = {}
        self.abandoned = False

    def pause(self, delivery: int, where: str) -> None:
        with self.cond:
            self.state[delivery] = "paused"
            self.where[delivery] = where
            self.turn = None
            self.cond.notify_all()
            while self.turn != delivery and not self.abandoned:
                self.cond.wait()
            if self.abandoned:
                raise _Abandoned
            self.state[delivery] = "running"

    def finish(self, delivery: int, error: BaseException | None) -> None:
        with self.cond:
            if error is not None and not isinstance(error, _Abandoned):
                self.errors[delivery] = error
            self.state[delivery] = "done"
            self.turn = None
            self.cond.notify_all()

    def started(self) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: "new" not in self.state, self.timeout)

    def enabled(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.count) if self.state[d] == "paused")

    def grant(self, delivery: int) -> bool:
        """Let `delivery` run to its next line (or its end); False when it did not get there in time."""
        with self.cond:
            self.turn = delivery
            self.state[delivery] = "running"
            self.cond.notify_all()
            return self.cond.wait_for(lambda: self.state[delivery] != "running", self.timeout)

    def abandon(self) -> None:
        with self.cond:
            self.abandoned = True
            self.cond.notify_all()


Chooser = Callable[[int, tuple[int, ...], int], int]


class Interleavings:
    """Explores `deliveries` concurrent deliveries of `scenario`'s job on one world (see the module)."""

    def __init__(self, scenario: Scenario, *, engine: str = "sim", seed: int = 0, deliveries: int = 2,
                 step_timeout: float = 5.0) -> None:
        if isinstance(deliveries, bool) or not isinstance(deliveries, int) or not 2 <= deliveries <= 8:
            raise ConfigurationError(f"deliveries must be a whole number from 2 to 8, not {deliveries!r}")
        if not step_timeout > 0:
            raise ConfigurationError(f"step_timeout must be a positive number of seconds, not {step_timeout!r}")
        self.scenario = scenario
        self.deliveries = deliveries
        self.step_timeout = step_timeout
        self.seed = seed
        self.session = RunSession(scenario, engine=engine, seed=seed)
        self.world = self.session.world
        self._function = job_function(scenario.job)
        self._targets = self.session.tracer.targets
        self._code_matches: dict[CodeType, bool] = {}

    def close(self) -> None:
        self.world.close()

    def __enter__(self) -> Interleavings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one interleaving -------------------------------------------------------------------------
    def _traced(self, code: CodeType) -> bool:
        known = self._code_matches.get(code)
        if known is None:
            known = self._code_matches[code] = self._targets.matches_file(code.co_filename)
        return known

    def _body(self, control: _Control, delivery: int, args: Sequence[Any]) -> None:
        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line":
                control.pause(delivery, LinePoint(frame.f_code.co_filename, frame.f_lineno).where())
            return local

        def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
            return local if event == "call" and self._traced(frame.f_code) else None

        error: BaseException | None = None
        try:
            control.pause(delivery, "start")
            sys.settrace(global_trace)
            try:
                self._function(*args)
            finally:
                sys.settrace(None)
        except BaseException as exc:  # a delivery's failure is an outcome, never the scheduler's
            error = exc
        control.finish(delivery, error)

    def run(self, choose: Chooser | Mapping[int, int] | None = None) -> Interleaving:
        """Run the deliveries once; `choose(step, enabled, default)` picks who runs each step (a mapping
        of step index to delivery names the switches; anything else lets the running delivery go on)."""
        chooser = _chooser(choose)
        session, world, scenario = self.session, self.world, self.scenario
        session.baseline()
        summary = scenario.fingerprint
        fingerprint: Callable[[], Hashable] = (lambda: summary(world)) if summary is not None else (lambda: None)
        journal = world.services.journal
        with session.tracing():
            args = session.start(())
            control = _Control(self.deliveries, self.step_timeout)
            before_threads = set(threading.enumerate())
            engine = world.engine
            with engine.activate():
                threads = [
                    threading.Thread(target=contextvars.copy_context().run, args=(self._body, control, d, args),
                                     name=f"harness-delivery-{_letter(d)}", daemon=True)
                    for d in range(self.deliveries)
                ]
                for thread in threads:
                    thread.start()
                if not control.started():
                    control.abandon()
                    raise DeliveryBlocked("the deliveries did not start within "
                                          f"{self.step_timeout:g} s")
                try:
                    steps, switches = self._drive(control, chooser, fingerprint, journal)
                except DeliveryBlocked:
                    for thread in threads:  # the paused ones unwind (releasing what they hold) before we go on
                        thread.join(self.step_timeout)
                    raise
                for thread in threads:
                    thread.join(self.step_timeout)
                ours = set(threads)
                left = sorted(t.name for t in threading.enumerate()
                              if t not in before_threads and t not in ours and t.is_alive())
                executions_before = len(session.injector.executions)
                for _ in control.errors:
                    engine.enqueue(scenario.job, *args, **scenario.enqueue_options)
                engine.run_until_quiet(max_time=scenario.max_time)
            afterwards = [f"{e.job.rsplit('.', 1)[-1]} (attempt {e.attempt}"
                          f"{', failed' if e.error else ''})"
                          for e in session.injector.executions[executions_before:]]
            violations = check_invariants(scenario, world, session.invariants)
        errors = {d: f"{type(e).__name__}: {e}"[:200] for d, e in sorted(control.errors.items())}
        return Interleaving(tuple(switches), steps, errors, violations, left, afterwards)

    def _drive(self, control: _Control, chooser: Chooser, fingerprint: Callable[[], Hashable],
               journal: Any) -> tuple[list[Step], list[tuple[int, int]]]:
        steps: list[Step] = []
        switches: list[tuple[int, int]] = []
        current: int | None = None
        while enabled := control.enabled():
            index = len(steps)
            if index >= MAX_STEPS:
                control.abandon()
                raise DeliveryBlocked(f"the deliveries took more than {MAX_STEPS} steps without ending: "
                                      "a loop that waits for the other delivery never ends under one scheduler")
            default = current if current in enabled else enabled[0]
            choice = chooser(index, enabled, default)
            if choice not in enabled:
                choice = default
            if choice != default:
                switches.append((index, choice))
            where = control.where[choice]
            mark, seen = len(journal), fingerprint()
            if not control.grant(choice):
                control.abandon()
                raise DeliveryBlocked(
                    f"delivery {_letter(choice)} did not reach its next line within {self.step_timeout:g} s "
                    f"after `{where}`: it is blocked outside the scheduler's control (a lock or a database "
                    "transaction the other delivery holds, a queue, a socket). Exclude the module that holds "
                    "it from `targets` so that the call runs as one step, or give the wait a timeout")
            calls = tuple(f"{e.service}.{e.operation}" for e in journal.entries(since=mark))
            steps.append(Step(choice, where, enabled, calls, fingerprint() != seen))
            current = choice
        return steps, switches

    # -- the search ---------------------------------------------------------------------------------
    def explore(self, *, preemptions: int = 2, prune: bool = True, samples: int = 0,
                examples: int = 0) -> ConcurrencyReport:
        """Every interleaving with at most `preemptions` preemptions (pruned as the module says), then
        `samples` seeded random ones, then up to `examples` generated by Hypothesis (see the module)."""
        if isinstance(preemptions, bool) or not isinstance(preemptions, int) or preemptions < 0:
            raise ConfigurationError(f"preemptions must be a whole number, 0 or more, not {preemptions!r}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ConfigurationError(f"samples must be a whole number, 0 or more, not {samples!r}")
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
            raise ConfigurationError(f"examples must be a whole number, 0 or more, not {examples!r}")
        started = time.perf_counter()
        frontier: list[tuple[tuple[int, int], ...]] = [()]
        seen: set[tuple[tuple[int, int], ...]] = set()
        runs: list[Interleaving] = []
        pruned = 0
        while frontier:
            schedule = frontier.pop(0)
            run = self.run(dict(schedule))
            runs.append(run)
            if run.preemptions >= preemptions:
                continue
            first = max(index for index, _ in schedule) + 1 if schedule else 1
            children = []
            for index in range(first, len(run.steps)):
                step, before = run.steps[index], run.steps[index - 1]
                if before.delivery not in step.enabled:
                    continue  # the running delivery had ended: the next one is a free choice, symmetric
                for other in step.enabled:
                    if other == step.delivery:
                        continue
                    if prune and not step.visible:
                        pruned += 1
                        continue
                    child = (*schedule, (index, other))
                    if child not in seen:
                        seen.add(child)
                        children.append(child)
            frontier.extend(children)
        bounded = len(runs)
        rng = random.Random(self.seed)
        for _ in range(samples):
            runs.append(self.run(lambda index, enabled, default: rng.choice(enabled)))
        if examples:
            runs.extend(self._generated(examples, max(len(run.steps) for run in runs)))
        unsafe: dict[str, Interleaving] = {}
        for run in runs:
            if run.violations:
                unsafe.setdefault(run.schedule_json(), run)
        warnings = sorted({f"a delivery started thread {name}, which ran outside the scheduler's control"
                           for run in runs for name in run.threads})
        failures: dict[str, int] = {}
        for run in runs:
            for name in {text.split(":", 1)[0] for text in run.errors.values()}:
                failures[name] = failures.get(name, 0) + 1
        return ConcurrencyReport(
            scenario=self.scenario.name, engine=self.session.engine_name, seed=self.seed,
            deliveries=self.deliveries, preemptions=preemptions, interleavings_run=len(runs), pruned=pruned,
            duration_s=time.perf_counter() - started,
            unsafe=sorted(unsafe.values(), key=lambda u: (u.preemptions, len(u.switches))), warnings=warnings,
            failures=dict(sorted(failures.items())), beyond=len(runs) - bounded,
        )

    def _generated(self, examples: int, steps: int) -> list[Interleaving]:
        """Schedules Hypothesis generates (derandomized: the same every time), the first unsafe one shrunk."""
        from hypothesis import HealthCheck, find, settings
        from hypothesis import strategies as st
        from hypothesis.errors import NoSuchExample

        tried: list[Interleaving] = []

        def unsafe(switches: list[tuple[int, int]]) -> bool:
            run = self.run(dict(switches))
            tried.append(run)
            return bool(run.violations)

        switch = st.tuples(st.integers(1, max(1, steps)), st.integers(0, self.deliveries - 1))
        schedules = st.lists(switch, max_size=2 * self.deliveries + 2, unique_by=lambda s: s[0]).map(sorted)
        try:
            smallest = find(schedules, unsafe, settings=settings(
                max_examples=examples, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck)))
        except NoSuchExample:
            return tried
        return [*[run for run in tried if not run.violations], self.run(dict(smallest))]

    def replay(self, schedule: str | Mapping[str, Any]) -> Interleaving:
        """Run the interleaving a report printed (`schedule: {...}`) again."""
        data = _parse_schedule(schedule, self.deliveries)
        return self.run(dict(data))


def _chooser(choose: Chooser | Mapping[int, int] | None) -> Chooser:
    if choose is None:
        return lambda index, enabled, default: default
    if isinstance(choose, Mapping):
        switches = dict(choose)
        return lambda index, enabled, default: switches.get(index, default)
    return choose


def _parse_schedule(schedule: str | Mapping[str, Any], deliveries: int) -> list[tuple[int, int]]:
    try:
        data = json.loads(schedule) if isinstance(schedule, str) else schedule
    except ValueError as exc:
        raise ConfigurationError(f"not a schedule: not JSON ({exc}); pass what a report printed") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("switches"), list):
        raise ConfigurationError('a schedule is {"deliveries": N, "switches": [[step, delivery], ...]}, '
                                 f"not {schedule!r}")
    if data.get("deliveries", deliveries) != deliveries:
        raise ConfigurationError(f"the schedule is for {data.get('deliveries')} deliveries; this explorer runs "
                                 f"{deliveries}")
    switches = []
    for item in data["switches"]:
        ok = (isinstance(item, list) and len(item) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in item)
              and item[1] < deliveries)
        if not ok:
            raise ConfigurationError(f"each switch is [step, delivery] with a delivery below {deliveries}, "
                                     f"not {item!r}")
        switches.append((item[0], item[1]))
    return switches


def explore_concurrent(scenario: Scenario, *, engine: str = "sim", seed: int = 0, deliveries: int = 2,
                       preemptions: int = 2, prune: bool = True, samples: int = 0, examples: int = 0,
                       step_timeout: float = 5.0) -> ConcurrencyReport:
    """Explore `deliveries` concurrent deliveries of `scenario`'s job (see the module)."""
    with Interleavings(scenario, engine=engine, seed=seed, deliveries=deliveries,
                       step_timeout=step_timeout) as explorer:
        return explorer.explore(preemptions=preemptions, prune=prune, samples=samples, examples=examples)
