"""The ASGI skin: a Starlette app whose one route hands every request to `FakeServices.handle`.

Before that, the socket's own checks run (`fake_services.guard`: Host names, cross-site requests, the
control token) and bodies past the size limit stop being read.

Requests that may sleep (a slow service on the wall clock) run in a worker thread so the event loop
keeps serving; the rest run inline, because the core is fast and the loop is then the only limit.
A dropped connection is a real one: the server's transport is closed without a response.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fake_services.bodies import too_large
from fake_services.guard import Access, Guard
from fake_services.messages import Call, Reply
from fake_services.state import FakeServices

__all__ = ["create_app"]


class _ServicesApp(Starlette):
    """HTTP goes straight to the core: Starlette's middleware would only add work to every request
    (the core turns every problem into a reply itself) and would hide the server's `send`, which a
    dropped connection needs. Lifespan and anything else still go through Starlette."""

    core: _Core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.core(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class _Core:
    def __init__(self, services: FakeServices, access: Access) -> None:
        self.services = services
        self.guard = Guard(services.front, access)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        services = self.services
        limit = services.front.max_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            # Answered before a byte of the body is read; the connection closes, the rest goes unread.
            await _send(send, _closing(too_large(limit)))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > limit:  # a chunked body past the limit: stop reading, the front door says 413
                break
        call = Call.build(scope["method"], scope["path"], scope.get("query_string", b""), headers,
                          b"".join(chunks))
        refused = self.guard.check(call, scope.get("scheme", "http"))
        if refused is not None:
            await _send(send, refused)
            return
        if services.blocking and services.may_block(call):
            reply = await run_in_threadpool(services.handle, call)
        else:
            reply = services.handle(call)
        if reply.action is not None:
            if reply.action == "timeout":
                # Hold the connection past the client's limit, then hang up: it never gets an answer.
                await asyncio.sleep(reply.timeout_s)
            if _drop_connection(send):
                return
            reply = Reply(502, b"", None, {"connection": "close"})
        await _send(send, reply)


def _closing(reply: Reply) -> Reply:
    reply.headers["connection"] = "close"
    return reply


async def _send(send: Send, reply: Reply) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.header_list()]
    raw.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": raw})
    await send({"type": "http.response.body", "body": reply.body})


def _drop_connection(send: Send) -> bool:
    """Close the client's connection without a response; False if the server gives no way to."""
    # uvicorn's `send` is a bound method of its request cycle, which holds the asyncio transport.
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(cycle, "disconnected"):
        return False
    cycle.disconnected = True  # tells uvicorn not to answer 500 for the missing response
    transport.close()
    return True


def create_app(services: FakeServices | None = None, access: Access | None = None) -> Starlette:
    """The fake services as an ASGI app; give it `services` to share state with other modes.

    `access` says which Host names, origins and control token the socket accepts (`fake_services.guard`);
    the default serves loopback names and IP literals, refuses cross-site changes, and asks no token.
    """
    services = services if services is not None else FakeServices()
    core = _Core(services, access if access is not None else Access())
    app = _ServicesApp(routes=[Route("/{path:path}", core)])
    app.core = core
    app.state.services = services
    return app
