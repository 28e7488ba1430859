"""The email fake on a real SMTP socket (aiosmtpd): what `harness serve --smtp-port` starts.

Each message a client sends ends in `fake_services.smtp.deliver`, so it is journaled, searched and shown
like mail sent over HTTP, and the reply follows the table in `fake_services.smtp`. A dropped connection is
a real one: the socket is aborted before the reply is written, so the client's `smtplib` raises
`SMTPServerDisconnected` for a message that, after the effect, was sent.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fake_services.smtp import SERVER_NAME, deliver

if TYPE_CHECKING:
    from fake_services.state import FakeServices

__all__ = ["SMTPServer"]


class _Handler:
    def __init__(self, services: FakeServices) -> None:
        self.services = services

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        loop = asyncio.get_running_loop()
        # The pipeline may sleep on the clock (a slow service): off the event loop.
        reply = await loop.run_in_executor(None, deliver, self.services, envelope.mail_from or "",
                                           list(envelope.rcpt_tos), data)
        if reply.action == "timeout":
            await asyncio.sleep(reply.timeout_s)
        if reply.action is not None:
            server.transport.abort()  # nothing more reaches the client, not even this reply
        elif reply.code == 421:
            loop.call_soon(server.transport.close)  # 421 closes the channel after it is said
        return reply.line()


class SMTPServer:
    """The email fake of `services` served over SMTP on `host:port` (0: a free port) in a thread."""

    def __init__(self, services: FakeServices, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiosmtpd.controller import Controller

        self.services = services
        if port == 0:
            port = _free_port(host)
        self._controller = Controller(_Handler(services), hostname=host, port=port, ident=SERVER_NAME,
                                      server_hostname=SERVER_NAME, authenticator=_anyone,
                                      auth_require_tls=False)
        self.host, self.port = host, port

    def start(self) -> SMTPServer:
        """Listen; raises OSError when the address cannot be bound."""
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _anyone(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    """Every login succeeds: the fake checks no password (clients that log in still get AUTH offered)."""
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=True)


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
