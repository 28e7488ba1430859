"""Who may drive the services over a socket: the checks the ASGI app makes before the front door.

- **Host.** Only names that cannot be rebound to this server by someone else's DNS are served: IP
  literals, `localhost` (and `*.localhost`), the bound name, and the names allowed with `allow_hosts`
  (`*`: any). A page on another site that rebinds its own name to this address is refused (400).
- **Cross-site state changes.** A POST, PUT, PATCH or DELETE a browser sends from another site is
  refused (403): `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` that is not this
  server's (nor allowed with `allow_origins`). Programs that send neither header are served.
- **The control token.** With a `token`, the control API and the web pages ask for it (401): an
  `Authorization: Bearer` header, or the cookie a browser gets by opening any page with `?token=...`.
  The services' own APIs stay open, as the fakes of public APIs they are.

The in-process transport never comes through here: these checks exist for sockets only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from fake_services.messages import Call, Reply, problem

if TYPE_CHECKING:
    from fake_services.front import FrontDoor

__all__ = ["TOKEN_COOKIE", "Access", "Guard", "is_loopback"]

TOKEN_COOKIE = "harness_token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME_SITE = frozenset({"same-origin", "none"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """The name in a Host header or an origin's authority, lower-case, without port or trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8888
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Access:
    """The socket's policy: the bound `host`, extra names and origins allowed, and the control token
    (None: the control API is open to whoever reaches the socket)."""

    host: str = "127.0.0.1"
    token: str | None = None
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_origins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(cls, host: str = "127.0.0.1", token: str | None = None, allow_hosts: Iterable[str] = (),
              allow_origins: Iterable[str] = ()) -> Access:
        return cls(host, token or None, frozenset(_host_name(h) if h != "*" else h for h in allow_hosts),
                   frozenset(o.rstrip("/").lower() for o in allow_origins))


class Guard:
    """Applies an `Access` to calls from a socket; `check(call, scheme)` returns a refusal or None."""

    def __init__(self, front: FrontDoor, access: Access) -> None:
        self.front = front
        self.access = access
        self._bound = _host_name(access.host)
        self._known_hosts: dict[str, bool] = {}  # raw Host values seen: parsed once

    def check(self, call: Call, scheme: str = "http") -> Reply | None:
        host = call.headers.get("host")
        if host is not None and not self._host_ok(host):
            return problem(400, "Host not served",
                           f"this server does not answer for the Host {host!r}; use its address, or start "
                           "it with --allow-host NAME to serve that name (it guards against DNS rebinding)")
        if self.access.token is not None and not self.front.is_service_api(call):
            refused = self._token(call)
            if refused is not None:
                return refused
        if call.method in _UNSAFE:
            return self._cross_site(call, host, scheme)
        return None

    def _host_ok(self, raw: str) -> bool:
        known = self._known_hosts.get(raw)
        if known is None:
            name = _host_name(raw)
            allowed = self.access.allow_hosts
            known = ("*" in allowed or name in allowed or name == self._bound or _ip_literal(name)
                     or name == "localhost" or name.endswith(".localhost"))
            if len(self._known_hosts) < 1024:  # bounded: Host is the client's to choose
                self._known_hosts[raw] = known
        return known

    def _token(self, call: Call) -> Reply | None:
        expected = self.access.token
        assert expected is not None
        given = call.query.get("token")
        if given is not None and call.method == "GET" and _same(given, expected):
            # A person opened a page with ?token=: keep it in a cookie this site alone sends back.
            rest = {k: v for k, v in call.query.items() if k != "token"}
            location = call.path + (f"?{urlencode(rest)}" if rest else "")
            return Reply(303, b"", None, {"location": location, "set-cookie":
                         f"{TOKEN_COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict"})
        auth = call.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), expected):
            return None
        if _same(_cookie(call.headers.get("cookie", ""), TOKEN_COOKIE), expected):
            return None
        reply = problem(401, "Control token required",
                        "this server's control API and pages need its token: send Authorization: Bearer TOKEN, "
                        "or open /?token=TOKEN in a browser (harness serve printed it, or was given it with "
                        "--token or HARNESS_SERVE_TOKEN)")
        reply.headers["www-authenticate"] = 'Bearer realm="harness"'
        return reply

    def _cross_site(self, call: Call, host: str | None, scheme: str) -> Reply | None:
        site = call.headers.get("sec-fetch-site")
        origin = call.headers.get("origin")
        if origin is not None:
            origin = origin.rstrip("/").lower()
            allowed = self.access.allow_origins
            ours = host is not None and origin == f"{scheme}://{host.strip().lower()}"
            if not (ours or "*" in allowed or origin in allowed):
                return problem(403, "Cross-site request refused",
                               f"{call.method} from the origin {origin!r} is refused: another site may not change "
                               "these services; start the server with --allow-origin ORIGIN to allow it")
        elif site is not None and site not in _SAME_SITE:
            return problem(403, "Cross-site request refused",
                           f"{call.method} from another site (Sec-Fetch-Site: {site}) is refused: another site "
                           "may not change these services")
        return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""
