"""The facts about code objects the backends read (`harness.injection._code`), on the interpreter running:
spans, suspending code, resume offsets, one-liners, exception handlers, `with` exits."""

from __future__ import annotations

import dis
import sys
import threading
import types

import pytest
from conftest import line_of

from harness.injection._code import (
    exception_table,
    first_resume,
    line_span,
    one_line_start,
    per_code,
    suspends,
    with_exits,
)

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


def test_a_fact_is_worked_out_once_per_code_object_and_equal_code_is_other_code() -> None:
    seen: list[types.CodeType] = []

    @per_code
    def first_line(code: types.CodeType) -> int:
        seen.append(code)
        return code.co_firstlineno

    source = "def twin():\n    return 1\n"
    one: dict = {}
    other: dict = {}
    exec(compile(source, "one.py", "exec"), one)
    exec(compile(source, "other.py", "exec"), other)
    a, b = one["twin"].__code__, other["twin"].__code__
    assert a == b and a is not b  # equal bytecode, other files

    assert [first_line(a), first_line(a), first_line(b), first_line(b)] == [1, 1, 1, 1]
    assert seen == [a, b]  # each once, and the second is not taken for the first


def test_a_remembered_fact_starts_again_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.injection._code as code_facts

    monkeypatch.setattr(code_facts, "PER_CODE_LIMIT", 2)
    calls: list[str] = []

    @per_code
    def name(code: types.CodeType) -> str:
        calls.append(code.co_name)
        return code.co_name

    codes = [spanned.__code__, counter.__code__, coroutine.__code__]
    assert [name(c) for c in codes] == ["spanned", "counter", "coroutine"]
    assert name(coroutine.__code__) == "coroutine"
    assert name(spanned.__code__) == "spanned"  # forgotten when the third came in: worked out again
    assert calls == ["spanned", "counter", "coroutine", "spanned"]


def test_the_backends_facts_are_remembered_across_installs() -> None:
    # The tracer is installed for each attempt that needs it; the bytecode is read once per code object.
    assert with_exits(spanned.__code__) is with_exits(spanned.__code__)
    assert line_span.__wrapped__(spanned.__code__) == line_span(spanned.__code__)  # type: ignore[attr-defined]
