"""What every fake service shares: its routes, its records, its id source, and input checks.

A service is plain synchronous Python. `FakeServices` owns the lock and calls a route's handler with the
parsed body while holding it, so handlers only read and write their own records.
"""

from __future__ import annotations

import copy
import random
import secrets
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from fake_services.messages import Call, Reply, json_reply, problem

__all__ = ["BadInput", "Outcome", "Route", "Service"]


class BadInput(ValueError):
    """Raised by a handler for a malformed or missing field; becomes a 422 problem naming the field."""


class Outcome(NamedTuple):
    reply: Reply
    effect: bool


Handler = Callable[[Call, Any], Outcome]


class Route(NamedTuple):
    operation: str
    handler: Handler | None  # None: answered by FakeServices (the HTML page)
    ok_status: int
    keyed: bool = False  # honours the Idempotency-Key header


class Service:
    """Base class: subclasses set the class attributes and add their own routes in `__init__`."""

    name = ""  # as in URLs, behaviours and the journal: "error-catcher"
    title = ""
    id_prefix = ""
    collection = ""  # the path of the list/clear endpoint, e.g. "charges"
    columns: tuple[str, ...] = ()

    def __init__(self, seed: int | None, clock: Any) -> None:
        self.seed = seed
        self.clock = clock
        #: `FakeServices` replaces this with its own lock, so one lock guards every service.
        self.lock: threading.RLock | Any = threading.RLock()
        self._records: list[dict[str, Any]] = []
        self._rng = random.Random()
        self.reseed()
        self.routes: dict[tuple[str, str], Route] = {
            ("GET", "status"): Route("status", self._status, 200),
            ("GET", self.collection): Route("list", self._list, 200),
            ("DELETE", self.collection): Route("clear", self._clear, 200),
            ("GET", "ui"): Route("ui", None, 200),
        }

    # -- state ---------------------------------------------------------------------------------------
    def reseed(self) -> None:
        if self.seed is not None:
            self._rng.seed(f"{self.seed}:{self.name}")

    def new_id(self) -> str:
        if self.seed is None:
            return f"{self.id_prefix}_{secrets.token_hex(4)}"
        return f"{self.id_prefix}_{self._rng.getrandbits(32):08x}"

    def records(self) -> list[dict[str, Any]]:
        """A copy of what the service stored, oldest first."""
        with self.lock:
            return copy.deepcopy(self._records)

    def clear(self) -> int:
        """Forget every record; returns how many there were."""
        with self.lock:
            count = len(self._records)
            self._records.clear()
            return count

    def reset(self) -> None:
        self.clear()
        self.reseed()

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        """The business fields of a request, for the journal (never generated ids or times)."""
        return {}

    # -- common routes -------------------------------------------------------------------------------
    def _status(self, call: Call, body: Any) -> Outcome:
        return Outcome(Reply(200, b"", None), False)

    def _list(self, call: Call, body: Any) -> Outcome:
        return Outcome(json_reply(200, self._records), False)

    def _clear(self, call: Call, body: Any) -> Outcome:
        count = self.clear()
        return Outcome(json_reply(200, {"cleared": count}), count > 0)


# -- input checks shared by the services ---------------------------------------------------------------
def obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


def ident(body: dict[str, Any], name: str) -> str | int:
    """A required identifier: a non-empty string or an integer."""
    value = body.get(name)
    if value is None or value == "":
        raise BadInput(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadInput(f"{name} must be a string or an integer, got {type(value).__name__}")
    return value


def whole(body: dict[str, Any], name: str, *, minimum: int) -> int:
    value = body.get(name)
    if value is None:
        raise BadInput(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise BadInput(f"{name} must be at least {minimum}, got {value}")
    return value


def mapping(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def scalar_keys(source: Any, *names: str) -> dict[str, Any]:
    """The named fields of `source` that are present and JSON scalars (safe on any input)."""
    if not isinstance(source, dict):
        return {}
    return {n: source[n] for n in names if isinstance(source.get(n), str | int | float | bool)}


def bad_input(exc: BadInput) -> Reply:
    return problem(422, "Invalid request body", str(exc))
