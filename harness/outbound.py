"""Outbound calls: every HTTP request a job makes, through any client, answered in-process or refused.

Production jobs build their own clients: a module-level `httpx.Client(base_url="https://api.stripe.com")`,
`requests.post(...)`, the `stripe` package. While a world's `Outbound` is active (the explorer turns it on
around every run), those requests never reach the network:

- a host **mapped** to the fake services (`outbound.map("https://api.stripe.com", "stripe")`) is answered
  by them in-process, through the same pipeline as `world.http` (behaviours, fault rules, the journal);
  the fakes' own names are mapped from the start (`http://fake-services`, `http://payments`, ...);
- a **route** the user declares (`outbound.route("POST", "https://partner.example/hooks/*", status=202)`)
  is answered with its canned response by a small service named after the host, so its calls are journaled,
  counted as effects when the method is not safe, and faulted like the fakes' calls;
- loopback addresses pass through (a `harness serve` on this machine, a local Redis or PostgreSQL), and
  so does anything `outbound.allow(...)` names;
- anything else is **refused**: the client sees a connection error whose message says how to map or route
  the host, the refusal is kept in `outbound.refused`, and the explorer reports it (the clean run fails
  with "made a request nobody routed"; a plan that makes one is a finding).

The interception sits where each library sends (httpx's `HTTPTransport.handle_request` and its async twin,
requests' `HTTPAdapter.send`), so clients made before the world existed are covered, and a last guard on
`socket.socket.connect` refuses other clients' connections to non-loopback addresses. The patches are
process-wide while at least one `Outbound` is active; the innermost active one answers.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from fake_services.messages import JSON, Call, Reply, json_reply
from fake_services.service import Outcome, Route, Service
from harness._outbound_clients import Refused
from harness.errors import ConfigurationError

if TYPE_CHECKING:
    from fake_services.state import FakeServices

__all__ = ["IDEMPOTENT_METHODS", "UNSAFE_METHODS", "Outbound", "Refusal", "RoutedHost"]

#: Methods whose call changes the far side's state (their route calls are effects).
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Of those, the ones HTTP defines as idempotent: the same request again changes nothing more.
IDEMPOTENT_METHODS = frozenset({"PUT", "DELETE"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Refusal(NamedTuple):
    """A request nobody routed, refused before it left the machine."""

    method: str
    url: str
    client: str  # "http", "socket" or "smtp"

    def __str__(self) -> str:
        return f"{self.method} {self.url}" if self.method else self.url

    def message(self) -> str:
        """What the job's client sees: what happened and the two ways to fix it."""
        if self.client == "smtp":
            address = self.url.removeprefix("smtp://")
            return (f"the harness refused an SMTP connection to {address} (never sent): no fake answers it. "
                    f"Map it to the email fake, e.g. world.outbound.map_smtp({address!r})")
        parts = urlsplit(self.url if "://" in self.url else f"http://{self.url}")
        origin = f"{parts.scheme}://{parts.netloc}"
        return (f"the harness refused {self} (never sent): no fake service is mapped to {origin} and no "
                f"route matches it. Map it to a fake, e.g. world.outbound.map({origin!r}, 'payments'), or "
                f"declare a route, e.g. world.outbound.route({(self.method or 'POST')!r}, {self.url!r}, "
                "status=200)")


class Origin(NamedTuple):
    """Scheme, lower-case host and port (the scheme's default when the URL gives none)."""

    scheme: str
    host: str
    port: int


def _origin(parts: SplitResult) -> Origin:
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower()
    return Origin(scheme, host, parts.port or _DEFAULT_PORTS.get(scheme, 0))


def _parse(url: str, what: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} takes an http(s) URL with a host, like 'https://api.example.com'; "
                                 f"got {url!r}")
    return parts


@dataclass(frozen=True)
class _Mapping:
    origin: Origin
    prefix: str  # the path the mapping covers ("" for the whole origin)
    service: str | None  # None: the whole of the fake services, paths as they are

    def path_for(self, path: str) -> str | None:
        """The fake services' path for a request path under this mapping, or None when outside it."""
        if self.prefix and not (path == self.prefix or path.startswith(self.prefix + "/")):
            return None
        rest = path[len(self.prefix):] or "/"
        return f"/{self.service}{rest}" if self.service else rest


@dataclass
class _DeclaredRoute:
    method: str  # "*" for any
    pattern: str  # the URL without query, with shell-style wildcards
    service: str
    operation: str
    status: int
    body: bytes
    content_type: str | None
    headers: dict[str, str]
    idempotent: bool
    keys: tuple[str, ...] | None  # the journal keys kept (None: every scalar)

    def matches(self, method: str, url: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(url, self.pattern)


class RoutedHost(Service):
    """The requests a job made to one declared host: each route answers its canned response, and a call
    whose method is not safe is recorded (the host's `requests` list) and journaled as an effect, except
    when an idempotent route gets a request it already had (the same method, URL and body)."""

    title = "Declared routes"
    id_prefix = "rq"
    collection = "requests"
    columns = ("method", "url", "body")

    def __init__(self, name: str, seed: int | None, clock: Any) -> None:
        self.name = name
        super().__init__(seed, clock)
        self._seen: set[tuple[str, str, str]] = set()
        self._kept: dict[str, tuple[str, ...] | None] = {}

    def clear(self) -> int:
        with self.lock:
            self._seen.clear()
            return super().clear()

    def declare(self, route: _DeclaredRoute) -> None:
        methods = sorted(UNSAFE_METHODS | {"GET", "HEAD", "OPTIONS"}) if route.method == "*" else [route.method]
        for method in methods:
            self.routes[(method, route.operation)] = Route(route.operation, self._answer(route), route.status)
        self._kept[route.operation] = route.keys

    def _answer(self, route: _DeclaredRoute) -> Any:
        def answer(call: Call, body: Any) -> Outcome:
            url = call.headers.get("x-outbound-url", "")
            effect = call.method in UNSAFE_METHODS
            if effect and route.idempotent:
                seen = (call.method, url, json.dumps(body, sort_keys=True, default=str))
                effect = seen not in self._seen
                self._seen.add(seen)
            if effect:
                self._records.append({"method": call.method, "url": url, "body": body, "time": self.clock.time()})
            return Outcome(Reply(route.status, route.body, route.content_type, dict(route.headers)), effect)

        return answer

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        """The scalars of the query and of a JSON or form body, nested names dotted (`order.id`); only the
        names the route keeps, when it says."""
        keys: dict[str, Any] = dict(call.query)
        _flatten(body, "", keys, depth=0)
        kept = self._kept.get(operation)
        return keys if kept is None else {name: keys[name] for name in kept if name in keys}


def _flatten(value: Any, prefix: str, into: dict[str, Any], *, depth: int) -> None:
    if depth > 4:
        return
    if isinstance(value, dict):
        for name, item in value.items():
            _flatten(item, f"{prefix}{name}.", into, depth=depth + 1)
    elif prefix and (value is None or isinstance(value, (str, int, float, bool))):
        into[prefix[:-1]] = value


def _read_body(raw: bytes, content_type: str | None) -> Any:
    """A declared route's request body as the journal shows it: JSON, a form, or text."""
    if not raw:
        return None
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    text = raw.decode("utf-8", "replace")
    if kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        return dict(parse_qsl(text, keep_blank_values=True))
    if kind.endswith("json") or not kind:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


@dataclass
class _Answer:
    """How one request is answered: by the fake services at `path`, or by a declared `route`."""

    path: str
    route: _DeclaredRoute | None = None


class Outbound:
    """What a world's jobs reach over HTTP while it runs; see the module's docstring."""

    def __init__(self, services: FakeServices) -> None:
        from fake_services.state import SERVICE_NAMES

        self.services = services
        self._mappings: list[_Mapping] = []
        self._routes: list[_DeclaredRoute] = []
        self._allowed: list[Origin] = []
        self._default_hosts = {"fake-services", *SERVICE_NAMES}
        self._smtp_hosts: set[str] = set()
        #: Requests refused since the last `reset()`, oldest first.
        self.refused: list[Refusal] = []
        self._lock = threading.Lock()

    # -- declaring ------------------------------------------------------------------------------------
    def map(self, url: str, service: str | None = None) -> None:
        """Answer requests under `url` by the fake `service` (its API under `/{service}/`), or, without a
        service, by the whole of the fake services with the paths as they come."""
        parts = _parse(url, "outbound.map")
        if service is not None and service not in self.services.services:
            raise ConfigurationError(f"outbound.map: there is no fake service {service!r}; the services are "
                                     f"{', '.join(self.services.services)}")
        name = None if service is None else self.services.services[service].name
        mapping = _Mapping(_origin(parts), parts.path.rstrip("/"), name)
        # The longest prefix wins, whatever the order of the calls.
        self._mappings.append(mapping)
        self._mappings.sort(key=lambda m: len(m.prefix), reverse=True)

    def route(self, method: str, url: str, *, status: int = 200, json: Any = None, text: str | None = None,
              headers: dict[str, str] | None = None, name: str | None = None, service: str | None = None,
              keys: tuple[str, ...] | list[str] | None = None, idempotent: bool | None = None) -> None:
        """Answer `method url` (shell-style wildcards in the URL, `*` for any method) with a canned response.

        The calls are made to `service` (default: the URL's host), operation `name` (default: the path),
        journaled with the body's and query's scalars as keys (only those named in `keys`, when given);
        the explorer faults them like any fake's calls. A POST, PUT, PATCH or DELETE is an effect; on an
        `idempotent` route (by default PUT and DELETE, as HTTP defines them) the same request again is not.
        """
        parts = _parse(url, "outbound.route")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigurationError(f"outbound.route: status must be an HTTP status from 100 to 599, got "
                                     f"{status!r}")
        if json is not None and text is not None:
            raise ConfigurationError("outbound.route takes json= or text=, not both")
        verb = method.upper()
        if service is not None and (not service or "/" in service or service != service.strip()):
            raise ConfigurationError(f"outbound.route: service= names the journal's service, a word without "
                                     f"'/' or spaces around it; got {service!r}")
        host = service or (parts.hostname or "").lower()
        operation = name or parts.path.strip("/") or "root"
        if json is not None:
            body, content_type = json_reply(status, json).body, JSON
        elif text is not None:
            body, content_type = text.encode(), "text/plain; charset=utf-8"
        else:
            body, content_type = b"", None
        pattern = f"{parts.scheme}://{parts.netloc.lower()}{parts.path or '/'}"
        if idempotent is None:
            idempotent = verb in IDEMPOTENT_METHODS
        declared = _DeclaredRoute(verb, pattern, host, operation, status, body, content_type,
                                  dict(headers or {}), idempotent, None if keys is None else tuple(keys))
        existing = self.services.services.get(host)
        if existing is None:
            existing = RoutedHost(host, self.services.seed, self.services.clock)
            self.services.add(existing)
        elif not isinstance(existing, RoutedHost):
            raise ConfigurationError(f"outbound.route: {host!r} is the name of a fake service; map it instead "
                                     f"(outbound.map({url!r}, {host!r}))")
        existing.declare(declared)
        self._routes.insert(0, declared)  # the latest declaration wins, as in respx

    def map_smtp(self, *addresses: str) -> None:
        """Answer SMTP connections to each `host:port` (or `host`, any port) with the email fake, in-process:
        `smtplib.SMTP` and Django's `send_mail` reach it unchanged (see `fake_services.smtp_inprocess`)."""
        for address in addresses:
            host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
            if not host or (port and not port.isdigit()) or "/" in address:
                raise ConfigurationError(f"outbound.map_smtp takes 'host:port' or 'host', like "
                                         f"'smtp.example.com:587'; got {address!r}")
            self._smtp_hosts.add(address.lower())

    def allow(self, url: str) -> None:
        """Let requests and connections to `url`'s host and port through to the network: an API you mean
        to reach (`https://...`), or a broker or database on another host (`redis://redis:6379`, any port
        when the URL gives none and its scheme has no default). Loopback is always let through."""
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            raise ConfigurationError(f"outbound.allow takes a URL with a scheme and a host, like "
                                     f"'redis://redis:6379' or 'https://api.example.com'; got {url!r}")
        self._allowed.append(_origin(parts))

    def reset(self) -> None:
        """Forget the refusals (mappings and routes stay: they are configuration)."""
        with self._lock:
            self.refused.clear()

    # -- answering ------------------------------------------------------------------------------------
    def decide(self, method: str, url: str) -> _Answer | None:
        """How to answer `method url`: an `_Answer`, or None to let it through to the network. Raises
        `Refused` (recorded in `refused`) when nothing routes it."""
        parts = urlsplit(url)
        origin = _origin(parts)
        return self.decide_parts(method, origin.scheme, origin.host, origin.port, parts.netloc.lower(),
                                 parts.path or "/", lambda: url.split("?", 1)[0])

    def decide_parts(self, method: str, scheme: str, host: str, port: int, netloc: str, path: str,
                     bare: Callable[[], str]) -> _Answer | None:
        """`decide` for a URL a client has already taken apart: lower-case scheme and host, the port (the
        scheme's default when the URL has none), `bare()` the URL without its query (for a refusal)."""
        origin = Origin(scheme, host, port)
        for mapping in self._mappings:
            if mapping.origin == origin:
                mapped = mapping.path_for(path)
                if mapped is not None:
                    return _Answer(mapped)
        if self._routes:
            target = f"{origin.scheme}://{netloc}{path}"
            for route in self._routes:
                if route.matches(method, target):
                    return _Answer(f"/{route.service}/{route.operation}", route)
        if origin.host in self._default_hosts:
            return _Answer(path if origin.host == "fake-services" else f"/{origin.host}{path}")
        if origin in self._allowed or _is_local(origin.host):
            return None
        raise self.refuse(method, bare(), "http")

    def refuse(self, method: str, url: str, client: str) -> Refused:
        refusal = Refusal(method, url, client)
        with self._lock:
            self.refused.append(refusal)
        return Refused(refusal)

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes, decided: _Answer,
               query: str | bytes | None = None) -> Reply:
        """The fake services' reply to a request `decide` routed (`query`: the URL's, when already split)."""
        if query is None:
            query = urlsplit(url).query
        if decided.route is None:
            return self.services.handle(Call.build(method, decided.path, query, headers, body))
        service = self.services.services[decided.route.service]
        call = Call.build(method, decided.path, query, {**headers, "x-outbound-url": url.split("?", 1)[0]},
                          body)
        route = service.routes[(call.method, decided.route.operation)]
        parsed = _read_body(body, headers.get("content-type"))
        return self.services.front.calls.serve(service, route, call, parsed, None)

    def allows_connection(self, host: str, port: int) -> bool:
        """Whether the socket guard lets a connection to `host:port` through."""
        if _is_local(host):
            return True
        return any(a.host == host.lower() and a.port in (port, 0) for a in self._allowed)

    # -- switching on -----------------------------------------------------------------------------------
    @contextmanager
    def active(self) -> Iterator[Outbound]:
        """Intercept every outbound request while the block runs (nesting is fine)."""
        from fake_services.smtp_inprocess import smtp_in_process

        _activate(self)
        try:
            with smtp_in_process(self.services, self._smtp_hosts, on_refused=self._smtp_refused,
                                 let_through=self.allows_connection):
                yield self
        finally:
            _deactivate(self)

    def _smtp_refused(self, address: str) -> None:
        self.refuse("", f"smtp://{address}", "smtp")


def _is_local(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


# -- the patches ------------------------------------------------------------------------------------------
_patch_lock = threading.RLock()
_stack: list[Outbound] = []
_originals: dict[str, Any] = {}


def current() -> Outbound | None:
    """The innermost active `Outbound`, if any."""
    return _stack[-1] if _stack else None


def _activate(outbound: Outbound) -> None:
    with _patch_lock:
        if not _stack:
            _install()
        _stack.append(outbound)


def _deactivate(outbound: Outbound) -> None:
    with _patch_lock:
        for i in range(len(_stack) - 1, -1, -1):
            if _stack[i] is outbound:
                del _stack[i]
                break
        if not _stack:
            _uninstall()


def _install() -> None:
    from harness._outbound_clients import patches

    for name, (owner, attribute, replacement) in patches(current, original).items():
        # `socket.socket` inherits `connect` from the C type: put back what was there, or nothing.
        _originals[name] = (owner, attribute, getattr(owner, attribute), attribute in owner.__dict__)
        setattr(owner, attribute, replacement)


def _uninstall() -> None:
    for owner, attribute, saved, own in _originals.values():
        if own:
            setattr(owner, attribute, saved)
        else:
            delattr(owner, attribute)
    _originals.clear()


def original(name: str) -> Any:
    """The library's own function a patch replaced (the client skins call it to let a request through)."""
    return _originals[name][2]

