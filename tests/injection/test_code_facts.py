"""The facts about code objects the backends read (`harness.injection._code`), on the interpreter running:
spans, suspending code, resume offsets, one-liners, exception handlers, `with` exits."""

from __future__ import annotations

import dis
import sys
import threading
import types

import pytest
from conftest import line_of

from harness.injection._code import exception_table, first_resume, line_span, one_line_start, suspends, with_exits

THIS = sys.modules[__name__]
LOCK = threading.Lock()


def spanned(x: int) -> int:  # @span-first
    y = x + 1
    return y  # @span-last


def counter():
    yield 1
    yield 2


async def coroutine() -> int:
    return 1


async def async_gen():
    yield 1


@types.coroutine
def generator_based():
    yield


def one_liner(): return 1  # @one-liner


def two_lines() -> int:
    return 1


def guarded(x: str) -> int:
    try:
        y = int(x)  # @try-body
    except ValueError:
        y = 0
    return y


def locked(items: list[int]) -> int:
    with LOCK:  # @with-line
        total = sum(items)
    return total


def locked_return(items: list[int]) -> int:
    with LOCK:  # @with-return
        return sum(items)


def test_suspends_is_true_for_generators_and_coroutines_only() -> None:
    for code in (counter.__code__, coroutine.__code__, async_gen.__code__, generator_based.__code__):
        assert suspends(code), code.co_name
    for code in (spanned.__code__, one_liner.__code__, (lambda: 1).__code__):
        assert not suspends(code), code.co_name


def test_line_span_runs_from_the_def_line_to_the_last_body_line() -> None:
    assert line_span(spanned.__code__) == (line_of(THIS, "span-first"), line_of(THIS, "span-last"))


def test_a_generator_frame_lies_past_its_first_resume_once_started() -> None:
    resume = first_resume(counter.__code__)
    assert resume == next(ins.offset for ins in dis.get_instructions(counter) if ins.opname == "RESUME")
    gen = counter()
    assert gen.gi_frame.f_lasti < resume
    next(gen)
    assert gen.gi_frame.f_lasti > resume


def test_one_line_start_is_the_line_of_one_liners_only() -> None:
    assert one_line_start(one_liner.__code__) == line_of(THIS, "one-liner")
    here = (lambda: 1).__code__
    assert one_line_start(here) == here.co_firstlineno
    assert one_line_start(two_lines.__code__) is None


def test_exception_table_sends_the_try_body_to_its_handler() -> None:
    assert exception_table(two_lines.__code__) == []
    table = exception_table(guarded.__code__)
    instructions = {ins.offset: ins for ins in dis.get_instructions(guarded)}
    calls = [  # `int(x)`, which raises for a bad string
        offset
        for offset, ins in instructions.items()
        if ins.opname == "CALL" and ins.positions and ins.positions.lineno == line_of(THIS, "try-body")
    ]
    assert calls
    for offset in calls:
        target = next(to for start, end, to in table if start <= offset < end)
        assert instructions[target].opname == "PUSH_EXC_INFO"


@pytest.mark.parametrize(("function", "marker"), [(locked, "with-line"), (locked_return, "with-return")])
def test_with_exits_are_the_with_line_at_its_exit_call(function, marker: str) -> None:
    exits = with_exits(function.__code__)
    assert list(exits) == [line_of(THIS, marker)]
    instructions = list(dis.get_instructions(function))
    at = {ins.offset: n for n, ins in enumerate(instructions)}
    for offset in exits[line_of(THIS, marker)]:
        # Each offset starts the run that ends in the `__exit__(None, None, None)` call, on the `with` line.
        n = at[offset]
        assert instructions[n].positions.lineno == line_of(THIS, marker)
        assert any(ins.opname in ("CALL", "PRECALL") and ins.arg == 2 for ins in instructions[n : n + 6])
    assert with_exits(two_lines.__code__) == {}
