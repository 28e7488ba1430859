"""The `sys.settrace` backend of `LineTracer` (Python 3.11, and on request on 3.12+).

The global trace function hands a local tracer only to frames of target code (decided once per code
object). Only the installing thread is traced: jobs run in the engine's thread. A trace function that
was installed before (coverage's) keeps receiving its events and is put back on exit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from threading import get_ident
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from harness.injection._code import first_resume, line_span, per_code, suspends, with_exits

if TYPE_CHECKING:
    from harness.injection.lines import LineTracer

__all__ = ["SettraceBackend"]

TraceFn = Callable[[FrameType, str, Any], Any]


@per_code
def _verdict(code: CodeType) -> tuple[int, int, int]:
    """(first line, last line, offset of the first RESUME or -1 for plain functions) of target code."""
    return (*line_span(code), first_resume(code) if suspends(code) else -1)


def _chain(first: TraceFn | None, second: TraceFn | None) -> TraceFn | None:
    """A local trace function feeding both `first` and `second`, each following its own return value."""
    if first is None:
        return second
    if second is None:
        return first
    pair: list[Any] = [first, second]

    def both(frame: FrameType, event: str, arg: Any) -> Any:
        if pair[0] is not None:
            pair[0] = pair[0](frame, event, arg)
        if pair[1] is not None:
            pair[1] = pair[1](frame, event, arg)
        return both if pair[0] is not None or pair[1] is not None else None

    return both


class SettraceBackend:
    name = "settrace"

    def __init__(self, tracer: LineTracer) -> None:
        self.tracer = tracer
        self.previous: Any = None  # whatever sys.gettrace() held: a function, or a tool's trace object
        self.function: TraceFn | None = None
        self._thread = get_ident()
        #: id(code) -> (code, False) for other code or (code, `_verdict(code)`) for target code. Keyed
        #: by id(): equal code objects from other files or re-imports must be judged on their own.
        self.verdicts: dict[int, tuple[CodeType, tuple[int, int, int] | bool]] = {}

    def install(self) -> None:
        self._thread = get_ident()
        self.previous = sys.gettrace()
        own = self._global()
        previous = self.previous
        if previous is None:
            self.function = own
        else:

            def chained(frame: FrameType, event: str, arg: Any) -> Any:
                return _chain(previous(frame, event, arg), own(frame, event, arg))

            self.function = chained
        sys.settrace(self.function)

    def uninstall(self) -> None:
        if get_ident() == self._thread:
            sys.settrace(self.previous)
        self.verdicts.clear()

    def refresh(self) -> None:
        # A trace function that raises (our injected crash) is switched off by the interpreter; put it
        # back, unless someone else installed theirs meanwhile.
        if get_ident() == self._thread and sys.gettrace() is None:
            sys.settrace(self.function)

    def _global(self) -> TraceFn:
        tracer = self.tracer
        verdicts = self.verdicts
        matches_file = tracer.targets.matches_file

        def local_for_frame(last: int, exits: dict[int, frozenset[int]]) -> TraceFn:
            # PEP 669's LINE fires when the line changes; the legacy 'line' event also repeats a line
            # on a backward jump within it (a one-line loop). Dropping repeats keeps both backends equal.
            # `last` is the line a resumed generator stopped at, 0 for a fresh frame.

            def local(frame: FrameType, event: str, arg: Any) -> Any:
                nonlocal last
                if event == "line":
                    line = frame.f_lineno
                    if line != last:
                        last = line
                        if exits and line in exits and frame.f_lasti in exits[line]:
                            return local  # a `with` block's exit is not a crash point (see with_exits)
                        if tracer._rec:
                            tracer._record_line(frame.f_code, line)
                        elif line == tracer._armed_line and frame.f_code.co_filename == tracer._armed_file:
                            tracer._count_armed()
                return local

            return local

        def on_call(frame: FrameType, event: str, arg: Any) -> Any:
            code = frame.f_code
            entry = verdicts.get(id(code))
            if entry is None:
                entry = (code, _verdict(code) if matches_file(code.co_filename) else False)
                verdicts[id(code)] = entry
            verdict = entry[1]
            if verdict is False:
                return None
            first, last, resume = verdict  # type: ignore[misc]
            if not tracer._rec and (
                tracer._armed_file is None
                or code.co_filename != tracer._armed_file
                or not first <= tracer._armed_line <= last
            ):
                return None
            return local_for_frame(frame.f_lineno if resume >= 0 and frame.f_lasti > resume else 0, with_exits(code))

        return on_call
