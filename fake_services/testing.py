"""Helpers for tests: run the fake services on a free loopback port in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fake_services.guard import Access
from fake_services.state import FakeServices

__all__ = ["serve_in_thread"]

_START_TIMEOUT_S = 10.0


@contextmanager
def serve_in_thread(services: FakeServices | None = None, host: str = "127.0.0.1",
                    port: int = 0, access: Access | None = None) -> Iterator[str]:
    """Serve `services` with uvicorn until the block exits; yields the base URL (`http://host:port`).

    `port=0` picks a free port. The services object stays usable in-process at the same time.
    `access` is the socket's policy (Host names, origins, control token; see `fake_services.guard`).
    """
    import uvicorn

    from fake_services.app import create_app

    services = services if services is not None else FakeServices()
    config = uvicorn.Config(create_app(services, access), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported to the caller below instead of dying silently
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"fake-services-{port}", daemon=True)
    thread.start()
    started = threading.Event()
    while not server.started and thread.is_alive() and not started.wait(0.01):
        pass
    if not server.started:
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
        reason = repr(failure[0]) if failure else "the server thread stopped before listening"
        raise RuntimeError(f"could not start the fake services on {host}:{port}: {reason}")
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
