"""Stateful exploration: Hypothesis drives a longer story than a plan can tell.

`retry_machine(scenario)` builds a `RuleBasedStateMachine` whose steps deliver the job (again), toggle a
service's behaviours, fail a service's next call before or after its effect, crash the next attempt at a
line, and let the engine run or jump to the next retry. When Hypothesis ends a run the machine heals
every service, lets the engine run until quiet and checks the scenario's invariants and the clean run's
effects; a failure shrinks to the shortest list of steps, replayable with Hypothesis' usual tools.

    TestShop = retry_machine(IDEMPOTENT).TestCase      # in a test module
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from harness.injection.plans import CALL_FAULTS, FaultStep

if TYPE_CHECKING:
    from harness.engines.base import Engine
    from harness.explore.scenario import Scenario

__all__ = ["retry_machine"]


def retry_machine(scenario: Scenario, *, engine: str | Engine = "sim", seed: int = 0) -> type[RuleBasedStateMachine]:
    """A state machine class exploring `scenario`; use its `.TestCase` as a test."""
    from harness.explore.runner import RunSession

    # One clean run up front tells which lines and calls exist to be struck.
    probe = RunSession(scenario, engine=engine, seed=seed)
    try:
        baseline = probe.baseline()
    finally:
        probe.close()
    lines: list[Any] = sorted({p for e in baseline.executions for p in e.lines})
    calls = sorted({(c.service, c.operation) for e in baseline.executions for c, _ in e.calls})
    services = sorted({service for service, _ in calls}) or ["payments"]

    class RetryMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.session = RunSession(scenario, engine=engine, seed=seed)
            self.args: list[Any] = []
            self.steps: list[FaultStep] = []

        @initialize()
        def start(self) -> None:
            session = self.session
            with session.tracing():
                self.args = session.start()  # the clean run first: its effects are the reference
                with session.world.engine.activate():
                    session.world.engine.enqueue(scenario.job, *self.args)

        @rule()
        def deliver_again(self) -> None:
            """The broker delivers the job once more (at-least-once delivery)."""
            with self.session.world.engine.activate():
                self.session.world.engine.enqueue(scenario.job, *self.args)

        @rule(service=st.sampled_from(services), crash=st.booleans(), throttle=st.booleans())
        def toggle(self, service: str, crash: bool, throttle: bool) -> None:
            behaviour = self.session.world.services.behaviours[service]
            behaviour.crash, behaviour.throttle = crash, throttle

        @precondition(lambda self: bool(calls))
        @rule(call=st.sampled_from(calls or [("payments", "charge")]), fault=st.sampled_from(CALL_FAULTS))
        def fail_next_call(self, call: tuple[str, str], fault: tuple[str, str]) -> None:
            from fake_services import FaultRule

            kind, phase = fault
            self.session.world.services.schedule(
                call[0], FaultRule(fault=kind, phase=phase, next=1, operation=call[1])
            )

        @precondition(lambda self: bool(lines))
        @rule(point=st.sampled_from(lines or [None]))
        def crash_next_attempt(self, point: Any) -> None:
            injector = self.session.injector
            step = FaultStep(len(injector.executions) + 1, point, "crash")
            injector.add_step(step)
            self.steps.append(step)

        @rule(count=st.integers(min_value=1, max_value=3))
        def run_jobs(self, count: int) -> None:
            with self.session.tracing():
                for _ in range(count):
                    if not self.session.world.engine.step():
                        break

        @rule()
        def jump_to_next_retry(self) -> None:
            engine = self.session.world.engine
            due = engine.next_due()
            if due is not None and due > engine.clock.time():
                engine.clock.advance_to(due)

        def teardown(self) -> None:
            session = self.session
            try:
                world = session.world
                for behaviour in world.services.behaviours.values():
                    behaviour.reset()
                world.services.clear_faults()
                with session.tracing():
                    world.engine.run_until_quiet(max_time=scenario.max_time)
                violations = session.check()
                assert not violations, f"{scenario.name}: " + "; ".join(violations)
            finally:
                session.close()

    RetryMachine.__name__ = RetryMachine.__qualname__ = f"RetryMachine_{scenario.name.replace('.', '_')}"
    return RetryMachine
