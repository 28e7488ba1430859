"""The fake error catcher (a Sentry or Bugsnag stand-in): stores exception notifications.

Jobs report permanent failures here and death handlers report jobs that will not run again, so the
routing checks count its records. A blank field gets the seed's 422 body.
"""

from __future__ import annotations

from typing import Any

from fake_services.messages import Call, json_reply
from fake_services.service import Outcome, Route, Service, blank, scalar_keys

__all__ = ["ErrorCatcher"]

_MISSING = "exception class or message is missing"


class ErrorCatcher(Service):
    name = "error-catcher"
    title = "Error catcher"
    id_prefix = "err"
    collection = "notifications"
    columns = ("exception_class", "exception_message", "notification_id")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self.routes[("PUT", "notification")] = Route("notify", self._notify, 202)

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        return scalar_keys(body, "exception_class") if operation == "notify" else {}

    def _notify(self, call: Call, body: Any) -> Outcome:
        if not isinstance(body, dict):
            return Outcome(json_reply(422, {"error": f"{_MISSING}: the body must be a JSON object"}), False)
        if blank(body.get("exception_class")) or blank(body.get("exception_message")):
            return Outcome(json_reply(422, {"error": _MISSING}), False)
        for name in ("exception_class", "exception_message"):
            if not isinstance(body[name], str):
                return Outcome(json_reply(422, {"error": f"{name} must be a string"}), False)
        notification_id = self.new_id()
        self._records.append({"notification_id": notification_id, "exception_class": body["exception_class"],
                              "exception_message": body["exception_message"], "time": self.clock.time()})
        return Outcome(json_reply(202, {"notification_id": notification_id}), True)
