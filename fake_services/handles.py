"""Per-service handles over the control API: toggle behaviours, schedule faults, read what was recorded.

The same code drives services in this process (through `ServicesTransport`) and services running
elsewhere (`harness serve`, a container), because both speak the control API of `/openapi.json`:

    services = ServicesHandle.remote("http://localhost:8000")   # or ServicesHandle.local(fake_services)
    services.payments.behave(crash=True)
    rule_id = services.email.schedule(FaultRule(fault="503", phase="after", next=1))
    ...
    assert len(services.payments.effects("charge")) == 1
    assert services.unfired() == {}          # every scheduled rule struck at least once
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from fake_services.behaviours import FaultRule
from fake_services.journal import JournalEntry
from fake_services.state import SERVICE_NAMES, FakeServices

__all__ = ["ControlError", "ServiceHandle", "ServicesHandle"]

_TIMEOUT_S = 10.0


class ControlError(RuntimeError):
    """The control API refused a request; the message carries its explanation."""


class _Control:
    """JSON over one httpx client, with the API's problem details turned into `ControlError`."""

    def __init__(self, http: httpx.Client, owned: bool) -> None:
        self.http = http
        self.owned = owned

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise ControlError(f"{method} {path} answered {response.status_code}: {detail}")
        return response.json()

    def close(self) -> None:
        if self.owned:
            self.http.close()


class ServiceHandle:
    """One service (`payments`, `email`, `fulfillment`, `error-catcher`, `chat`)."""

    def __init__(self, control: _Control, name: str) -> None:
        self._control = control
        self.name = name
        self.scheduled: list[str] = []

    def __repr__(self) -> str:
        return f"<ServiceHandle {self.name}>"

    def behaviour(self) -> dict[str, Any]:
        """The standing toggles: crash, throttle, sleep, retry_after, crash_status."""
        return dict(self._control.call("GET", f"/behaviors/{self.name}"))

    def behave(self, **changes: Any) -> dict[str, Any]:
        """Change some toggles (`crash=True`, `sleep=2.5`, ...); returns all of them after the change."""
        return dict(self._control.call("PUT", f"/behaviors/{self.name}", changes))

    def schedule(self, rule: FaultRule | Mapping[str, Any]) -> str:
        """Arm a fault rule (a `FaultRule` or its JSON fields); returns its id."""
        fields = rule.to_dict() if isinstance(rule, FaultRule) else dict(rule)
        fields.pop("id", None)
        rule_id = str(self._control.call("POST", f"/behaviors/{self.name}/faults", fields)["id"])
        self.scheduled.append(rule_id)
        return rule_id

    def faults(self) -> list[dict[str, Any]]:
        """The armed rules with how many calls each saw (`seen`) and struck (`fired`)."""
        return list(self._control.call("GET", f"/behaviors/{self.name}/faults")["faults"])

    def clear_faults(self) -> None:
        self._control.call("DELETE", f"/behaviors/{self.name}/faults")
        self.scheduled.clear()

    def unfired(self) -> list[dict[str, Any]]:
        """Rules scheduled through this handle that are still armed and never struck a call."""
        mine = set(self.scheduled)
        return [rule for rule in self.faults() if rule["id"] in mine and rule["fired"] == 0]

    def journal(self, operation: str | None = None) -> list[JournalEntry]:
        """This service's requests, oldest first (optionally one operation's, e.g. "charge")."""
        return [e for e in _journal(self._control)
                if e.service == self.name and (operation is None or e.operation == operation)]

    def effects(self, operation: str | None = None) -> list[JournalEntry]:
        """The requests that changed this service's state (a charge made, an email sent, ...)."""
        return [e for e in self.journal(operation) if e.effect]


class ServicesHandle:
    """All five services: `handle.payments`, `handle["error-catcher"]`, `handle.error_catcher`, ..."""

    def __init__(self, http: httpx.Client, *, url: str | None = None, owned: bool = True) -> None:
        self._control = _Control(http, owned)
        self.url = url
        self._handles = {name: ServiceHandle(self._control, name) for name in SERVICE_NAMES}

    @classmethod
    def local(cls, services: FakeServices) -> ServicesHandle:
        """Handles on services in this process (no socket)."""
        from fake_services.transport import ServicesTransport

        http = httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services",
                            timeout=_TIMEOUT_S)
        return cls(http)

    @classmethod
    def remote(cls, url: str, *, http: httpx.Client | None = None, token: str | None = None) -> ServicesHandle:
        """Handles on services listening at `url` (`harness serve`, compose, a test's socket).

        `token` is the server's control token (default: the HARNESS_SERVE_TOKEN environment variable),
        needed when it serves off loopback.
        """
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the services URL must start with http:// or https://, got {url!r}")
        owned = http is None
        token = token if token is not None else os.environ.get("HARNESS_SERVE_TOKEN") or None
        headers = {"authorization": f"Bearer {token}"} if token else {}
        client = http if http is not None else httpx.Client(base_url=url, timeout=_TIMEOUT_S, headers=headers)
        return cls(client, url=url, owned=owned)

    def __getitem__(self, name: str) -> ServiceHandle:
        try:
            return self._handles[name]
        except KeyError:
            raise KeyError(f"no service {name!r}; the services are {', '.join(SERVICE_NAMES)}") from None

    def __getattr__(self, name: str) -> ServiceHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name.replace("_", "-")]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __iter__(self) -> Iterator[ServiceHandle]:
        return iter(self._handles.values())

    def reset(self) -> None:
        """Everything back to the start: data, behaviours, fault rules, journal, idempotency keys."""
        self._control.call("POST", "/reset")
        for handle in self:
            handle.scheduled.clear()

    def journal(self) -> list[JournalEntry]:
        """Every service's requests, oldest first."""
        return _journal(self._control)

    def unfired(self) -> dict[str, list[dict[str, Any]]]:
        """Per service, the rules scheduled through these handles that never struck a call."""
        found = {handle.name: handle.unfired() for handle in self if handle.scheduled}
        return {name: rules for name, rules in found.items() if rules}

    def close(self) -> None:
        self._control.close()

    def __enter__(self) -> ServicesHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _journal(control: _Control) -> list[JournalEntry]:
    return [JournalEntry(**entry) for entry in control.call("GET", "/journal")["entries"]]
