"""The plain request and reply objects the services' core speaks, and helpers to build replies.

The ASGI app and the in-process transport both translate to and from these, so the core never sees a
framework type. A reply may also carry an `action` (drop the connection, time out) that each skin
renders in its own way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["Call", "Reply", "acceptable", "html", "json_reply", "problem"]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"

# Media ranges that admit a JSON or an HTML answer (the seed accepts application/json, */* and text/html).
_ACCEPTABLE = frozenset({"application/json", "*/*", "text/html", "application/*", "text/*",
                         "application/problem+json"})


@dataclass(slots=True)
class Call:
    """One HTTP request: header names are lower-case; `query` holds the last value of each parameter."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def build(cls, method: str, path: str, query_string: str | bytes = b"",
              headers: dict[str, str] | None = None, body: bytes = b"") -> Call:
        if isinstance(query_string, bytes):
            query_string = query_string.decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        return cls(method.upper(), path or "/", query, headers or {}, body)


@dataclass(slots=True)
class Reply:
    """What the core answers. `action` is None for a normal response, or "drop" / "timeout" (with the
    fault's `phase`, which an in-process skin uses to pick the exception a real client would see)."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    timeout_s: float = 0.0
    phase: str | None = None

    def header_list(self) -> list[tuple[str, str]]:
        items = [("content-type", self.content_type)] if self.content_type else []
        items.extend(self.headers.items())
        return items

    def json(self) -> Any:
        return json.loads(self.body)


# Built once: `json.dumps` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, _ENCODER.encode(payload).encode(), JSON, headers or {})


def problem(status: int, title: str, detail: str, **extra: Any) -> Reply:
    """An RFC 9457 problem body: `title` names the kind of error, `detail` says what to change."""
    payload = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Reply(status, json.dumps(payload).encode(), PROBLEM_JSON)


def html(text: str, status: int = 200) -> Reply:
    return Reply(status, text.encode(), "text/html; charset=utf-8")


def acceptable(accept: str | None) -> bool:
    """True when an Accept header admits JSON or HTML (a missing header admits anything)."""
    if not accept:
        return True
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _ACCEPTABLE:
            return True
    return False
