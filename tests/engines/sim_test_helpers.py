"""Small tools the reference engine's tests share: a recorder for hooks and event-log filters."""

from __future__ import annotations

from typing import Any

from harness.engines.base import AttemptObserver, Engine, EventKind, Hooks, JobRecord
from harness.engines.sim import SimEngine


def kinds(engine: Engine, *wanted: EventKind) -> list[Any]:
    return [event for event in engine.events if not wanted or event.kind in wanted]


def kind_names(engine: Engine, job_name: str | None = None) -> list[str]:
    return [e.kind.value for e in engine.events if job_name is None or e.job == job_name]


class Calls:
    """Every hook call, in order, as (what, detail) pairs; install it with `hooks()`."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def error_handler(self, exc: BaseException, context: dict[str, Any]) -> None:
        self.log.append(("error", (type(exc).__name__, context["context"], context["job"]["retry_count"])))

    def death_handler(self, record: JobRecord, exc: BaseException) -> None:
        self.log.append(("death", type(exc).__name__))

    def named(self, what: str) -> list[Any]:
        return [detail for name, detail in self.log if name == what]

    def hooks(self) -> Hooks:
        return Hooks(error_handlers=[self.error_handler], death_handlers=[self.death_handler])


class Attempts(AttemptObserver):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str | None]] = []

    def attempt_started(self, record: JobRecord, attempt: int) -> None:
        self.calls.append(("started", attempt, None))

    def attempt_finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        self.calls.append(("finished", attempt, None if exc is None else type(exc).__name__))


def engine_with(calls: Calls | None = None, **options: Any) -> SimEngine:
    hooks = calls.hooks() if calls is not None else None
    return SimEngine(hooks=hooks, **options)
