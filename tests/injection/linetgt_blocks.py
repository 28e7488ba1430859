"""Target code with every kind of control flow block recording must follow: loops with and without
branches, exceptions caught near and far, `with` blocks, generators, comprehensions, recursion, code run
implicitly (properties, dunders, key functions) and code resumed by C. Each `case_*` runs one of them."""

from __future__ import annotations

import asyncio
import contextlib
import functools

from linetgt_other import untraced


def helper(x: int) -> int:
    return x * 2


def failing(x: int) -> int:
    if x > 2:
        raise ValueError(f"too big: {x}")
    return x


def deeper(x: int) -> int:
    y = failing(x)
    return y + 1


def one_liner(x: int) -> int: return x + 1  # fmt: skip


def case_for_break_continue_else() -> int:
    total = 0
    for i in range(6):
        if i == 1:
            continue
        if i == 4:
            break
        total += helper(i)
    else:
        total = -1
    for j in range(2):
        total += j
    else:
        total += 100
    return total


def case_while_conditions() -> int:
    n, m, steps = 5, 0, 0
    while n > 0 and (m < 3 or n % 2):
        n -= 1
        m += 1
        steps += 1 if n else 2
    while True:
        steps += 1
        if steps > 9:
            break
    return steps


def case_branchless_loop() -> int:
    items = iter([1, 2, 3])
    total = 0
    try:
        while True:
            total += next(items)
            total += helper(total)
    except StopIteration:
        pass
    return total


def case_exceptions_near_and_far() -> list[str]:
    seen = []
    for x in (1, 3, 5):
        try:
            seen.append(str(deeper(x)))
        except ValueError as exc:
            seen.append(str(exc))
        else:
            seen.append("else")
        finally:
            seen.append("finally")
    try:
        int("not a number")
    except ValueError:
        seen.append("c error")
    try:
        try:
            failing(9)
        except ValueError as exc:
            raise KeyError("wrapped") from exc
    except KeyError:
        seen.append("re-raised")
    try:
        try:
            failing(7)
        finally:
            seen.append("inner finally")
    except ValueError:
        seen.append("outer")
    return seen


def case_multiline_call_raises() -> str:
    try:
        value = deeper(helper(3))
    except ValueError as exc:
        return str(exc)
    return str(value)


def case_return_in_loop_in_finally() -> int:
    total = 0
    for i in range(5):
        try:
            if i == 3:
                return total
            total += i
        finally:
            total += 10
    return -1


class Suppressing:
    def __enter__(self) -> Suppressing:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return kind is KeyError


@contextlib.contextmanager
def managed(log: list[str]):  # type: ignore[no-untyped-def]
    log.append("enter")
    try:
        yield len(log)
    except ValueError:
        log.append("handled in generator")
        raise
    finally:
        log.append("exit")


def _with_return(log: list[str]) -> int:
    with Suppressing():
        log.append("inside")
        return 5


def case_with_blocks() -> list[str]:
    log: list[str] = []
    with Suppressing():
        log.append("body")
    with Suppressing():
        raise KeyError("suppressed")
    log.append(str(_with_return(log)))
    try:
        with Suppressing():
            failing(4)
    except ValueError:
        log.append("not suppressed")
    with managed(log) as n:
        log.append(f"managed {n}")
    try:
        with managed(log):
            failing(8)
    except ValueError:
        log.append("after throw")
    return log


def numbers(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        if i % 2:
            yield helper(i)
        else:
            yield i


def delegating(n: int):  # type: ignore[no-untyped-def]
    yield -1
    yield from numbers(n)


def case_generators() -> list[int]:
    out = []
    for value in numbers(4):
        out.append(value + 1)
    out.extend(delegating(3))
    out.append(sum(helper(i) for i in range(3)))
    gen = numbers(5)
    out.append(next(gen))
    gen.close()
    return out


def case_comprehensions_and_lambdas() -> list[object]:
    squares = [i * i for i in range(5) if i % 2 == 0]
    table = {i: helper(i) for i in range(3)}
    unique = {one_liner(i) for i in (1, 1, 2)}
    pick = lambda v: v if v > 2 else -v  # noqa: E731
    return [squares, table, sorted(unique), [pick(i) for i in range(5)]]


def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    @property
    def euros(self) -> float:
        return self.cents / 100

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return hash(self.cents)

    def __lt__(self, other: Money) -> bool:
        return self.cents < other.cents


def case_implicit_calls() -> list[object]:
    a, b = Money(250), Money(250)
    seen = {a: 1}
    found = seen.get(b)
    ordered = sorted([Money(3), Money(1), Money(2)])
    keyed = sorted([3, 1, 2], key=helper)
    mapped = list(map(one_liner, [1, 2]))
    partial = functools.reduce(lambda x, y: x + helper(y), [1, 2, 3], 0)
    return [a.euros, found, [m.cents for m in ordered], keyed, mapped, partial, fib(5)]


def case_match_and_assert(command: str = "go north") -> list[str]:
    out = []
    for text in (command, "look", "quit now", ""):
        match text.split():
            case ["go", direction]:
                out.append(direction)
            case ["look"]:
                out.append("looked")
            case [verb, *rest] if rest:
                out.append(verb + "!")
            case _:
                out.append("?")
    try:
        assert not out, "not empty"
    except AssertionError as exc:
        out.append(str(exc))
    return out


async def _fetch(x: int) -> int:
    await asyncio.sleep(0)
    return helper(x)


async def _gather() -> list[int]:
    return [await _fetch(1), await _fetch(2)]


def case_coroutines() -> list[int]:
    before = helper(1)
    values = asyncio.run(_gather())
    return [before, *values, helper(3)]


def switching(hook) -> int:  # type: ignore[no-untyped-def]
    """Calls `hook` to switch recording on and off and to read the points while this frame runs."""
    total = helper(1)
    hook("on")
    for i in range(3):
        total += helper(i)
        if i == 1:
            hook("read")
    hook("off")
    total += helper(5)
    hook("on")
    total += one_liner(total)
    return total


def case_line_repeated_after_a_call() -> int:
    # 3.12 fires a line again when a Python callee returns just before a jump target on the same line.
    table = {2: 28}
    month = 2
    total = table[month] + (month == 2 and untraced(month) > 0)
    total += table[month] + (month == 2 and helper(month) > 0)
    total += table[month] + (month == 2 and untraced(month))
    total += table[month] + (month == 2 and helper(month))
    total += table[month] + (month == 2 and len(table))
    total += table[month] + (month == 3 and helper(month))
    return total


CASES = [name for name in dir() if name.startswith("case_")]
