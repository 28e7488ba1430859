"""The fake email service: queues an email, searches sent ones; it has no idempotency key.

Under a crash it sends first and then answers 503 (the seed's "the service did it but said it failed"),
which `FakeServices` applies as a crash in the `after` phase. Errors keep the seed's body shape.
"""

from __future__ import annotations

from typing import Any

from fake_services.messages import Call, json_reply
from fake_services.service import Outcome, Route, Service, blank, scalar_keys

__all__ = ["Email"]


def _not_queued(message: str) -> Outcome:
    return Outcome(json_reply(422, {"status": "not-queued", "errorMessage": message}), False)


class Email(Service):
    name = "email"
    title = "Email"
    id_prefix = "em"
    collection = "emails"
    columns = ("to", "template_id", "template_data", "email_id")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self.routes[("POST", "send")] = Route("send", self._send, 202)
        self.routes[("GET", "emails")] = Route("search", self._search, 200)
        #: Mail that came in over SMTP (`fake_services.smtp`): one record per recipient.
        self.routes[("POST", "smtp")] = Route("smtp_send", self._smtp, 202)

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        if operation == "smtp_send" and isinstance(body, dict):
            keys = scalar_keys(body, "from", "subject", "message_id")
            if isinstance(body.get("to"), list):
                keys["to"] = ", ".join(str(t) for t in body["to"])
            return keys
        if operation == "search":
            return {n: call.query[n] for n in ("email", "template_id") if n in call.query}
        if operation != "send" or not isinstance(body, dict):
            return {}
        keys = scalar_keys(body, "to", "template_id")
        keys.update(scalar_keys(body.get("template_data"), "order_id"))
        return keys

    def _send(self, call: Call, body: Any) -> Outcome:
        if not isinstance(body, dict):
            return _not_queued("the body must be a JSON object with to, template_id and template_data")
        for name in ("to", "template_id"):
            if blank(body.get(name)):
                return _not_queued(f"{name} required")
            if not isinstance(body[name], str):
                return _not_queued(f"{name} must be a string")
        data = body.get("template_data")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            return _not_queued("template_data must be a JSON object")
        email_id = self.new_id()
        self._records.append({"email_id": email_id, "to": body["to"], "template_id": body["template_id"],
                              "template_data": data, "time": self.clock.time()})
        return Outcome(json_reply(202, {"status": "queued", "email_id": email_id}), True)

    def _smtp(self, call: Call, body: Any) -> Outcome:
        """A message an SMTP client sent: `{from, to: [...], subject, message_id, body}`."""
        recipients = body.get("to") if isinstance(body, dict) else None
        if not isinstance(recipients, list) or not recipients or not all(isinstance(t, str) for t in recipients):
            return _not_queued("to must be a non-empty list of addresses")
        for name in ("from", "subject", "message_id", "body"):
            if body.get(name) is not None and not isinstance(body[name], str):
                return _not_queued(f"{name} must be a string")
        email_id = self.new_id()
        for recipient in recipients:
            self._records.append({
                "email_id": email_id, "to": recipient, "template_id": None, "template_data": {},
                "from": body.get("from"), "subject": body.get("subject"), "message_id": body.get("message_id"),
                "body": body.get("body"), "via": "smtp", "time": self.clock.time(),
            })
        return Outcome(json_reply(202, {"status": "queued", "email_id": email_id}), True)

    def _search(self, call: Call, body: Any) -> Outcome:
        """`?email=&template_id=`: the emails matching every parameter given (the seed's clients give
        both); with neither, every email."""
        wanted = [(field, call.query[name]) for name, field in (("email", "to"), ("template_id", "template_id"))
                  if name in call.query]
        found = [r for r in self._records if all(r[field] == value for field, value in wanted)]
        return Outcome(json_reply(200, found), False)
