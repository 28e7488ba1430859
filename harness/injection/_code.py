"""Facts about one code object that the line tracer's backends need: its line span, where a `with` block's
exit runs, whether its frames suspend, where it resumes, its exception handlers, the line of a one-liner.

Each is read from the bytecode of the running interpreter and depends on nothing else, so each is
remembered per code object for the process's life (`per_code`): the tracer is installed and removed for
every attempt that needs it, and reading the bytecode again each time cost a twentieth of a plan.
"""

from __future__ import annotations

import dis
import functools
import inspect
from collections.abc import Callable
from types import CodeType
from typing import Any, TypeVar

__all__ = ["exception_table", "first_resume", "line_span", "one_line_start", "per_code", "suspends", "with_exits"]

T = TypeVar("T")

#: How many code objects a `per_code` function remembers before it starts again: code made at run time
#: (`exec`, generated classes) would otherwise be kept alive without end.
PER_CODE_LIMIT = 20_000


def per_code(fact: Callable[[CodeType], T]) -> Callable[[CodeType], T]:
    """`fact`, remembered per code object. Keyed by identity (equal code from another file or a re-import
    is other code); each entry holds its code, so an id is never reused while its entry stands."""
    known: dict[int, tuple[CodeType, T]] = {}

    def remembered(code: CodeType) -> T:
        entry = known.get(id(code))
        if entry is None:
            if len(known) >= PER_CODE_LIMIT:
                known.clear()
            entry = known[id(code)] = (code, fact(code))
        return entry[1]

    return functools.update_wrapper(remembered, fact)

#: Code whose frames suspend mid-run: generators, coroutines (native and generator-based), async generators.
_SUSPENDING = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR


def suspends(code: CodeType) -> bool:
    """Whether frames of `code` can suspend and resume (generators and coroutines)."""
    return bool(code.co_flags & _SUSPENDING)


@per_code
def line_span(code: CodeType) -> tuple[int, int]:
    """The first and last line of `code`'s instructions (its `def` line when it has none)."""
    lines = [line for _, _, line in code.co_lines() if line is not None]
    return (min(lines), max(lines)) if lines else (code.co_firstlineno, code.co_firstlineno)


@per_code
def first_resume(code: CodeType) -> int:
    """The offset of `code`'s first RESUME instruction (0 when it has none): a frame whose `f_lasti` lies
    past it has run before, so a generator's frame with it was resumed, not started."""
    return next((ins.offset for ins in dis.get_instructions(code) if ins.opname == "RESUME"), 0)


@per_code
def one_line_start(code: CodeType) -> int | None:
    """The first body line when it is the line of the code's RESUME (a lambda, `def f(): return 1`)."""
    resume_line = None
    for ins in dis.get_instructions(code):
        line = ins.positions.lineno if ins.positions is not None else None
        if resume_line is None:
            if ins.opname == "RESUME":
                resume_line = line
            continue
        if line is not None:
            return line if line == resume_line else None
    return None


def exception_table(code: CodeType) -> list[tuple[int, int, int]]:
    """`code`'s exception handlers as (start, end, target) offsets: an exception raised at an offset in
    [start, end) goes to target (the first entry that covers it)."""
    entries: Any = dis.Bytecode(code).exception_entries  # type: ignore[attr-defined]  # 3.11+, untyped
    return [(entry.start, entry.end, entry.target) for entry in entries]


@per_code
def with_exits(code: CodeType) -> dict[int, frozenset[int]]:
    """line -> offsets at which a `with` block's normal exit (its `__exit__` call) starts in `code`.

    Python reports the `with` line again as the block ends. A crash raised there would skip
    `__exit__`: a lock would stay held, a transaction open. A real process death releases both, and
    the harness promises that context managers still run, so these events are not crash points: the
    point after the block is the next line. The exit calls `__exit__(None, None, None)`, the only
    place the compiler loads None three times and calls with two arguments.
    """
    found: dict[int, set[int]] = {}
    instructions = list(dis.get_instructions(code))
    for n in range(len(instructions) - 3):
        a, b, c, call = instructions[n : n + 4]
        if (
            call.opname in ("PRECALL", "CALL")
            and call.arg == 2
            and all(i.opname == "LOAD_CONST" and i.argval is None for i in (a, b, c))
            and a.positions is not None
            and a.positions.lineno is not None
        ):
            line = a.positions.lineno
            offsets = found.setdefault(line, set())
            offsets.add(a.offset)
            # A `return` inside the block runs the exit after loading the return value (a SWAP, say):
            # the line event then comes at the first instruction of that run on the `with` line.
            k = n - 1
            while k >= 0:
                before = instructions[k]
                if before.opname.startswith("BEFORE_") or before.positions is None:
                    break
                if before.positions.lineno != line:
                    break
                offsets.add(before.offset)
                k -= 1
    return {line: frozenset(offsets) for line, offsets in found.items()}
