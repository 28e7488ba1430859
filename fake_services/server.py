"""Run the fake services on a socket with uvicorn: what `harness serve` starts.

It binds to loopback unless told otherwise, because the control API lets anyone break the services.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve"]


def serve(host: str = "127.0.0.1", port: int = 8888, seed: int | None = None, **uvicorn_options: Any) -> None:
    """Serve until interrupted; `seed` makes generated ids and random faults repeatable."""
    import uvicorn

    from fake_services.app import create_app
    from fake_services.state import FakeServices

    options = {"log_level": "info", "access_log": False, **uvicorn_options}
    uvicorn.run(create_app(FakeServices(seed=seed)), host=host, port=port, **options)
