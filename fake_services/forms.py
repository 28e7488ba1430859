"""The web pages' handlers: what a person sees and the forms they post, one for each thing the control
API does (toggles, fault rules, clearing them, resets, the journal).

A form answers 303 back to its page when it worked, and a page saying what to change (422) when it did
not. Every form carries a token only the pages know, so a form posted from another site is refused (403).
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import TYPE_CHECKING, Any

from fake_services.bodies import parse_seconds
from fake_services.messages import Call, Reply, html

if TYPE_CHECKING:
    from fake_services.hub import ControlPlane

__all__ = ["Forms"]

_WHOLE = re.compile(r"-?[0-9]+")
_RESET_TARGETS = ("all",)


class Forms:
    """Pages and form handlers for one `Control`."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        self.services = control.services
        #: Rendered into every form and required back: a page of another site cannot read it.
        self.csrf = secrets.token_urlsafe(24)
        self._ui: Any = None

    def pages(self) -> Any:
        if self._ui is None:
            from fake_services.ui import Pages

            self._ui = Pages()
        return self._ui

    # -- pages ---------------------------------------------------------------------------------------
    def index(self, call: Call, body: Any, parts: list[str]) -> Reply:
        return html(self.pages().index(self.services, self.csrf))

    def journal(self, call: Call, body: Any, parts: list[str]) -> Reply:
        entries = [e.to_dict() for e in self.services.journal.entries()]
        return html(self.pages().journal(entries, self.csrf))

    def service_page(self, service: Any, call: Call | None = None) -> Reply:
        services = self.services
        with services.lock:
            rows = service.records()
            faults = services.faults(service.name)
        return html(self.pages().service(service, rows, services.behaviours[service.name], faults,
                                         self.control.operations(service.name), self.csrf))

    def behaviour_page(self, call: Call, body: Any, parts: list[str]) -> Reply:
        return self.service_page(self.services.services[parts[1]])

    # -- forms ---------------------------------------------------------------------------------------
    def _refused(self, form: dict[str, str], back: str) -> Reply | None:
        """403 unless the form carries the pages' token."""
        if hmac.compare_digest(form.get("csrf", "").encode(), self.csrf.encode()):
            return None
        return self.error(403, "This form did not come from these pages",
                          "The form's token is missing or out of date, so it may have been posted from "
                          "another site. Reload the page and submit the form again.", back)

    def error(self, status: int, title: str, message: str, back: str) -> Reply:
        return html(self.pages().error(title, message, back), status)

    def _done(self, location: str) -> Reply:
        return Reply(303, b"", None, {"location": location})

    def behaviour(self, call: Call, form: dict[str, str], parts: list[str]) -> Reply:
        """The toggles: checkboxes are absent when unticked, so absence means false."""
        name, back = parts[1], f"/{parts[1]}/ui"
        refused = self._refused(form, back)
        if refused is not None:
            return refused
        try:
            changes: dict[str, Any] = {"crash": "crash" in form, "throttle": "throttle" in form,
                                       "sleep": _seconds(form, "sleep", 0.0)}
            if "retry_after" in form:
                changes["retry_after"] = _seconds(form, "retry_after", None)
            if "crash_status" in form:
                status = form["crash_status"].strip()
                changes["crash_status"] = int(status) if _WHOLE.fullmatch(status) else (status or None)
            self.services.behaviours[name].update(changes)
        except ValueError as exc:
            return self.error(422, "The behaviour was not changed", str(exc), back)
        return self._done(back)

    def faults(self, call: Call, form: dict[str, str], parts: list[str]) -> Reply:
        """Schedule a rule (`action=add`), remove one (`action=remove`, `id`), or all (`action=clear`)."""
        name, back = parts[1], f"/{parts[1]}/ui"
        refused = self._refused(form, back)
        if refused is not None:
            return refused
        action = form.get("action", "add")
        if action == "clear":
            self.services.clear_faults(name)
        elif action == "remove":
            if not self.services.remove_fault(name, form.get("id", "")):
                return self.error(422, "No such rule", f"{name} has no fault rule {form.get('id', '')!r} "
                                  "(already removed, or the services were reset)", back)
        elif action == "add":
            try:
                self.control.schedule(name, _rule_fields(form))
            except ValueError as exc:
                return self.error(422, "The fault rule was not scheduled", str(exc), back)
        else:
            return self.error(422, "Unknown action", f"action must be add, remove or clear, got {action!r}", back)
        return self._done(back)

    def reset(self, call: Call, form: dict[str, str], parts: list[str]) -> Reply:
        """Reset one service (`service=payments`) or everything (`service=all` or none given)."""
        target = form.get("service", "all") or "all"
        back = "/" if target == "all" else f"/{target}/ui"
        refused = self._refused(form, "/")
        if refused is not None:
            return refused
        if target != "all" and target not in self.services.services:
            return self.error(422, "Unknown service", f"no service {target!r}; the services are "
                              f"{', '.join(self.services.services)}", "/")
        self.services.reset(None if target == "all" else target)
        return self._done(back)

    def clear_journal(self, call: Call, form: dict[str, str], parts: list[str]) -> Reply:
        refused = self._refused(form, "/journal/ui")
        if refused is not None:
            return refused
        self.services.journal.clear()
        return self._done("/journal/ui")


def _seconds(form: dict[str, str], name: str, default: float | None) -> float | None:
    text = form.get(name, "").strip()
    if not text:
        return default
    seconds = parse_seconds(text)
    if seconds is None:
        raise ValueError(f"{name} must be a number of seconds such as 1.5, got {text!r}")
    return seconds


def _rule_fields(form: dict[str, str]) -> dict[str, Any]:
    """The fault-rule form as the JSON a `POST /behaviors/{service}/faults` would carry."""
    fields: dict[str, Any] = {"fault": form.get("fault", ""), "phase": form.get("phase", "before")}
    calls, count = form.get("calls", "all"), form.get("count", "").strip()
    if calls in ("next", "nth", "every"):
        if not count.isascii() or not count.isdigit():
            raise ValueError(f"{calls} needs a whole number of calls, got {count!r}")
        fields[calls] = int(count)
    elif calls == "probability":
        chance = parse_seconds(count)  # the same plain decimal
        if chance is None:
            raise ValueError(f"probability needs a number from 0 to 1, got {count!r}")
        fields["probability"] = chance
    elif calls != "all":
        raise ValueError(f"calls must be all, next, nth, every or probability, got {calls!r}")
    if form.get("operation"):
        fields["operation"] = form["operation"]
    for name in ("retry_after", "timeout_s"):
        seconds = _seconds(form, name, None)
        if seconds is not None:
            fields[name] = seconds
    seed = form.get("seed", "").strip()
    if seed:
        if not _WHOLE.fullmatch(seed):
            raise ValueError(f"seed must be a whole number, got {seed!r}")
        fields["seed"] = int(seed)
    return fields
