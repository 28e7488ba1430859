"""The control API and the web pages: behaviours, fault schedules, journal, reset, OpenAPI, UIs.

These paths are never subject to behaviours or faults, so a test can always repair what it broke.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fake_services.behaviours import FaultRule
from fake_services.messages import Call, Reply, html, json_reply, problem

if TYPE_CHECKING:
    from fake_services.service import Service
    from fake_services.state import FakeServices

__all__ = ["Control"]

Handler = Callable[[Call, list[str]], Reply]


def _json_body(call: Call) -> Any:
    if not call.body:
        return {}
    return json.loads(call.body, parse_constant=lambda name: float("nan"))


class Control:
    def __init__(self, services: FakeServices) -> None:
        self.services = services
        self._ui: Any = None

    def handle(self, call: Call) -> Reply:
        parts = [p for p in call.path.split("/") if p]
        table = self._routes(parts)
        if table is None:
            return problem(404, "Not found", f"nothing at {call.path}; see /openapi.json for every path")
        handler = table.get(call.method)
        if handler is None:
            reply = problem(405, "Method not allowed",
                            f"{call.path} answers {', '.join(sorted(table))}, not {call.method}")
            reply.headers["allow"] = ", ".join(sorted(table))
            return reply
        if len(parts) >= 2 and parts[0] == "behaviors" and parts[1] not in self.services.services:
            return problem(404, "Unknown service",
                           f"no service {parts[1]!r}; the services are {', '.join(self.services.services)}")
        try:
            return handler(call, parts)
        except (ValueError, RecursionError) as exc:
            return problem(422, "Invalid request body", str(exc))

    def _routes(self, parts: list[str]) -> dict[str, Handler] | None:
        match parts:
            case []:
                return {"GET": self._index}
            case ["openapi.json"]:
                return {"GET": self._openapi}
            case ["journal"]:
                return {"GET": self._journal, "DELETE": self._clear_journal}
            case ["reset"]:
                return {"POST": self._reset}
            case ["behaviors"]:
                return {"GET": self._all_behaviours}
            case ["behaviors", _]:
                return {"GET": self._behaviour, "PUT": self._set_behaviour}
            case ["behaviors", _, "faults"]:
                return {"GET": self._faults, "POST": self._add_fault, "DELETE": self._clear_faults}
            case ["behaviors", _, "ui"]:
                return {"GET": self._behaviour_page, "POST": self._behaviour_form}
        return None

    # -- JSON control API ----------------------------------------------------------------------------
    def _openapi(self, call: Call, parts: list[str]) -> Reply:
        from fake_services.openapi import openapi_document

        return json_reply(200, openapi_document())

    def _journal(self, call: Call, parts: list[str]) -> Reply:
        since = call.query.get("since", "0")
        if not since.isdigit():
            return problem(422, "Invalid query", f"since must be a sequence number, got {since!r}")
        entries = [e.to_dict() for e in self.services.journal.entries(int(since))]
        return json_reply(200, {"entries": entries, "count": len(entries)})

    def _clear_journal(self, call: Call, parts: list[str]) -> Reply:
        self.services.journal.clear()
        return json_reply(200, {"status": "cleared"})

    def _reset(self, call: Call, parts: list[str]) -> Reply:
        self.services.reset()
        return json_reply(200, {"status": "reset"})

    def _all_behaviours(self, call: Call, parts: list[str]) -> Reply:
        return json_reply(200, {n: b.to_dict() for n, b in self.services.behaviours.items()})

    def _behaviour(self, call: Call, parts: list[str]) -> Reply:
        return json_reply(200, self.services.behaviours[parts[1]].to_dict())

    def _set_behaviour(self, call: Call, parts: list[str]) -> Reply:
        behaviour = self.services.behaviours[parts[1]]
        behaviour.update(_json_body(call))
        return json_reply(200, behaviour.to_dict())

    def _faults(self, call: Call, parts: list[str]) -> Reply:
        return json_reply(200, {"faults": self.services.faults(parts[1])})

    def _add_fault(self, call: Call, parts: list[str]) -> Reply:
        try:
            rule = FaultRule.from_dict(_json_body(call))
        except TypeError as exc:  # a field of the wrong shape that the dataclass itself rejected
            raise ValueError(str(exc)) from exc
        rule_id = self.services.schedule(parts[1], rule)
        return json_reply(201, {**rule.to_dict(), "id": rule_id})

    def _clear_faults(self, call: Call, parts: list[str]) -> Reply:
        self.services.clear_faults(parts[1])
        return json_reply(200, {"faults": []})

    # -- HTML ----------------------------------------------------------------------------------------
    def _pages(self) -> Any:
        if self._ui is None:
            from fake_services.ui import Pages

            self._ui = Pages()
        return self._ui

    def _index(self, call: Call, parts: list[str]) -> Reply:
        return html(self._pages().index(self.services))

    def service_page(self, service: Service) -> Reply:
        with self.services.lock:
            rows = service.records()
            faults = self.services.faults(service.name)
        behaviour = self.services.behaviours[service.name]
        return html(self._pages().service(service, rows, behaviour, faults))

    def _behaviour_page(self, call: Call, parts: list[str]) -> Reply:
        return self.service_page(self.services.services[parts[1]])

    def _behaviour_form(self, call: Call, parts: list[str]) -> Reply:
        """The page's form: checkboxes are absent when unticked, so absence means false."""
        form = dict(parse_qsl(call.body.decode("utf-8", "replace"), keep_blank_values=True))
        sleep = form.get("sleep", "").strip() or "0"
        try:
            seconds = float(sleep)
        except ValueError:
            return problem(422, "Invalid form", f"sleep must be a number of seconds, got {sleep!r}")
        self.services.behaviours[parts[1]].update(
            {"crash": "crash" in form, "throttle": "throttle" in form, "sleep": seconds}
        )
        return Reply(303, b"", None, {"location": f"/{parts[1]}/ui"})
