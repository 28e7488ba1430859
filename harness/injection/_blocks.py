"""Recording line points by basic blocks (the `sys.monitoring` backend, Python 3.12 and 3.13).

A LINE callback per executed line costs the interpreter a Python call per line. While a run only records,
the backend instead listens to the events that end straight-line code (BRANCH, PY_RETURN, and the
RAISE/RERAISE of target frames) plus the starts of target code, and works out the lines in between from
the bytecode when `points` is read. Unconditional jumps are followed statically; only code with a loop
that has no branch listens to JUMP events, to count its rounds. `CodeMap` holds what that needs for one
code object: the instruction order, which instructions would fire a LINE event, the jumps and the
exception handlers.

A LINE event fires at an instruction that starts a line (its line differs from the one before it in
code order, or it is a jump or handler target) unless the instruction executed just before it in the same
frame is on the same line; the first line after RESUME always counts, which matches how the LINE
callbacks report one-liners on every 3.12+ interpreter. Where a frame's straight run is cut by target
code it calls (or by a generator it resumes), the callee's start carries the caller's `f_lasti`, so the
expansion emits the caller's lines up to that call first: points come out in execution order.

One LINE event depends on more than the bytecode, on 3.12 only: when an instruction that can run a
Python function inline (a call, a subscript, an attribute) returns to its frame, the frame's previous
instruction is a cache unit, which has no line, so a line start just after it on the same line (a jump
target, as in `a + (b and f())`) fires its line again, if the callee was Python. Block-recorded code
keeps LINE events at those spots (and only there: elsewhere they are switched off at their first hit)
and records a SPOT entry when one fires.

Code the expansion cannot follow (generators and coroutines, whose frames suspend; an opcode that jumps
without an event here) stays on LINE events, and its LINE entries sit in the same raw list.
"""

from __future__ import annotations

import bisect
import dis
import sys
from types import CodeType

from harness.injection._code import exception_table, per_code, suspends, with_exits

__all__ = [
    "BLOCKS_SUPPORTED",
    "CLOSE",
    "RAISE",
    "RETURN",
    "SEED",
    "SPOT",
    "START",
    "BlockTraceError",
    "CodeMap",
    "block_map",
    "code_map",
    "expand",
]

#: Interpreters whose jump events and LINE rules this module models (checked by tests/injection).
BLOCKS_SUPPORTED = sys.version_info[:2] in ((3, 12), (3, 13))
#: Whether a line can fire again after an inlined call returns to it (see the module's docstring).
LINES_REPEAT_AFTER_CALLS = sys.version_info[:2] == (3, 12)

# Tags of the raw entries other than a LINE entry `(code, line)` and a jump entry `(code, src, dst)`.
START = -1  # (code, START, caller_code | None, caller_lasti): target code started or resumed
RETURN = -2  # (code, RETURN, offset, None): a block-recorded frame returned
RAISE = -3  # (code, RAISE, offset, None): an exception was raised or re-raised at offset in that frame
SEED = -4  # (code, SEED, lasti, None): a frame already running when block recording began
CLOSE = -5  # (code, CLOSE, lasti, None): block recording stopped while this frame was at lasti
SPOT = -6  # (code, SPOT, offset, None): a LINE event at a spot where 3.12 may repeat a line

#: Jumps that fire BRANCH events: the events block recording listens to.
_BRANCHES = frozenset({"POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE", "POP_JUMP_IF_NONE", "POP_JUMP_IF_NOT_NONE", "FOR_ITER"})
#: Unconditional jumps with a JUMP event: followed statically, unless a loop of the code has no branch.
_JUMPS = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD"})
#: Unconditional jumps that fire no event at all (3.13 ends an `except` body with one).
_SILENT_JUMPS = frozenset({"JUMP_BACKWARD_NO_INTERRUPT"})
_RETURNS = frozenset({"RETURN_VALUE", "RETURN_CONST"})
#: Instructions that can run a Python function inline in their frame (3.12's specialised forms).
_INLINING = frozenset({"CALL", "CALL_FUNCTION_EX", "BINARY_SUBSCR", "LOAD_ATTR", "LOAD_SUPER_ATTR", "SEND"})
_RAISES = frozenset({"RAISE_VARARGS", "RERAISE"})
#: Never a line start: skipped by the jump before them, or needed by the instrumentation itself.
_NOT_LINE_STARTS = frozenset({"END_ASYNC_FOR", "END_FOR", "END_SEND", "RESUME"})
_JUMP_OPS = frozenset(dis.opname[op] for op in set(dis.hasjrel) | set(dis.hasjabs) | set(getattr(dis, "hasjump", ())))

PLAIN, EVENT, SILENT, RETURNS, RAISES = range(5)


class BlockTraceError(RuntimeError):
    """The recorded events do not fit the bytecode: a case block recording does not model."""

    def __init__(self, message: str) -> None:
        super().__init__(
            f"{message}; block recording cannot tell which lines ran here. Set HARNESS_BLOCK_RECORDING=0 to"
            " record with LINE events (slower, same points) and please report this case"
        )


class CodeMap:
    """The static facts about one code object that turn block events back into LINE events."""

    __slots__ = (
        "_emitted",
        "_handlers",
        "_paths",
        "code",
        "index",
        "kind",
        "lines",
        "offsets",
        "resume",
        "spots",
        "starts",
        "target",
        "uses_jumps",
    )

    def __init__(self, code: CodeType, exits: dict[int, frozenset[int]], instructions: list[dis.Instruction]) -> None:
        self.code = code
        self.offsets = [ins.offset for ins in instructions]
        self.index = {offset: n for n, offset in enumerate(self.offsets)}
        self.lines = [_line(ins) for ins in instructions]
        self.resume = [ins.opname == "RESUME" for ins in instructions]
        #: Silent jump index -> target index.
        self.target = {
            n: self.index[ins.argval] for n, ins in enumerate(instructions) if ins.opname in _JUMPS | _SILENT_JUMPS
        }
        self._paths: dict[int, tuple[list[int], dict[int, int]]] = {}
        #: Whether JUMP events are needed: a loop with no branch in it repeats without any other event.
        self.uses_jumps = False
        self.kind = [_kind(ins.opname, jumps=False) for ins in instructions]
        if self._branchless_loop():
            self.uses_jumps = True
            self.kind = [_kind(ins.opname, jumps=True) for ins in instructions]
            self._paths.clear()
        size = len(instructions)
        starts = [False] * size
        current = -1
        first = self.resume.index(True) if True in self.resume else 0
        for n in range(first, size):
            if instructions[n].opname in _NOT_LINE_STARTS:
                continue
            line = self.lines[n]
            starts[n] = line != current and line >= 0
            current = line
        for n in range(first, size):
            ins = instructions[n]
            if ins.opname not in _JUMP_OPS or not isinstance(ins.argval, int):
                continue
            to = self.index.get(ins.argval)
            if to is not None and ins.opname == "FOR_ITER":  # the exhausted loop skips its END_FOR
                while to < size and instructions[to].opname in ("END_FOR", "POP_TOP"):
                    to += 1
            if to is not None and to < size and self.lines[to] >= 0:
                starts[to] = True
        self._handlers: list[tuple[int, int, int]] = []
        for start, end, target in exception_table(code):
            to = self.index[target]
            self._handlers.append((start, end, to))
            if self.lines[to] >= 0:
                starts[to] = True
        # The LINE callbacks drop the events that end a `with` block (see `with_exits`): so does this.
        for n, offset in enumerate(self.offsets):
            if starts[n] and offset in exits.get(self.lines[n], ()):
                starts[n] = False
        self.starts = starts
        #: Offsets of the line starts reached from an instruction on the same line: where a LINE event
        #: can fire again after a call (3.12), and so where block-recorded code keeps LINE events.
        self.spots = frozenset(
            self.offsets[n]
            for n in range(1, len(starts))
            if starts[n] and self.lines[n - 1] == self.lines[n] and instructions[n - 1].opname in _INLINING
        )
        self._emitted: dict[tuple[int, int, int], tuple[tuple[CodeType, int], ...]] = {}

    def _branchless_loop(self) -> bool:
        """Whether a backward silent jump leads round a loop that fires no event."""
        for n, to in self.target.items():
            if to <= n:
                run, _ = self.path(to)
                if self.kind[run[-1]] in (PLAIN, SILENT):  # the run stopped because it came round again
                    return True
        return False

    def at(self, offset: int) -> int:
        """The instruction holding byte `offset` (a caller's `f_lasti` may point into a CALL's cache)."""
        n = self.index.get(offset)
        if n is None:
            n = bisect.bisect_right(self.offsets, offset) - 1
            if n < 0:
                raise BlockTraceError(f"offset {offset} lies before the code of {self.code.co_qualname}")
            self.index[offset] = n
        return n

    def handler(self, n: int) -> int | None:
        """The handler for an exception raised at instruction `n`, or None when it leaves the frame."""
        offset = self.offsets[n]
        for start, end, to in self._handlers:
            if start <= offset < end:
                return to
        return None

    def path(self, n: int) -> tuple[list[int], dict[int, int]]:
        """The instructions run from `n` up to the first that fires an event or ends the frame, with each
        one's position in that run; silent jumps are followed."""
        found = self._paths.get(n)
        if found is None:
            run: list[int] = []
            at: dict[int, int] = {}
            i, kind, size = n, self.kind, len(self.kind)
            while i < size and i not in at:
                at[i] = len(run)
                run.append(i)
                k = kind[i]
                if k == SILENT:
                    i = self.target[i]
                elif k != PLAIN:
                    break
                else:
                    i += 1
            found = self._paths[n] = (run, at)
        return found

    def events_between(self, start: int, stop: int, prev: int) -> tuple[tuple[CodeType, int], ...] | None:
        """The LINE events, as `(code, line)`, of the run from instruction `start` through `stop`, entered
        from instruction `prev` (-1: none); None when `stop` is not on the straight run from `start`."""
        key = (start, stop, prev)
        found = self._emitted.get(key)
        if found is None:
            run, at = self.path(start)
            end = at.get(stop)
            if end is None:
                return None
            code, lines, starts, out = self.code, self.lines, self.starts, []
            previous_line = lines[prev] if prev >= 0 else -2
            after_resume = prev >= 0 and self.resume[prev]
            for i in run[: end + 1]:
                line = lines[i]
                if starts[i] and (line != previous_line or after_resume):
                    out.append((code, line))
                previous_line, after_resume = line, self.resume[i]
            found = self._emitted[key] = tuple(out)
        return found

    def after(self, n: int) -> int:
        """The instruction that runs after `n` when `n` neither jumps nor ends the frame."""
        return self.target[n] if self.kind[n] == SILENT else n + 1


def _line(ins: dis.Instruction) -> int:
    line = ins.positions.lineno if ins.positions is not None else None
    return -1 if line is None else line


def _kind(opname: str, *, jumps: bool) -> int:
    if opname in _BRANCHES:
        return EVENT
    if opname in _JUMPS:
        return EVENT if jumps else SILENT
    if opname in _SILENT_JUMPS:
        return SILENT
    if opname in _RETURNS:
        return RETURNS
    if opname in _RAISES:
        return RAISES
    return PLAIN


def code_map(code: CodeType, exits: dict[int, frozenset[int]]) -> CodeMap | None:
    """The map of `code`, or None when its lines must come from LINE events: generators and coroutines
    (their frames suspend mid-run), and code with a jump this module does not model."""
    if not BLOCKS_SUPPORTED or suspends(code):
        return None
    instructions = list(dis.get_instructions(code))
    for ins in instructions:
        if ins.opname in _JUMP_OPS and ins.opname not in _BRANCHES | _JUMPS | _SILENT_JUMPS:
            return None
    cmap = CodeMap(code, exits, instructions)
    if cmap.uses_jumps and cmap._branchless_loop():  # a loop of jumps that fire no event
        return None
    return cmap


@per_code
def block_map(code: CodeType) -> CodeMap | None:
    """`code_map` of `code` with its own `with` exits, made once per code object (a map is static facts)."""
    return code_map(code, with_exits(code))


class _Frame:
    __slots__ = ("cmap", "code", "prev", "resume", "split")

    def __init__(self, cmap: CodeMap, resume: int, prev: int, split: bool) -> None:
        self.cmap = cmap
        self.code = cmap.code
        self.resume = resume  # the next instruction whose LINE event is not yet emitted
        self.prev = prev  # the instruction run before `resume`
        self.split = split  # `prev` ran, and nothing after it: a callee started there


def expand(raw: list[tuple], maps: dict[int, CodeMap]) -> list[tuple[CodeType, int]]:
    """Turn recorded entries into the `(code, line)` LINE events they stand for, in execution order."""
    out: list[tuple[CodeType, int]] = []
    stack: list[_Frame] = []

    def top(code: CodeType, what: str) -> _Frame:
        if not stack or stack[-1].code is not code:
            running = stack[-1].code.co_qualname if stack else "no frame"
            raise BlockTraceError(f"{what} in {code.co_qualname} while block recording expected {running}")
        return stack[-1]

    def run_to(frame: _Frame, stop: int, what: str) -> None:
        if frame.split and stop == frame.prev:
            return
        events = frame.cmap.events_between(frame.resume, stop, frame.prev)
        if events is None:
            cmap = frame.cmap
            raise BlockTraceError(
                f"{what} at offset {cmap.offsets[stop]} of {frame.code.co_qualname} is not on the straight run"
                f" from offset {cmap.offsets[frame.resume]}"
            )
        out.extend(events)

    for entry in raw:
        size = len(entry)
        if size == 2:
            out.append(entry)
            continue
        code = entry[0]
        if size == 3:  # the common entry, a branch: handled inline
            if not stack or stack[-1].code is not code:
                top(code, "a jump")
            frame = stack[-1]
            cmap = frame.cmap
            index = cmap.index
            src = index.get(entry[1])
            if src is None:
                src = cmap.at(entry[1])
            if not frame.split or src != frame.prev:
                events = cmap._emitted.get((frame.resume, src, frame.prev))
                if events is None:
                    run_to(frame, src, "a jump")
                else:
                    out.extend(events)
            dst = index.get(entry[2])
            frame.resume, frame.prev, frame.split = cmap.at(entry[2]) if dst is None else dst, src, False
            continue
        tag = entry[1]
        if tag == START:
            caller = entry[2]
            if caller is not None:
                frame = top(caller, "a call")
                at = frame.cmap.at(entry[3])
                run_to(frame, at, "a call")
                frame.resume, frame.prev, frame.split = frame.cmap.after(at), at, True
            started = maps.get(id(code))
            if started is not None and started.code is code:
                first = started.resume.index(True) if True in started.resume else 0
                stack.append(_Frame(started, first, -1, False))
        elif tag == RETURN:
            frame = top(code, "a return")
            run_to(frame, frame.cmap.at(entry[2]), "a return")
            stack.pop()
        elif tag == RAISE:
            frame = top(code, "an exception")
            cmap = frame.cmap
            at = cmap.at(entry[2])
            run_to(frame, at, "an exception")
            handler = cmap.handler(at)
            if handler is None:
                stack.pop()
            else:
                frame.resume, frame.prev, frame.split = handler, at, False
        elif tag == SEED:
            cmap = maps[id(code)]
            at = cmap.at(entry[2])
            stack.append(_Frame(cmap, cmap.after(at), at, True))
        elif tag == SPOT:
            frame = top(code, "a repeated line")
            cmap = frame.cmap
            at = cmap.at(entry[2])
            run, position = cmap.path(frame.resume)
            where = position.get(at)
            if where is None:
                raise BlockTraceError(f"a repeated line at offset {entry[2]} of {code.co_qualname} is off its run")
            if (run[where - 1] if where else frame.prev) != at - 1:
                continue  # reached by a jump: an ordinary LINE event, which the expansion emits anyway
            run_to(frame, at - 1, "a repeated line")
            out.append((code, cmap.lines[at]))
            frame.resume, frame.prev, frame.split = at, at, True
        elif tag == CLOSE:
            frame = top(code, "the end of block recording")
            run_to(frame, frame.cmap.at(entry[2]), "the end of block recording")
            stack.pop()
    return out
