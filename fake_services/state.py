"""`FakeServices`: the one state object behind every mode (socket, in-process transport, Python calls).

`handle(call)` is the whole server in plain synchronous Python: it checks the request, decides which
fault (if any) strikes it, sleeps on the services' clock when a service is slow, runs the service's
handler under the lock, honours idempotency keys, and journals what happened.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time as _time
from dataclasses import dataclass
from typing import Any

from fake_services.behaviours import Behaviour, FaultRule, Schedule
from fake_services.chat import Chat
from fake_services.email import Email
from fake_services.error_catcher import ErrorCatcher
from fake_services.fulfillment import Fulfillment
from fake_services.idempotency import DEFAULT_RETENTION_S, IdempotencyStore, fingerprint, parse_key
from fake_services.journal import Journal, JournalEntry
from fake_services.messages import Call, Reply, acceptable, problem
from fake_services.payments import Payments
from fake_services.service import BadInput, Outcome, Route, Service, bad_input

__all__ = ["SERVICE_NAMES", "FakeServices"]

SERVICE_NAMES = ("payments", "email", "fulfillment", "error-catcher", "chat")
_BODYLESS = frozenset({"GET", "HEAD", "DELETE"})
# Non-JSON bytes served with a 2xx status by the `malformed` fault: the start of a body, cut off.
_MALFORMED = b'{"status": "succ'


class _WallClock:
    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)


class _Names(dict[str, Any]):
    """A dict keyed by service name that also answers to the Python spelling `error_catcher`."""

    def __missing__(self, key: str) -> Any:
        if isinstance(key, str) and "_" in key:
            return self[key.replace("_", "-")]
        raise KeyError(f"no service {key!r}; the services are {', '.join(SERVICE_NAMES)}")


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: str
    phase: str
    retry_after: float | None = None
    timeout_s: float = 10.0


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Built once: `json.loads` with options builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class FakeServices:
    """Payments, email, fulfillment, error catcher and chat, with behaviours, faults and a journal.

    `seed` makes generated ids, the seed's random 503/504 and random slowness, and probabilistic faults
    repeatable; `clock` is any object with `time()` and `sleep(seconds)` (default: the wall clock).
    """

    def __init__(self, seed: int | None = None, clock: Any = None, *,
                 idempotency_retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.seed = seed
        self.clock = clock if clock is not None else _WallClock()
        #: True when a slow call really blocks (the wall clock, or harness's RealClock), so the ASGI app
        #: and the async transport run it in a worker thread; set it for another clock that blocks.
        self.wall_clock = clock is None or type(clock).__name__ in ("RealClock", "_WallClock")
        self.payments = Payments(seed, self.clock)
        self.email = Email(seed, self.clock)
        self.fulfillment = Fulfillment(seed, self.clock)
        self.error_catcher = ErrorCatcher(seed, self.clock)
        self.chat = Chat(seed, self.clock)
        every = (self.payments, self.email, self.fulfillment, self.error_catcher, self.chat)
        self.services: dict[str, Service] = _Names((s.name, s) for s in every)
        self.behaviours: dict[str, Behaviour] = _Names((name, Behaviour()) for name in SERVICE_NAMES)
        self._schedules = _Names((name, Schedule(name, seed)) for name in SERVICE_NAMES)
        self.journal = Journal()
        self.idempotency = IdempotencyStore(idempotency_retention_s)
        self.lock = threading.RLock()
        for one in every:
            one.lock = self.lock
        self._rng = random.Random(seed)
        from fake_services.control import Control

        self._control = Control(self)

    # -- the Python surface --------------------------------------------------------------------------
    def schedule(self, service: str, rule: FaultRule) -> str:
        """Arm `rule` on `service`; returns the rule's id. Calls are counted from now."""
        schedule = self._schedules[service]
        with self.lock:
            armed = schedule.add(rule)
        assert armed.id is not None
        return armed.id

    def faults(self, service: str) -> list[dict[str, Any]]:
        """The rules scheduled on `service`, with how many calls each saw and struck."""
        with self.lock:
            return self._schedules[service].rules()

    def clear_faults(self, service: str | None = None) -> None:
        with self.lock:
            for name in [service] if service is not None else SERVICE_NAMES:
                self._schedules[name].clear()

    def effects(self) -> list[JournalEntry]:
        """Journal entries whose request changed a service's state."""
        return self.journal.effects()

    def reset(self) -> None:
        """Everything back to the start: data, ids, behaviours, schedules, journal, idempotency keys."""
        with self.lock:
            for name in SERVICE_NAMES:
                self.services[name].reset()
                self.behaviours[name].reset()
                self._schedules[name].clear()
            self.journal.clear()
            self.idempotency.clear()
            self._rng.seed(self.seed)

    def service(self, name: str) -> Service:
        return self.services[name]

    # -- the server ----------------------------------------------------------------------------------
    def may_block(self, call: Call) -> bool:
        """Whether answering `call` may sleep on the clock (so a server should not run it on its loop)."""
        if "x-be-slow" in call.headers:
            return True
        name = call.path[1:].split("/", 1)[0]
        behaviour = self.behaviours.get(name)
        return behaviour is not None and behaviour.sleep > 0

    def handle(self, call: Call) -> Reply:
        """Answer one request. Never raises for bad input: every problem becomes a 4xx reply."""
        if not acceptable(call.headers.get("accept")):
            return problem(406, "Not acceptable",
                           "this server answers JSON or HTML; send Accept: application/json")
        parts = call.path[1:].split("/", 1)
        service = self.services.get(parts[0]) if len(parts) == 2 else None
        if service is None:
            return self._control.handle(call)
        return self._serve(service, parts[1], call)

    def _serve(self, service: Service, rest: str, call: Call) -> Reply:
        now = self.clock.time()
        route = service.routes.get((call.method, rest))
        if route is None:
            reply = self._no_route(service, rest, call)
            self.journal.append(now, service.name, "unknown", {}, None, None, False, reply.status)
            return reply
        body: Any = {}
        if call.body and call.method not in _BODYLESS:
            try:
                body = _DECODER.decode(call.body.decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                reply = problem(422, "Body is not JSON", f"send a JSON body ({exc})")
                self.journal.append(now, service.name, route.operation, {}, None, None, False, 422)
                return reply
        keys = service.keys(route.operation, call, body)
        fault, sleep_s = self._decide(service, route, call)
        if fault is not None and fault.phase == "before":
            self._pause(sleep_s)
            reply, effect = self._fault_reply(fault, route), False
        else:
            reply, effect = self._execute(service, route, call, body, sleep_s, now)
            if fault is not None:
                reply = self._fault_reply(fault, route)
        self.journal.append(now, service.name, route.operation, keys, fault.kind if fault else None,
                            fault.phase if fault else None, effect, None if reply.action else reply.status)
        return reply

    def _no_route(self, service: Service, rest: str, call: Call) -> Reply:
        allowed = sorted(method for method, path in service.routes if path == rest)
        if allowed:
            reply = problem(405, "Method not allowed",
                            f"{call.path} answers {', '.join(allowed)}, not {call.method}")
            reply.headers["allow"] = ", ".join(allowed)
            return reply
        paths = sorted({f"{m} /{service.name}/{p}" for m, p in service.routes})
        return problem(404, "Not found", f"{service.name} has no {call.path}; it answers {', '.join(paths)}")

    def _decide(self, service: Service, route: Route, call: Call) -> tuple[_Fault | None, float]:
        """Which fault strikes this call (headers first, then schedules, then standing toggles)."""
        headers = call.headers
        sleep_s = self._header_sleep(headers.get("x-be-slow"))
        fault = None
        # The seed's email service sends, then answers 503; every other crash is a 503/504 coin, no effect.
        sends_then_fails = route.operation == "send" and service.name == "email"
        crash_phase = "after" if sends_then_fails else "before"
        if headers.get("x-throttle") == "true":
            fault = _Fault("429", "before")
        elif headers.get("x-crash") == "true":
            fault = _Fault("503" if sends_then_fails else self._coin(), crash_phase)
        if route.operation == "ui":
            return fault, sleep_s or 0.0
        behaviour = self.behaviours[service.name]
        if sleep_s is None:
            sleep_s = behaviour.sleep
        schedule = self._schedules[service.name]
        if schedule:
            with self.lock:
                rule = schedule.pick(route.operation)
            if rule is not None and fault is None:
                fault = _Fault(rule.fault, rule.phase, rule.retry_after, rule.timeout_s)
        if fault is None:
            if behaviour.throttle:
                fault = _Fault("429", "before", behaviour.retry_after)
            elif behaviour.crash:
                status = behaviour.crash_status or ("503" if sends_then_fails else self._coin())
                fault = _Fault(str(status), crash_phase)
        return fault, sleep_s

    def _coin(self) -> str:
        with self.lock:
            return "503" if self._rng.random() < 0.5 else "504"

    def _header_sleep(self, value: str | None) -> float | None:
        if value is None:
            return None
        if value == "true":
            with self.lock:
                return float(self._rng.randint(1, 10))
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.clock.sleep(seconds)

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
        with self.lock:
            answer = self.idempotency.claim(service.name, key, fingerprint(body), now)
        # The pause sits inside the claim so that a slow first request is visibly "in flight".
        self._pause(sleep_s)
        if answer is not None:
            return answer, False
        try:
            reply, effect = self._run(service, route, call, body)
        except BaseException:
            with self.lock:
                self.idempotency.release(service.name, key)
            raise
        with self.lock:
            self.idempotency.complete(service.name, key, reply)
        return reply, effect

    def _run(self, service: Service, route: Route, call: Call, body: Any) -> Outcome:
        if route.handler is None:
            return Outcome(self._control.service_page(service), False)
        try:
            with self.lock:
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
