"""The `Idempotency-Key` header store, after draft-ietf-httpapi-idempotency-key-header.

A key's first request is processed and its final status and body are kept (errors too); a retry after
it finished gets them back, a request while it still runs gets 409, the same key with a different
payload gets 422. Entries expire after the service's retention on the services' clock (24 h by default,
as Stripe keeps its keys; `set_retention` changes it per service). A key used again after it expired is
processed afresh, as a real provider would, and the store notes it in `expired`: a retry that outlived the
key is a second effect no key can prevent, and a report names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fake_services.messages import Reply, problem

__all__ = ["DEFAULT_RETENTION_S", "MAX_RETENTION_S", "IdempotencyStore", "KeyExpiry", "parse_key"]

DEFAULT_RETENTION_S = 24 * 3600.0
MAX_KEY_LENGTH = 255
#: The longest retention a service may be given: a year.
MAX_RETENTION_S = 366 * 24 * 3600.0


def parse_key(raw: str) -> str:
    """The key inside a header value: a structured-field string (`"abc"`) or a bare token (`abc`).

    Raises ValueError saying what is wrong with it.
    """
    value = raw.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            char = inner[i]
            if char == "\\":
                if i + 1 >= len(inner) or inner[i + 1] not in '"\\':
                    raise ValueError('in a quoted Idempotency-Key only \\" and \\\\ may be escaped')
                out.append(inner[i + 1])
                i += 2
                continue
            if char == '"':
                raise ValueError('an unescaped " inside a quoted Idempotency-Key; escape it as \\"')
            out.append(char)
            i += 1
        value = "".join(out)
    elif '"' in value:
        raise ValueError('a quoted Idempotency-Key must start and end with "')
    if not value:
        raise ValueError("the Idempotency-Key is empty; send a unique string such as a UUID")
    if len(value) > MAX_KEY_LENGTH:
        raise ValueError(f"the Idempotency-Key is {len(value)} characters; at most {MAX_KEY_LENGTH} allowed")
    if any(not " " <= c <= "~" for c in value):
        raise ValueError("the Idempotency-Key must be printable ASCII")
    return value


def check_retention(seconds: Any) -> float:
    """`seconds` as a retention, or ValueError saying what a retention is."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_RETENTION_S:
        raise ValueError(f"a key retention is a number of seconds above 0 and at most {MAX_RETENTION_S:g} "
                         f"(a year), got {seconds!r}")
    return float(seconds)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    created: float
    reply: Reply | None = None  # None while the first request is in flight


@dataclass(frozen=True, slots=True)
class KeyExpiry:
    """A key sent again after the service had dropped it: first used at `first_used`, sent again at
    `now` (both on the services' clock), kept `retention_s`."""

    service: str
    key: str
    first_used: float
    now: float
    retention_s: float

    @property
    def age_s(self) -> float:
        return self.now - self.first_used

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "key": self.key, "first_used": self.first_used, "now": self.now,
                "retention_s": self.retention_s}


def _problem(status: int, key: str, detail: str) -> Reply:
    return problem(status, "Request in progress" if status == 409 else "Idempotency key reused", detail)


class IdempotencyStore:
    """Keys per service. Not locked: the services' lock guards every call."""

    def __init__(self, retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.retention_s = check_retention(retention_s)
        self._retention: dict[str, float] = {}
        self._entries: dict[tuple[str, str], _Entry] = {}
        #: Keys sent again after they expired, oldest first (cleared with the keys).
        self.expired: list[KeyExpiry] = []

    def retention(self, service: str) -> float:
        """How long `service` keeps a key, in seconds."""
        return self._retention.get(service, self.retention_s)

    def set_retention(self, service: str, seconds: float | None) -> None:
        """Keep `service`'s keys `seconds` (None: back to the store's default). Keys already held are
        judged by the new retention from now on."""
        if seconds is None:
            self._retention.pop(service, None)
        else:
            self._retention[service] = check_retention(seconds)

    def claim(self, service: str, key: str, print_: str, now: float,
              refuse: Callable[[int, str, str], Reply] | None = None) -> Reply | None:
        """None if the caller now owns the key and must process the request; else the answer to give
        (`refuse(status, key, detail)` words a 409 or 422 the service's way)."""
        refuse = refuse or _problem
        entry = self._entries.get((service, key))
        if entry is not None and now - entry.created >= self.retention(service):
            if entry.reply is not None:
                self.expired.append(KeyExpiry(service, key, entry.created, now, self.retention(service)))
            entry = None
        if entry is None:
            self._entries[(service, key)] = _Entry(print_, now)
            return None
        if entry.fingerprint != print_:
            return refuse(422, key, f"the Idempotency-Key {key!r} was first used with a different payload; "
                                    "use a new key for a different request")
        if entry.reply is None:
            return refuse(409, key, f"a request with the Idempotency-Key {key!r} is still being processed; "
                                    "retry later with the same key")
        return entry.reply

    def complete(self, service: str, key: str, reply: Reply) -> None:
        entry = self._entries.get((service, key))
        if entry is not None:
            entry.reply = reply

    def release(self, service: str, key: str) -> None:
        """Forget an in-flight key whose request ended without a result (so a retry runs afresh)."""
        entry = self._entries.get((service, key))
        if entry is not None and entry.reply is None:
            del self._entries[(service, key)]

    def clear(self, service: str | None = None) -> None:
        """Forget the keys (of `service`, or all); retentions are configuration and stay."""
        if service is None:
            self._entries.clear()
            self.expired.clear()
        else:
            for pair in [p for p in self._entries if p[0] == service]:
                del self._entries[pair]
            self.expired[:] = [e for e in self.expired if e.service != service]

    def __len__(self) -> int:
        return len(self._entries)
