"""The fake chat webhook, shaped like a Slack incoming webhook: `POST /chat/webhook` answers `ok`.

Monitoring jobs post alerts here (the seeds' team posted when the retry set grew past 50), so tests
can see what a person would have been told.
"""

from __future__ import annotations

from typing import Any

from fake_services.messages import Call, Reply, problem
from fake_services.service import Outcome, Route, Service, blank, scalar_keys

__all__ = ["Chat"]


class Chat(Service):
    name = "chat"
    title = "Chat"
    id_prefix = "msg"
    collection = "messages"
    columns = ("channel", "text")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self.routes[("POST", "webhook")] = Route("post", self._post, 200)

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        return scalar_keys(body, "text") if operation == "post" else {}

    def _post(self, call: Call, body: Any) -> Outcome:
        if not isinstance(body, dict):
            return Outcome(problem(400, "invalid_payload", 'the body must be a JSON object: {"text": "..."}'),
                           False)
        text, channel = body.get("text"), body.get("channel")
        if blank(text) or not isinstance(text, str):
            return Outcome(problem(400, "no_text", "text is required and must be a non-empty string"), False)
        if channel is not None and not isinstance(channel, str):
            return Outcome(problem(400, "invalid_payload", "channel must be a string when given"), False)
        self._records.append({"text": text, "channel": channel, "time": self.clock.time()})
        return Outcome(Reply(200, b"ok", "text/plain; charset=utf-8"), True)
