"""What the front door and the pages need of the services they serve, as protocols.

`FakeServices` (in `state`) owns the front door, which owns the control API, which owns the pages' form
handlers. Each of those works on the object above it through the protocol here, so no module imports the
one that builds it, and `state` stays the top of the package.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from fake_services.behaviours import Behaviour, FaultRule
from fake_services.clock import Clock
from fake_services.idempotency import IdempotencyStore
from fake_services.journal import Journal, JournalEntry
from fake_services.service import Service

__all__ = ["BodyLimit", "ControlPlane", "Hub"]


class Hub(Protocol):
    """A set of fake services sharing a clock, a journal, idempotency keys and fault schedules."""

    clock: Clock
    lock: threading.RLock
    services: dict[str, Service]
    behaviours: dict[str, Behaviour]
    journal: Journal
    idempotency: IdempotencyStore

    def schedule(self, service: str, rule: FaultRule) -> str: ...
    def faults(self, service: str) -> list[dict[str, Any]]: ...
    def clear_faults(self, service: str | None = None) -> None: ...
    def remove_fault(self, service: str, rule_id: str) -> bool: ...
    def pick_fault(self, service: str, operation: str) -> FaultRule | None: ...
    def key_retention(self, service: str) -> float: ...
    def set_key_retention(self, service: str, seconds: float | None) -> None: ...
    def effects(self) -> list[JournalEntry]: ...
    def reset(self, service: str | None = None) -> None: ...
    def service(self, name: str) -> Service: ...
    def coin(self) -> str: ...
    def random_slowness(self) -> float: ...


class BodyLimit(Protocol):
    """Where the control API reads the largest body it takes (the front door sets it)."""

    max_body_bytes: int


class ControlPlane(Protocol):
    """What the pages' form handlers use of the control API."""

    services: Hub

    def operations(self, service: str) -> list[str]: ...
    def schedule(self, service: str, fields: Any) -> dict[str, Any]: ...
