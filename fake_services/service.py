"""What every fake service shares: its routes, its records, its id source, and input checks.

A service is plain synchronous Python. `FakeServices` owns the lock; the call pipeline (`calls.py`) runs a
route's handler with the parsed body while holding it, so handlers only read and write their own records.
A route declares the body media types it takes; the front door reads the body accordingly.
"""

from __future__ import annotations

import copy
import random
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from fake_services.bodies import integer
from fake_services.messages import Call, Reply, json_reply, problem

__all__ = ["BadInput", "Outcome", "Route", "Service"]


# ASCII whitespace only, spelled out: regular expression dialects disagree on what \s covers (Python's
# takes U+001C..U+001F, JSON Schema's ECMA dialect does not), and the OpenAPI document uses this class.
_NOT_BLANK = re.compile(r"[^ \t\n\r\f\v]")


class BadInput(ValueError):
    """Raised by a handler for a malformed or missing field; becomes a 422 problem naming the field."""


class Outcome(NamedTuple):
    reply: Reply
    effect: bool


Handler = Callable[[Call, Any], Outcome]


class Route(NamedTuple):
    """One endpoint of a service. `accepts` names the body media types it takes, the first being what a
    body without a Content-Type is read as (`fake_services.bodies` has a reader for each)."""

    operation: str
    handler: Handler | None  # None: the service's HTML page, rendered by the front door
    ok_status: int
    keyed: bool = False  # honours the Idempotency-Key header
    accepts: tuple[str, ...] = ("application/json",)


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

    def operations(self) -> list[str]:
        """The operations a fault rule can watch (the service's page is never faulted)."""
        return sorted({route.operation for route in self.routes.values() if route.operation != "ui"})

    def records(self) -> list[dict[str, Any]]:
        """A copy of what the service stored, oldest first."""
        with self.lock:
            return [_copied(record) for record in self._records]

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

    # -- routing -------------------------------------------------------------------------------------
    def resolve(self, method: str, rest: str) -> Route | None:
        """The route answering `method /{name}/{rest}`: an exact path, or a template whose `{name}`
        segments match any one non-empty segment (`v1/charges/{charge}`)."""
        route = self.routes.get((method, rest))
        if route is not None or "/" not in rest:
            return route
        for (verb, path), candidate in self.routes.items():
            if verb == method and "{" in path and _fits(path, rest):
                return candidate
        return None

    def methods_for(self, rest: str) -> list[str]:
        """The methods some route answers at `rest` (for a 405's Allow header)."""
        return sorted({verb for verb, path in self.routes if path == rest or ("{" in path and _fits(path, rest))})

    def key_refusal(self, status: int, key: str, detail: str) -> Reply:
        """The answer to a request whose Idempotency-Key cannot be honoured now: 409 (its first request is
        still running) or 422 (it came first with another payload). A service with its own error shape
        (Stripe's) answers in it."""
        title = "Request in progress" if status == 409 else "Idempotency key reused"
        return problem(status, title, detail)

    # -- common routes -------------------------------------------------------------------------------
    def _status(self, call: Call, body: Any) -> Outcome:
        return Outcome(Reply(200, b"", None), False)

    def _list(self, call: Call, body: Any) -> Outcome:
        return Outcome(json_reply(200, self._records), False)

    def _clear(self, call: Call, body: Any) -> Outcome:
        count = self.clear()
        return Outcome(json_reply(200, {"cleared": count}), count > 0)


def _fits(template: str, rest: str) -> bool:
    want, got = template.split("/"), rest.split("/")
    return len(want) == len(got) and all(
        w == g or (w.startswith("{") and w.endswith("}") and g != "") for w, g in zip(want, got, strict=True)
    )


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
    if isinstance(value, str):
        return value
    number = integer(value)
    if number is None:
        raise BadInput(f"{name} must be a string or an integer, got {type(value).__name__}")
    return number


def whole(body: dict[str, Any], name: str, *, minimum: int) -> int:
    value = body.get(name)
    if value is None:
        raise BadInput(f"{name} is required")
    number = integer(value)
    if number is None:
        raise BadInput(f"{name} must be an integer, got {type(value).__name__}")
    if number < minimum:
        raise BadInput(f"{name} must be at least {minimum}, got {value}")
    return number


def mapping(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def blank(value: Any) -> bool:
    """None, or a string of nothing but ASCII whitespace (as Ruby's `strip` sees it, the seed's rule)."""
    return value is None or (isinstance(value, str) and _NOT_BLANK.search(value) is None)


def scalar_keys(source: Any, *names: str) -> dict[str, Any]:
    """The named fields of `source` that are present and JSON scalars (safe on any input)."""
    if not isinstance(source, dict):
        return {}
    return {n: source[n] for n in names if isinstance(source.get(n), str | int | float | bool)}


def bad_input(exc: BadInput) -> Reply:
    return problem(422, "Invalid request body", str(exc))


def _copied(value: Any) -> Any:
    """A deep copy of a record: JSON's shapes copied by hand (a fifth of `copy.deepcopy`'s cost), anything
    else by `copy.deepcopy`."""
    kind = type(value)
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}
    if kind is list:
        return [_copied(item) for item in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)
