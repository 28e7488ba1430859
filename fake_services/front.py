"""The front door: every request, from a socket or in-process, comes in here and gets its answer.

It checks what the request asks for (Accept), finds the route (a service's, or the control API's),
reads the body the route takes, and hands the call to the service pipeline or the control handler.
Problems become 4xx replies here; nothing past this point sees a malformed request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fake_services.behaviours import MAX_SECONDS
from fake_services.bodies import MAX_BODY_BYTES, parse_seconds, read_body
from fake_services.calls import ServiceCalls
from fake_services.messages import Call, Reply, acceptable, problem

if TYPE_CHECKING:
    from fake_services.hub import Hub
    from fake_services.service import Service

__all__ = ["FrontDoor"]

#: Methods whose body is never read (the seed's clients send none; a body there means nothing).
_BODYLESS = frozenset({"GET", "HEAD", "DELETE"})


class FrontDoor:
    """Routes and checks requests for one `FakeServices`; `handle(call)` never raises for bad input."""

    def __init__(self, services: Hub) -> None:
        from fake_services.control import Control

        self.services = services
        #: Bodies longer than this are answered 413 (the socket app stops reading there too).
        self.max_body_bytes = MAX_BODY_BYTES
        self.control = Control(services, self)
        self.calls = ServiceCalls(services, self.control.service_page)

    def is_service_api(self, call: Call) -> bool:
        """Whether `call` is for a service's own API (open to all) rather than the control API or a page."""
        parts = call.path[1:].split("/", 1)
        service = self.services.services.get(parts[0]) if len(parts) == 2 else None
        if service is None:
            return call.path == "/openapi.json"
        route = service.resolve(call.method, parts[1])
        return route is None or route.handler is not None  # the service's page (no handler) is a page

    def may_block(self, call: Call) -> bool:
        """Whether answering `call` may sleep on the clock (so a server should not run it on its loop)."""
        if "x-be-slow" in call.headers:
            return True
        name = call.path[1:].split("/", 1)[0]
        behaviour = self.services.behaviours.get(name)
        return behaviour is not None and behaviour.sleep > 0

    def handle(self, call: Call) -> Reply:
        if not acceptable(call.headers.get("accept")):
            return problem(406, "Not acceptable",
                           "this server answers JSON or HTML; send Accept: application/json")
        parts = call.path[1:].split("/", 1)
        service = self.services.services.get(parts[0]) if len(parts) == 2 else None
        if service is None:
            return self.control.handle(call)
        return self._service_call(service, parts[1], call)

    def _service_call(self, service: Service, rest: str, call: Call) -> Reply:
        services = self.services
        route = service.resolve(call.method, rest)
        if route is None:
            reply = self._no_route(service, rest, call)
            services.journal.append(services.clock.time(), service.name, "unknown", {}, None, None, False,
                                    reply.status)
            return reply
        body: Any = {}
        if call.body and call.method not in _BODYLESS:
            body = read_body(call, route.accepts, self.max_body_bytes)
            if type(body) is Reply:
                return self._refused(service, route.operation, body)
        slow = call.headers.get("x-be-slow")
        if slow is None:
            return self.calls.serve(service, route, call, body, None)
        seconds = self._header_sleep(slow)
        if seconds is None:
            return self._refused(service, route.operation, problem(
                400, "Invalid X-Be-Slow header",
                f"X-Be-Slow must be true or a number of seconds from 0 to {MAX_SECONDS:g}, got {slow!r}"))
        return self.calls.serve(service, route, call, body, seconds)

    def _refused(self, service: Service, operation: str, reply: Reply) -> Reply:
        services = self.services
        services.journal.append(services.clock.time(), service.name, operation, {}, None, None, False,
                                reply.status)
        return reply

    def _no_route(self, service: Service, rest: str, call: Call) -> Reply:
        allowed = service.methods_for(rest)
        if allowed:
            reply = problem(405, "Method not allowed",
                            f"{call.path} answers {', '.join(allowed)}, not {call.method}")
            reply.headers["allow"] = ", ".join(allowed)
            return reply
        paths = sorted({f"{m} /{service.name}/{p}" for m, p in service.routes})
        return problem(404, "Not found", f"{service.name} has no {call.path}; it answers {', '.join(paths)}")

    def _header_sleep(self, value: str | None) -> float | None:
        if value is None:
            return None
        if value == "true":
            return self.services.random_slowness()
        seconds = parse_seconds(value)
        return seconds if seconds is not None and seconds <= MAX_SECONDS else None
