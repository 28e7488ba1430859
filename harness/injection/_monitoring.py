"""The `sys.monitoring` (PEP 669, Python 3.12+) backend of `LineTracer`.

LINE events are enabled locally on target code objects only: those reachable from the imported target
modules when installed, and any other target code the first time it starts (a global PY_START event
that each non-target code switches off for itself by returning DISABLE).
"""

from __future__ import annotations

import dis
import sys
from threading import get_ident
from types import CodeType
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigurationError

if TYPE_CHECKING:
    from harness.injection.lines import LineTracer

__all__ = ["TOOL_IDS", "MonitoringBackend", "claim_tool_id"]

#: Tool ids tried in order. 4 and 5 have no conventional owner; coverage.py takes 1 and Hypothesis 3
#: during test runs, debuggers 0 and profilers 2 interactively, so those come last.
TOOL_IDS = (4, 5, 2, 0, 1, 3)
TOOL_NAME = "retry-harness line points"


def claim_tool_id() -> int:
    """Claim the first free tool id of `TOOL_IDS`; refuse when all six are taken."""
    mon: Any = sys.monitoring
    for tool in TOOL_IDS:
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, TOOL_NAME)
            return tool
    owners = ", ".join(f"{t}={mon.get_tool(t)!r}" for t in range(6))
    raise ConfigurationError(
        f"no free sys.monitoring tool id ({owners}); stop one of those tools or use backend='settrace'"
    )


def _one_line_start(code: CodeType) -> int | None:
    """The first body line when it shares the line of the code's RESUME (a lambda, `def f(): return 1`).

    LINE does not reliably fire for that line (3.13 skips it: the line did not change), so the tracer
    reports it at PY_START instead, as `sys.settrace` does.
    """
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


class MonitoringBackend:
    name = "monitoring"

    def __init__(self, tracer: LineTracer) -> None:
        self.tracer = tracer
        self.tool = -1
        # Keyed by id(): equal code objects (same body, another file or a re-import) are still distinct
        # code to instrument. The values keep the code alive so its id stays its own.
        self.codes: dict[int, CodeType] = {}
        #: Target codes whose first line is reported at PY_START: id -> (code, that line).
        self.first_lines: dict[int, tuple[CodeType, int]] = {}
        self.disabled = False
        self._thread = get_ident()

    def install(self) -> None:
        mon: Any = sys.monitoring
        self.tool = claim_tool_id()
        self._thread = get_ident()
        try:
            on_line, on_start = self._callbacks()
            mon.register_callback(self.tool, mon.events.LINE, on_line)
            mon.register_callback(self.tool, mon.events.PY_START, on_start)
            for code in self.tracer.targets.code_objects():
                self.instrument(code)
            mon.set_events(self.tool, mon.events.PY_START)
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        mon: Any = sys.monitoring
        if self.tool < 0:
            return
        mon.set_events(self.tool, 0)
        for code in self.codes.values():
            mon.set_local_events(self.tool, code, 0)
        mon.register_callback(self.tool, mon.events.LINE, None)
        mon.register_callback(self.tool, mon.events.PY_START, None)
        mon.free_tool_id(self.tool)
        self.codes.clear()
        self.first_lines.clear()
        self.tool = -1

    def refresh(self) -> None:
        # Bring back the locations callbacks switched off with DISABLE. This re-enables them for every
        # tool (coverage's too), which costs those tools one more callback per location, nothing more.
        if self.disabled:
            self.disabled = False
            sys.monitoring.restart_events()

    def instrument(self, code: CodeType) -> None:
        """Turn LINE events on for `code` and the code nested in it (comprehensions, lambdas, defs)."""
        stack = [code]
        targets = self.tracer.targets
        mon: Any = sys.monitoring
        while stack:
            current = stack.pop()
            if id(current) in self.codes or not targets.matches_file(current.co_filename):
                continue
            self.codes[id(current)] = current
            first = _one_line_start(current)
            if first is not None:
                self.first_lines[id(current)] = (current, first)
            mon.set_local_events(self.tool, current, mon.events.LINE)
            stack.extend(c for c in current.co_consts if isinstance(c, CodeType))

    def _callbacks(self) -> tuple[Any, Any]:
        tracer = self.tracer
        thread = self._thread
        codes = self.codes
        first_lines = self.first_lines
        matches_file = tracer.targets.matches_file
        disable: Any = sys.monitoring.DISABLE
        # The code whose first line PY_START just reported; a LINE event for that same line right after
        # is the same execution and must not count twice.
        started: list[Any] = [None, -1]

        def on_line(code: CodeType, line: int) -> Any:
            if started[0] is not None:
                was, was_line = started
                started[0] = None
                if was is code and was_line == line:
                    return None
            if tracer._rec:
                if get_ident() == thread:
                    tracer._record_line(code.co_filename, line)
                return None
            if line == tracer._armed_line and code.co_filename == tracer._armed_file:
                if get_ident() == thread:
                    tracer._count_armed()
                return None
            self.disabled = True
            return disable

        def on_start(code: CodeType, offset: int) -> Any:
            if id(code) not in codes:
                if not matches_file(code.co_filename):
                    self.disabled = True
                    return disable
                self.instrument(code)
            entry = first_lines.get(id(code))
            if entry is None:
                self.disabled = True
                return disable
            line = entry[1]
            if tracer._rec or (line == tracer._armed_line and code.co_filename == tracer._armed_file):
                if get_ident() == thread:
                    started[0], started[1] = code, line
                    if tracer._rec:
                        tracer._record_line(code.co_filename, line)
                    else:
                        tracer._count_armed()
                return None
            self.disabled = True
            return disable

        return on_line, on_start
