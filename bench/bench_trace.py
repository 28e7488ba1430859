"""Overhead of line points on job-shaped code, as ratios to the same job uninstrumented, measured side by
side in one process: every line recorded (and, apart, recorded then read as points, as the explorer does
once per recorded attempt), and one point armed that never fires, for each backend here.

    python -m bench --only bench_trace
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from bench import _trace_job
from harness.injection import LinePoint, LineTracer, Targets
from harness.injection.lines import best_backend

ITEMS = [12, 40, 70]


def _backends() -> list[str]:
    return ["settrace"] + (["monitoring"] if best_backend() == "monitoring" else [])


def _time(calls: int, body: Callable[[], None]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        body()
    return (time.perf_counter() - start) / calls


def _plain() -> None:
    _trace_job.job(7, ITEMS)


def _attempt(tracer: LineTracer) -> Callable[[], None]:
    job = _trace_job.job

    def attempt() -> None:  # what the explorer does per attempt: reset the counters, run the job
        tracer.begin_attempt()
        job(7, ITEMS)

    return attempt


def _attempt_and_read(tracer: LineTracer) -> Callable[[], None]:
    attempt = _attempt(tracer)

    def attempt_and_read() -> None:
        attempt()
        tracer.points  # noqa: B018 (the read is what is timed)

    return attempt_and_read


def _empty_callback_time(calls: int) -> float:
    """The interpreter's floor: LINE events on the job's code with a callback that does nothing."""
    from harness.injection._monitoring import claim_tool_id

    mon = sys.monitoring  # type: ignore[attr-defined]
    tool, code = claim_tool_id(), _trace_job.job.__code__
    mon.register_callback(tool, mon.events.LINE, lambda code, line: None)
    mon.set_local_events(tool, code, mon.events.LINE)
    try:
        return _time(calls, _plain)
    finally:
        mon.set_local_events(tool, code, 0)
        mon.register_callback(tool, mon.events.LINE, None)
        mon.free_tool_id(tool)


def run(quick: bool) -> dict[str, dict]:
    calls, rounds = (2_000, 3) if quick else (10_000, 15)
    code = _trace_job.job.__code__
    last_line = max(line for _, _, line in code.co_lines() if line is not None)
    # Armed on the last line with a hit number the job never reaches: every call pays the full price.
    never = LinePoint(code.co_filename, last_line, 1_000_000)
    best: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        best[key] = min(value, best.get(key, float("inf")))

    _time(calls // 4, _plain)  # warm up
    for _ in range(rounds):
        keep("baseline", _time(calls, _plain))
        for backend in _backends():
            tracer = LineTracer(Targets(["bench._trace_job"]), backend=backend)
            with tracer:
                attempt = _attempt(tracer)
                tracer.record = True
                keep(f"{backend}.all_lines", _time(calls, attempt))
                keep(f"{backend}.record_and_read", _time(calls // 2, _attempt_and_read(tracer)))
                points = len(tracer.points)
                tracer.record = False
                tracer.arm(never)
                keep(f"{backend}.one_point", _time(calls, attempt))
                assert not tracer.fired
            if "monitoring" in _backends():
                keep("monitoring.empty_callback", _empty_callback_time(calls))
                with LineTracer(Targets(["bench._trace_job"]), backend="monitoring", blocks=False) as tracer:
                    tracer.record = True
                    keep("monitoring.line_events", _time(calls, _attempt(tracer)))
            keep("baseline", _time(calls, _plain))

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    figures: dict[str, dict] = {
        "trace.baseline_us": {
            "value": best["baseline"] * 1e6,
            "unit": "us",
            "note": f"one uninstrumented call of the job ({points} lines run), Python {version}",
        }
    }
    for backend in _backends():
        figures[f"trace.{backend}.all_lines_ratio"] = {
            "value": best[f"{backend}.all_lines"] / best["baseline"],
            "unit": "x",
            "note": f"every line recorded ({points} points per call), Python {version}",
        }
        figures[f"trace.{backend}.record_and_read_ratio"] = {
            "value": best[f"{backend}.record_and_read"] / best["baseline"],
            "unit": "x",
            "note": f"every line recorded, then read as {points} points, per call, Python {version}",
        }
        figures[f"trace.{backend}.one_point_ratio"] = {
            "value": best[f"{backend}.one_point"] / best["baseline"],
            "unit": "x",
            "note": f"one armed point that never fires, Python {version}",
        }
    if "monitoring.line_events" in best:
        figures["trace.monitoring.line_events_all_lines_ratio"] = {
            "value": best["monitoring.line_events"] / best["baseline"],
            "unit": "x",
            "note": f"every line recorded by a LINE callback (block recording off), Python {version}",
        }
    if "monitoring.empty_callback" in best:
        figures["trace.monitoring.empty_callback_ratio"] = {
            "value": best["monitoring.empty_callback"] / best["baseline"],
            "unit": "x",
            "note": f"the floor: a LINE callback that does nothing on the same {points} lines, Python {version}",
        }
    return figures
