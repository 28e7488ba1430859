"""The `sys.monitoring` event callbacks of `MonitoringBackend`, in three groups, each made by one factory.

They run on every line, branch and start of target code, so each is a closure over local variables made
once per install: state read through an object would cost an attribute lookup per event. A factory takes
exactly the state its group reads or changes: the backend's own dicts, sets and one-item lists, shared by
reference with the backend and with the other groups.

- `line_callbacks`: the LINE callback of each tracer mode (recording, armed, idle, and block recording's
  spots on 3.12); one is registered at a time.
- `block_callbacks`: block recording's BRANCH and JUMP, PY_RETURN, RAISE and RERAISE.
- `start_callbacks`: PY_START, PY_RESUME and PY_THROW: target code met for the first time, one-liners
  whose line LINE misses, and the calls that cut a block-recorded frame's straight run.

Entries go to the installing thread's list only (`thread_recorder`): other threads are ignored, as
`sys.settrace` ignores them by nature.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from threading import get_ident
from types import CodeType
from typing import Any, NamedTuple, Protocol

from harness.injection._blocks import RAISE, RETURN, SPOT, START, CodeMap

__all__ = [
    "BlockCallbacks",
    "LineCallbacks",
    "StartCallbacks",
    "Tracer",
    "block_callbacks",
    "line_callbacks",
    "start_callbacks",
    "thread_recorder",
]

Callback = Callable[..., Any]


class Tracer(Protocol):
    """What the callbacks read of the `LineTracer` that installed them: the state `LineTracer._sync` keeps."""

    _rec: bool
    _armed_file: str | None
    _armed_line: int

    def _record_line(self, code: CodeType, line: int) -> None: ...
    def _count_armed(self) -> None: ...


def _disable() -> Any:
    """`sys.monitoring.DISABLE`: switches off the event at the location that fired it."""
    return sys.monitoring.DISABLE  # type: ignore[attr-defined,unused-ignore]  # 3.12+; mypy targets 3.11


def thread_recorder(append: Callable[[tuple], None]) -> Any:
    """The calling thread's recorder: `recorder.append(entry)` appends there and raises AttributeError in
    every other thread, which is cheaper to tell per event than comparing thread ids."""
    recorder = threading.local()
    recorder.append = append
    return recorder


class LineCallbacks(NamedTuple):
    plain: Callback  #: recording only, no target code with a `with` block, LINE reliable: one append
    fast: Callback  #: recording only, otherwise: drops `with` exits and repeats of a one-liner's start
    full: Callback  #: recording with `on_record` or a point armed: the tracer's full path
    armed: Callback  #: a point armed, no recording: counts its line, switches every other location off
    idle: Callback  #: neither: switches every location off
    blocks: Callback  #: block recording on 3.12: block-recorded code keeps LINE events only at its spots


def line_callbacks(
    *,
    tracer: Tracer,
    thread: int,
    recorder: Any,
    pending: list[Any],
    exits: dict[int, dict[int, frozenset[int]]],
    exit_lines: set[int],
    disabled: set[tuple[str, int]],
    live: dict[int, CodeMap],
    block_disabled: set[tuple[str, int]],
) -> LineCallbacks:
    """The LINE callbacks. `pending` is `[code, line]` of the one-liner whose line a start just reported
    (see `start_callbacks`): a LINE event for it right after is that same execution. `exits` maps target
    code to `with_exits`, and `exit_lines` holds every line in it: the common line pays one membership test
    before the exact (code, offset) check. Locations switched off go into `disabled` (LINE modes) or
    `block_disabled` (block recording), for the backend to bring back when it needs them."""
    record_line = tracer._record_line
    disable = _disable()
    frame = sys._getframe

    def leaves_with(code: CodeType, line: int) -> bool:
        # Called from a LINE callback: frame 2 is the monitored frame, at the event's offset.
        lines = exits.get(id(code))
        return lines is not None and line in lines and frame(2).f_lasti in lines[line]

    def repeats(code: CodeType, line: int) -> bool:
        was, pending[0] = pending[0], None
        return was is code and pending[1] == line

    def on_line_plain(code: CodeType, line: int) -> Any:
        # The hot path of a recording run while no target code has a `with` block: one append.
        try:  # noqa: SIM105 (a try costs nothing here; contextlib.suppress would cost a call per line)
            recorder.append((code, line))
        except AttributeError:
            pass

    def on_line_fast(code: CodeType, line: int) -> Any:
        if pending[0] is not None and repeats(code, line):
            return None
        if line in exit_lines and leaves_with(code, line):
            return disable  # this location only: the `with` line's events as the block starts stay
        try:  # noqa: SIM105
            recorder.append((code, line))
        except AttributeError:
            pass

    def on_line_blocks(code: CodeType, line: int) -> Any:
        cmap = live.get(id(code))
        if cmap is not None:
            offset = frame(1).f_lasti
            if offset in cmap.spots:
                try:  # noqa: SIM105
                    recorder.append((code, SPOT, offset, None))
                except AttributeError:
                    pass
                return None
            block_disabled.add((code.co_filename, line))
            return disable
        # Code that block recording leaves to LINE events (generators, coroutines): as `on_line_fast`,
        # written out rather than called, as a call per event is the cost these closures avoid.
        if pending[0] is not None and repeats(code, line):
            return None
        if line in exit_lines and leaves_with(code, line):
            return disable
        try:  # noqa: SIM105
            recorder.append((code, line))
        except AttributeError:
            pass

    def on_line_full(code: CodeType, line: int) -> Any:
        if pending[0] is not None and repeats(code, line):
            return None
        if line in exit_lines and leaves_with(code, line):
            return disable
        if get_ident() == thread:
            record_line(code, line)

    def on_line_armed(code: CodeType, line: int) -> Any:
        if pending[0] is not None and repeats(code, line):
            return None
        if line in exit_lines and leaves_with(code, line):
            return disable
        if line == tracer._armed_line and code.co_filename == tracer._armed_file:
            if get_ident() == thread:
                tracer._count_armed()
            return None
        disabled.add((code.co_filename, line))
        return disable

    def on_line_idle(code: CodeType, line: int) -> Any:
        pending[0] = None
        disabled.add((code.co_filename, line))
        return disable

    return LineCallbacks(on_line_plain, on_line_fast, on_line_full, on_line_armed, on_line_idle, on_line_blocks)


class BlockCallbacks(NamedTuple):
    jump: Callback  #: BRANCH and JUMP: one entry `(code, src, dst)`
    returned: Callback  #: PY_RETURN of block-recorded code
    raised: Callback  #: RAISE, a global event: every exception of every frame
    reraised: Callback  #: RERAISE, likewise


def block_callbacks(*, recorder: Any, live: dict[int, CodeMap], depth: list[int]) -> BlockCallbacks:
    """Block recording's callbacks. `live` holds the maps of block-recorded code while block recording is
    on; `depth[0]` counts the block-recorded frames running in the installing thread (see `start_callbacks`)."""
    frame = sys._getframe

    def on_jump(code: CodeType, src: int, dst: int) -> Any:
        try:  # noqa: SIM105
            recorder.append((code, src, dst))
        except AttributeError:
            pass

    def on_return(code: CodeType, offset: int, value: object) -> Any:
        try:
            recorder.append((code, RETURN, offset, None))
        except AttributeError:
            return
        depth[0] -= 1

    def raised(code: CodeType, offset: int) -> None:
        cmap = live.get(id(code))
        if cmap is not None and hasattr(recorder, "append"):
            recorder.append((code, RAISE, offset, None))
            if cmap.handler(cmap.at(offset)) is None:
                depth[0] -= 1  # the exception leaves the frame

    def on_raise(code: CodeType, offset: int, exc: BaseException) -> Any:
        # A global event: every exception in every frame comes here, so other code leaves at once.
        if id(code) not in live:
            return
        # The traceback entry added just before this event holds the exact instruction: 3.13 reports
        # one code unit before the CALL when the exception comes from a callee.
        tb = exc.__traceback__
        if tb is not None and tb.tb_frame is frame(1):
            offset = tb.tb_lasti
        raised(code, offset)

    def on_reraise(code: CodeType, offset: int, exc: BaseException) -> Any:
        raised(code, offset)

    return BlockCallbacks(on_jump, on_return, on_raise, on_reraise)


class StartCallbacks(NamedTuple):
    started: Callback  #: PY_START, a global event: every start of every code
    resumed: Callback  #: PY_RESUME of LINE-recorded target code while block recording is on
    thrown: Callback  #: PY_THROW, a global event: an exception thrown into a generator or coroutine


def start_callbacks(
    *,
    tracer: Tracer,
    thread: int,
    recorder: Any,
    pending: list[Any],
    codes: dict[int, CodeType],
    live: dict[int, CodeMap],
    depth: list[int],
    first_lines: dict[int, tuple[CodeType, int]],
    starts_off: list[bool],
    disabled: set[tuple[str, int]],
    matches_file: Callable[[str], bool],
    instrument: Callable[[CodeType], None],
) -> StartCallbacks:
    """The start callbacks. Code not in `codes` is new: target code is handed to `instrument`, other code
    switches its own start off. A block-recorded start adds one to `depth[0]` and, when a block-recorded
    frame runs below it, names that caller and where it stands (its run is cut there). A one-liner of
    `first_lines` has its line reported here, where LINE misses it, and noted in `pending`. A start a LINE
    mode does not need is switched off and noted in `starts_off` (block recording needs them back)."""
    record_line = tracer._record_line
    disable = _disable()
    frame = sys._getframe

    def caller_of(below: Any) -> tuple[CodeType | None, int]:
        # The nearest target frame from `below` down: when block-recorded, its run is cut there.
        while below is not None:
            code = below.f_code
            if id(code) in codes:
                return (code, below.f_lasti) if id(code) in live else (None, 0)
            below = below.f_back
        return None, 0

    def started_inside(code: CodeType) -> None:
        # LINE-recorded target code started or resumed: a block-recorded frame that called it stops there.
        if live and depth[0] and hasattr(recorder, "append"):
            caller, lasti = caller_of(frame(2).f_back)
            if caller is not None:
                recorder.append((code, START, caller, lasti))

    def on_resume(code: CodeType, offset: int) -> Any:
        started_inside(code)

    def on_throw(code: CodeType, offset: int, exc: BaseException) -> Any:
        if id(code) in codes:
            started_inside(code)

    def on_start(code: CodeType, offset: int) -> Any:
        if id(code) in live:  # the hot path of block recording: one entry, no look for a caller at depth 0
            caller, lasti = caller_of(frame(1).f_back) if depth[0] else (None, 0)
            try:
                recorder.append((code, START, caller, lasti))
            except AttributeError:
                return None
            depth[0] += 1
            return None
        if id(code) not in codes:
            if not matches_file(code.co_filename):
                return disable
            instrument(code)
            if id(code) in live:
                if hasattr(recorder, "append"):
                    recorder.append((code, START, *caller_of(frame(1).f_back)))
                    depth[0] += 1
                return None
        started_inside(code)
        entry = first_lines.get(id(code))
        if entry is None:
            if live:  # block recording needs this code's next starts too
                return None
            starts_off[0] = True
            return disable
        line = entry[1]
        counted = tracer._rec or (line == tracer._armed_line and code.co_filename == tracer._armed_file)
        if not counted:
            starts_off[0] = True
            disabled.add((code.co_filename, line))
            return disable
        if get_ident() == thread:
            pending[0], pending[1] = code, line
            if tracer._rec:
                record_line(code, line)
            else:
                tracer._count_armed()
        return None

    return StartCallbacks(on_start, on_resume, on_throw)
