"""The client skins of `harness.outbound`: where httpx, requests and bare sockets are intercepted.

Each skin asks the active `Outbound` how to answer, lets the request through with the library's own
function when it may go, and otherwise turns the fake services' reply into what that library returns or
raises for it (a lost response is the library's own "server disconnected" error, a refusal its own
connection error), so the job's error handling meets what it meets in production.
"""

from __future__ import annotations

import errno
import http
import io
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["Refused", "patches"]

#: The active `Outbound` (or None) and the library function a patch replaced, given by `patches`.
current: Callable[[], Any] = lambda: None  # noqa: E731
original: Callable[[str], Any] = lambda name: None  # noqa: E731


class Refused(Exception):
    """A request nobody routed; `refusal` says which (its `message()` is what the job's client shows)."""

    def __init__(self, refusal: Any) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def patches(active: Callable[[], Any], replaced: Callable[[str], Any]) -> dict[str, tuple[Any, str, Any]]:
    """Name → (owner, attribute, replacement) for every library present; `active()` gives the answering
    `Outbound`, `replaced(name)` the function a patch replaced."""
    global current, original
    current, original = active, replaced
    import httpx

    found: dict[str, tuple[Any, str, Any]] = {
        "httpx": (httpx.HTTPTransport, "handle_request", _httpx_send),
        "httpx.async": (httpx.AsyncHTTPTransport, "handle_async_request", _httpx_send_async),
        "httpx.cookies": (httpx.Cookies, "extract_cookies", _extract_cookies_when_set),
        "socket.connect": (socket.socket, "connect", _connect),
        "socket.connect_ex": (socket.socket, "connect_ex", _connect_ex),
    }
    try:
        import requests.adapters
    except ImportError:
        pass
    else:
        found["requests"] = (requests.adapters.HTTPAdapter, "send", _requests_send)
    return found


# -- httpx -------------------------------------------------------------------------------------------------
_HTTPX_PORTS = {"http": 80, "https": 443}


def _httpx_decide(outbound: Any, request: Any) -> Any:
    import httpx

    url = request.url
    scheme = url.scheme
    try:
        return outbound.decide_parts(
            request.method, scheme, url.host, url.port or _HTTPX_PORTS.get(scheme, 0),
            url.netloc.decode("ascii").lower(), url.path or "/", lambda: str(url.copy_with(query=None, fragment=None)))
    except Refused as refused:
        raise httpx.ConnectError(refused.refusal.message(), request=request) from None


def _httpx_send(transport: Any, request: Any) -> Any:
    outbound = current()
    decided = None if outbound is None else _httpx_decide(outbound, request)
    if outbound is None or decided is None:
        return original("httpx")(transport, request)
    from fake_services.transport import httpx_response

    reply = outbound.answer(request.method, _bare(request, decided), dict(request.headers.items()),
                            request.read(), decided, request.url.query)
    return httpx_response(request, reply)


async def _httpx_send_async(transport: Any, request: Any) -> Any:
    outbound = current()
    decided = None if outbound is None else _httpx_decide(outbound, request)
    if outbound is None or decided is None:
        return await original("httpx.async")(transport, request)
    from fake_services.transport import httpx_response

    body = await request.aread()
    reply = outbound.answer(request.method, _bare(request, decided), dict(request.headers.items()), body,
                            decided, request.url.query)
    return httpx_response(request, reply)


def _extract_cookies_when_set(cookies: Any, response: Any) -> None:
    """httpx parses every response for cookies through urllib's machinery, a sixth of an in-process
    call; a response without Set-Cookie (or Set-Cookie2) has none, so only the others are parsed."""
    headers = response.headers
    if "set-cookie" in headers or "set-cookie2" in headers:
        original("httpx.cookies")(cookies, response)


def _bare(request: Any, decided: Any) -> str:
    """The URL without its query, which only a declared route records."""
    return "" if decided.route is None else str(request.url.copy_with(query=None, fragment=None))


# -- requests ----------------------------------------------------------------------------------------------
def _requests_send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    outbound = current()
    if outbound is None:
        return original("requests")(adapter, request, *args, **kwargs)
    import requests

    try:
        decided = outbound.decide(request.method, request.url)
    except Refused as refused:
        raise requests.ConnectionError(refused.refusal.message(), request=request) from None
    if decided is None:
        return original("requests")(adapter, request, *args, **kwargs)
    headers = {name.lower(): str(value) for name, value in request.headers.items()}
    reply = outbound.answer(request.method, request.url, headers, _requests_body(request.body), decided)
    if reply.action == "timeout":
        raise requests.exceptions.ReadTimeout(
            "the fake service did not answer in time (injected timeout)", request=request)
    if reply.action == "drop":
        if reply.phase == "before":
            raise requests.ConnectionError("connection refused by the fake service (injected drop)",
                                           request=request)
        import http.client

        lost = http.client.RemoteDisconnected("Remote end closed connection without response")
        raise requests.ConnectionError(("Connection aborted.", lost), request=request)
    return adapter.build_response(request, _urllib3_response(reply))


def _requests_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(part.encode("utf-8") if isinstance(part, str) else bytes(part) for part in body)


def _urllib3_response(reply: Any) -> Any:
    from urllib3 import HTTPHeaderDict, HTTPResponse

    try:
        reason = http.HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    headers = HTTPHeaderDict()
    for name, value in reply.header_list():
        headers.add(name, value)
    headers["content-length"] = str(len(reply.body))
    return HTTPResponse(body=io.BytesIO(reply.body), headers=headers, status=reply.status, reason=reason,
                        preload_content=False, decode_content=False)


# -- sockets -----------------------------------------------------------------------------------------------
def _refused_address(sock: socket.socket, address: Any) -> str | None:
    """The refusal message for connecting `sock` to `address`, or None when the connection may go."""
    outbound = current()
    if outbound is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    if not isinstance(address, tuple) or len(address) < 2:
        return None
    host, port = str(address[0]), int(address[1])
    if outbound.allows_connection(host, port):
        return None
    return str(outbound.refuse("", f"{host}:{port}", "socket").refusal.message())


def _connect(sock: socket.socket, address: Any) -> None:
    message = _refused_address(sock, address)
    if message is not None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, message)
    original("socket.connect")(sock, address)


def _connect_ex(sock: socket.socket, address: Any) -> int:
    if _refused_address(sock, address) is not None:
        return errno.ECONNREFUSED
    result: int = original("socket.connect_ex")(sock, address)
    return result
