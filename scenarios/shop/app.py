"""The shop's process-wide wiring: the HTTP client its service clients use and the clock it stamps with.

Jobs receive only JSON arguments, so, like a web app's initializers, the shop keeps its configuration at
module level. `connect(http, clock)` points it at a world; the clients built from it are a cache that
`drop_process_state()` clears, because a fresh process would build them again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from scenarios.shop import db

if TYPE_CHECKING:
    import httpx

    from fake_services.clients import (
        ChatClient,
        EmailClient,
        ErrorCatcherClient,
        FulfillmentClient,
        PaymentsClient,
    )

__all__ = [
    "Clock",
    "chat",
    "connect",
    "connect_from_env",
    "drop_process_state",
    "email",
    "error_catcher",
    "fulfillment",
    "now",
    "payments",
]

#: Where the clients send requests when no world is connected: the fake services on a socket.
DEFAULT_BASE_URL = "http://127.0.0.1:8888"


class Clock(Protocol):
    def time(self) -> float: ...


_lock = threading.Lock()
_http: httpx.Client | None = None
_base_url = DEFAULT_BASE_URL
_clock: Clock | None = None
_clients: dict[str, Any] = {}


def connect(http: httpx.Client | None, clock: Clock | None, *, base_url: str | None = None) -> None:
    """Send the shop's service calls through `http` and stamp its rows with `clock`."""
    global _http, _clock, _base_url
    with _lock:
        _http, _clock = http, clock
        _base_url = base_url or (str(http.base_url).rstrip("/") if http is not None else DEFAULT_BASE_URL)
        _clients.clear()


def connect_from_env() -> None:
    """Point the shop at the fake services at `HARNESS_SERVICES_URL`, on the wall clock: what a worker
    process started outside any scenario does first. The database comes from `DATABASE_URL` and the
    locks' Redis from `SHOP_REDIS_URL`, as always."""
    import os

    url = os.environ.get("HARNESS_SERVICES_URL")
    if not url:
        raise RuntimeError("HARNESS_SERVICES_URL is not set: name the fake services' base URL")
    connect(None, None, base_url=url)


def now() -> float:
    """The shop's time: the connected clock's (virtual in scenarios), else the wall clock."""
    if _clock is None:
        import time

        return time.time()
    return _clock.time()


def _client(name: str) -> Any:
    with _lock:
        client = _clients.get(name)
        if client is None:
            from fake_services import clients

            cls = {
                "payments": clients.PaymentsClient,
                "email": clients.EmailClient,
                "fulfillment": clients.FulfillmentClient,
                "error_catcher": clients.ErrorCatcherClient,
                "chat": clients.ChatClient,
            }[name]
            client = _clients[name] = cls(base_url=_base_url, http=_http)
        return client


def payments() -> PaymentsClient:
    return _client("payments")


def email() -> EmailClient:
    return _client("email")


def fulfillment() -> FulfillmentClient:
    return _client("fulfillment")


def error_catcher() -> ErrorCatcherClient:
    return _client("error_catcher")


def chat() -> ChatClient:
    return _client("chat")


def drop_process_state() -> None:
    """Forget what a process holds in memory: open connections (rolled back) and cached clients.

    The explorer calls this after every injected crash so the next attempt starts as a new worker
    process would; configuration (which HTTP client, which clock, which database URL) is kept.
    """
    with _lock:
        _clients.clear()
    db.dispose()
