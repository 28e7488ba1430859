"""Arming line points: the crash strikes exactly at the armed (file, line, hit), as the line is about
to run, and behaves like a dying process towards the job's own error handling."""

from __future__ import annotations

import traceback

import linetgt_jobs as jobs
import pytest
from conftest import line_of

from harness.errors import InjectedCrash
from harness.injection import LinePoint, LineTracer, Targets

TARGETS = ["linetgt_jobs", "linetgt_helpers"]


def recorded(tracer: LineTracer, fn, *args) -> list[LinePoint]:
    tracer.begin_attempt()
    tracer.record = True
    fn(*args)
    tracer.record = False
    return tracer.points


def crash_frame_line(exc: BaseException, file: str) -> int:
    """The line the innermost frame of `file` was at when `exc` went through it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
    assert frames, "the crash did not surface in the traced frame"
    return frames[-1].lineno


@pytest.mark.parametrize("also_record", [False, True], ids=["armed-only", "recording"])
def test_each_recorded_point_crashes_exactly_there(backend: str, also_record: bool) -> None:
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        points = recorded(tracer, jobs.loop_job, 3)
        assert len(points) > 10
        for index, point in enumerate(points):
            tracer.begin_attempt()
            tracer.record = also_record
            tracer.arm(point)
            with pytest.raises(InjectedCrash) as caught:
                jobs.loop_job(3)
            assert tracer.fired and tracer.fired_at == point
            assert caught.value.where == point.where()
            assert crash_frame_line(caught.value, point.file) == point.line
            if also_record:
                # everything before the point ran; the point itself is recorded, then it crashed
                assert tracer.points == points[: index + 1]
            tracer.disarm()
            tracer.record = False


def test_a_hit_never_reached_never_fires(backend: str) -> None:
    body = LinePoint(jobs.__file__, line_of(jobs, "loop-body"), 4)
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(body)
        assert jobs.loop_job(3) == 6  # only three hits
        assert not tracer.fired and tracer.fired_at is None
        tracer.begin_attempt()
        with pytest.raises(InjectedCrash):
            jobs.loop_job(4)
        assert tracer.fired_at == body


def test_hits_are_counted_per_attempt(backend: str) -> None:
    body = LinePoint(jobs.__file__, line_of(jobs, "loop-body"), 3)
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(body)
        jobs.loop_job(2)
        tracer.begin_attempt()  # hits start again: two more are not enough
        jobs.loop_job(2)
        assert not tracer.fired
        with pytest.raises(InjectedCrash):
            jobs.loop_job(2)  # same attempt: hits 3 and 4
        assert tracer.fired


def test_except_exception_cannot_swallow_it_and_finally_runs(backend: str) -> None:
    middle = LinePoint(jobs.__file__, line_of(jobs, "guarded-middle"), 1)
    jobs.LOG.clear()
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(middle)
        with pytest.raises(InjectedCrash):
            jobs.guarded_job()
    # the armed line did not run; the except Exception did not catch; finally did; nothing after it
    assert jobs.LOG == ["start", "finally"]


def test_an_ordinary_error_can_be_armed_instead(backend: str) -> None:
    middle = LinePoint(jobs.__file__, line_of(jobs, "guarded-middle"), 1)
    jobs.LOG.clear()
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(middle, error=RuntimeError("planted bug"))
        jobs.guarded_job()  # a plain exception is the job's to catch
        assert tracer.fired
    assert jobs.LOG == ["start", "swallowed", "finally", "after"]


def test_disarm_stops_the_crash(backend: str) -> None:
    start = LinePoint(jobs.__file__, line_of(jobs, "loop-start"), 1)
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(start)
        assert tracer.armed == start
        tracer.disarm()
        assert jobs.loop_job(2) == 2
        assert not tracer.fired and tracer.armed is None


def test_not_counting_keeps_the_armed_point_quiet(backend: str) -> None:
    start = LinePoint(jobs.__file__, line_of(jobs, "loop-start"), 1)
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(start)
        tracer.counting = False
        jobs.loop_job(1)
        assert not tracer.fired
        tracer.counting = True
        tracer.begin_attempt()
        with pytest.raises(InjectedCrash):
            jobs.loop_job(1)


def test_tracing_goes_on_after_a_crash(backend: str) -> None:
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        clean = recorded(tracer, jobs.loop_job, 2)
        tracer.begin_attempt()
        tracer.arm(clean[3])
        with pytest.raises(InjectedCrash):
            jobs.loop_job(2)
        tracer.disarm()
        assert recorded(tracer, jobs.loop_job, 2) == clean
        tracer.begin_attempt()
        tracer.arm(clean[-1])
        with pytest.raises(InjectedCrash):
            jobs.loop_job(2)


def test_relative_file_names_arm_too(backend: str, monkeypatch) -> None:
    import os

    monkeypatch.chdir(os.path.dirname(jobs.__file__))
    point = LinePoint("linetgt_jobs.py", line_of(jobs, "loop-end"), 1)
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.arm(point)
        with pytest.raises(InjectedCrash, match=r"linetgt_jobs\.py"):
            jobs.loop_job(1)


def test_on_record_sees_each_point_before_its_line_runs(backend: str) -> None:
    seen: list[tuple[LinePoint, list[str]]] = []
    jobs.LOG.clear()
    with LineTracer(Targets(TARGETS), backend=backend) as tracer:
        tracer.on_record = lambda point: seen.append((point, list(jobs.LOG)))
        points = recorded(tracer, jobs.guarded_job)
    assert [p for p, _ in seen] == points
    logs = {p.line: log for p, log in seen}
    assert logs[line_of(jobs, "guarded-middle")] == ["start"]
    assert logs[line_of(jobs, "guarded-finally")] == ["start", "middle"]
