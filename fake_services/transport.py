"""`ServicesTransport`: an httpx transport (sync and async) that answers from the services in-process.

It calls the same core the ASGI app does, without ASGI, so a job's client talks to the fakes at the cost
of a function call. Faults that a socket shows as broken connections raise the exceptions httpx raises
for them. The transport is also a callable, so it can be a respx route's `side_effect`.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import httpx

from fake_services.messages import Call, Reply
from fake_services.state import FakeServices

__all__ = ["ServicesTransport", "call_from_request", "httpx_response", "in_process_client"]


class ServicesTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Any host works: `httpx.Client(transport=ServicesTransport(services), base_url="http://fake")`."""

    def __init__(self, services: FakeServices) -> None:
        self.services = services

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = call_from_request(request, request.read())
        return httpx_response(request, self.services.handle(call))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = call_from_request(request, await request.aread())
        services = self.services
        if services.blocking and services.may_block(call):
            reply = await anyio.to_thread.run_sync(services.handle, call)
        else:
            reply = services.handle(call)
        return httpx_response(request, reply)

    def __call__(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """For respx: `respx.route(host="fake").mock(side_effect=ServicesTransport(services))`."""
        return self.handle_request(request)


def in_process_client(services: FakeServices, base_url: str = "http://fake-services",
                      **options: Any) -> httpx.Client:
    """An `httpx.Client` wired to `services` in-process, tuned for thousands of short calls.

    The fake services never set cookies, yet httpx parses every response for them through urllib's
    cookie machinery, which costs about a sixth of an in-process call; this client skips that work for
    responses without `Set-Cookie` and handles the others exactly as httpx does.
    """
    client = httpx.Client(transport=ServicesTransport(services), base_url=base_url, **options)
    if isinstance(getattr(client, "_cookies", None), httpx.Cookies):  # the attribute httpx reads cookies from
        client._cookies = _CookiesParsedOnlyWhenSet(client._cookies)
    return client


class _CookiesParsedOnlyWhenSet(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def call_from_request(request: httpx.Request, body: bytes) -> Call:
    """The fake services' view of an httpx request (its path as it is: any host works)."""
    url = request.url
    return Call.build(request.method, url.path, url.query, dict(request.headers.items()), body)


def httpx_response(request: httpx.Request, reply: Reply) -> httpx.Response:
    """What an httpx client sees for `reply`: a response, or the exception a broken connection raises."""
    if reply.action == "timeout":
        raise httpx.ReadTimeout("the fake service did not answer in time (injected timeout)", request=request)
    if reply.action == "drop":
        if reply.phase == "before":
            raise httpx.ConnectError("connection refused by the fake service (injected drop)",
                                     request=request)
        raise httpx.RemoteProtocolError(
            "server disconnected without sending a response (injected drop)", request=request
        )
    return httpx.Response(reply.status, headers=reply.header_list(), content=reply.body, request=request)
