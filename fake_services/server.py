"""Run the fake services on a socket with uvicorn: what `harness serve` starts.

It binds to loopback unless told otherwise, because the control API lets anyone break the services. Off
loopback the control API and the pages ask for a token (given, or generated and printed); the socket
is bound before uvicorn starts, so a port in use or a bad address is one clear `ServeError`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from fake_services.guard import Access, is_loopback

__all__ = ["TOKEN_ENV", "ServeError", "access_for", "bind", "serve"]

#: The environment variable `harness serve` reads the control token from when `--token` is not given.
TOKEN_ENV = "HARNESS_SERVE_TOKEN"


class ServeError(Exception):
    """The server cannot start as asked; the message says why and what to change."""


def access_for(host: str, token: str | None = None, *, open_control: bool = False,
               allow_hosts: Iterable[str] = (), allow_origins: Iterable[str] = (),
               environ: Mapping[str, str] | None = None) -> tuple[Access, bool]:
    """The access policy for serving on `host`, and whether its token was generated here.

    The token is `token`, else the `HARNESS_SERVE_TOKEN` environment variable, else (off loopback only)
    a new random one; `open_control=True` asks for none at all.
    """
    environ = os.environ if environ is None else environ
    generated = False
    if open_control:
        if token:
            raise ServeError("give either --token or --no-token, not both")
        token = None
    elif not token:
        token = environ.get(TOKEN_ENV) or None
        if token is None and not is_loopback(host):
            token, generated = secrets.token_urlsafe(24), True
    return Access.build(host, token, allow_hosts, allow_origins), generated


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port`; ServeError names the problem (port in use, bad address)."""
    if not 0 <= port <= 65535:
        raise ServeError(f"--port must be from 0 to 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host!r}: {exc.strerror}; give an address such as 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ServeError(f"cannot listen on {where}: the port is in use (another server is running "
                             "there?); stop it or pick another --port") from None
        raise ServeError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(host: str = "127.0.0.1", port: int = 8888, seed: int | None = None, *, token: str | None = None,
          open_control: bool = False, allow_hosts: Iterable[str] = (), allow_origins: Iterable[str] = (),
          out: TextIO | None = None, smtp_port: int | None = None, **uvicorn_options: Any) -> None:
    """Serve until interrupted; `seed` makes generated ids and random faults repeatable. With `smtp_port`,
    the email fake also listens for SMTP there (`fake_services.smtp_server`).

    Raises ServeError when the server cannot start as asked. Off loopback without `token` (or the
    environment variable), a token is generated and printed to `out` (stderr).
    """
    import uvicorn

    from fake_services.app import create_app
    from fake_services.state import FakeServices

    access, generated = access_for(host, token, open_control=open_control, allow_hosts=allow_hosts,
                                   allow_origins=allow_origins)
    sock = bind(host, port)
    out = out if out is not None else sys.stderr
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    if generated:
        print(f"harness serve: the control API and pages need this token: {access.token}\n"
              f"  send 'Authorization: Bearer {access.token}', or open {url}/?token={access.token}", file=out)
    elif access.token is None and not is_loopback(host):
        print(f"harness serve: warning: the control API is open to anyone who can reach {url} (--no-token)",
              file=out)
    out.flush()
    options = {"log_level": "info", "access_log": False, **uvicorn_options, "host": host,
               "port": sock.getsockname()[1]}
    services = FakeServices(seed=seed)
    config = uvicorn.Config(create_app(services, access), **options)
    smtp = _start_smtp(services, host, smtp_port, out, sock) if smtp_port is not None else None

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            # uvicorn says where it listens only for sockets it bound itself.
            if self.started:
                logging.getLogger("uvicorn.error").info("Uvicorn running on %s (Press CTRL+C to quit)", url)

    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if smtp is not None:
            smtp.stop()


def _start_smtp(services: Any, host: str, port: int, out: TextIO, http_sock: socket.socket) -> Any:
    """The SMTP face of the email fake on `port`; a port it cannot use is a ServeError, as for --port."""
    from fake_services.smtp_server import SMTPServer

    try:
        bind(host, port).close()  # the same clear message for a port in use or a bad address
    except ServeError as exc:
        http_sock.close()
        raise ServeError(str(exc).replace("--port", "--smtp-port")) from None
    try:
        server = SMTPServer(services, host, port).start()
    except (OSError, RuntimeError) as exc:
        http_sock.close()
        raise ServeError(f"cannot serve SMTP on {host}:{port}: {exc}") from None
    print(f"harness serve: SMTP for the email fake on {host}:{server.port}", file=out)
    out.flush()
    return server
