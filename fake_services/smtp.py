"""SMTP for the email fake: one message, one call through the same pipeline as HTTP.

A client's transaction (MAIL FROM, RCPT TO..., DATA) ends in `deliver`, which hands the email service a
call to `POST /email/smtp` with `{from, to, subject, message_id, body}`. Behaviours, fault rules, the
journal (operation `smtp_send`), the search API and the page therefore see SMTP mail exactly as they see
HTTP mail, and the explorer's call faults strike it. The pipeline's answer becomes an SMTP reply:

| the pipeline answers | the client gets | the mail |
|---|---|---|
| 2xx | `250 2.0.0 OK queued as em_...` | recorded |
| 429 (throttle) | `451 4.7.1 Try again later` | not recorded |
| 5xx before the effect (crash, a fault rule) | `421 4.3.0 Service not available` | not recorded |
| 5xx after the effect | `451 4.3.0 Error after queuing` | recorded: sent, then failed |
| a dropped connection before | the connection closes before any reply | not recorded |
| a dropped connection after | the connection closes before the final reply: sent, then failed | recorded |
| a timeout | no reply until the client's read times out | as the fault's phase says |
| 4xx (a bad message) | `554 5.6.0 ...` | not recorded |

`SMTPReply.action` tells a transport what to do besides answering ("drop", "timeout").
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fake_services.messages import Call

if TYPE_CHECKING:
    from fake_services.state import FakeServices

__all__ = ["SMTPReply", "deliver", "parse_message"]

#: What the fake says when asked who it is (EHLO) and in its greeting.
SERVER_NAME = "fake-services.smtp"


@dataclass(frozen=True)
class SMTPReply:
    code: int
    text: str
    action: str | None = None  # "drop" or "timeout": the transport's part
    timeout_s: float = 0.0

    def line(self) -> str:
        return f"{self.code} {self.text}"


def parse_message(data: bytes) -> dict[str, Any]:
    """The parts of a message the journal and the page show: subject, Message-ID, the text body."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    body_part = message.get_body(preferencelist=("plain", "html")) if message.is_multipart() else message
    try:
        text = body_part.get_content() if body_part is not None else ""
    except (LookupError, ValueError):
        text = data.decode("utf-8", "replace")
    return {"subject": str(message.get("Subject", "")), "message_id": str(message.get("Message-ID", "")) or None,
            "body": text if isinstance(text, str) else text.decode("utf-8", "replace")}


def deliver(services: FakeServices, mail_from: str, recipients: list[str], data: bytes) -> SMTPReply:
    """Hand one message to the email fake's pipeline and say what an SMTP server would answer."""
    payload = {"from": mail_from, "to": list(recipients), **parse_message(data)}
    call = Call.build("POST", "/email/smtp", b"", {"content-type": "application/json"},
                      json.dumps(payload).encode())
    reply = services.handle(call)
    if reply.action == "drop":
        return SMTPReply(451, "4.4.2 Connection dropped", action="drop")
    if reply.action == "timeout":
        return SMTPReply(451, "4.4.1 No answer", action="timeout", timeout_s=reply.timeout_s)
    if 200 <= reply.status < 300:
        try:
            queued = json.loads(reply.body).get("email_id", "")
        except (ValueError, AttributeError):
            queued = ""
        return SMTPReply(250, f"2.0.0 OK queued as {queued}".rstrip())
    if reply.status == 429:
        return SMTPReply(451, "4.7.1 Try again later: the mail service is throttling")
    if reply.status >= 500:
        after = _effect_happened(services)
        if after:
            return SMTPReply(451, "4.3.0 Error after queuing the message; it may have been sent")
        return SMTPReply(421, f"4.3.0 {SERVER_NAME} Service not available, closing transmission channel")
    return SMTPReply(554, f"5.6.0 Message refused: {_detail(reply.body)}")


def _effect_happened(services: FakeServices) -> bool:
    """Whether the call just journaled changed the service (a fault struck after the effect)."""
    entries = services.journal.entries(since=max(len(services.journal) - 1, 0))
    return bool(entries) and bool(entries[-1].effect)


def _detail(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return "the mail service refused it"
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed.get("detail") or "the mail service refused it")
    return "the mail service refused it"
