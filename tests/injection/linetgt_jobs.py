"""Job-like functions the line-tracer tests record and crash. Lines are found by their `# @name` tags."""

from __future__ import annotations

import json

import linetgt_helpers as helpers
import linetgt_other as other

LOG: list[str] = []


def loop_job(n: int) -> int:
    total = 0  # @loop-start
    for i in range(n):  # @loop-for
        total += helpers.double(i)  # @loop-body
    LOG.append(f"total={total}")  # @loop-end
    return total


def guarded_job() -> None:
    try:
        LOG.append("start")  # @guarded-start
        LOG.append("middle")  # @guarded-middle
    except Exception:
        LOG.append("swallowed")
    finally:
        LOG.append("finally")  # @guarded-finally
    LOG.append("after")


def calls_other(x: int) -> int:
    y = other.untraced(x)  # @other-call
    return json.loads(json.dumps({"y": y}))["y"]  # @other-json


class Counter:
    def __init__(self) -> None:
        self.total = 0  # @init

    def add(self, n: int) -> None:
        self.total += n  # @add


def nested_job(xs: list[int]) -> tuple[int, int]:
    def inner(v: int) -> int:
        return v * 10  # @inner

    tens = [inner(x) for x in xs]  # @comp
    counter = Counter()  # @make-counter
    counter.add(len(tens))  # @method-call
    return sum(tens), counter.total  # @nested-return


def late_job(x: int) -> int:
    import linetgt_late

    return linetgt_late.late(x)  # @late-call


def one_liners(xs: list[int]) -> int:
    bump = lambda v: v + 1  # noqa: E731  # @lambda
    for x in xs: LOG.append(str(bump(x)))  # noqa: E701  # @one-line-loop
    return sum(v * 2 for v in xs)  # @genexpr
