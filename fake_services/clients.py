"""Typed clients for the fake services (the book's "service wrappers") with classified errors.

Every failure is a `ServiceError`: `TransientServiceError` when retrying may help (5xx, 429, 409 for a
key in flight, timeouts, broken connections, unreadable bodies), `PermanentServiceError` for the other
4xx. Jobs retry the first kind and report the second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from fake_services.transport import call_direct, direct_services

__all__ = [
    "ChargeResult",
    "ChatClient",
    "EmailClient",
    "ErrorCatcherClient",
    "FulfillmentClient",
    "PaymentsClient",
    "PermanentServiceError",
    "ServiceError",
    "TransientServiceError",
]

DEFAULT_BASE_URL = "http://fake-services"
#: How many parsed URLs are kept for all clients (URLs that name a record vary without end).
_URLS_KEPT = 256
_urls: dict[str, httpx.URL] = {}


def _url(text: str) -> httpx.URL:
    """`httpx.URL(text)`, parsed once: parsing costs a fifth of an in-process call, and a job's clients
    are built afresh in every simulated process. URLs are immutable, so every client may share them."""
    url = _urls.get(text)
    if url is None:
        url = httpx.URL(text)
        if len(_urls) < _URLS_KEPT:
            _urls[text] = url
    return url


class ServiceError(Exception):
    """A call to a service did not give the answer its contract promises."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class TransientServiceError(ServiceError):
    """Worth retrying: the service was down, slow, throttling, or its answer was lost or garbled."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class PermanentServiceError(ServiceError):
    """Retrying the same request will fail the same way: fix the request (or the code sending it)."""


@dataclass(frozen=True)
class ChargeResult:
    status: str  # "success" or "declined"
    charge_id: str | None = None
    explanation: str | None = None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; the caller falls back to its own backoff


class _Client:
    service = ""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, http: httpx.Client | None = None,
                 timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._own = http is None
        self.http = http if http is not None else httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, operation: str, method: str, path: str, expected: tuple[int, ...], *,
              json_body: Any = None, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> Any:
        """The response (an `httpx.Response`, or the same fields of a `DirectResponse`) when its status is
        expected; otherwise the classified error."""
        what = f"{self.service}.{operation}"
        url = _url(self.base_url + path)
        response: Any
        try:
            services = direct_services(self.http)
            if services is not None:
                response = call_direct(self.http, services, method, url, params, headers, json_body)
            else:
                response = self.http.request(method, url, json=json_body, params=params,
                                             headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise TransientServiceError(f"{what} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientServiceError(f"{what} failed to connect or lost the connection: {exc}") from exc
        status = response.status_code
        if status in expected:
            return response
        body = _body(response)
        detail = body.get("detail") if isinstance(body, dict) else None
        message = f"{what} answered {status}" + (f": {detail}" if detail else "")
        if status >= 500 or status in (409, 429):
            raise TransientServiceError(message, status=status, body=body,
                                        retry_after=_retry_after(response.headers.get("retry-after")))
        if 400 <= status < 500:
            raise PermanentServiceError(message, status=status, body=body)
        wanted = " or ".join(map(str, expected))
        raise ServiceError(f"{message} (expected {wanted})", status=status, body=body)

    def _json(self, operation: str, response: Any, *fields: str) -> Any:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TransientServiceError(
                f"{self.service}.{operation} answered {response.status_code} with a body that is not JSON",
                status=response.status_code, body=response.text) from exc
        missing = [f for f in fields if not isinstance(data, dict) or f not in data]
        if missing:
            raise TransientServiceError(
                f"{self.service}.{operation} answered {response.status_code} without {', '.join(missing)}",
                status=response.status_code, body=data)
        return data


def _body(response: Any) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


def _key_header(idempotency_key: str | None) -> dict[str, str] | None:
    if idempotency_key is None:
        return None
    escaped = idempotency_key.replace("\\", "\\\\").replace('"', '\\"')
    return {"Idempotency-Key": f'"{escaped}"'}


class PaymentsClient(_Client):
    service = "payments"

    def charge(self, *, customer_id: Any, payment_method_id: Any, amount_cents: int,
               metadata: dict[str, Any] | None = None, idempotency_key: str | None = None) -> ChargeResult:
        """201 is a success, 200 a decline; `idempotency_key` is sent as the `Idempotency-Key` header."""
        body = {"customer_id": customer_id, "payment_method_id": payment_method_id,
                "amount_cents": amount_cents, "metadata": metadata or {}}
        response = self._call("charge", "POST", "/payments/charge", (200, 201), json_body=body,
                              headers=_key_header(idempotency_key))
        if response.status_code == 201:
            data = self._json("charge", response, "charge_id")
            return ChargeResult("success", charge_id=data["charge_id"])
        data = self._json("charge", response, "status")
        if data["status"] != "declined":
            # A 200 that is not a decline is a garbled answer, not a decision.
            raise TransientServiceError(f"payments.charge answered 200 with status {data['status']!r}",
                                        status=200, body=data)
        return ChargeResult("declined", explanation=data.get("explanation"))


class EmailClient(_Client):
    service = "email"

    def send(self, *, to: str, template_id: str, template_data: dict[str, Any]) -> str:
        body = {"to": to, "template_id": template_id, "template_data": template_data}
        response = self._call("send", "POST", "/email/send", (202,), json_body=body)
        return str(self._json("send", response, "email_id")["email_id"])

    def search(self, *, email: str, template_id: str) -> list[dict[str, Any]]:
        response = self._call("search", "GET", "/email/emails", (200,),
                              params={"email": email, "template_id": template_id})
        data = self._json("search", response)
        if not isinstance(data, list):
            raise TransientServiceError("email.search answered something other than a list",
                                        status=response.status_code, body=data)
        return data


class FulfillmentClient(_Client):
    service = "fulfillment"

    def request(self, *, customer_id: Any, address: Any, product_id: Any, quantity: int,
                metadata: dict[str, Any] | None = None, idempotency_key: str | None = None) -> str:
        body = {"customer_id": customer_id, "address": address, "product_id": product_id,
                "quantity": quantity, "metadata": metadata or {}}
        response = self._call("request", "PUT", "/fulfillment/request", (202,), json_body=body,
                              headers=_key_header(idempotency_key))
        return str(self._json("request", response, "request_id")["request_id"])


class ErrorCatcherClient(_Client):
    service = "error-catcher"

    def notify(self, *, exception_class: str, exception_message: str) -> str:
        body = {"exception_class": exception_class, "exception_message": exception_message}
        response = self._call("notify", "PUT", "/error-catcher/notification", (202,), json_body=body)
        return str(self._json("notify", response, "notification_id")["notification_id"])


class ChatClient(_Client):
    service = "chat"

    def post(self, *, text: str, channel: str | None = None) -> None:
        body: dict[str, Any] = {"text": text}
        if channel is not None:
            body["channel"] = channel
        response = self._call("post", "POST", "/chat/webhook", (200,), json_body=body)
        if response.text != "ok":
            raise TransientServiceError(f"chat.post answered 200 with {response.text[:40]!r} instead of 'ok'",
                                        status=200, body=response.text)
