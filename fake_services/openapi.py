"""The OpenAPI 3.1 document served at `/openapi.json`: the services' API and the control API.

Written by hand as data (the server routes by hand too); a test checks it names every route.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["openapi_document"]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ANY_OBJECT = {"type": "object", "additionalProperties": True}
_ID = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_METADATA = {"type": "object", "properties": {"order_id": {}, "idempotency_key": {}},
             "additionalProperties": True}
_HEADERS = [
    {"name": "X-Crash", "in": "header", "schema": {"type": "string", "enum": ["true"]},
     "description": "answer 503 or 504 before doing anything (email send: after sending)"},
    {"name": "X-Throttle", "in": "header", "schema": {"type": "string", "enum": ["true"]},
     "description": "answer 429 before doing anything"},
    {"name": "X-Be-Slow", "in": "header", "schema": {"type": "string"},
     "description": "`true` sleeps 1-10 s at random; a number sleeps that many seconds"},
]
_KEY_HEADER = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 257},
               "description": 'a structured-field string ("abc") or a bare key; a retry replays the '
                              "first answer, 409 while it runs, 422 if the payload differs"}
_SERVICE_NAME = {"name": "service", "in": "path", "required": True,
                 "schema": {"type": "string",
                            "enum": ["payments", "email", "fulfillment", "error-catcher", "chat"]}}


def _json(schema: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, tag: str = "services") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if tag == "services":
        op["parameters"] = [*_HEADERS, *(params or [])]
        op["responses"] = {**responses, "429": _problem("throttled"), "503": _problem("crashed")}
    elif params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


def _collection(service: str, what: str) -> dict[str, Any]:
    return {
        "get": _op(f"list the {what}", {"200": _json({"type": "array", "items": _ANY_OBJECT})}),
        "delete": _op(f"forget every {what[:-1]}", {"200": _json(_ANY_OBJECT)}),
    }


def _service_pages(service: str) -> dict[str, Any]:
    html = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        f"/{service}/status": {"get": _op(f"{service} is up", {"200": {"description": "up"}})},
        f"/{service}/ui": {"get": _op(f"{service} records as an HTML table", {"200": html})},
    }


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/payments/charge": {"post": _op(
            "charge a customer (9999 cents is declined)",
            {"201": _json({"type": "object", "properties": {"status": {"const": "success"},
                                                            "charge_id": {"type": "string"}}}),
             "200": _json({"type": "object", "properties": {"status": {"const": "declined"},
                                                            "explanation": {"type": "string"}}}),
             "409": _problem("the key is in flight"), "422": _problem("bad body or reused key")},
            body=_body({"customer_id": _ID, "payment_method_id": _ID, "amount_cents": {"type": "integer"},
                        "metadata": _METADATA}, ["customer_id", "payment_method_id", "amount_cents"]),
            params=[_KEY_HEADER])},
        "/email/send": {"post": _op(
            "send an email (no idempotency key)",
            {"202": _json({"type": "object", "properties": {"status": {"const": "queued"},
                                                            "email_id": {"type": "string"}}}),
             "422": _json(_ANY_OBJECT, "to or template_id missing")},
            body=_body({"to": {"type": "string"}, "template_id": {"type": "string"},
                        "template_data": _ANY_OBJECT}, ["to", "template_id"]))},
        "/email/emails": {
            "get": _op("search sent emails by address and template (both, or neither to list all)",
                       {"200": _json({"type": "array", "items": _ANY_OBJECT})},
                       params=[{"name": "email", "in": "query", "schema": {"type": "string"}},
                               {"name": "template_id", "in": "query", "schema": {"type": "string"}}]),
            "delete": _op("forget every email", {"200": _json(_ANY_OBJECT)})},
        "/fulfillment/request": {"put": _op(
            "ask for an order to be shipped",
            {"202": _json({"type": "object", "properties": {"status": {"const": "accepted"},
                                                            "request_id": {"type": "string"}}}),
             "409": _problem("the key is in flight"), "422": _json(_ANY_OBJECT, "missing address")},
            body=_body({"customer_id": _ID, "address": {}, "product_id": _ID,
                        "quantity": {"type": "integer", "minimum": 1}, "metadata": _METADATA},
                       ["customer_id", "address", "product_id", "quantity"]),
            params=[_KEY_HEADER])},
        "/error-catcher/notification": {"put": _op(
            "report an exception",
            {"202": _json({"type": "object", "properties": {"notification_id": {"type": "string"}}}),
             "422": _json(_ANY_OBJECT, "blank field")},
            body=_body({"exception_class": {"type": "string"}, "exception_message": {"type": "string"}},
                       ["exception_class", "exception_message"]))},
        "/chat/webhook": {"post": _op(
            "post a message (Slack-style incoming webhook)",
            {"200": {"description": "ok", "content": {"text/plain": {"schema": {"const": "ok"}}}},
             "400": _problem("no text")},
            body=_body({"text": {"type": "string"}, "channel": {"type": "string"}}, ["text"]))},
        "/payments/charges": _collection("payments", "charges"),
        "/fulfillment/requests": _collection("fulfillment", "requests"),
        "/error-catcher/notifications": _collection("error-catcher", "notifications"),
        "/chat/messages": _collection("chat", "messages"),
    }
    for service in ("payments", "email", "fulfillment", "error-catcher", "chat"):
        paths.update(_service_pages(service))
    paths["/fulfillment/status"]["get"]["responses"]["200"] = _json(
        {"type": "object", "properties": {"num_requests": {"type": "integer"}}})
    paths.update(_control_paths())
    return paths


def _control_paths() -> dict[str, Any]:
    behaviour = {"$ref": "#/components/schemas/Behaviour"}
    rule = {"$ref": "#/components/schemas/FaultRule"}
    svc = [_SERVICE_NAME]
    html = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
    form = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"crash": {"type": "string"}, "throttle": {"type": "string"},
                                         "sleep": {"type": "string"}}}}}}
    return {
        "/": {"get": _op("index of the services", {"200": html}, tag="control")},
        "/openapi.json": {"get": _op("this document", {"200": _json(_ANY_OBJECT)}, tag="control")},
        "/behaviors": {"get": _op("every service's behaviour",
                                  {"200": _json({"type": "object", "additionalProperties": behaviour})},
                                  tag="control")},
        "/behaviors/{service}": {
            "get": _op("one service's behaviour",
                       {"200": _json(behaviour), "404": _problem("no such service")},
                       params=svc, tag="control"),
            "put": _op("change some of a service's toggles",
                       {"200": _json(behaviour), "404": _problem("no such service"),
                        "422": _problem("bad body")},
                       body={"required": True, "content": {"application/json": {"schema": behaviour}}},
                       params=svc, tag="control")},
        "/behaviors/{service}/faults": {
            "get": _op("scheduled fault rules", {"200": _json(_ANY_OBJECT)}, params=svc, tag="control"),
            "post": _op("schedule a fault rule", {"201": _json(rule), "422": _problem("bad rule")},
                        body={"required": True, "content": {"application/json": {"schema": rule}}},
                        params=svc, tag="control"),
            "delete": _op("remove every rule", {"200": _json(_ANY_OBJECT)}, params=svc, tag="control")},
        "/behaviors/{service}/ui": {
            "get": _op("the service page with its behaviour form", {"200": html}, params=svc, tag="control"),
            "post": _op("the behaviour form", {"303": {"description": "back to the service page"}},
                        body=form, params=svc, tag="control")},
        "/journal": {
            "get": _op("every request in order, with its outcome", {"200": _json(_ANY_OBJECT)},
                       params=[{"name": "since", "in": "query", "schema": {"type": "integer"}}],
                       tag="control"),
            "delete": _op("empty the journal", {"200": _json(_ANY_OBJECT)}, tag="control")},
        "/reset": {"post": _op("forget everything: data, behaviours, schedules, journal, keys",
                               {"200": _json(_ANY_OBJECT)}, tag="control")},
    }


_COMPONENTS = {
    "schemas": {
        "Problem": {"type": "object", "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}}},
        "Behaviour": {"type": "object", "additionalProperties": False, "properties": {
            "crash": {"type": "boolean"}, "throttle": {"type": "boolean"},
            "sleep": {"type": "number", "minimum": 0},
            "retry_after": {"type": ["number", "null"], "minimum": 0},
            "crash_status": {"type": ["integer", "null"], "enum": [500, 502, 503, 504, None]}}},
        "FaultRule": {"type": "object", "additionalProperties": False, "required": ["fault"], "properties": {
            "fault": {"type": "string",
                      "enum": ["500", "502", "503", "504", "429", "timeout", "drop", "malformed"]},
            "phase": {"type": "string", "enum": ["before", "after"]},
            "next": {"type": "integer", "minimum": 1}, "nth": {"type": "integer", "minimum": 1},
            "every": {"type": "integer", "minimum": 1},
            "probability": {"type": "number", "minimum": 0, "maximum": 1},
            "operation": {"type": "string"}, "retry_after": {"type": "number", "minimum": 0},
            "timeout_s": {"type": "number", "minimum": 0}, "seed": {"type": "integer"},
            "id": {"type": "string", "readOnly": True}}},
    }
}


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {"title": "Fake third-party services", "version": "1.0.0",
                 "description": "Payments, email, fulfillment, an error catcher and a chat webhook, "
                                "with behaviours, fault schedules, idempotency keys and a journal."},
        "tags": [{"name": "services"}, {"name": "control"}],
        "paths": _paths(),
        "components": _COMPONENTS,
    })
