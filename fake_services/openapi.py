"""The OpenAPI 3.1 document served at `/openapi.json`: the services' API and the control API.

Written by hand as data (the server routes by hand too) and built from the services registered, so a new
service appears with its routes. It tells the truth about every answer a request can get when no fault
is armed: each status, each media type, each bound; `tests/fake_services/test_fake_schema.py` runs
schemathesis against it. Faults, toggles and the `X-Crash`, `X-Throttle` and `X-Be-Slow` headers make the
services break their own contract on purpose; they are described in prose, not offered as parameters.
The web pages' forms (posted under `/ui/`) are for people and are described in docs/serve.md, not here;
the pages themselves are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fake_services.behaviours import CRASH_STATUSES, FAULTS, MAX_OUTAGE_S, MAX_SECONDS, PHASES, SELECTORS
from fake_services.bodies import JSON, MAX_BODY_BYTES, MAX_DEPTH
from fake_services.idempotency import MAX_KEY_LENGTH, MAX_RETENTION_S

if TYPE_CHECKING:
    from fake_services.hub import Hub

__all__ = ["openapi_document"]

PROBLEM_JSON = "application/problem+json"
_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ANY_OBJECT = {"type": "object", "additionalProperties": True}
# Blank strings are refused by the services, as in the seed ("to required", "Missing address").
_TEXT = {"type": "string", "pattern": r"[^ \t\n\r\f\v]"}
_ID = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
_METADATA = {"type": ["object", "null"], "properties": {"order_id": {}, "idempotency_key": {}},
             "additionalProperties": True}
# A bare key of printable ASCII without quotes, or a structured-field string ("..." with \" and \\ escapes);
# either way at most MAX_KEY_LENGTH characters once unquoted.
_KEY_PATTERN = (rf'^(?:[!#-~](?:[ !#-~]{{0,{MAX_KEY_LENGTH - 2}}}[!#-~])?'
                rf'|"(?:[ !#-\[\]-~]|\\["\\]){{1,{MAX_KEY_LENGTH}}}")$')
_KEY_HEADER = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "pattern": _KEY_PATTERN},
               "description": f"a bare key or a structured-field string (\"abc\"), at most {MAX_KEY_LENGTH} "
                              "printable ASCII characters; a retry replays the first answer, 409 while it "
                              "runs, 422 if the payload differs"}
_FAULT_PROSE = (" Subject to the service's behaviour toggles and scheduled fault rules, which may answer 429, "
                "500, 502, 503 or 504, a body cut short (`malformed`), or no answer at all (`drop`, `timeout`), "
                "and to the seed's per-request headers `X-Crash: true` (503 or 504), `X-Throttle: true` (429) "
                f"and `X-Be-Slow` (`true`, or seconds from 0 to {MAX_SECONDS:g}; anything else: 400).")
_HTML = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}


def _json(schema: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM}}}


def _both(description: str, seed_shape: Any) -> dict[str, Any]:
    """A status answered in the seed's own JSON shape by the service, or as a problem by the front door."""
    return {"description": description,
            "content": {JSON: {"schema": seed_shape}, PROBLEM_JSON: {"schema": _PROBLEM}}}


def _body(schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": schema}}}


def _object(properties: dict[str, Any], required: list[str], *, extra: bool = True) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": extra}


def _op(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, tag: str = "services") -> dict[str, Any]:
    """One operation, with the answers every request can get added: 400 (a Host the server does not
    serve), 406 (an Accept it cannot meet) and, with a body, 413, 415 and 422. (403 for a cross-site
    request is added to every state-changing method by `openapi_document`.)"""
    common = {"400": _problem("a header the server refuses (Host, X-Be-Slow, Idempotency-Key)"),
              "406": _problem("the Accept header allows neither JSON nor HTML")}
    if body is not None:
        common.update({"413": _problem(f"the body is over {MAX_BODY_BYTES} bytes"),
                       "415": _problem("a Content-Type the route does not take"),
                       "422": _problem(f"the body is not {next(iter(body['content']))}, nests past {MAX_DEPTH} "
                                       "levels, or holds a lone surrogate")})
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {**common, **responses}}
    if tag == "services":
        op["description"] = summary[0].upper() + summary[1:] + "." + _FAULT_PROSE
        op["responses"].setdefault("429", _problem("throttled (a toggle or a fault rule)"))
        op["responses"]["429"]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        for status in ("500", "502", "503", "504"):
            op["responses"].setdefault(status, _problem("failed on purpose (a toggle or a fault rule)"))
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


def _collection(what: str, item: Any = _ANY_OBJECT) -> dict[str, Any]:
    return {
        "get": _op(f"list the {what}", {"200": _json({"type": "array", "items": item})}),
        "delete": _op(f"forget every {what[:-1]}", {"200": _json(_object(
            {"cleared": {"type": "integer", "minimum": 0}}, ["cleared"]))}),
    }


def _service_paths() -> dict[str, Any]:
    accepted = {"charge_id": {"type": "string"}}
    return {
        "/payments/charge": {"post": _op(
            "charge a customer (9999 cents is declined)",
            {"201": _json(_object({"status": {"const": "success"}, **accepted}, ["status", "charge_id"])),
             "200": _json(_object({"status": {"const": "declined"}, "explanation": {"type": "string"}},
                                  ["status", "explanation"])),
             "409": _problem("the Idempotency-Key is in flight"),
             "422": _problem("a bad field, or the Idempotency-Key reused with another payload")},
            body=_body(_object({"customer_id": _ID, "payment_method_id": _ID,
                                "amount_cents": {"type": "integer", "minimum": 0}, "metadata": _METADATA},
                               ["customer_id", "payment_method_id", "amount_cents"])),
            params=[_KEY_HEADER])},
        "/email/send": {"post": _op(
            "send an email (no idempotency key)",
            {"202": _json(_object({"status": {"const": "queued"}, "email_id": {"type": "string"}},
                                  ["status", "email_id"])),
             "422": _both("to or template_id missing or blank",
                          _object({"status": {"const": "not-queued"}, "errorMessage": {"type": "string"}},
                                  ["status", "errorMessage"]))},
            body=_body(_object({"to": _TEXT, "template_id": _TEXT,
                                "template_data": {"type": ["object", "null"]}}, ["to", "template_id"])))},
        "/email/smtp": {"post": _op(
            "record a message that came in over SMTP (what the SMTP face of the fake calls; one record per "
            "recipient)",
            {"202": _json(_object({"status": {"const": "queued"}, "email_id": {"type": "string"}},
                                  ["status", "email_id"])),
             "422": _both("no recipient, or a body the route cannot read",
                          _object({"status": {"const": "not-queued"}, "errorMessage": {"type": "string"}},
                                  ["status", "errorMessage"]))},
            body=_body(_object({"to": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                                "from": {"type": ["string", "null"]}, "subject": {"type": ["string", "null"]},
                                "message_id": {"type": ["string", "null"]}, "body": {"type": ["string", "null"]}},
                               ["to"])))},
        "/email/emails": {
            "get": _op("search sent emails: those matching every parameter given (none: all of them)",
                       {"200": _json({"type": "array", "items": _ANY_OBJECT})},
                       params=[{"name": "email", "in": "query", "schema": {"type": "string"}},
                               {"name": "template_id", "in": "query", "schema": {"type": "string"}}]),
            "delete": _collection("emails")["delete"]},
        "/fulfillment/request": {"put": _op(
            "ask for an order to be shipped",
            {"202": _json(_object({"status": {"const": "accepted"}, "request_id": {"type": "string"}},
                                  ["status", "request_id"])),
             "409": _problem("the Idempotency-Key is in flight"),
             "422": _both("a blank address (the seed's answer), a bad field, or a reused Idempotency-Key",
                          _object({"status": {"const": "rejected"}, "error": {"type": "string"}},
                                  ["status", "error"]))},
            body=_body(_object({"customer_id": _ID, "address": {"oneOf": [_TEXT, {"type": "object"}]},
                                "product_id": _ID, "quantity": {"type": "integer", "minimum": 1},
                                "metadata": _METADATA},
                               ["customer_id", "address", "product_id", "quantity"])),
            params=[_KEY_HEADER])},
        "/error-catcher/notification": {"put": _op(
            "report an exception",
            {"202": _json(_object({"notification_id": {"type": "string"}}, ["notification_id"])),
             "422": _both("a blank field", _object({"error": {"type": "string"}}, ["error"]))},
            body=_body(_object({"exception_class": _TEXT, "exception_message": _TEXT},
                               ["exception_class", "exception_message"])))},
        "/chat/webhook": {"post": _op(
            "post a message (Slack-style incoming webhook)",
            {"200": {"description": "ok", "content": {"text/plain": {"schema": {"const": "ok"}}}},
             "400": _problem("no text, or a channel that is not a string")},
            body=_body(_object({"text": _TEXT, "channel": {"type": ["string", "null"]}}, ["text"])))},
        "/payments/charges": _collection("charges"),
        "/fulfillment/requests": _collection("requests"),
        "/error-catcher/notifications": _collection("notifications"),
        "/chat/messages": _collection("messages"),
    }


_STRIPE_ERROR = _object({"error": _object({"type": {"enum": ["invalid_request_error", "card_error",
                                                              "idempotency_error", "api_error"]},
                                            "message": {"type": "string"}, "code": {"type": "string"},
                                            "param": {"type": "string"}}, ["type", "message"])}, ["error"])
_STRIPE_OBJECT = _object({"id": {"type": "string"}, "object": {"type": "string"}}, ["id", "object"])
_FORM_MEDIA = "application/x-www-form-urlencoded"
_STRIPE_TEXT = {"type": "string", "minLength": 1}
_AMOUNT = {"type": "integer", "minimum": 1, "maximum": 99_999_999}
_METADATA_FIELDS = {r"^metadata\[[^\[\]]+\]$": {"type": "string"}}


def _stripe_form(properties: dict[str, Any], required: list[str], *, metadata: bool = True,
                 **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required,
              "patternProperties": _METADATA_FIELDS if metadata else {}, "additionalProperties": False, **extra}
    return {"required": bool(required) or "anyOf" in extra or "oneOf" in extra,
            "content": {_FORM_MEDIA: {"schema": schema}}}


def _stripe_op(summary: str, responses: dict[str, str], *, body: dict[str, Any] | None = None,
               object_id: str | None = None) -> dict[str, Any]:
    """A Stripe operation: Stripe's objects and error objects; a Bearer key is required (401 without)."""
    answers: dict[str, Any] = {"200": _json(_STRIPE_OBJECT)}
    for status, why in {"401": "no API key (Authorization: Bearer sk_test_...)", **responses}.items():
        answers[status] = _json(_STRIPE_ERROR, why)
    answers["400"] = {"description": "a parameter Stripe refuses, or an Idempotency-Key reused with other "
                                     "parameters (Stripe's error object); a malformed Idempotency-Key "
                                     "(a problem)",
                      "content": {JSON: {"schema": _STRIPE_ERROR}, PROBLEM_JSON: {"schema": _PROBLEM}}}
    params: list[dict[str, Any]] = [_KEY_HEADER] if body is not None else []
    if object_id is not None:
        params.append({"name": object_id, "in": "path", "required": True, "schema": _STRIPE_TEXT})
    op = _op(summary, answers, body=body, params=params or None)
    op["responses"]["400"] = answers["400"]
    return op


def _stripe_paths() -> dict[str, Any]:
    """Stripe's charging API as the fake serves it (see fake_services/stripe.py)."""
    intent = {"amount": _AMOUNT, "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
              "customer": _STRIPE_TEXT, "payment_method": _STRIPE_TEXT, "confirm": {"enum": ["true", "false"]},
              "description": {"type": "string"}}
    confirming: dict[str, Any] = {"if": {"properties": {"confirm": {"const": "true"}}, "required": ["confirm"]},
                                  "then": {"required": ["payment_method"]}}
    charge = {"amount": _AMOUNT, "currency": intent["currency"], "customer": _STRIPE_TEXT,
              "source": _STRIPE_TEXT, "description": {"type": "string"}}
    refund = {"charge": _STRIPE_TEXT, "payment_intent": _STRIPE_TEXT, "amount": _AMOUNT,
              "reason": {"enum": ["duplicate", "fraudulent", "requested_by_customer"]}}
    keyed = {"409": "a request with the same Idempotency-Key is still running"}
    return {
        "/stripe/v1/payment_intents": {"post": _stripe_op(
            "create a PaymentIntent (confirm=true charges at once)",
            {**keyed, "402": "the card was declined (pm_card_chargeDeclined)"},
            body=_stripe_form(intent, ["amount", "currency"], **confirming))},
        "/stripe/v1/payment_intents/{intent}/confirm": {"post": _stripe_op(
            "confirm a PaymentIntent: charge it", {**keyed, "402": "the card was declined",
                                                    "404": "no such PaymentIntent"},
            body=_stripe_form({"payment_method": _STRIPE_TEXT}, [], metadata=False), object_id="intent")},
        "/stripe/v1/payment_intents/{intent}": {"get": _stripe_op(
            "retrieve a PaymentIntent", {"404": "no such PaymentIntent"}, object_id="intent")},
        "/stripe/v1/charges": {"post": _stripe_op(
            "create a Charge", {**keyed, "402": "the card was declined (tok_chargeDeclined)"},
            body=_stripe_form(charge, ["amount", "currency"],
                              anyOf=[{"required": ["source"]}, {"required": ["customer"]}]))},
        "/stripe/v1/charges/{charge}": {"get": _stripe_op(
            "retrieve a Charge", {"404": "no such Charge"}, object_id="charge")},
        "/stripe/v1/refunds": {"post": _stripe_op(
            "refund a Charge or a PaymentIntent's charge", {**keyed, "404": "no such Charge or PaymentIntent"},
            body=_stripe_form(refund, [], oneOf=[{"required": ["charge"]}, {"required": ["payment_intent"]}]))},
        "/stripe/objects": _collection("objects"),
    }


def _generic(service: str, method: str, rest: str, accepts: tuple[str, ...]) -> dict[str, Any]:
    """A route no entry above describes yet: documented by its shape alone."""
    body = _body({}, accepts[0]) if method in ("POST", "PUT", "PATCH") and accepts else None
    return _op(f"{method} /{service}/{rest}", {"200": {"description": "OK"}, "201": {"description": "OK"},
                                               "202": {"description": "OK"}, "422": _problem("bad input")},
               body=body)


def _paths(services: Hub) -> dict[str, Any]:
    documented = {**_service_paths(), **_stripe_paths()}
    paths: dict[str, Any] = {}
    for name, service in services.services.items():
        paths[f"/{name}/status"] = {"get": _op(f"{name} is up", {"200": {"description": "up"}})}
        paths[f"/{name}/ui"] = {"get": _op(f"{name} records as an HTML page", {"200": _HTML})}
        for (method, rest), route in service.routes.items():
            path = f"/{name}/{rest}"
            if path in documented:
                paths[path] = documented[path]
            elif method.lower() not in paths.setdefault(path, {}):
                paths[path][method.lower()] = _generic(name, method, rest, route.accepts)
    paths["/fulfillment/status"]["get"]["responses"]["200"] = _json(
        _object({"num_requests": {"type": "integer", "minimum": 0}}, ["num_requests"]))
    paths.update(_control_paths(services))
    return paths


def _fault_rule(operations: list[str]) -> dict[str, Any]:
    """A rule takes at most one selector: one branch per selector, and one with none."""
    common = {
        "fault": {"enum": [*FAULTS, *(int(f) for f in FAULTS if f.isdigit())]},
        "phase": {"enum": list(PHASES)},
        "operation": {"enum": [*operations, None]},
        "retry_after": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        "timeout_s": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        "seed": {"type": ["integer", "null"]},
        "after_s": {"type": "number", "minimum": 0, "maximum": MAX_OUTAGE_S},
        "for_s": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_OUTAGE_S},
    }
    count = {"type": "integer", "minimum": 1}
    chosen = {"next": count, "nth": count, "every": count,
              "probability": {"type": "number", "minimum": 0, "maximum": 1}}
    unset = {"type": "null"}
    branches = [_object({**common, **{s: unset for s in SELECTORS}}, ["fault"], extra=False)]
    for selector in SELECTORS:
        others = {s: unset for s in SELECTORS if s != selector}
        branches.append(_object({**common, **others, selector: chosen[selector]}, ["fault", selector],
                                extra=False))
    return {"oneOf": branches}


def _control_paths(services: Hub) -> dict[str, Any]:
    behaviour = {"$ref": "#/components/schemas/Behaviour"}
    armed = {"$ref": "#/components/schemas/ArmedRule"}
    svc = [{"name": "service", "in": "path", "required": True,
            "schema": {"type": "string", "enum": list(services.services)}}]
    unknown = {"404": _problem("no such service")}
    retention = _object({"service": {"type": "string"}, "retention_s": {"type": "number", "exclusiveMinimum": 0},
                         "expired": {"type": "array", "items": _ANY_OBJECT}}, ["service", "retention_s", "expired"])
    paths: dict[str, Any] = {
        "/": {"get": _op("index of the services", {"200": _HTML}, tag="control")},
        "/openapi.json": {"get": _op("this document", {"200": _json(_ANY_OBJECT)}, tag="control")},
        "/behaviors": {"get": _op("every service's behaviour",
                                  {"200": _json({"type": "object", "additionalProperties": behaviour})},
                                  tag="control")},
        "/behaviors/{service}": {
            "get": _op("one service's behaviour", {"200": _json(behaviour), **unknown}, params=svc, tag="control"),
            "put": _op("change some of a service's toggles",
                       {"200": _json(behaviour), **unknown, "422": _problem("a bad or missing body")},
                       body=_body(behaviour), params=svc, tag="control")},
        "/behaviors/{service}/keys": {
            "get": _op("how long the service keeps an Idempotency-Key, and the keys it has seen expire",
                       {"200": _json(retention), **unknown}, params=svc, tag="control"),
            "put": _op("change how long the service keeps an Idempotency-Key (null: back to 24 h)",
                       {"200": _json(retention), **unknown, "422": _problem("a bad or missing body")},
                       body=_body(_object({"retention_s": {"type": ["number", "null"], "exclusiveMinimum": 0,
                                                           "maximum": MAX_RETENTION_S}},
                                          ["retention_s"], extra=False)),
                       params=svc, tag="control")},
        "/behaviors/{service}/ui": {
            "get": _op("the service page with its forms", {"200": _HTML, **unknown}, params=svc, tag="control")},
        "/journal/ui": {"get": _op("the journal as an HTML page", {"200": _HTML}, tag="control")},
        "/journal": {
            "get": _op("every request in order, with its outcome",
                       {"200": _json(_object({"entries": {"type": "array", "items": _ANY_OBJECT},
                                              "count": {"type": "integer"}}, ["entries", "count"])),
                        "422": _problem("since is not a sequence number")},
                       params=[{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                       tag="control"),
            "delete": _op("empty the journal", {"200": _json(_ANY_OBJECT)}, tag="control")},
        "/reset": {"post": _op("forget everything: data, behaviours, schedules, journal, keys (with "
                               "`service`: that service's data, behaviour, rules and keys only)",
                               {"200": _json(_ANY_OBJECT), **unknown},
                               params=[{"name": "service", "in": "query",
                                        "schema": {"type": "string", "enum": list(services.services)}}],
                               tag="control")},
    }
    for name in services.services:
        operations = services.services[name].operations()
        paths[f"/behaviors/{name}/faults"] = {
            "get": _op(f"the fault rules scheduled on {name}",
                       {"200": _json(_object({"faults": {"type": "array", "items": armed}}, ["faults"]))},
                       tag="control"),
            "post": _op(f"schedule a fault rule on {name}",
                        {"201": _json(armed), "422": _problem("a bad rule")},
                        body=_body(_fault_rule(operations)), tag="control"),
            "delete": _op(f"remove every rule of {name}",
                          {"200": _json(_object({"faults": {"type": "array", "maxItems": 0}}, ["faults"]))},
                          tag="control")}
        paths[f"/behaviors/{name}/faults/{{id}}"] = {"delete": _op(
            f"remove one rule of {name}",
            {"200": _json(_object({"faults": {"type": "array", "items": armed}}, ["faults"])),
             "404": _problem("no such rule")},
            params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                     "example": f"{name}-1"}], tag="control")}
    return paths


def _components() -> dict[str, Any]:
    nullable_count = {"type": ["integer", "null"], "minimum": 1}
    seconds = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
    return {"schemas": {
        "Problem": _object({"type": {"type": "string"}, "title": {"type": "string"},
                            "status": {"type": "integer"}, "detail": {"type": "string"}},
                           ["type", "title", "status", "detail"]),
        "Behaviour": _object({
            "crash": {"type": "boolean"}, "throttle": {"type": "boolean"}, "sleep": seconds,
            "retry_after": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_SECONDS},
            "crash_status": {"enum": [*CRASH_STATUSES, None]}}, [], extra=False),
        "ArmedRule": _object({
            "id": {"type": "string"}, "fault": {"enum": list(FAULTS)}, "phase": {"enum": list(PHASES)},
            "next": nullable_count, "nth": nullable_count, "every": nullable_count,
            "probability": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "operation": {"type": ["string", "null"]}, "retry_after": seconds, "timeout_s": seconds,
            "seed": {"type": ["integer", "null"]}, "seen": {"type": "integer", "minimum": 0},
            "fired": {"type": "integer", "minimum": 0},
            "after_s": {"type": "number", "minimum": 0, "maximum": MAX_OUTAGE_S},
            "for_s": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_OUTAGE_S},
            "opens": {"type": "number"}, "closes": {"type": ["number", "null"]}},
            ["id", "fault", "phase", "next", "nth", "every", "probability", "operation", "retry_after",
             "timeout_s", "seed"]),
    }}


def openapi_document(services: Hub) -> dict[str, Any]:
    """The document for `services`; callers may change it."""
    paths = _paths(services)
    for item in paths.values():
        for method, operation in item.items():
            if method != "get":
                operation["responses"]["403"] = _problem("a request from another site (Origin or Sec-Fetch-Site)")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fake third-party services", "version": "1.1.0",
                 "description": "Payments, email, fulfillment, an error catcher and a chat webhook, "
                                "with behaviours, fault schedules, idempotency keys and a journal. Request "
                                f"bodies are at most {MAX_BODY_BYTES} bytes and nest at most {MAX_DEPTH} "
                                "levels; a body without a Content-Type is read as the route's own type. The web pages' "
                                "forms post under /ui/ and are not described here."},
        "tags": [{"name": "services"}, {"name": "control"}],
        "paths": paths,
        "components": _components(),
    }
