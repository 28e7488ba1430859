"""Reading request bodies: the media types routes can take, and the bounds every body is held to.

A route declares the media types it takes (`JSON`, `FORM`); the front door picks the reader here by the
request's Content-Type. Whatever a reader accepts can be stored, echoed, journalled and shown on a page
without failing later: JSON is refused when it nests deeper than `MAX_DEPTH`, holds a lone UTF-16
surrogate (not text any encoder can write), or a number that is not finite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fake_services.messages import Call, Reply, problem

__all__ = ["FORM", "JSON", "MAX_BODY_BYTES", "MAX_DEPTH", "BodyError", "UnsupportedMedia", "integer", "media_type",
           "parse_seconds", "read", "read_body", "read_form", "read_json", "too_large"]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
#: The largest body read (1 MiB): a bigger one is answered 413 without being read whole.
MAX_BODY_BYTES = 1 << 20
#: How deeply JSON arrays and objects may nest: far beyond any real payload, far below Python's limits.
MAX_DEPTH = 32


def integer(value: Any) -> int | None:
    """`value` as an int when JSON Schema calls it an integer (2 and 2.0; never true), else None.

    Clients written in JavaScript cannot tell 2 from 2.0, and schema-driven ones send either; counts,
    amounts and ids take both. Status codes do not (see `Behaviour.update`).
    """
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


class BodyError(ValueError):
    """The body cannot be taken; the message says why and what to send instead."""


def _reject_constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"the number {text} is too large to be a finite number")
    return value


# Built once: `json.loads` with options builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
# Encoding with ensure_ascii=False fails on exactly the strings no UTF-8 writer can take.
_TEXT_CHECK = json.JSONEncoder(ensure_ascii=False, check_circular=False)


def _depth(value: Any) -> int:
    """How deeply `value` nests (a scalar: 0); stops counting once past MAX_DEPTH."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def read_json(raw: bytes) -> Any:
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except RecursionError:
        raise BodyError(f"the JSON nests too deeply; at most {MAX_DEPTH} levels are allowed") from None
    except BodyError:
        raise
    except ValueError as exc:  # includes UnicodeDecodeError
        raise BodyError(f"send a JSON body ({exc})") from None
    # Cheap byte counts first: a body with few brackets cannot nest deeply, one without \u escapes
    # cannot hold a surrogate (raw bytes that encode one are refused by the UTF-8 decoder above).
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise BodyError(f"the JSON nests more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} are allowed")
    if b"\\u" in raw:
        try:
            _TEXT_CHECK.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start:exc.end]
            raise BodyError(f"a string holds a lone UTF-16 surrogate ({bad!r}), which is not text; "
                            "escape characters outside the BMP as a surrogate pair") from None
    return value


def read_form(raw: bytes) -> dict[str, str]:
    """An HTML form's fields (the last value of each); percent-escapes must decode to UTF-8."""
    try:
        return dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise BodyError("the form is not URL-encoded UTF-8 text") from None


_READERS: dict[str, Callable[[bytes], Any]] = {JSON: read_json, FORM: read_form}


def media_type(content_type: str | None) -> tuple[str | None, str | None]:
    """The media type of a Content-Type header, lower-case, and its charset (None when absent)."""
    if not content_type:
        return None, None
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def read(raw: bytes, content_type: str | None, accepts: tuple[str, ...]) -> Any:
    """The body as the route takes it. A missing Content-Type means the route's first media type.

    Raises `BodyError` for a body that is not what it claims; `UnsupportedMedia` for a type the route
    does not take.
    """
    if content_type == JSON and accepts[0] == JSON:  # the common case, at the cost of one comparison
        return read_json(raw)
    media, charset = media_type(content_type)
    if media is None:
        media = accepts[0]
    elif media not in accepts and not (media.endswith("+json") and JSON in accepts):
        raise UnsupportedMedia(media, accepts)
    if charset not in (None, "utf-8", "utf8") and media != FORM:
        raise UnsupportedMedia(f"{media}; charset={charset}", accepts)
    return _READERS[JSON if media.endswith("json") else media](raw)


class UnsupportedMedia(Exception):
    """A Content-Type the route does not take (answered 415)."""

    def __init__(self, media: str, accepts: tuple[str, ...]) -> None:
        super().__init__(f"this route takes {' or '.join(accepts)} bodies, got {media}; "
                         f"send Content-Type: {accepts[0]}")


_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def parse_seconds(text: str) -> float | None:
    """A plain decimal number ("10", "1.5", ".5"), or None: float() would also take "1_0", " 5 ", "1e308"
    and "infinity"."""
    return float(text) if _NUMBER.fullmatch(text) else None


def too_large(limit: int) -> Reply:
    return problem(413, "Body too large", f"the body is over {limit} bytes; send at most {limit}")


def read_body(call: Call, accepts: tuple[str, ...], limit: int) -> Any:
    """The body of `call` as a route that takes `accepts` reads it; a Reply (413, 415, 422) when it cannot."""
    raw = call.body
    if len(raw) > limit:
        return too_large(limit)
    try:
        return read(raw, call.headers.get("content-type"), accepts)
    except UnsupportedMedia as exc:
        return problem(415, "Unsupported media type", f"{call.method} {call.path}: {exc}")
    except BodyError as exc:
        return problem(422, "Invalid request body", str(exc))
