"""Line points: crash a job just before any executed line of target code runs.

`LineTracer` records every line a job attempt executes as `LinePoint(file, line, hit)` and, when armed
with one point, raises `InjectedCrash` (or a chosen error) as that line is about to run. It runs on
`sys.monitoring` (3.12+, see `_monitoring`) or `sys.settrace` (3.11 and on request, see `_settrace`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType, ModuleType
from typing import Protocol

from harness.errors import ConfigurationError, InjectedCrash

__all__ = ["BACKENDS", "LinePoint", "LineTracer", "Targets", "best_backend"]

#: Backend names, best first; `monitoring` needs Python 3.12+.
BACKENDS: tuple[str, ...] = ("monitoring", "settrace")


@dataclass(frozen=True, order=True)
class LinePoint:
    """The `hit`-th execution (1-based, within one attempt) of `line` in `file` (an absolute path)."""

    file: str
    line: int
    hit: int = 1

    kind = "line"

    def where(self) -> str:
        """`file:line`, with the file relative to the working directory when it lies under it."""
        return f"{_shown(self.file, os.getcwd())}:{self.line}"


@functools.lru_cache(maxsize=4096)
def _shown(path: str, cwd: str) -> str:
    """`path` relative to `cwd` when it lies under it, else as given (worked out once per file: every
    failed attempt names the lines of its stack)."""
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:  # another drive on Windows
        return path
    if not rel.startswith(os.pardir + os.sep) and rel != os.pardir and not os.path.isabs(rel):
        return rel
    return path


def _looks_like_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name or os.sep in name or os.path.isdir(name)


def _norm(path: str) -> str:
    if os.path.isabs(path):
        return _norm_absolute(path)
    return os.path.normcase(os.path.realpath(path))  # relative: depends on the working directory


@functools.lru_cache(maxsize=8192)
def _norm_absolute(path: str) -> str:
    # Every explorer asks again for each file its runs call into, a few hundred of them, and resolving
    # symbolic links costs a system call per path component.
    return os.path.normcase(os.path.realpath(path))


class Targets:
    """Which code is target code: functions whose file lies in an included module or package and in no
    excluded one. Entries are dotted module/package names (imported on first use) or file/dir paths."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        if not self.include:
            raise ConfigurationError("Targets needs at least one module, package or path to include")
        self._roots: tuple[list[tuple[str, bool]], list[tuple[str, bool]]] | None = None
        self._by_file: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"Targets(include={list(self.include)!r}, exclude={list(self.exclude)!r})"

    def _resolve(self, names: tuple[str, ...]) -> list[tuple[str, bool]]:
        roots: list[tuple[str, bool]] = []
        for name in names:
            if _looks_like_path(name):
                path = os.path.abspath(name)
                if not os.path.exists(path):
                    raise ConfigurationError(f"target path {name!r} is missing; name an existing file or dir")
                roots.append((_norm(path), os.path.isdir(path)))
                continue
            module = self._import(name)
            paths = getattr(module, "__path__", None)
            if paths is not None:  # a package: everything under its directories
                roots.extend((_norm(p), True) for p in paths)
            elif file := getattr(module, "__file__", None):  # built-in modules have none
                roots.append((_norm(file), False))
            else:
                raise ConfigurationError(f"target module {name!r} has no source file; name a Python module")
        return roots

    @staticmethod
    def _import(name: str) -> ModuleType:
        import importlib

        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import target module {name!r} ({exc}); pass an importable dotted name or a file path"
            ) from exc

    def resolve(self) -> None:
        """Import the named modules and fix the roots (done on first use; call early to fail early)."""
        if self._roots is None:
            self._roots = (self._resolve(self.include), self._resolve(self.exclude))

    def matches_file(self, filename: str) -> bool:
        """Whether code compiled from `filename` is target code (cached per file name)."""
        verdict = self._by_file.get(filename)
        if verdict is None:
            self.resolve()
            assert self._roots is not None
            include, exclude = self._roots
            path = _norm(filename) if not filename.startswith("<") else filename
            verdict = _under(path, include) and not _under(path, exclude)
            self._by_file[filename] = verdict
        return verdict

    def modules(self) -> list[ModuleType]:
        """The target modules imported so far (the named ones are imported by `resolve`)."""
        self.resolve()
        found = []
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and self.matches_file(file):
                found.append(module)
        return found

    def code_objects(self) -> Iterator[CodeType]:
        """Every target code object reachable from the imported target modules, nested code included."""
        seen: set[int] = set()
        for module in self.modules():
            for value in list(vars(module).values()):
                yield from self._walk(value, seen, 0)

    def _walk(self, obj: object, seen: set[int], depth: int) -> Iterator[CodeType]:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, CodeType):
            if self.matches_file(obj.co_filename):
                yield obj
            for const in obj.co_consts:
                if isinstance(const, CodeType):
                    yield from self._walk(const, seen, depth)
        elif isinstance(obj, FunctionType):
            yield from self._walk(obj.__code__, seen, depth)
        elif isinstance(obj, (staticmethod, classmethod)):
            yield from self._walk(obj.__func__, seen, depth + 1)
        elif isinstance(obj, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                if part is not None:
                    yield from self._walk(part, seen, depth + 1)
        elif isinstance(obj, type):
            for value in list(vars(obj).values()):
                yield from self._walk(value, seen, depth + 1)
        else:
            # Job objects and functools.wraps-style wrappers keep the function in __wrapped__; reading
            # the instance dict avoids running arbitrary __getattr__ code.
            inner = getattr(obj, "__dict__", {}).get("__wrapped__") if hasattr(obj, "__dict__") else None
            if inner is not None:
                yield from self._walk(inner, seen, depth + 1)


def _under(path: str, roots: list[tuple[str, bool]]) -> bool:
    return any(path == root or (is_dir and path.startswith(root + os.sep)) for root, is_dir in roots)


class _Backend(Protocol):
    name: str

    def install(self) -> None: ...
    def uninstall(self) -> None: ...
    def refresh(self) -> None: ...


def best_backend() -> str:
    """`monitoring` on Python 3.12+, else `settrace`."""
    return "monitoring" if sys.version_info >= (3, 12) else "settrace"


class LineTracer:
    """Records and crashes at line points of target code, in the thread that installs it.

    Use as a context manager; per attempt call `begin_attempt()`, then set `record` and/or `arm()` a
    point. Hits of a point count from `begin_attempt()`; arm at the start of an attempt.
    """

    def __init__(self, targets: Targets, backend: str | None = None, *, blocks: bool | None = None) -> None:
        if backend is None:
            backend = best_backend()
        if backend not in BACKENDS:
            raise ConfigurationError(f"unknown line backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if backend == "monitoring" and sys.version_info < (3, 12):
            raise ConfigurationError("the 'monitoring' line backend needs Python 3.12+; use 'settrace' here")
        self.targets = targets
        self.backend = backend
        #: Record by basic blocks where the backend can (`monitoring` on 3.12 and 3.13): the same points,
        #: at a fraction of the events. Default: on, unless HARNESS_BLOCK_RECORDING=0.
        self.blocks = os.environ.get("HARNESS_BLOCK_RECORDING", "1") != "0" if blocks is None else bool(blocks)
        #: Set by a backend whose raw entries need expanding into `(code, line)` events.
        self._expand: Callable[[list[tuple]], list[tuple[CodeType, int]]] | None = None
        self._on_record: Callable[[LinePoint], None] | None = None
        self.fired_at: LinePoint | None = None
        self._record = False
        self._counting = True
        self._installed: _Backend | None = None
        self._armed: LinePoint | None = None
        self._armed_error: BaseException | None = None
        self._armed_abs = ""
        # What the backends read on every event; kept in sync by `_sync`.
        self._rec = False
        self._armed_file: str | None = None
        self._armed_line = -1
        self._armed_hit = 0
        self._armed_count = 0
        # Recorded events as (code, line), and block recording's entries (see `_blocks`); files, hit
        # numbers and the lines between blocks are worked out when `points` is read, which keeps the
        # per-line cost low. `_hits` is kept only while `on_record` needs hits at once.
        self._raw: list[tuple] = []
        self._hits: dict[tuple[str, int], int] = {}
        #: (file, line) -> its points by hit number, made on first need and shared by later reads.
        self._made: dict[tuple[str, int], list[LinePoint]] = {}

    # -- installation ------------------------------------------------------------------------------
    def __enter__(self) -> LineTracer:
        if self._installed is not None:
            raise ConfigurationError(
                "this LineTracer is already installed; leave its `with` block before entering it again"
            )
        self.targets.resolve()
        if self.backend == "monitoring":
            from harness.injection._monitoring import MonitoringBackend

            impl: _Backend = MonitoringBackend(self)
        else:
            from harness.injection._settrace import SettraceBackend

            impl = SettraceBackend(self)
        impl.install()
        self._installed = impl
        self._sync()
        return self

    def __exit__(self, *exc: object) -> None:
        impl, self._installed = self._installed, None
        if impl is not None:
            impl.uninstall()

    @property
    def installed(self) -> bool:
        return self._installed is not None

    # -- per attempt -------------------------------------------------------------------------------
    def begin_attempt(self) -> None:
        """Start a new attempt: hit counters and recorded points start again from zero."""
        if self._hits:
            self._hits = {}
        self._raw.clear()  # cleared in place: backends hold its `append`
        self._armed_count = 0
        if self._installed is not None:
            self._installed.refresh()

    @property
    def on_record(self) -> Callable[[LinePoint], None] | None:
        """Called with each recorded point just before its line runs (only while `record` is on)."""
        return self._on_record

    @on_record.setter
    def on_record(self, callback: Callable[[LinePoint], None] | None) -> None:
        self._on_record = callback
        if callback is not None:
            self._hits = {}
            for point in self.points:
                self._hits[(point.file, point.line)] = point.hit
        self._sync()

    @property
    def record(self) -> bool:
        """Record every executed target line point, in order, into `points`."""
        return self._record

    @record.setter
    def record(self, value: bool) -> None:
        self._record = bool(value)
        self._sync()

    @property
    def counting(self) -> bool:
        """Off: nothing is recorded or fired, and line events cost next to nothing."""
        return self._counting

    @counting.setter
    def counting(self, value: bool) -> None:
        self._counting = bool(value)
        self._sync()

    @property
    def events(self) -> int:
        """How many events (lines, or block recording's jumps) this attempt has recorded so far."""
        return len(self._raw)

    @property
    def points(self) -> list[LinePoint]:
        """The points recorded since `begin_attempt()`, in execution order."""
        hits: dict[tuple[str, int], int] = {}
        made = self._made
        points = []
        expand = self._expand
        for code, line in self._raw if expand is None else expand(self._raw):
            key = (code.co_filename, line)
            hit = hits[key] = hits.get(key, 0) + 1
            known = made.get(key)
            if known is None:
                known = made[key] = []
            while len(known) < hit:  # points are immutable: each is made once per tracer
                known.append(LinePoint(key[0], line, len(known) + 1))
            points.append(known[hit - 1])
        return points

    def arm(self, point: LinePoint, error: BaseException | None = None) -> None:
        """Raise `error` (default `InjectedCrash(where=point.where())`) as `point` is about to run."""
        if not isinstance(point, LinePoint):
            raise ConfigurationError(f"arm() takes a LinePoint, not {type(point).__name__}")
        if point.hit < 1:
            raise ConfigurationError(f"a point's hit number starts at 1, not {point.hit}")
        self._armed = point
        self._armed_abs = point.file if os.path.isabs(point.file) else os.path.abspath(point.file)
        self._armed_error = error
        self.fired_at = None
        self._armed_count = 0
        self._sync()

    def disarm(self) -> None:
        self._armed = None
        self._armed_error = None
        self._sync()

    @property
    def armed(self) -> LinePoint | None:
        return self._armed

    @property
    def fired(self) -> bool:
        """Whether the armed point fired (stays true until the next `arm()`)."""
        return self.fired_at is not None

    # -- what the backends call --------------------------------------------------------------------
    def _sync(self) -> None:
        self._rec = self._record and self._counting
        point = self._armed
        if point is not None and self._counting and self.fired_at is None:
            self._armed_file, self._armed_line, self._armed_hit = self._armed_abs, point.line, point.hit
        else:
            self._armed_file, self._armed_line, self._armed_hit = None, -1, 0
        if self._installed is not None:
            self._installed.refresh()

    def _record_line(self, code: CodeType, line: int) -> None:
        """The full recording path (a backend may append to `_raw` itself when nothing else is due)."""
        self._raw.append((code, line))
        callback = self._on_record
        if callback is not None:
            key = (code.co_filename, line)
            hit = self._hits[key] = self._hits.get(key, 0) + 1
            callback(LinePoint(key[0], line, hit))
        if line == self._armed_line and code.co_filename == self._armed_file:
            self._count_armed()

    def _count_armed(self) -> None:
        self._armed_count += 1
        if self._armed_count == self._armed_hit:
            self._fire()

    def _fire(self) -> None:
        point = self._armed
        assert point is not None
        self.fired_at = point
        self._armed_file, self._armed_line, self._armed_hit = None, -1, 0
        error = self._armed_error
        raise error if error is not None else InjectedCrash(where=point.where())
