"""`FakeServices`: the one state object behind every mode (socket, in-process transport, Python calls).

It holds the state and nothing else: the services and their records, behaviours, fault schedules, the
journal, idempotency keys, the clock and the seeded coin. Requests come in through its front door
(`fake_services.front`), which `handle(call)` hands them to; the socket app and the in-process
transport both call `handle`.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from fake_services.behaviours import Behaviour, FaultRule, Schedule
from fake_services.chat import Chat
from fake_services.clock import Clock, WallClock, blocks
from fake_services.email import Email
from fake_services.error_catcher import ErrorCatcher
from fake_services.fulfillment import Fulfillment
from fake_services.idempotency import DEFAULT_RETENTION_S, IdempotencyStore
from fake_services.journal import Journal, JournalEntry
from fake_services.messages import Call, Reply
from fake_services.payments import Payments
from fake_services.service import Service
from fake_services.stripe import Stripe

__all__ = ["SERVICE_NAMES", "SERVICE_TYPES", "FakeServices"]

#: The services every `FakeServices` starts with: adding a service is adding its class here.
SERVICE_TYPES: tuple[type[Service], ...] = (Payments, Email, Fulfillment, ErrorCatcher, Chat, Stripe)
SERVICE_NAMES = tuple(kind.name for kind in SERVICE_TYPES)


class _Names(dict[str, Any]):
    """A dict keyed by service name that also answers to the Python spelling `error_catcher`."""

    def __missing__(self, key: str) -> Any:
        if isinstance(key, str) and "_" in key:
            return self[key.replace("_", "-")]
        raise KeyError(f"no service {key!r}; the services are {', '.join(self)}")


class FakeServices:
    """Payments, email, fulfillment, error catcher and chat, with behaviours, faults and a journal.

    `seed` makes generated ids, the seed's random 503/504 and random slowness, and probabilistic faults
    repeatable; `clock` is any `fake_services.clock.Clock` (default: the wall clock). Each service is
    also an attribute under its Python name (`services.error_catcher`).
    """

    payments: Payments
    email: Email
    fulfillment: Fulfillment
    error_catcher: ErrorCatcher
    chat: Chat
    stripe: Stripe

    def __init__(self, seed: int | None = None, clock: Clock | None = None, *,
                 idempotency_retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.seed = seed
        self.clock: Clock = clock if clock is not None else WallClock()
        #: True when a slow call really blocks (the clock says so with `blocks = True`), so the ASGI app
        #: and the async transport run it in a worker thread.
        self.blocking = blocks(self.clock)
        self.lock = threading.RLock()
        self.services: dict[str, Service] = _Names()
        self.behaviours: dict[str, Behaviour] = _Names()
        self._schedules: dict[str, Schedule] = _Names()
        for kind in SERVICE_TYPES:
            self.add(kind(seed, self.clock))
        self.journal = Journal()
        self.idempotency = IdempotencyStore(idempotency_retention_s)
        self._rng = random.Random(seed)
        from fake_services.front import FrontDoor

        self.front = FrontDoor(self)

    def add(self, service: Service) -> None:
        """Register one more service: its routes answer under `/{service.name}/`, with a behaviour and a
        fault schedule of its own."""
        if service.name in self.services or not service.name:
            raise ValueError(f"a service needs a name of its own; {service.name!r} is taken or empty")
        service.lock = self.lock
        self.services[service.name] = service
        self.behaviours[service.name] = Behaviour()
        self._schedules[service.name] = Schedule(service.name, self.seed)
        setattr(self, service.name.replace("-", "_"), service)

    # -- the Python surface --------------------------------------------------------------------------
    def schedule(self, service: str, rule: FaultRule) -> str:
        """Arm `rule` on `service`; returns the rule's id. Calls are counted from now."""
        schedule = self._schedules[service]
        with self.lock:
            armed = schedule.add(rule, self.clock.time())
        assert armed.id is not None
        return armed.id

    def faults(self, service: str) -> list[dict[str, Any]]:
        """The rules scheduled on `service`, with how many calls each saw and struck."""
        with self.lock:
            return self._schedules[service].rules()

    def clear_faults(self, service: str | None = None) -> None:
        with self.lock:
            for name in [service] if service is not None else list(self.services):
                self._schedules[name].clear()

    def remove_fault(self, service: str, rule_id: str) -> bool:
        """Disarm the rule `rule_id` of `service`; False when it has no such rule."""
        with self.lock:
            return self._schedules[service].remove(rule_id)

    def pick_fault(self, service: str, operation: str) -> FaultRule | None:
        """Count a call of `operation` against `service`'s rules; the rule that strikes it, if any."""
        schedule = self._schedules[service]
        if not schedule:
            return None
        with self.lock:
            return schedule.pick(operation, self.clock.time())

    def key_retention(self, service: str) -> float:
        """How long `service` keeps an Idempotency-Key, in seconds of the services' clock."""
        return self.idempotency.retention(self.services[service].name)

    def set_key_retention(self, service: str, seconds: float | None) -> None:
        """Keep `service`'s Idempotency-Keys `seconds` (None: the default, 24 h as Stripe keeps them).
        ValueError when `seconds` is no retention; a reset puts the default back."""
        name = self.services[service].name
        with self.lock:
            self.idempotency.set_retention(name, seconds)

    def effects(self) -> list[JournalEntry]:
        """Journal entries whose request changed a service's state."""
        return self.journal.effects()

    def reset(self, service: str | None = None) -> None:
        """Everything back to the start: data, ids, behaviours, schedules, journal, idempotency keys and
        their retention.

        With `service`, only that service's data, ids, behaviour, rules and keys (the journal stays).
        """
        with self.lock:
            for name in [self.services[service].name] if service is not None else list(self.services):
                self.services[name].reset()
                self.behaviours[name].reset()
                self._schedules[name].clear()
                self.idempotency.clear(name)
                self.idempotency.set_retention(name, None)
            if service is None:
                self.journal.clear()
                self.idempotency.clear()
                self._rng.seed(self.seed)

    def service(self, name: str) -> Service:
        return self.services[name]

    def coin(self) -> str:
        """The seed's random choice between 503 and 504."""
        with self.lock:
            return "503" if self._rng.random() < 0.5 else "504"

    def random_slowness(self) -> float:
        """The seed's `X-Be-Slow: true`: a whole number of seconds from 1 to 10."""
        with self.lock:
            return float(self._rng.randint(1, 10))

    # -- requests go through the front door ----------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        """Answer one request. Never raises for bad input: every problem becomes a 4xx reply."""
        return self.front.handle(call)

    def may_block(self, call: Call) -> bool:
        """Whether answering `call` may sleep on the clock (so a server should not run it on its loop)."""
        return self.front.may_block(call)
