"""The ordered record of every request the services answered, with what was done and what went wrong.

Invariants read it to count effects per business key, and the explorer reads it to find the calls a
job made; so `keys` hold only business fields, never generated ids or times.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Journal", "JournalEntry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request: `fault` is what was applied (None if nothing), `effect` whether state changed,
    `status` the HTTP status, or None when the connection was dropped or timed out."""

    seq: int
    time: float
    service: str
    operation: str
    keys: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None
    phase: str | None = None
    effect: bool = False
    status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """Append-only, thread-safe; `seq` counts from 1 and restarts on `clear()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []

    def append(self, time: float, service: str, operation: str, keys: dict[str, Any], fault: str | None,
               phase: str | None, effect: bool, status: int | None) -> JournalEntry:
        with self._lock:
            entry = JournalEntry(len(self._entries) + 1, time, service, operation, keys, fault, phase,
                                 effect, status)
            self._entries.append(entry)
            return entry

    def entries(self, since: int = 0) -> list[JournalEntry]:
        """Entries with `seq` greater than `since`, oldest first."""
        with self._lock:
            return self._entries[since:] if since > 0 else list(self._entries)

    def effects(self) -> list[JournalEntry]:
        with self._lock:
            return [e for e in self._entries if e.effect]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
