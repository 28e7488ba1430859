"""The two backends agree, share the interpreter politely (tool ids, earlier trace functions,
Hypothesis) and refuse misuse clearly."""

from __future__ import annotations

import sys

import linetgt_jobs as jobs
import pytest
from conftest import line_of
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from harness.errors import ConfigurationError, InjectedCrash
from harness.injection import LinePoint, LineTracer, Targets

TARGETS = ["linetgt_jobs", "linetgt_helpers", "linetgt_late"]
needs_monitoring = pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")


def run_all(tracer: LineTracer) -> list[LinePoint]:
    tracer.begin_attempt()
    tracer.record = True
    jobs.loop_job(3)
    jobs.guarded_job()
    jobs.calls_other(1)
    jobs.nested_job([1, 2, 3])
    jobs.one_liners([1, 2, 3])
    sys.modules.pop("linetgt_late", None)
    jobs.late_job(2)
    tracer.record = False
    return tracer.points


@needs_monitoring
def test_both_backends_give_the_same_points() -> None:
    with LineTracer(Targets(TARGETS), backend="monitoring") as tracer:
        monitored = run_all(tracer)
    with LineTracer(Targets(TARGETS), backend="settrace") as tracer:
        traced = run_all(tracer)
    assert len(monitored) > 40
    assert monitored == traced


def test_one_line_loops_and_lambdas_count_once_per_line_change(backend: str) -> None:
    with LineTracer(Targets(["linetgt_jobs"]), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        jobs.one_liners([5, 6])
        points = tracer.points
    lam, loop, gen = (line_of(jobs, m) for m in ("lambda", "one-line-loop", "genexpr"))
    # The lambda's line runs once to define it and once per call. A line repeated without leaving it
    # (the one-line loop coming back to itself, the generator expression resuming) counts once: a
    # crash "between iterations" of a one-line loop is not a point; split the loop to get one.
    expected = [(lam, 1), (loop, 1), (lam, 2), (lam, 3), (gen, 1), (gen, 2)]
    assert [(p.line, p.hit) for p in points] == expected


def test_default_backend_is_the_best_available() -> None:
    tracer = LineTracer(Targets(TARGETS))
    assert tracer.backend == ("monitoring" if sys.version_info >= (3, 12) else "settrace")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="only Python before 3.12 refuses sys.monitoring")
def test_monitoring_is_refused_before_312() -> None:
    with pytest.raises(ConfigurationError, match=r"3\.12"):
        LineTracer(Targets(TARGETS), backend="monitoring")


def test_reentering_is_refused_and_exit_uninstalls(backend: str) -> None:
    tracer = LineTracer(Targets(TARGETS), backend=backend)
    before = sys.gettrace()
    with tracer:
        assert tracer.installed
        with pytest.raises(ConfigurationError, match="already installed"), tracer:
            pass
    assert not tracer.installed
    assert sys.gettrace() is before
    with tracer:  # entering again after leaving is fine
        tracer.begin_attempt()
        tracer.arm(LinePoint(jobs.__file__, jobs.loop_job.__code__.co_firstlineno + 1, 1))
        with pytest.raises(InjectedCrash):
            jobs.loop_job(1)


def test_settrace_chains_to_and_restores_an_earlier_trace_function() -> None:
    calls: list[str] = []

    def earlier(frame, event, arg):
        if frame.f_code is jobs.loop_job.__code__:
            calls.append(event)
        return None

    saved = sys.gettrace()
    sys.settrace(earlier)
    try:
        with LineTracer(Targets(TARGETS), backend="settrace") as tracer:
            tracer.begin_attempt()
            tracer.record = True
            jobs.loop_job(1)
            assert tracer.points
            assert calls == ["call"]
        assert sys.gettrace() is earlier
    finally:
        sys.settrace(saved)


@needs_monitoring
def test_monitoring_takes_another_tool_id_when_4_is_taken() -> None:
    mon = sys.monitoring
    if mon.get_tool(4) is not None:
        pytest.skip("tool id 4 is held by another tool in this run")
    mon.use_tool_id(4, "another tool")
    try:
        with LineTracer(Targets(TARGETS), backend="monitoring") as tracer:
            assert mon.get_tool(4) == "another tool"
            ours = [t for t in range(6) if mon.get_tool(t) == "retry-harness line points"]
            assert len(ours) == 1 and ours[0] not in (1, 3)
            tracer.begin_attempt()
            tracer.record = True
            jobs.loop_job(2)
            ours_points = tracer.points
        with LineTracer(Targets(TARGETS), backend="settrace") as tracer:
            tracer.begin_attempt()
            tracer.record = True
            jobs.loop_job(2)
            assert ours_points == tracer.points and len(ours_points) == 10
        assert all(mon.get_tool(t) != "retry-harness line points" for t in range(6))
    finally:
        mon.free_tool_id(4)


@needs_monitoring
def test_monitoring_refuses_clearly_when_no_tool_id_is_free() -> None:
    mon = sys.monitoring
    claimed = []
    try:
        for tool in range(6):
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, "squatter")
                claimed.append(tool)
        with pytest.raises(ConfigurationError, match="backend='settrace'"):
            LineTracer(Targets(TARGETS), backend="monitoring").__enter__()
        with LineTracer(Targets(TARGETS), backend="settrace") as tracer:  # the way out still works
            tracer.begin_attempt()
            tracer.record = True
            jobs.loop_job(1)
            assert tracer.points
    finally:
        for tool in claimed:
            mon.free_tool_id(tool)


def test_works_inside_a_hypothesis_test_and_around_its_explain_phase(backend: str) -> None:
    clean: list[LinePoint] = []
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        clean.extend(_record_loop(tracer, 3))

        @settings(max_examples=20, database=None, derandomize=True, deadline=None)
        @given(st.integers(min_value=0, max_value=len(clean) - 1))
        def each_point_fires(index: int) -> None:
            tracer.begin_attempt()
            tracer.arm(clean[index])
            with pytest.raises(InjectedCrash):
                jobs.loop_job(3)
            tracer.disarm()

        each_point_fires()

        # A failing property makes Hypothesis run its explain phase, which traces with sys.monitoring
        # (tool id 3) on 3.12+; it must still find and report its own failure.
        @settings(
            max_examples=30,
            database=None,
            derandomize=True,
            deadline=None,
            phases=[Phase.generate, Phase.shrink, Phase.explain],
        )
        @given(st.integers(min_value=0, max_value=50))
        def fails_above_ten(n: int) -> None:
            assert jobs.loop_job(n) < 90

        with pytest.raises(AssertionError):
            fails_above_ten()
        assert _record_loop(tracer, 3) == clean


def _record_loop(tracer: LineTracer, n: int) -> list[LinePoint]:
    tracer.begin_attempt()
    tracer.record = True
    jobs.loop_job(n)
    tracer.record = False
    return tracer.points
