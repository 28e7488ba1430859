"""How a service misbehaves: standing toggles (crash, throttle, sleep) and scheduled faults.

A `Behaviour` is what the seed's "make it behave badly" form holds, kept server-side. A `FaultRule`
picks particular calls (the next N, the k-th, every k-th, or a seeded coin) and says what goes wrong
and whether the service's effect happens first; a rule with a time window (`after_s`, `for_s`) is an
outage, watching only calls made within that window of the services' clock. A `Schedule` counts calls
for each rule it holds.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fake_services.bodies import integer

__all__ = [
    "CRASH_STATUSES",
    "FAULTS",
    "MAX_OUTAGE_S",
    "MAX_SECONDS",
    "PHASES",
    "SELECTORS",
    "Behaviour",
    "FaultRule",
    "Schedule",
]

FAULTS = ("500", "502", "503", "504", "429", "timeout", "drop", "malformed")
PHASES = ("before", "after")
SELECTORS = ("next", "nth", "every", "probability")
CRASH_STATUSES = (500, 502, 503, 504)
#: The longest sleep, timeout or Retry-After a service is told to use: an hour is past any client's
#: patience, and a bound keeps every figure printable and every sleep finite.
MAX_SECONDS = 3600.0
#: The longest outage window: Sidekiq's 25 retries span about 21 days, and an outage longer than a
#: retry schedule is no longer a fault the job can outlast.
MAX_OUTAGE_S = 90 * 24 * 3600.0


def _seconds(name: str, value: Any, most: float = MAX_SECONDS) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds from 0 to {most:g}, got {value!r}")
    if not 0 <= value <= most:
        raise ValueError(f"{name} must be a number of seconds from 0 to {most:g}, got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


@dataclass
class Behaviour:
    """Standing toggles for one service; plain attributes, so tests may set them directly.

    `crash` answers 503 or 504 (or `crash_status`), `throttle` answers 429 (with `Retry-After` when
    `retry_after` is set), `sleep` delays every call by that many seconds on the services' clock.
    """

    crash: bool = False
    throttle: bool = False
    sleep: float = 0.0
    retry_after: float | None = None
    crash_status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: Any) -> None:
        """Apply a partial update from JSON; raises ValueError naming the bad field (nothing applied)."""
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object such as {\"crash\": true}")
        unknown = sorted(set(changes) - set(self.to_dict()))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(self.to_dict())}")
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key in ("crash", "throttle"):
                clean[key] = _flag(key, value)
            elif key == "sleep":
                clean[key] = _seconds(key, value)
            elif key == "retry_after":
                clean[key] = None if value is None else _seconds(key, value)
            elif value is not None and (type(value) is not int or value not in CRASH_STATUSES):
                # type() and not isinstance: True is an int, and 503.0 == 503 but is no status code.
                raise ValueError(f"crash_status must be null or one of 500, 502, 503, 504 (an integer), "
                                 f"got {value!r}")
            else:
                clean[key] = value
        for key, value in clean.items():
            setattr(self, key, value)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


@dataclass
class FaultRule:
    """Which calls fail and how. At most one selector: `next`, `nth`, `every` or `probability`;
    none means every call. Counting starts when the rule is scheduled and, with `operation`, counts only
    that operation's calls (e.g. "charge").

    `phase="before"`: nothing happens and the caller is told it failed; `"after"`: the effect happens
    and is recorded, then the caller is told it failed.

    `after_s` and `for_s` give the rule a window on the services' clock, counted from when it was
    scheduled: it watches calls from `after_s` seconds on, for `for_s` seconds (None: for ever). With no
    selector that is an outage: `{"fault": "503", "for_s": 93600}` is a service down for 26 hours, and
    on a virtual clock the retries of a job run into it on the engine's real schedule.
    """

    fault: str
    phase: str = "before"
    next: int | None = None
    nth: int | None = None
    every: int | None = None
    probability: float | None = None
    operation: str | None = None
    retry_after: float = 1.0
    timeout_s: float = 10.0
    seed: int | None = None
    after_s: float = 0.0
    for_s: float | None = None
    id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.fault, int) and not isinstance(self.fault, bool):
            self.fault = str(self.fault)
        if self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {self.fault!r}")
        if self.phase not in PHASES:
            raise ValueError(f"phase must be 'before' or 'after', got {self.phase!r}")
        chosen = [name for name in SELECTORS if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give at most one of next, nth, every, probability (got {', '.join(chosen)})")
        for name in ("next", "nth", "every"):
            value = getattr(self, name)
            if value is not None:
                count = integer(value)
                if count is None or count < 1:
                    raise ValueError(f"{name} must be a whole number of calls, at least 1, got {value!r}")
                setattr(self, name, count)
        if self.probability is not None and (
                isinstance(self.probability, bool) or not isinstance(self.probability, int | float)
                or not 0.0 <= self.probability <= 1.0):
            raise ValueError(f"probability must be a number from 0 to 1, got {self.probability!r}")
        if self.operation is not None and (not isinstance(self.operation, str) or not self.operation):
            raise ValueError(f"operation must be an operation name such as 'charge', got {self.operation!r}")
        self.retry_after = _seconds("retry_after", self.retry_after)
        self.timeout_s = _seconds("timeout_s", self.timeout_s)
        self.after_s = _seconds("after_s", self.after_s, MAX_OUTAGE_S)
        if self.for_s is not None:
            self.for_s = _seconds("for_s", self.for_s, MAX_OUTAGE_S)
        if self.seed is not None:
            seed = integer(self.seed)
            if seed is None:
                raise ValueError(f"seed must be an integer, got {self.seed!r}")
            self.seed = seed

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError('the body must be a JSON object such as {"fault": "503", "next": 1}')
        known = {name for name in cls.__dataclass_fields__ if name != "id"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "fault" not in data:
            raise ValueError(f"fault is required: one of {', '.join(FAULTS)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Armed:
    rule: FaultRule
    #: The seed of the rule's coin (None: unseeded), and the coin, made at its first toss: seeding a
    #: `Random` from a string costs more than arming a rule, and most rules never toss one.
    seed: str | None
    #: When the rule's window opens and closes on the services' clock (inf: never closes).
    opens: float = 0.0
    closes: float = math.inf
    seen: int = 0
    fired: int = 0
    _rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random() if self.seed is None else random.Random(self.seed)
        return self._rng

    def open_at(self, now: float) -> bool:
        return self.opens <= now < self.closes

    def matches(self) -> bool:
        """Count this call and say whether the rule strikes it."""
        self.seen += 1
        rule, n = self.rule, self.seen
        if rule.next is not None:
            hit = n <= rule.next
        elif rule.nth is not None:
            hit = n == rule.nth
        elif rule.every is not None:
            hit = n % rule.every == 0
        elif rule.probability is not None:
            hit = self.rng.random() < rule.probability
        else:
            hit = True
        self.fired += hit
        return hit


class Schedule:
    """The fault rules of one service, in the order they were scheduled. Not locked: the owner locks."""

    def __init__(self, service: str, seed: int | None) -> None:
        self.service = service
        self.seed = seed
        self._armed: list[_Armed] = []
        self._counter = 0

    def add(self, rule: FaultRule, now: float = 0.0) -> FaultRule:
        """Arm `rule`; its window (if any) is counted from `now` on the services' clock."""
        self._counter += 1
        armed = replace(rule, id=f"{self.service}-{self._counter}")
        if self.seed is None and rule.seed is None:
            seed = None  # unseeded services: probabilistic rules differ from run to run
        else:
            seed = f"{self.seed}:{self.service}:{self._counter}:{rule.seed}"
        opens = now + armed.after_s
        closes = opens + armed.for_s if armed.for_s is not None else math.inf
        self._armed.append(_Armed(armed, seed, opens, closes))
        return armed

    def pick(self, operation: str, now: float = 0.0) -> FaultRule | None:
        """Count the call against every rule that watches `operation` at `now`; the first that strikes
        wins. A rule outside its window neither counts the call nor strikes it."""
        chosen = None
        for armed in self._armed:
            watching = (armed.rule.operation is None or armed.rule.operation == operation) and armed.open_at(now)
            if watching and armed.matches() and chosen is None:
                chosen = armed.rule
        return chosen

    def remove(self, rule_id: str) -> bool:
        """Disarm one rule; False when no rule has that id."""
        kept = [armed for armed in self._armed if armed.rule.id != rule_id]
        removed = len(kept) < len(self._armed)
        self._armed[:] = kept
        return removed

    def __bool__(self) -> bool:
        return bool(self._armed)

    def rules(self) -> list[dict[str, Any]]:
        """Each rule with its counts and, for a rule with a window, when it opens and closes on the
        services' clock (`closes` is null for a window that never closes)."""
        listed = []
        for a in self._armed:
            item = {**a.rule.to_dict(), "seen": a.seen, "fired": a.fired}
            if a.rule.after_s or a.rule.for_s is not None:
                item["opens"] = a.opens
                item["closes"] = None if a.closes == math.inf else a.closes
            listed.append(item)
        return listed

    def clear(self) -> None:
        self._armed.clear()
        self._counter = 0
