"""What the explorer noticed that may make a verdict less than it seems, said as warnings in the report.

- A job left threads running after its attempt ended: what they do later is outside the attempts the
  harness faults and judges, and a non-daemon thread keeps the process alive.
- Service calls were made while no attempt ran: they count as effects, but no fault could strike them.
- Target code holds a database connection at module level and the scenario has no `reset`: after an
  injected crash the next attempt reuses that process state (an open transaction, a half-done unit of
  work), which a real worker's death would have dropped, so stories can be false.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.explore.runner import RunResult
    from harness.explore.scenario import Scenario

__all__ = ["notices", "open_connections"]

#: (module prefix, class names) of database handles that hold connections or transactions.
_HANDLES = (
    ("sqlalchemy", ("Engine", "Connection", "Session", "scoped_session", "AsyncEngine", "AsyncSession")),
    ("psycopg", ("Connection", "AsyncConnection", "ConnectionPool")),
    ("psycopg2", ("connection",)),
    ("pymysql", ("Connection",)),
    ("MySQLdb", ("Connection",)),
)


def _is_handle(value: Any) -> bool:
    if isinstance(value, sqlite3.Connection):
        return True
    cls = type(value)
    module = cls.__module__ or ""
    return any(module.split(".", 1)[0] == prefix and cls.__name__ in names for prefix, names in _HANDLES)


def open_connections(modules: Iterable[ModuleType]) -> list[str]:
    """`module.name (Class)` for each database handle kept at module level in `modules`."""
    found = []
    for module in modules:
        for name, value in sorted(vars(module).items()):
            if name.startswith("__"):
                continue
            try:
                handle = _is_handle(value)
            except Exception:  # an object whose type cannot be read is no connection of interest
                continue
            if handle:
                found.append(f"{module.__name__}.{name} ({type(value).__name__})")
    return found


def notices(
    scenario: Scenario, baseline: RunResult, results: Sequence[RunResult], modules: Iterable[ModuleType]
) -> list[str]:
    """The warnings for one exploration: from its clean run, the plans it ran, and the target modules."""
    said: list[str] = []
    threads = sorted({name for e in baseline.executions for name in e.threads_left})
    if threads:
        said.append(
            f"the clean run's attempts left {len(threads)} thread(s) running ({', '.join(threads[:5])}): what "
            "they do after an attempt ends is outside what the harness faults and judges, and a non-daemon "
            "thread keeps the worker alive"
        )
    outside: Counter[str] = Counter()
    plans = 0
    for result in (baseline, *results):
        if result.outside_calls:
            plans += 1
            outside.update(result.outside_calls)
    if outside:
        calls = ", ".join(f"{name} ({n} times)" if n > 1 else name for name, n in outside.most_common(5))
        said.append(
            f"{sum(outside.values())} service call(s) in {plans} run(s) were made while no attempt ran ({calls}): "
            "by a thread a job left running? They count as effects, but no fault can strike them"
        )
    if scenario.reset is None:
        held = open_connections(modules)
        if held:
            said.append(
                f"target code keeps database connections at module level ({', '.join(held[:5])}) and the "
                "scenario has no `reset`: after an injected crash the next attempt reuses that process state "
                "(an open transaction, say), which a real worker's death would have dropped. Give "
                "Scenario(reset=...) that rolls back and closes them, or stories may be false"
            )
    return said
