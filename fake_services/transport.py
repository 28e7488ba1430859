"""`ServicesTransport`: an httpx transport (sync and async) that answers from the services in-process.

It calls the same core the ASGI app does, without ASGI, so a job's client talks to the fakes at the cost
of a function call. Faults that a socket shows as broken connections raise the exceptions httpx raises
for them. The transport is also a callable, so it can be a respx route's `side_effect`.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
import httpx

from fake_services.messages import Call, Reply
from fake_services.state import FakeServices

__all__ = [
    "DirectResponse",
    "ServicesTransport",
    "call_direct",
    "call_from_request",
    "direct_services",
    "httpx_response",
    "in_process_client",
]

#: What a client sees when an injected fault breaks the connection (the same with and without httpx).
TIMED_OUT = "the fake service did not answer in time (injected timeout)"
REFUSED = "connection refused by the fake service (injected drop)"
DISCONNECTED = "server disconnected without sending a response (injected drop)"


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
    responses without `Set-Cookie` and handles the others exactly as httpx does. The typed clients
    (`fake_services.clients`) given this client call the services without httpx at all while nothing is
    hooked into it (see `direct_services`).
    """
    transport = ServicesTransport(services)
    client = httpx.Client(transport=transport, base_url=base_url, **options)
    if isinstance(getattr(client, "_cookies", None), httpx.Cookies):  # the attribute httpx reads cookies from
        client._cookies = _CookiesParsedOnlyWhenSet(client._cookies)
    client._direct_transport = transport  # type: ignore[attr-defined]  # see `direct_services`
    return client


def direct_services(client: httpx.Client) -> FakeServices | None:
    """The services an in-process client answers from, when a typed client may call them without httpx.

    Only for a client `in_process_client` built that still has its transport, is open, and has nothing
    hooked into its requests (event hooks, auth, mounted transports): then httpx would add nothing but its
    request and response objects, which cost more than the services' own work. `call_direct` sends the
    same headers and body and raises the same exceptions."""
    transport = getattr(client, "_direct_transport", None)
    if not isinstance(transport, ServicesTransport):
        return None
    installed: object = getattr(client, "_transport", None)
    if installed is not transport:
        return None
    hooks = client.event_hooks
    if client.is_closed or hooks["request"] or hooks["response"] or client.auth is not None:
        return None
    if getattr(client, "_mounts", True):  # proxies (from the environment, say) or transports mounted
        return None
    return transport.services


class DirectResponse:
    """The part of an `httpx.Response` the typed clients read, for a call made by `call_direct`."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, reply: Reply) -> None:
        self.status_code = reply.status
        self.headers = {name.lower(): value for name, value in reply.header_list()}
        self.content = reply.body

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _client_headers(client: httpx.Client) -> dict[str, str]:
    """The client's default headers as the services see them, read again only after they changed."""
    raw = client.headers.raw
    seen = getattr(client, "_direct_headers", None)
    if seen is None or seen[0] != raw:
        seen = (raw, dict(client.headers.items()))
        client._direct_headers = seen  # type: ignore[attr-defined]
    return seen[1]


def call_direct(client: httpx.Client, services: FakeServices, method: str, url: httpx.URL,
                params: dict[str, str] | None, headers: dict[str, str] | None, json_body: Any) -> DirectResponse:
    """What `client.request(method, url, params=, headers=, json=)` would answer, without httpx's objects.

    The services see the headers httpx would send (the client's, Host, the JSON body's length and type,
    then the call's own) and the same body; broken connections raise the exceptions httpx raises."""
    sent = dict(_client_headers(client))
    sent["host"] = url.netloc.decode("ascii")
    body = b""
    if json_body is not None:
        body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        sent["content-length"] = str(len(body))
        sent["content-type"] = "application/json"
    if headers:
        sent.update((name.lower(), value) for name, value in headers.items())
    query = dict(url.params.items()) if url.query else {}
    if params:
        query.update((str(k), str(v)) for k, v in params.items())
    reply = services.handle(Call(method.upper(), url.path or "/", query, sent, body))
    if reply.action is not None:
        httpx_response(httpx.Request(method, url), reply)  # raises what httpx would
    return DirectResponse(reply)


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
        raise httpx.ReadTimeout(TIMED_OUT, request=request)
    if reply.action == "drop":
        if reply.phase == "before":
            raise httpx.ConnectError(REFUSED, request=request)
        raise httpx.RemoteProtocolError(DISCONNECTED, request=request)
    return httpx.Response(reply.status, headers=reply.header_list(), content=reply.body, request=request)
