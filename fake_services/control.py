"""The control API and the web pages: behaviours, fault schedules, journal, reset, OpenAPI, UIs.

These paths are never subject to behaviours or faults, so a test can always repair what it broke. Each
route declares the bodies it takes; the front door reads them and hands the handler a parsed body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fake_services.behaviours import FaultRule
from fake_services.bodies import FORM, JSON, read_body
from fake_services.messages import Call, Reply, json_reply, problem

if TYPE_CHECKING:
    from fake_services.hub import BodyLimit, Hub
    from fake_services.service import Service

__all__ = ["Control", "ControlRoute"]

Handler = Callable[[Call, Any, list[str]], Reply]


@dataclass(frozen=True, slots=True)
class ControlRoute:
    """A control endpoint: its handler, the body media types it takes (none: no body is read), and
    whether it belongs to the web pages (HTML answers, form errors shown as pages)."""

    handler: Handler
    accepts: tuple[str, ...] = ()
    page: bool = False


class Control:
    def __init__(self, services: Hub, front: BodyLimit) -> None:
        from fake_services.forms import Forms

        self.services = services
        self.front = front
        self.forms = forms = Forms(self)
        get = ControlRoute
        self._table: dict[tuple[str, ...], dict[str, ControlRoute]] = {
            (): {"GET": get(forms.index, page=True)},
            ("openapi.json",): {"GET": get(self._openapi)},
            ("journal",): {"GET": get(self._journal), "DELETE": get(self._clear_journal)},
            ("journal", "ui"): {"GET": get(forms.journal, page=True)},
            ("reset",): {"POST": get(self._reset)},
            ("behaviors",): {"GET": get(self._all_behaviours)},
            ("behaviors", "*"): {"GET": get(self._behaviour), "PUT": get(self._set_behaviour, (JSON,))},
            ("behaviors", "*", "faults"): {"GET": get(self._faults), "POST": get(self._add_fault, (JSON,)),
                                           "DELETE": get(self._clear_faults)},
            ("behaviors", "*", "faults", "+"): {"DELETE": get(self._remove_fault)},
            ("behaviors", "*", "keys"): {"GET": get(self._keys), "PUT": get(self._set_keys, (JSON,))},
            ("behaviors", "*", "ui"): {"GET": get(forms.behaviour_page, page=True)},
            # The pages' forms post under /ui/: they are for people, not part of the documented API.
            ("ui", "*", "behaviour"): {"POST": get(forms.behaviour, (FORM,), page=True)},
            ("ui", "*", "faults"): {"POST": get(forms.faults, (FORM,), page=True)},
            ("ui", "reset"): {"POST": get(forms.reset, (FORM,), page=True)},
            ("ui", "journal"): {"POST": get(forms.clear_journal, (FORM,), page=True)},
        }

    def route(self, parts: list[str]) -> dict[str, ControlRoute] | None:
        """The methods a control path answers, or None when it is no control path."""
        exact = self._table.get(tuple(parts))
        if exact is not None or len(parts) < 2 or parts[0] not in ("behaviors", "ui"):
            return exact
        # behaviors/{service}/..., ui/{service}/...; the segment after faults/ is a rule id
        return self._table.get(tuple("*" if n == 1 else "+" if n == 3 else p for n, p in enumerate(parts)))

    def handle(self, call: Call) -> Reply:
        parts = [p for p in call.path.split("/") if p]
        table = self.route(parts)
        if table is None:
            return problem(404, "Not found", f"nothing at {call.path}; see /openapi.json for every path")
        route = table.get(call.method)
        if route is None:
            reply = problem(405, "Method not allowed",
                            f"{call.path} answers {', '.join(sorted(table))}, not {call.method}")
            reply.headers["allow"] = ", ".join(sorted(table))
            return reply
        # Only a literal route (ui/reset) names no service; a path that spells a pattern's placeholder
        # (behaviors/*/keys) matched the pattern's own entry, and "*" is no service either.
        literal = tuple(parts) in self._table and not {"*", "+"} & set(parts)
        if len(parts) >= 2 and parts[0] in ("behaviors", "ui") and not literal \
                and parts[1] not in self.services.services:
            return problem(404, "Unknown service",
                           f"no service {parts[1]!r}; the services are {', '.join(self.services.services)}")
        body: Any = None
        if route.accepts:
            if not call.body and route.accepts[0] != FORM:  # an empty form is a form with every box unticked
                return problem(422, "Missing request body",
                               f"{call.method} {call.path} needs a {route.accepts[0]} body")
            body = read_body(call, route.accepts, self.front.max_body_bytes) if call.body else {}
            if type(body) is Reply:
                if route.page:
                    return self.forms.error(body.status, "The form could not be read", body.json()["detail"],
                                            "/")
                return body
        try:
            return route.handler(call, body, parts)
        except ValueError as exc:
            return problem(422, "Invalid request body", str(exc))

    def operations(self, service: str) -> list[str]:
        """The operations of `service` a fault rule can watch (its page is never faulted)."""
        return self.services.services[service].operations()

    def schedule(self, service: str, fields: Any) -> dict[str, Any]:
        """Arm a rule given as JSON fields on `service`; ValueError names what is wrong with them."""
        try:
            rule = FaultRule.from_dict(fields)
        except TypeError as exc:  # a field of the wrong shape that the dataclass itself rejected
            raise ValueError(str(exc)) from exc
        operations = self.operations(service)
        if rule.operation is not None and rule.operation not in operations:
            raise ValueError(f"operation must be one of {', '.join(operations)} for {service}, "
                             f"got {rule.operation!r}")
        rule_id = self.services.schedule(service, rule)
        return {**rule.to_dict(), "id": rule_id}

    # -- JSON control API ----------------------------------------------------------------------------
    def _openapi(self, call: Call, body: Any, parts: list[str]) -> Reply:
        from fake_services.openapi import openapi_document

        return json_reply(200, openapi_document(self.services))

    def _journal(self, call: Call, body: Any, parts: list[str]) -> Reply:
        since = call.query.get("since", "0")
        if not (since.isascii() and since.isdigit()):
            return problem(422, "Invalid query", f"since must be a sequence number (0 or more), got {since!r}")
        entries = [e.to_dict() for e in self.services.journal.entries(int(since))]
        return json_reply(200, {"entries": entries, "count": len(entries)})

    def _clear_journal(self, call: Call, body: Any, parts: list[str]) -> Reply:
        self.services.journal.clear()
        return json_reply(200, {"status": "cleared"})

    def _reset(self, call: Call, body: Any, parts: list[str]) -> Reply:
        service = call.query.get("service")
        if service is not None and service not in self.services.services:
            return problem(404, "Unknown service",
                           f"no service {service!r}; the services are {', '.join(self.services.services)}")
        self.services.reset(service)
        return json_reply(200, {"status": "reset"})

    def _all_behaviours(self, call: Call, body: Any, parts: list[str]) -> Reply:
        return json_reply(200, {n: b.to_dict() for n, b in self.services.behaviours.items()})

    def _behaviour(self, call: Call, body: Any, parts: list[str]) -> Reply:
        return json_reply(200, self.services.behaviours[parts[1]].to_dict())

    def _set_behaviour(self, call: Call, body: Any, parts: list[str]) -> Reply:
        behaviour = self.services.behaviours[parts[1]]
        behaviour.update(body)
        return json_reply(200, behaviour.to_dict())

    def _keys(self, call: Call, body: Any, parts: list[str]) -> Reply:
        services, name = self.services, parts[1]
        with services.lock:
            expired = [e.to_dict() for e in services.idempotency.expired if e.service == name]
        return json_reply(200, {"service": name, "retention_s": services.key_retention(name), "expired": expired})

    def _set_keys(self, call: Call, body: Any, parts: list[str]) -> Reply:
        if not isinstance(body, dict) or set(body) != {"retention_s"}:
            raise ValueError('the body is {"retention_s": seconds} (null: back to the default of 24 h)')
        self.services.set_key_retention(parts[1], body["retention_s"])
        return self._keys(call, body, parts)

    def _faults(self, call: Call, body: Any, parts: list[str]) -> Reply:
        return json_reply(200, {"faults": self.services.faults(parts[1])})

    def _add_fault(self, call: Call, body: Any, parts: list[str]) -> Reply:
        return json_reply(201, self.schedule(parts[1], body))

    def _clear_faults(self, call: Call, body: Any, parts: list[str]) -> Reply:
        self.services.clear_faults(parts[1])
        return json_reply(200, {"faults": []})

    def _remove_fault(self, call: Call, body: Any, parts: list[str]) -> Reply:
        if not self.services.remove_fault(parts[1], parts[3]):
            return problem(404, "No such rule", f"{parts[1]} has no fault rule {parts[3]!r}; "
                           f"GET /behaviors/{parts[1]}/faults lists them")
        return json_reply(200, {"faults": self.services.faults(parts[1])})

    def service_page(self, service: Service, call: Call | None = None) -> Reply:
        return self.forms.service_page(service, call)
