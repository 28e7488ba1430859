"""The `sys.monitoring` (PEP 669, Python 3.12+) backend of `LineTracer`.

LINE events are enabled locally on target code objects only: those reachable from the imported target
modules when installed, and any other target code the first time it starts (a global PY_START event
that each non-target code switches off for itself by returning DISABLE). Events are process-wide, so
the callbacks (made in `_callbacks`) ignore threads other than the installing one, as `sys.settrace`
does by nature.

While a run only records (no point armed, no `on_record`), target code that `_blocks` can model is
recorded by basic blocks instead: BRANCH (and, for loops without a branch, JUMP) and PY_RETURN events
locally, RAISE and RERAISE globally, and the lines in between worked out when `points` is read. It
needs every start of target code, so switching it on restarts the events that LINE modes switched off.
"""

from __future__ import annotations

import sys
from threading import get_ident
from types import CodeType
from typing import TYPE_CHECKING, Any

import harness.injection._blocks as _blocks  # as a module: its `expand` is looked up per read (tests wrap it)
from harness.errors import ConfigurationError
from harness.injection._blocks import CLOSE, SEED, CodeMap
from harness.injection._callbacks import (
    BlockCallbacks,
    LineCallbacks,
    StartCallbacks,
    block_callbacks,
    line_callbacks,
    start_callbacks,
    thread_recorder,
)
from harness.injection._code import one_line_start, with_exits

if TYPE_CHECKING:
    from harness.injection.lines import LineTracer

__all__ = ["TOOL_IDS", "MonitoringBackend", "claim_tool_id"]

#: Tool ids tried in order. 4 and 5 have no conventional owner; coverage.py takes 1 and Hypothesis 3
#: during test runs, debuggers 0 and profilers 2 interactively, so those come last.
TOOL_IDS = (4, 5, 2, 0, 1, 3)
TOOL_NAME = "retry-harness line points"


def _monitoring() -> Any:
    """`sys.monitoring`, typed loosely: the type checker targets 3.11, which has none."""
    return sys.monitoring  # type: ignore[attr-defined,unused-ignore]


def claim_tool_id() -> int:
    """Claim the first free tool id of `TOOL_IDS`; refuse when all six are taken."""
    mon: Any = _monitoring()
    for tool in TOOL_IDS:
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, TOOL_NAME)
            return tool
    owners = ", ".join(f"{t}={mon.get_tool(t)!r}" for t in range(6))
    raise ConfigurationError(
        f"no free sys.monitoring tool id ({owners}); stop one of those tools or use backend='settrace'"
    )


_probed: tuple[bool, bool] | None = None


def _line_fires_on_one_liners(tool: int) -> tuple[bool, bool]:
    """Whether LINE fires for a one-liner's only line (steady state, and on the call that instrumented
    it from PY_START). 3.12 says yes; 3.13.0 says no, but yes on the first run after (re)instrumenting,
    as the line did not change from RESUME's. Asked of the interpreter once: where LINE is unreliable
    the tracer reports such lines at PY_START and drops a LINE event that repeats it right after."""
    global _probed
    if _probed is None:
        mon: Any = _monitoring()
        ev = mon.events
        seen: list[int] = []
        probe = eval("lambda: None")  # fresh code, so no other tool has touched it

        def on_start(code: CodeType, offset: int) -> Any:
            if code is probe.__code__:
                mon.set_local_events(tool, code, ev.LINE)
            return mon.DISABLE

        mon.register_callback(tool, ev.LINE, lambda code, line: seen.append(line))
        mon.register_callback(tool, ev.PY_START, on_start)
        mon.set_events(tool, ev.PY_START)
        try:
            probe()
            lazy = bool(seen)
            seen.clear()
            probe()
            steady = bool(seen)
        finally:
            mon.set_events(tool, 0)
            mon.set_local_events(tool, probe.__code__, 0)
            mon.register_callback(tool, ev.LINE, None)
            mon.register_callback(tool, ev.PY_START, None)
        _probed = (steady, lazy)
    return _probed


class MonitoringBackend:
    name = "monitoring"

    # The event callbacks, made by `_make_callbacks` when the backend is installed.
    on_line: LineCallbacks
    on_block: BlockCallbacks
    on_start: StartCallbacks

    def __init__(self, tracer: LineTracer) -> None:
        self.tracer = tracer
        self.tool = -1
        # Keyed by id(): equal code objects (same body, another file or a re-import) are still distinct
        # code to instrument. The values keep the code alive so its id stays its own.
        self.codes: dict[int, CodeType] = {}
        #: One-liner target codes whose line this backend reports at PY_START: id -> (code, line).
        self.first_lines: dict[int, tuple[CodeType, int]] = {}
        #: id(code) -> `with_exits(code)`, for target code that has `with` blocks.
        self.exits: dict[int, dict[int, frozenset[int]]] = {}
        #: Every line of `exits`: the LINE callbacks test a line against it before the exact check.
        self.exit_lines: set[int] = set()
        #: (file, line) of the target locations switched off with DISABLE since the last restart.
        self.disabled: set[tuple[str, int]] = set()
        self.line_callback: Any = None
        #: Block recording: whether this interpreter and tracer allow it, whether it is on now, the
        #: maps of the target code it covers (kept after uninstall, for `points`), and the maps that
        #: the callbacks see: `maps` while block recording is on, else empty.
        self.blocks_allowed = tracer.blocks and _blocks.BLOCKS_SUPPORTED
        self.block_mode = False
        self.maps: dict[int, CodeMap] = {}
        self.analysed: set[int] = set()
        self.live: dict[int, CodeMap] = {}
        #: How many block-recorded frames are running in the installing thread: at 0, a start needs no
        #: look for its caller.
        self.depth = [0]
        #: Whether a target code's PY_START was switched off (DISABLE) since the last restart.
        self.starts_off = [False]
        #: LINE locations of block-recorded code switched off during block recording: LINE modes need
        #: them back (they join `disabled` when block recording stops).
        self.block_disabled: set[tuple[str, int]] = set()
        self._line_reliable = True
        self._thread = get_ident()

    def install(self) -> None:
        mon: Any = _monitoring()
        self.tool = claim_tool_id()
        self._thread = get_ident()
        self.maps = {}
        self.analysed = set()
        self.block_mode = False
        self.live.clear()
        self.depth[0] = 0
        try:
            self._line_reliable = all(_line_fires_on_one_liners(self.tool))
            self._make_callbacks()
            ev = mon.events
            mon.register_callback(self.tool, ev.PY_START, self.on_start.started)
            global_events = ev.PY_START
            if self.blocks_allowed:
                for event, callback in (
                    (ev.BRANCH, self.on_block.jump),
                    (ev.JUMP, self.on_block.jump),
                    (ev.PY_RETURN, self.on_block.returned),
                    (ev.RAISE, self.on_block.raised),
                    (ev.RERAISE, self.on_block.reraised),
                    (ev.PY_RESUME, self.on_start.resumed),
                    (ev.PY_THROW, self.on_start.thrown),
                ):
                    mon.register_callback(self.tool, event, callback)
                global_events |= ev.RAISE | ev.RERAISE | ev.PY_THROW
            for code in self.tracer.targets.code_objects():
                self.instrument(code)
            mon.set_events(self.tool, global_events)
            self.tracer._expand = self.expand
            self.refresh()
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        mon: Any = _monitoring()
        if self.tool < 0:
            return
        mon.set_events(self.tool, 0)
        for code in list(self.codes.values()):  # another thread's start callback may still add one
            mon.set_local_events(self.tool, code, 0)
        if self.block_mode and self.tracer._rec:
            self.tracer._raw.extend(self._closing_entries())
        ev = mon.events
        for event in (ev.LINE, ev.PY_START, ev.BRANCH, ev.JUMP, ev.PY_RETURN, ev.RAISE, ev.RERAISE, ev.PY_RESUME):
            mon.register_callback(self.tool, event, None)
        mon.register_callback(self.tool, ev.PY_THROW, None)
        mon.free_tool_id(self.tool)
        self.block_mode = False
        self.live.clear()
        self.depth[0] = 0
        self.codes.clear()
        self.exits.clear()
        self.exit_lines.clear()
        self.first_lines.clear()
        self.line_callback = None
        self.tool = -1

    def refresh(self) -> None:
        """Follow the tracer's mode: block recording on or off, the LINE callback, and switched-off lines
        brought back when the mode needs them again."""
        tracer = self.tracer
        plain = tracer._rec and tracer._on_record is None and tracer._armed_file is None
        if (plain and self.blocks_allowed) != self.block_mode:
            self._switch_blocks(not self.block_mode)
        if self.block_mode and _blocks.LINES_REPEAT_AFTER_CALLS:
            callback = self.on_line.blocks
        elif tracer._rec:
            callback = self._plain_or_fast() if plain else self.on_line.full
        elif tracer._armed_file is not None:
            callback = self.on_line.armed
        else:
            callback = self.on_line.idle
        if callback is not self.line_callback:
            mon = _monitoring()
            mon.register_callback(self.tool, mon.events.LINE, callback)
            self.line_callback = callback
        disabled = self.disabled
        if disabled and (tracer._rec or (tracer._armed_file, tracer._armed_line) in disabled):
            # This re-enables DISABLEd locations of every tool (coverage's too): they pay one more
            # callback per location. Hence only when a line we need was switched off.
            disabled.clear()
            _monitoring().restart_events()

    def _switch_blocks(self, on: bool) -> None:
        """Turn block recording on or off, noting where running target frames stand at the switch."""
        raw = self.tracer._raw
        if on:
            if self.starts_off[0]:
                # Block recording needs every start: bring back those the LINE modes switched off.
                self.starts_off[0] = False
                self.disabled.clear()
                _monitoring().restart_events()
            for code in self.codes.values():
                self._analyse(code)
            self.block_mode = True
            self.live.update(self.maps)
            running = self._running_frames()
            raw.extend(reversed([(f.f_code, SEED, f.f_lasti, None) for f in running]))
            self.depth[0] = len(running)
        else:
            raw.extend(self._closing_entries())
            self.block_mode = False
            self.live.clear()
            self.depth[0] = 0
            self.disabled |= self.block_disabled
            self.block_disabled.clear()
        mon: Any = _monitoring()
        for code in self.codes.values():
            mon.set_local_events(self.tool, code, self._local_events(code))

    def _analyse(self, code: CodeType) -> None:
        """Work out `code`'s block map (once: done when block recording first needs it)."""
        if id(code) in self.analysed:
            return
        self.analysed.add(id(code))
        cmap = _blocks.block_map(code)
        if cmap is not None:
            self.maps[id(code)] = cmap
            if self.block_mode:
                self.live[id(code)] = cmap

    def _running_frames(self) -> list[Any]:
        """This thread's frames of block-recorded code, innermost first."""
        found, live = [], self.live
        frame: Any = sys._getframe(1)
        while frame is not None:
            if id(frame.f_code) in live:
                found.append(frame)
            frame = frame.f_back
        return found

    def _closing_entries(self) -> list[tuple]:
        if not self.block_mode or get_ident() != self._thread:
            return []
        return [(f.f_code, CLOSE, f.f_lasti, None) for f in self._running_frames()]

    def expand(self, raw: list[tuple]) -> list[tuple[CodeType, int]]:
        """`raw` as `(code, line)` LINE events: block entries expanded, running frames cut where they stand."""
        if self.block_mode and self.depth[0] > 0:
            raw = raw + self._closing_entries()
        return _blocks.expand(raw, self.maps)

    def _local_events(self, code: CodeType) -> int:
        ev = _monitoring().events
        if not self.block_mode:
            return ev.LINE
        cmap = self.maps.get(id(code))
        if cmap is not None:
            spots = ev.LINE if cmap.spots and _blocks.LINES_REPEAT_AFTER_CALLS else 0
            return ev.BRANCH | ev.PY_RETURN | (ev.JUMP if cmap.uses_jumps else 0) | spots
        return ev.LINE | ev.PY_RESUME

    def _plain_or_fast(self) -> Any:
        """The recording callback: the plain one needs no `with` exits and reliable LINE events."""
        return self.on_line.plain if self._line_reliable and not self.exit_lines else self.on_line.fast

    def instrument(self, code: CodeType) -> None:
        """Turn LINE events on for `code` and the code nested in it (comprehensions, lambdas, defs)."""
        if self.tool < 0:  # uninstalled while a start callback of another thread was still running
            return
        stack = [code]
        targets = self.tracer.targets
        mon: Any = _monitoring()
        while stack:
            current = stack.pop()
            if id(current) in self.codes or not targets.matches_file(current.co_filename):
                continue
            self.codes[id(current)] = current
            exits = with_exits(current)
            if exits:
                self.exits[id(current)] = exits
                self.exit_lines.update(exits)
                if self.line_callback is self.on_line.plain:  # code with `with` blocks came in mid-run
                    self.line_callback = self.on_line.fast
                    mon.register_callback(self.tool, mon.events.LINE, self.on_line.fast)
            if not self._line_reliable:
                first = one_line_start(current)
                if first is not None:
                    self.first_lines[id(current)] = (current, first)
            if self.block_mode:
                self._analyse(current)
            try:
                mon.set_local_events(self.tool, current, self._local_events(current))
            except ValueError:  # the tool was freed by `uninstall` in another thread meanwhile
                return
            stack.extend(c for c in current.co_consts if isinstance(c, CodeType))

    def _make_callbacks(self) -> None:
        """Make the event callbacks (see `_callbacks`): closures over this backend's state, shared by reference."""
        tracer = self.tracer
        recorder = thread_recorder(tracer._raw.append)
        # (code, line) a one-liner's PY_START just reported: a LINE event for it right after is the
        # same execution. Only ever set where LINE is unreliable for one-liners.
        pending: list[Any] = [None, 0]
        self.on_line = line_callbacks(
            tracer=tracer,
            thread=self._thread,
            recorder=recorder,
            pending=pending,
            exits=self.exits,
            exit_lines=self.exit_lines,
            disabled=self.disabled,
            live=self.live,
            block_disabled=self.block_disabled,
        )
        self.on_block = block_callbacks(recorder=recorder, live=self.live, depth=self.depth)
        self.on_start = start_callbacks(
            tracer=tracer,
            thread=self._thread,
            recorder=recorder,
            pending=pending,
            codes=self.codes,
            live=self.live,
            depth=self.depth,
            first_lines=self.first_lines,
            starts_off=self.starts_off,
            disabled=self.disabled,
            matches_file=tracer.targets.matches_file,
            instrument=self.instrument,
        )
