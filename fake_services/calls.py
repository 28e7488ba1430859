"""What happens to one call of a service once the front door has routed it and read its body.

It decides which fault (if any) strikes the call (per-request headers, then scheduled rules, then
standing toggles), sleeps on the services' clock when the service is slow, runs the service's handler
under the lock, honours idempotency keys, and journals what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fake_services.idempotency import fingerprint, parse_key
from fake_services.messages import Call, Reply, problem
from fake_services.service import BadInput, Outcome, Route, Service, bad_input

if TYPE_CHECKING:
    from fake_services.hub import Hub

__all__ = ["ServiceCalls"]

# Non-JSON bytes served with a 2xx status by the `malformed` fault: the start of a body, cut off.
_MALFORMED = b'{"status": "succ'


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: str
    phase: str
    retry_after: float | None = None
    timeout_s: float = 10.0


class ServiceCalls:
    """Runs routed service calls against the state of `services`."""

    def __init__(self, services: Hub, page: Any) -> None:
        self.services = services
        #: Renders a service's own page (`GET /{service}/ui`): `page(service, call) -> Reply`.
        self.page = page

    def serve(self, service: Service, route: Route, call: Call, body: Any, slow: float | None) -> Reply:
        """Answer a call to `route`; `slow` is the X-Be-Slow delay (None: the standing toggle's)."""
        services = self.services
        now = services.clock.time()
        keys = service.keys(route.operation, call, body)
        fault, sleep_s = self._decide(service, route, call, slow)
        if fault is not None and fault.phase == "before":
            self._pause(sleep_s)
            reply, effect = self._fault_reply(fault, route), False
        else:
            reply, effect = self._execute(service, route, call, body, sleep_s, now)
            if fault is not None:
                reply = self._fault_reply(fault, route)
        services.journal.append(now, service.name, route.operation, keys, fault.kind if fault else None,
                                fault.phase if fault else None, effect,
                                None if reply.action else reply.status)
        return reply

    def _decide(self, service: Service, route: Route, call: Call,
                slow: float | None) -> tuple[_Fault | None, float]:
        """Which fault strikes this call (headers first, then schedules, then standing toggles)."""
        headers = call.headers
        services = self.services
        fault = None
        # The seed's email service sends, then answers 503; every other crash is a 503/504 coin, no effect.
        sends_then_fails = route.operation == "send" and service.name == "email"
        crash_phase = "after" if sends_then_fails else "before"
        if headers.get("x-throttle") == "true":
            fault = _Fault("429", "before")
        elif headers.get("x-crash") == "true":
            fault = _Fault("503" if sends_then_fails else services.coin(), crash_phase)
        if route.operation == "ui":
            return fault, slow or 0.0
        behaviour = services.behaviours[service.name]
        sleep_s = behaviour.sleep if slow is None else slow
        rule = services.pick_fault(service.name, route.operation)
        if rule is not None and fault is None:
            fault = _Fault(rule.fault, rule.phase, rule.retry_after, rule.timeout_s)
        if fault is None:
            if behaviour.throttle:
                fault = _Fault("429", "before", behaviour.retry_after)
            elif behaviour.crash:
                status = behaviour.crash_status or ("503" if sends_then_fails else services.coin())
                fault = _Fault(str(status), crash_phase)
        return fault, sleep_s

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.services.clock.sleep(seconds)

    def _execute(self, service: Service, route: Route, call: Call, body: Any, sleep_s: float,
                 now: float) -> tuple[Reply, bool]:
        raw_key = call.headers.get("idempotency-key") if route.keyed else None
        if raw_key is None:
            self._pause(sleep_s)
            return self._run(service, route, call, body)
        try:
            key = parse_key(raw_key)
        except ValueError as exc:
            self._pause(sleep_s)
            return problem(400, "Invalid Idempotency-Key", str(exc)), False
        lock, store = self.services.lock, self.services.idempotency
        with lock:
            answer = store.claim(service.name, key, fingerprint(body), now, service.key_refusal)
        # The pause sits inside the claim so that a slow first request is visibly "in flight".
        self._pause(sleep_s)
        if answer is not None:
            return answer, False
        try:
            reply, effect = self._run(service, route, call, body)
        except BaseException:
            with lock:
                store.release(service.name, key)
            raise
        with lock:
            store.complete(service.name, key, reply)
        return reply, effect

    def _run(self, service: Service, route: Route, call: Call, body: Any) -> Outcome:
        if route.handler is None:
            return Outcome(self.page(service, call), False)
        try:
            with self.services.lock:
                return route.handler(call, body)
        except BadInput as exc:
            return Outcome(bad_input(exc), False)

    def _fault_reply(self, fault: _Fault, route: Route) -> Reply:
        kind = fault.kind
        if kind == "429":
            reply = problem(429, "Too many requests", "the service is throttling; retry later")
            if fault.retry_after is not None:
                after = fault.retry_after
                reply.headers["retry-after"] = str(int(after)) if after == int(after) else str(after)
            return reply
        if kind == "timeout":
            return Reply(504, b"", None, action="timeout", timeout_s=fault.timeout_s, phase=fault.phase)
        if kind == "drop":
            return Reply(502, b"", None, action="drop", phase=fault.phase)
        if kind == "malformed":
            return Reply(route.ok_status, _MALFORMED, "application/json")
        return problem(int(kind), "Service unavailable" if kind == "503" else "Injected server error",
                       f"the service failed with {kind} ({fault.phase} its effect); retry later")
