"""Block recording (sys.monitoring on 3.12 and 3.13): the points it works out from branch, return and
exception events equal, in order and hit numbers, the points LINE events give for the same run."""

from __future__ import annotations

import pathlib
import sys
import threading
from collections.abc import Callable

import linetgt_blocks as blocks
import pytest

from harness.injection import LinePoint, LineTracer, Targets, _blocks

pytestmark = pytest.mark.skipif(
    not _blocks.BLOCKS_SUPPORTED, reason=f"block recording models Python 3.12 and 3.13, not {sys.version_info[:2]}"
)


def record(targets: list[str], work: Callable[[], object], *, blocks: bool) -> tuple[list[LinePoint], list[tuple]]:
    """The points of one recorded run of `work`, and the raw entries behind them."""
    with LineTracer(Targets(targets), backend="monitoring", blocks=blocks) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        try:
            work()
        finally:
            tracer.record = False
        return tracer.points, list(tracer._raw)


def assert_same_points(targets: list[str], work: Callable[[], object]) -> list[tuple]:
    work()  # warm caches (re, lru_cache) so that both runs take the same path
    by_lines, line_raw = record(targets, work, blocks=False)
    by_blocks, block_raw = record(targets, work, blocks=True)
    assert all(len(entry) == 2 for entry in line_raw)
    assert by_lines, "the workload ran no target line"
    if by_blocks != by_lines:
        first = next((n for n, (a, b) in enumerate(zip(by_lines, by_blocks, strict=False)) if a != b), None)
        if first is None:
            first = min(len(by_lines), len(by_blocks))
        around = slice(max(0, first - 3), first + 3)
        pytest.fail(
            f"block recording differs from LINE events at point {first} of {len(by_lines)} "
            f"(got {len(by_blocks)}): LINE {by_lines[around]} blocks {by_blocks[around]}"
        )
    return block_raw


@pytest.mark.parametrize("case", blocks.CASES)
def test_block_recording_gives_the_line_events_points(case: str) -> None:
    raw = assert_same_points(["linetgt_blocks"], getattr(blocks, case))
    assert any(len(entry) != 2 for entry in raw), "block recording never engaged"


def _stdlib_workloads() -> dict[str, tuple[list[str], Callable[[], object]]]:
    import argparse
    import ast
    import calendar
    import dataclasses
    import difflib
    import fractions
    import ipaddress
    import re
    import shlex
    import textwrap
    import tomllib
    import traceback

    def parse() -> object:
        parser = argparse.ArgumentParser(prog="x", exit_on_error=False)
        parser.add_argument("--n", type=int, default=3)
        parser.add_argument("rest", nargs="*")
        out: list[object] = [parser.parse_args(["--n", "4", "a"]), parser.format_help()]
        try:
            parser.parse_args(["--n", "zz"])
        except argparse.ArgumentError as exc:
            out.append(str(exc))
        return out

    def addresses() -> object:
        out: list[object] = []
        for text in ("10.0.0.1", "::1", "bad", "300.1.1.1", "192.168.0.0/24"):
            for parse_one in (ipaddress.ip_address, ipaddress.ip_network):
                try:
                    out.append(parse_one(text))
                except ValueError as exc:
                    out.append(str(exc))
        return out

    def error_story() -> object:
        try:
            {}["missing"]
        except KeyError as exc:
            try:
                raise ValueError("wrapped") from exc
            except ValueError as wrapped:
                return traceback.format_exception(wrapped)
        return None

    @dataclasses.dataclass(order=True, frozen=True)
    class Point:
        x: int
        tags: list[str] = dataclasses.field(default_factory=list)

    def regexes() -> object:
        re.purge()
        return [re.compile(p).pattern for p in (r"(a|b)*c+?\d{2,4}", r"(?P<x>[^\W\d]+)\s*=\s*(?P=x)")]

    source = "def f(a, *b, c=1, **d):\n    with open(a) as x, y:\n        return [i for i in b if i]\n"
    return {
        "ast": (["ast"], lambda: ast.unparse(ast.parse(source))),
        "calendar": (["calendar"], lambda: calendar.TextCalendar().formatmonth(2024, 2)),
        "dataclasses": (["dataclasses"], lambda: dataclasses.asdict(Point(1, ["a"]))),
        "re": (["re"], regexes),
        "tomllib": (["tomllib"], lambda: tomllib.loads('a = 1\n[b]\nc = [1, {d = "x"}]\n[[e]]\nf = 1979-05-27\n')),
        "traceback": (["traceback"], error_story),
        "argparse": (["argparse"], parse),
        "ipaddress": (["ipaddress"], addresses),
        "textwrap": (["textwrap"], lambda: textwrap.fill("words and more words " * 20, width=27)),
        "difflib": (["difflib"], lambda: list(difflib.unified_diff(["a\n", "b\n"] * 4, ["a\n", "c\n"] * 4))),
        "fractions": (["fractions"], lambda: [fractions.Fraction(i, 7) + fractions.Fraction("3/4") for i in range(6)]),
        "shlex": (["shlex"], lambda: shlex.split("a 'b c' \"d e\" f\\ g")),
    }


@pytest.mark.parametrize("name", sorted(_stdlib_workloads()))
def test_block_recording_matches_on_library_code(name: str) -> None:
    targets, work = _stdlib_workloads()[name]
    assert_same_points(targets, work)


def test_a_loop_costs_one_event_per_branch_not_per_line() -> None:
    raw = assert_same_points(["linetgt_blocks"], blocks.case_while_conditions)
    points, _ = record(["linetgt_blocks"], blocks.case_while_conditions, blocks=False)
    assert len(raw) < len(points) * 2 // 3


def test_other_threads_running_target_code_are_ignored() -> None:
    stop = threading.Event()
    started = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            blocks.case_exceptions_near_and_far()
            blocks.case_generators()
            started.set()

    alone, _ = record(["linetgt_blocks"], blocks.case_exceptions_near_and_far, blocks=False)
    thread = threading.Thread(target=churn, daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the two threads take turns every few bytecodes
    thread.start()
    try:
        started.wait(5)
        for _ in range(5):
            together, _ = record(["linetgt_blocks"], blocks.case_exceptions_near_and_far, blocks=True)
            assert together == alone
    finally:
        stop.set()
        thread.join(5)
        sys.setswitchinterval(interval)


def _switching_run(tracer: LineTracer, reads: list[list[LinePoint]]) -> None:
    """Recording turned on and off from inside target code (through a non-target hook)."""

    def hook(step: str) -> None:
        if step == "on":
            tracer.record = True
        elif step == "off":
            tracer.record = False
        else:
            reads.append(tracer.points)

    blocks.switching(hook)


def test_recording_switched_inside_a_running_frame() -> None:
    results = []
    for use_blocks in (False, True):
        with LineTracer(Targets(["linetgt_blocks"]), backend="monitoring", blocks=use_blocks) as tracer:
            reads: list[list[LinePoint]] = []
            tracer.begin_attempt()
            _switching_run(tracer, reads)
            results.append((tracer.points, reads))
    (by_lines, line_reads), (by_blocks, block_reads) = results
    assert by_lines and line_reads[0]
    assert by_blocks == by_lines
    assert block_reads == line_reads


def test_block_recording_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_BLOCK_RECORDING", "0")
    assert LineTracer(Targets(["linetgt_blocks"]), backend="monitoring").blocks is False
    _, raw = record(["linetgt_blocks"], blocks.case_for_break_continue_else, blocks=False)
    assert all(len(entry) == 2 for entry in raw)
    monkeypatch.delenv("HARNESS_BLOCK_RECORDING")
    assert LineTracer(Targets(["linetgt_blocks"]), backend="monitoring").blocks is True


def test_events_that_do_not_fit_the_bytecode_are_refused_clearly() -> None:
    code = blocks.helper.__code__
    cmap = _blocks.code_map(code, {})
    assert cmap is not None
    last = cmap.offsets[-1]
    with pytest.raises(_blocks.BlockTraceError, match="helper"):
        _blocks.expand([(code, _blocks.START, None, 0), (blocks.fib.__code__, last, 0)], {id(code): cmap})


def test_generators_and_coroutines_stay_on_line_events() -> None:
    assert _blocks.code_map(blocks.numbers.__code__, {}) is None
    assert _blocks.code_map(blocks._fetch.__code__, {}) is None
    assert _blocks.code_map(blocks.case_generators.__code__, {}) is not None


def test_a_loop_without_a_branch_listens_to_its_jumps() -> None:
    cmap = _blocks.code_map(blocks.case_branchless_loop.__code__, {})
    assert cmap is not None and cmap.uses_jumps
    plain = _blocks.code_map(blocks.case_for_break_continue_else.__code__, {})
    assert plain is not None and not plain.uses_jumps


def test_code_first_seen_at_its_start_is_covered(tmp_path: pathlib.Path) -> None:
    # Compiled afresh on every run, so no installed tracer could reach it before it starts.
    source = tmp_path / "fresh.py"
    source.write_text(
        "def f(n):\n"
        "    total = 0\n"
        "    for i in range(n):\n"
        "        if i % 2:\n"
        "            total += i\n"
        "    return total\n"
        "result = f(5)\n"
    )

    def work() -> object:
        namespace: dict[str, object] = {}
        exec(compile(source.read_text(), str(source), "exec"), namespace)
        return namespace["result"]

    raw = assert_same_points([str(source)], work)
    assert any(len(entry) == 3 for entry in raw)
