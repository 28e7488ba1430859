"""Recording line points: order, hit numbers, which code is traced, attempts."""

from __future__ import annotations

import os
import sys

import linetgt_helpers as helpers
import linetgt_jobs as jobs
import linetgt_other as other
import pytest
from conftest import line_of

from harness.errors import ConfigurationError
from harness.injection import LinePoint, LineTracer, Targets

JOB_TARGETS = ["linetgt_jobs", "linetgt_helpers", "linetgt_late"]


def record(tracer: LineTracer, fn, *args) -> list[LinePoint]:
    tracer.begin_attempt()
    tracer.record = True
    try:
        fn(*args)
    finally:
        tracer.record = False
    return tracer.points


def test_loop_order_and_hits(backend: str) -> None:
    with LineTracer(Targets(JOB_TARGETS), backend=backend) as tracer:
        points = record(tracer, jobs.loop_job, 3)
    jf, hf = jobs.__file__, helpers.__file__
    start, loop, body, end = (line_of(jobs, m) for m in ("loop-start", "loop-for", "loop-body", "loop-end"))
    double = line_of(helpers, "double")
    expected = [LinePoint(jf, start, 1)]
    for i in range(1, 4):
        expected += [LinePoint(jf, loop, i), LinePoint(jf, body, i), LinePoint(hf, double, i)]
    expected += [LinePoint(jf, loop, 4), LinePoint(jf, end, 1), LinePoint(jf, end + 1, 1)]
    assert points == expected


def test_non_target_code_is_never_a_point(backend: str) -> None:
    with LineTracer(Targets(["linetgt_jobs"]), backend=backend) as tracer:
        points = record(tracer, jobs.calls_other, 4)
        loop_points = record(tracer, jobs.loop_job, 2)
    assert [p.line for p in points] == [line_of(jobs, "other-call"), line_of(jobs, "other-json")]
    assert {p.file for p in points + loop_points} == {jobs.__file__}
    assert other.__file__ not in {p.file for p in points}


def test_exclude_wins_over_include(backend: str) -> None:
    targets = Targets(include=["linetgt_jobs", "linetgt_helpers"], exclude=["linetgt_helpers"])
    with LineTracer(targets, backend=backend) as tracer:
        points = record(tracer, jobs.loop_job, 2)
    assert points and all(p.file == jobs.__file__ for p in points)


def test_file_paths_work_as_targets(backend: str) -> None:
    with LineTracer(Targets([helpers.__file__]), backend=backend) as tracer:
        points = record(tracer, jobs.loop_job, 2)
    assert points == [LinePoint(helpers.__file__, line_of(helpers, "double"), i) for i in (1, 2)]


def test_package_include_with_excluded_submodule(backend: str, tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "linetgt_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kept.py").write_text("def run(x):\n    y = x + 1\n    return y\n")
    (pkg / "dropped.py").write_text("def run(x):\n    y = x + 2\n    return y\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from linetgt_pkg import dropped, kept

        targets = Targets(include=["linetgt_pkg"], exclude=["linetgt_pkg.dropped"])
        with LineTracer(targets, backend=backend) as tracer:
            tracer.begin_attempt()
            tracer.record = True
            kept.run(1)
            dropped.run(1)
            points = tracer.points
        assert points == [LinePoint(kept.__file__, 2, 1), LinePoint(kept.__file__, 3, 1)]
    finally:
        for name in [m for m in sys.modules if m.startswith("linetgt_pkg")]:
            del sys.modules[name]


def test_nested_functions_methods_and_comprehensions(backend: str) -> None:
    with LineTracer(Targets(["linetgt_jobs"]), backend=backend) as tracer:
        points = record(tracer, jobs.nested_job, [1, 2])
    lines = [p.line for p in points]
    inner, comp = line_of(jobs, "inner"), line_of(jobs, "comp")
    assert lines.count(inner) == 2
    assert [p.hit for p in points if p.line == inner] == [1, 2]
    assert line_of(jobs, "init") in lines and line_of(jobs, "add") in lines
    # the comprehension line comes before the nested calls it makes, and the method after its caller
    assert lines.index(comp) < lines.index(inner)
    assert lines.index(line_of(jobs, "method-call")) < lines.index(line_of(jobs, "add"))
    assert lines[-1] == line_of(jobs, "nested-return")


def test_code_first_seen_at_run_time_is_traced(backend: str) -> None:
    sys.modules.pop("linetgt_late", None)
    with LineTracer(Targets(["linetgt_jobs", "linetgt_late"]), backend=backend) as tracer:
        sys.modules.pop("linetgt_late", None)
        points = record(tracer, jobs.late_job, 2)
    import linetgt_late

    # the module body runs first (its import happens inside the job), then the function
    late_lines = [p.line for p in points if p.file == linetgt_late.__file__]
    assert late_lines[-2:] == [line_of(linetgt_late, "late-1"), line_of(linetgt_late, "late-2")]
    assert points[-1].line == line_of(linetgt_late, "late-2")


def test_begin_attempt_resets_hits_and_points(backend: str) -> None:
    with LineTracer(Targets(JOB_TARGETS), backend=backend) as tracer:
        first = record(tracer, jobs.loop_job, 2)
        second = record(tracer, jobs.loop_job, 2)
        tracer.record = True
        jobs.loop_job(2)  # same attempt: hits continue
        continued = tracer.points
        tracer.begin_attempt()
        assert tracer.points == []
    assert first == second
    assert continued[: len(first)] == first
    assert continued[len(first)] == LinePoint(first[0].file, first[0].line, 2)


def test_not_counting_records_nothing(backend: str) -> None:
    with LineTracer(Targets(JOB_TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        tracer.counting = False
        jobs.loop_job(3)
        assert tracer.points == []
        tracer.counting = True
        jobs.loop_job(1)
        assert tracer.points[0].line == line_of(jobs, "loop-start")


def test_where_is_relative_to_cwd_under_it(tmp_path, monkeypatch) -> None:
    point = LinePoint(jobs.__file__, 14, 2)
    monkeypatch.chdir(os.path.dirname(jobs.__file__))
    assert point.where() == "linetgt_jobs.py:14"
    monkeypatch.chdir(tmp_path)
    assert point.where() == f"{jobs.__file__}:14"


def test_bad_targets_say_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="cannot import target module"):
        Targets(["linetgt_no_such_module"]).resolve()
    with pytest.raises(ConfigurationError, match="at least one"):
        Targets([])
    with pytest.raises(ConfigurationError, match="unknown line backend"):
        LineTracer(Targets(["linetgt_jobs"]), backend="dtrace")


def test_only_the_installing_thread_is_traced(backend: str) -> None:
    import threading

    with LineTracer(Targets(JOB_TARGETS), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        worker = threading.Thread(target=jobs.loop_job, args=(2,))
        worker.start()
        worker.join()
        assert tracer.points == []
        jobs.loop_job(1)
        assert tracer.points and tracer.points[0].line == line_of(jobs, "loop-start")


def test_a_point_names_its_file_relative_to_the_working_directory_it_is_shown_in(tmp_path, monkeypatch):
    inside = tmp_path / "app" / "jobs.py"
    point = LinePoint(str(inside), 7)
    monkeypatch.chdir(tmp_path)
    assert point.where() == "app/jobs.py:7"
    monkeypatch.chdir(tmp_path.parent)
    assert point.where() == f"{tmp_path.name}/app/jobs.py:7"  # follows the directory, not the first answer
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert point.where() == f"{inside}:7"  # outside the working directory: the path as given
