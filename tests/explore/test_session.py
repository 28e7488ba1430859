"""The run session every way of exploring drives, stories told from a result alone, and the one rule of
which faults a call point takes."""

from __future__ import annotations

import planted
import pytest
from hypothesis import find, settings
from hypothesis.errors import NoSuchExample

from harness.explore.report import Report, UnsafePlan
from harness.explore.runner import RunSession
from harness.explore.stories import tell
from harness.injection.plans import CALL_FAULTS, CallPoint, FaultStep, count_points
from harness.injection.plans import call_faults as faults_at
from harness.strategies import call_faults


def _crash_after_the_charge(session: RunSession) -> FaultStep:
    """The line right after the charge of the planted naive job's first attempt."""
    baseline = session.baseline()
    first = baseline.executions[0]
    charge_line = next(p for p in first.lines if "payments.charge(" in _source(p))
    after = next(p for p in first.lines if p.line > charge_line.line)
    return FaultStep(1, after, "crash")


def _source(point) -> str:
    with open(point.file) as handle:
        return handle.read().splitlines()[point.line - 1]


def test_a_story_is_told_from_the_result_alone_after_the_world_is_gone():
    session = RunSession(planted.NAIVE, seed=3)
    try:
        step = _crash_after_the_charge(session)
        result = session.run((step,))
    finally:
        session.close()
    assert result.violations
    story = tell((step,), result)
    assert story.startswith("attempt 1 of charge_then_email crashed at ")
    assert "just after `payments.charge` returned" in story
    assert story.endswith("attempt 2 of charge_then_email ran to the end")


def test_an_attempt_records_no_last_call_when_it_crashed_before_calling_anything():
    session = RunSession(planted.NAIVE, seed=3)
    try:
        first_line = session.baseline().executions[0].lines[0]
        result = session.run((FaultStep(1, first_line, "crash"),))
    finally:
        session.close()
    assert result.executions[0].last_call is None
    assert "before calling any service" in tell((FaultStep(1, first_line, "crash"),), result)


def test_the_session_runs_replays_and_checks_what_the_explorer_would():
    session = RunSession(planted.NAIVE, seed=3)
    try:
        step = _crash_after_the_charge(session)
        ran = session.run((step,))
        replayed = session.replay((step,))
        assert ran.violations == replayed.violations
        assert replayed.executions[1].lines, "a replay records every attempt"
        assert not ran.executions[1].lines, "a plain run records nothing"
        # Set up but not run: the clean run's effects are all missing, and `check` says so.
        args = session.start()
        assert args == [7]
        missing = session.check()
        assert any("an effect was lost" in sentence for sentence in missing)
    finally:
        session.close()


def test_after_the_effect_only_at_a_call_that_had_one():
    charge = CallPoint("payments", "charge", 1)
    with_effect = faults_at(charge, True)
    assert len(with_effect) == len(CALL_FAULTS)
    without = faults_at(charge, False)
    assert without and all(point.phase == "before" for point, _ in without)
    assert [fault for _, fault in without] == [fault for fault, phase in CALL_FAULTS if phase == "before"]
    # The Hypothesis strategy draws from the same rule: nothing after the effect of a read.
    with pytest.raises(NoSuchExample):
        find(call_faults([(charge, False)]), lambda drawn: drawn[0].phase == "after", settings=settings(database=None))
    drawn = find(call_faults([(charge, True)]), lambda d: d[0].phase == "after", settings=settings(database=None))
    assert drawn[0].phase == "after"


def test_points_count_a_call_once_per_phase_it_can_be_struck_in():
    class Attempt:
        lines = ["a", "b", "c"]
        calls = [(CallPoint("payments", "charge", 1), True), (CallPoint("email", "search", 1), False)]

    assert count_points([Attempt(), Attempt()]) == {"line": 6, "call": 6}


def test_failures_that_differ_only_in_generated_ids_are_one_failure():
    def unsafe(message_id: str) -> UnsafePlan:
        return UnsafePlan(plan=(), violations=[f"announced twice: {message_id}, msg_00000000"], story="", replay="")

    report = Report("s", "sim", 0, {}, 1, 0, 0.0, [unsafe("msg_1a2b3c4d"), unsafe("msg_9f8e7d6c")])
    assert len(report.failures()) == 1
    stripe = Report("s", "sim", 0, {}, 1, 0, 0.0, [unsafe("pi_3Nq8ZpLkdfGh20aB1x"), unsafe("pi_3Nq8ZpLkdfGh20aB9z")])
    assert len(stripe.failures()) == 1
    distinct = Report("s", "sim", 0, {}, 1, 0, 0.0, [unsafe("order 1"), unsafe("order 2")])
    assert len(distinct.failures()) == 2
