"""A Stripe-compatible payments fake: the part of Stripe's API that charging code uses.

PaymentIntents (create, with `confirm=true` to charge at once; confirm; retrieve), Charges (create,
retrieve) and Refunds (create), under `/stripe/v1/...`, so the official `stripe` package works unchanged
with `stripe.api_base = "http://HOST:PORT/stripe"` (or, in a world, with `https://api.stripe.com` mapped
to this service). Bodies are form-encoded with Stripe's brackets (`metadata[order_id]=7`); answers and
errors are Stripe's JSON objects (`{"error": {"type", "code", "message", "param"}}`).

Stripe's idempotency rules hold: a POST with an `Idempotency-Key` has its first result saved once the
API began executing it, whatever its status, and a retry with the same key gets that result back and does
nothing new; the same key with other parameters is refused with 400 `idempotency_error`; keys are kept 24
hours on the services' clock. A fault the harness injects after the effect (a 503 from a proxy, a dropped
connection) is not the API's answer: the saved result is the one the API produced.

Test payment methods as Stripe names them: `pm_card_visa` (and any other) succeeds;
`pm_card_chargeDeclined`, `pm_card_visa_chargeDeclined` and the source `tok_chargeDeclined` are declined
with 402 `card_declined`.
"""

from __future__ import annotations

import re
from typing import Any

from fake_services.messages import Call, Reply, json_reply
from fake_services.service import Outcome, Route, Service

__all__ = ["DECLINING_METHODS", "Stripe", "stripe_form"]

#: Payment methods and sources that Stripe's test mode declines.
DECLINING_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined", "tok_chargeDeclined"})
#: Stripe's largest amount in the smallest currency unit (eight digits).
MAX_AMOUNT = 99_999_999
_FORM = ("application/x-www-form-urlencoded",)
_CURRENCY = re.compile(r"[a-z]{3}")
_BRACKETS = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_MAX_DEPTH = 5

#: The parameters each endpoint takes (others are refused, as Stripe refuses them).
_CREATE_INTENT = frozenset({"amount", "currency", "customer", "payment_method", "confirm", "description", "metadata"})
_CONFIRM = frozenset({"payment_method"})
_CREATE_CHARGE = frozenset({"amount", "currency", "customer", "source", "description", "metadata"})
_CREATE_REFUND = frozenset({"charge", "payment_intent", "amount", "reason", "metadata"})
_READ: frozenset[str] = frozenset()
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class StripeError(Exception):
    """An error Stripe answers with its own object; `status` is the HTTP status."""

    def __init__(self, status: int, kind: str, message: str, *, code: str | None = None,
                 param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.param, self.extra = status, kind, code, param, extra

    def reply(self) -> Reply:
        error: dict[str, Any] = {"type": self.kind, "message": str(self)}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return json_reply(self.status, {"error": error})


def stripe_form(fields: dict[str, str]) -> dict[str, Any]:
    """Stripe's bracketed form fields as nested values: `metadata[order_id]=7` → `{"metadata": {"order_id":
    "7"}}`, `expand[]=x` → `{"expand": ["x"]}` (an HTML form keeps the last value of a repeated name)."""
    nested: dict[str, Any] = {}
    for name, value in fields.items():
        match = _BRACKETS.fullmatch(name)
        if match is None:
            raise StripeError(400, "invalid_request_error", f"Invalid parameter name: {name!r}",
                              code="parameter_unknown", param=name)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        if len(path) > _MAX_DEPTH:
            raise StripeError(400, "invalid_request_error", f"{name!r} nests too deep", param=name)
        _place(nested, path, value, name)
    return nested


def _place(into: dict[str, Any], path: list[str], value: str, name: str) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        into[head] = value
        return
    if rest == [""]:
        current = into.setdefault(head, [])
        if not isinstance(current, list):
            raise StripeError(400, "invalid_request_error", f"{name!r} mixes a list and a value", param=name)
        current.append(value)
        return
    child = into.setdefault(head, {})
    if not isinstance(child, dict):
        raise StripeError(400, "invalid_request_error", f"{name!r} mixes an object and a value", param=name)
    _place(child, rest, value, name)


def _flat(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}", item, into)
    else:
        into[prefix] = value


class Stripe(Service):
    name = "stripe"
    title = "Stripe"
    id_prefix = "pi"
    collection = "objects"
    columns = ("object", "id", "amount", "currency", "status", "metadata")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self._objects: dict[str, dict[str, Any]] = {}
        add = self.routes.__setitem__
        add(("POST", "v1/payment_intents"), Route("create_payment_intent", self._create_intent, 200, True, _FORM))
        add(("POST", "v1/payment_intents/{intent}/confirm"),
            Route("confirm_payment_intent", self._confirm, 200, True, _FORM))
        add(("GET", "v1/payment_intents/{intent}"), Route("retrieve_payment_intent", self._retrieve, 200))
        add(("POST", "v1/charges"), Route("create_charge", self._create_charge, 200, True, _FORM))
        add(("GET", "v1/charges/{charge}"), Route("retrieve_charge", self._retrieve, 200))
        add(("POST", "v1/refunds"), Route("create_refund", self._create_refund, 200, True, _FORM))

    def clear(self) -> int:
        with self.lock:
            self._objects.clear()
            return super().clear()

    def new_stripe_id(self, prefix: str) -> str:
        return prefix + self.new_id()[len(self.id_prefix):]

    # -- what the pipeline asks ----------------------------------------------------------------------
    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        if isinstance(body, dict):
            try:
                params = stripe_form(body)
            except StripeError:
                params = {}
            for name in ("amount", "currency", "customer", "payment_method", "charge", "payment_intent"):
                if isinstance(params.get(name), str):
                    keys[name] = int(params[name]) if name == "amount" and params[name].isdigit() else params[name]
            if isinstance(params.get("metadata"), dict):
                _flat("metadata", params["metadata"], keys)
        if operation in ("confirm_payment_intent", "retrieve_payment_intent", "retrieve_charge"):
            parts = call.path.split("/")  # /stripe/v1/<collection>/<id>[/confirm]
            keys["id"] = parts[4] if len(parts) > 4 else ""
        # Not the Idempotency-Key: the stripe package makes one up for each request (a UUID), so it names
        # no business fact, and effects that differ only by it are the same charge.
        return keys

    def key_refusal(self, status: int, key: str, detail: str) -> Reply:
        if status == 409:
            return StripeError(409, "idempotency_error", "There is currently another in-progress request "
                               f"using this Idempotent Key ({key}); retry later.").reply()
        return StripeError(400, "idempotency_error", "Keys for idempotent requests can only be used with the "
                           f"same parameters they were first used with. Try using a key other than {key!r} "
                           "if you meant to execute a different request.").reply()

    def _guarded(self, call: Call, body: Any, allowed: frozenset[str], handler: Any) -> Outcome:
        """Stripe's checks before any handler: an API key, known parameters; errors as Stripe's objects."""
        try:
            auth = call.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                raise StripeError(401, "invalid_request_error", "You did not provide an API key. Provide it "
                                  "in the Authorization header, as Bearer sk_test_...")
            params = stripe_form(body if isinstance(body, dict) else {})
            unknown = sorted(set(params) - allowed)
            if unknown:
                raise StripeError(400, "invalid_request_error", f"Received unknown parameter: {unknown[0]}",
                                  code="parameter_unknown", param=unknown[0])
            return handler(call, params)
        except StripeError as error:
            return Outcome(error.reply(), False)

    # -- PaymentIntents --------------------------------------------------------------------------------
    def _create_intent(self, call: Call, body: Any) -> Outcome:
        return self._guarded(call, body, _CREATE_INTENT, self._do_create_intent)

    def _do_create_intent(self, call: Call, params: dict[str, Any]) -> Outcome:
        amount, currency = _amount(params), _currency(params)
        metadata = _metadata(params)
        method = _text(params, "payment_method")
        confirm = _flag(params, "confirm")
        intent = {
            "id": self.new_stripe_id("pi"), "object": "payment_intent", "amount": amount,
            "amount_received": 0, "currency": currency, "customer": _text(params, "customer"),
            "payment_method": method, "description": _text(params, "description"), "metadata": metadata,
            "status": "requires_confirmation" if method else "requires_payment_method",
            "latest_charge": None, "created": int(self.clock.time()), "livemode": False,
        }
        intent["client_secret"] = f"{intent['id']}_secret_fake"
        self._store(intent)
        if confirm:
            if method is None:
                raise StripeError(400, "invalid_request_error", "You cannot confirm this PaymentIntent because "
                                  "it's missing a payment method.", code="payment_intent_unexpected_state",
                                  param="payment_method")
            return self._pay(intent, method)
        return Outcome(json_reply(200, intent), True)

    def _confirm(self, call: Call, body: Any) -> Outcome:
        return self._guarded(call, body, _CONFIRM, self._do_confirm)

    def _do_confirm(self, call: Call, params: dict[str, Any]) -> Outcome:
        intent = self._find(call, "payment_intent")
        if intent["status"] not in ("requires_confirmation", "requires_payment_method"):
            raise StripeError(400, "invalid_request_error", "This PaymentIntent's status is "
                              f"{intent['status']}; it cannot be confirmed.",
                              code="payment_intent_unexpected_state", payment_intent=dict(intent))
        method = _text(params, "payment_method") or intent["payment_method"]
        if method is None:
            raise StripeError(400, "invalid_request_error", "You cannot confirm this PaymentIntent because "
                              "it's missing a payment method.", code="payment_intent_unexpected_state",
                              param="payment_method")
        return self._pay(intent, method)

    def _pay(self, intent: dict[str, Any], method: str) -> Outcome:
        """Charge the intent's amount: a charge object either way, the intent succeeded or declined."""
        charge = self._charge_object(intent["amount"], intent["currency"], intent["customer"], method,
                                     intent["metadata"], payment_intent=intent["id"])
        intent["payment_method"] = method
        intent["latest_charge"] = charge["id"]
        if charge["status"] == "failed":
            intent["status"] = "requires_payment_method"
            declined = StripeError(402, "card_error", "Your card was declined.", code="card_declined",
                                   decline_code="generic_decline", charge=charge["id"],
                                   payment_intent=dict(intent))
            return Outcome(declined.reply(), True)
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]
        return Outcome(json_reply(200, intent), True)

    def _retrieve(self, call: Call, body: Any) -> Outcome:
        kind = "payment_intent" if "/payment_intents/" in call.path else "charge"
        return self._guarded(call, body, _READ, lambda c, p: Outcome(json_reply(200, self._find(c, kind)), False))

    # -- Charges and Refunds ---------------------------------------------------------------------------
    def _create_charge(self, call: Call, body: Any) -> Outcome:
        return self._guarded(call, body, _CREATE_CHARGE, self._do_create_charge)

    def _do_create_charge(self, call: Call, params: dict[str, Any]) -> Outcome:
        amount, currency = _amount(params), _currency(params)
        source = _text(params, "source")
        customer = _text(params, "customer")
        if source is None and customer is None:
            raise StripeError(400, "invalid_request_error", "Must provide source or customer.", param="source")
        charge = self._charge_object(amount, currency, customer, source or "card_default", _metadata(params))
        if charge["status"] == "failed":
            return Outcome(StripeError(402, "card_error", "Your card was declined.", code="card_declined",
                                       decline_code="generic_decline", charge=charge["id"]).reply(), True)
        return Outcome(json_reply(200, charge), True)

    def _charge_object(self, amount: int, currency: str, customer: str | None, method: str,
                       metadata: dict[str, Any], payment_intent: str | None = None) -> dict[str, Any]:
        declined = method in DECLINING_METHODS
        charge = {
            "id": self.new_stripe_id("ch"), "object": "charge", "amount": amount, "amount_refunded": 0,
            "currency": currency, "customer": customer, "payment_method": method, "metadata": dict(metadata),
            "payment_intent": payment_intent, "paid": not declined, "refunded": False,
            "status": "failed" if declined else "succeeded", "created": int(self.clock.time()),
            "failure_code": "card_declined" if declined else None, "livemode": False,
        }
        self._store(charge)
        return charge

    def _create_refund(self, call: Call, body: Any) -> Outcome:
        return self._guarded(call, body, _CREATE_REFUND, self._do_create_refund)

    def _do_create_refund(self, call: Call, params: dict[str, Any]) -> Outcome:
        charge_id, intent_id = _text(params, "charge"), _text(params, "payment_intent")
        if (charge_id is None) == (intent_id is None):
            raise StripeError(400, "invalid_request_error", "Provide exactly one of charge or payment_intent.",
                              param="charge")
        if intent_id is not None:
            intent = self._get(intent_id, "payment_intent", "payment_intent")
            charge_id = intent["latest_charge"]
            if charge_id is None or intent["status"] != "succeeded":
                raise StripeError(400, "invalid_request_error", f"PaymentIntent {intent_id} has no successful "
                                  "charge to refund.", code="charge_not_refundable", param="payment_intent")
        assert charge_id is not None
        charge = self._get(charge_id, "charge", "charge")
        left = charge["amount"] - charge["amount_refunded"]
        if charge["status"] != "succeeded" or left <= 0:
            raise StripeError(400, "invalid_request_error", f"Charge {charge_id} has already been refunded.",
                              code="charge_already_refunded", param="charge")
        amount = _amount(params, required=False)
        amount = left if amount is None else amount
        if amount > left:
            raise StripeError(400, "invalid_request_error", f"Refund amount ({amount}) is greater than the "
                              f"charge's unrefunded amount ({left}).", code="amount_too_large", param="amount")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {"id": self.new_stripe_id("re"), "object": "refund", "amount": amount, "charge": charge_id,
                  "currency": charge["currency"], "payment_intent": charge["payment_intent"],
                  "metadata": _metadata(params), "reason": _reason(params), "status": "succeeded",
                  "created": int(self.clock.time())}
        self._store(refund)
        return Outcome(json_reply(200, refund), True)

    # -- the objects -----------------------------------------------------------------------------------
    def _store(self, obj: dict[str, Any]) -> None:
        self._objects[obj["id"]] = obj
        self._records.append(obj)  # the same dict: the page and `records()` show its latest state

    def _find(self, call: Call, kind: str) -> dict[str, Any]:
        parts = call.path.split("/")
        return self._get(parts[4] if len(parts) > 4 else "", kind, "id")

    def _get(self, object_id: str, kind: str, param: str) -> dict[str, Any]:
        found = self._objects.get(object_id)
        if found is None or found["object"] != kind:
            raise StripeError(404, "invalid_request_error", f"No such {kind}: '{object_id}'",
                              code="resource_missing", param=param)
        return found


def _text(params: dict[str, Any], name: str) -> str | None:
    """An optional string parameter: absent is None; present, it must be a non-empty string."""
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or (value == "" and name != "description"):
        raise StripeError(400, "invalid_request_error", f"Invalid {name}: a non-empty string", param=name)
    return value


def _amount(params: dict[str, Any], *, required: bool = True) -> Any:
    raw = params.get("amount")
    if raw is None:
        if required:
            raise StripeError(400, "invalid_request_error", "Missing required param: amount.",
                              code="parameter_missing", param="amount")
        return None
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or int(raw) > MAX_AMOUNT:
        raise StripeError(400, "invalid_request_error", f"Invalid integer: {raw!r} (amount is a whole number "
                          f"of the currency's smallest unit, up to {MAX_AMOUNT})", code="parameter_invalid_integer",
                          param="amount")
    if int(raw) < 1:
        raise StripeError(400, "invalid_request_error", "Amount must be at least 1.", code="amount_too_small",
                          param="amount")
    return int(raw)


def _currency(params: dict[str, Any]) -> str:
    raw = params.get("currency")
    if raw is None:
        raise StripeError(400, "invalid_request_error", "Missing required param: currency.",
                          code="parameter_missing", param="currency")
    if not isinstance(raw, str) or not _CURRENCY.fullmatch(raw):
        raise StripeError(400, "invalid_request_error", f"Invalid currency: {raw!r} (three lower-case letters)",
                          code="parameter_invalid_string", param="currency")
    return raw


def _reason(params: dict[str, Any]) -> str | None:
    reason = _text(params, "reason")
    if reason is not None and reason not in REFUND_REASONS:
        raise StripeError(400, "invalid_request_error", f"Invalid reason: {reason!r}; one of "
                          f"{', '.join(REFUND_REASONS)}", param="reason")
    return reason


def _flag(params: dict[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw in (None, "false"):
        return False
    if raw == "true":
        return True
    raise StripeError(400, "invalid_request_error", f"Invalid boolean: {raw!r}", param=name)


def _metadata(params: dict[str, Any]) -> dict[str, Any]:
    raw = params.get("metadata")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise StripeError(400, "invalid_request_error", "Invalid metadata: an object of strings, as "
                          "metadata[key]=value", param="metadata")
    return dict(raw)
