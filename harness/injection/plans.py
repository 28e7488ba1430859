"""Points, faults and plans: the vocabulary of what the explorer injects, and its JSON form.

A *point* is where a fault can strike: a `LinePoint` (file, line, hit) in target code, or a `CallPoint`
(service, operation, call number, phase) at a request to a fake service. A *plan* is the list of faults
of one run, each tied to the execution (the n-th job attempt of the run, counting every job) it hits.
`Duplicate`, `BrokerLoss` and `Outage` strike no point: the whole job is delivered again after it
succeeded, the broker forgets every job it holds once the n-th attempt has ended, or a service goes down
for a span of virtual time from the start of the n-th attempt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigurationError
from harness.injection.lines import LinePoint

__all__ = [
    "CALL_FAULTS",
    "LINE_FAULTS",
    "BrokerLoss",
    "CallPoint",
    "Duplicate",
    "FaultStep",
    "LinePoint",
    "Outage",
    "Plan",
    "as_plan",
    "call_faults",
    "count_points",
    "describe_point",
    "plan_from_json",
    "plan_to_json",
    "point_to_dict",
]


@dataclass(frozen=True, order=True)
class CallPoint:
    """The `call`-th request of one operation to a fake service within one attempt, before or after
    the service applies its effect."""

    service: str
    operation: str
    call: int = 1
    phase: str = "before"

    kind = "call"

    def describe(self) -> str:
        nth = f" (call {self.call})" if self.call > 1 else ""
        return f"{self.service}.{self.operation}{nth} {self.phase} its effect"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "call",
            "service": self.service,
            "operation": self.operation,
            "call": self.call,
            "phase": self.phase,
        }


Point = LinePoint | CallPoint


def point_to_dict(point: Point) -> dict[str, Any]:
    if isinstance(point, CallPoint):
        return point.to_dict()
    # Relative to the working directory when under it, so reports and replay commands travel.
    return {"kind": "line", "file": point.where().rsplit(":", 1)[0], "line": point.line, "hit": point.hit}


def describe_point(point: Point) -> str:
    if isinstance(point, CallPoint):
        return point.describe()
    return point.where() + (f" (hit {point.hit})" if point.hit > 1 else "")


#: The service faults the explorer tries at each call point, as (fault, phase) pairs: the request lost,
#: the response lost after the effect, a 5xx before and after the effect, throttling, and a timeout
#: before and after the effect. Read-only calls get the `before` ones only.
CALL_FAULTS: tuple[tuple[str, str], ...] = (
    ("drop", "before"),
    ("drop", "after"),
    ("503", "before"),
    ("503", "after"),
    ("429", "before"),
    ("timeout", "before"),
    ("timeout", "after"),
)


def call_faults(call: CallPoint, had_effect: bool) -> list[tuple[CallPoint, str]]:
    """The (point with its phase, fault) pairs to try at `call`, in `CALL_FAULTS` order.

    The one place of the rule that a fault strikes after the effect only at a call that had one: a read
    (a search, a status) changes nothing, so failing it after its effect is the same as failing it before.
    """
    return [
        (CallPoint(call.service, call.operation, call.call, phase), fault)
        for fault, phase in CALL_FAULTS
        if phase == "before" or had_effect
    ]


def count_points(executions: Iterable[Any]) -> dict[str, int]:
    """Line and call points of recorded attempts (anything with `lines` and `calls`, as the runner's
    `Execution`): a call counts once per phase a fault can strike it in."""
    lines = calls = 0
    for execution in executions:
        lines += len(execution.lines)
        calls += sum(len({point.phase for point, _ in call_faults(call, effect)}) for call, effect in execution.calls)
    return {"line": lines, "call": calls}


@dataclass(frozen=True, order=True)
class FaultStep:
    """One fault of a plan: at execution `attempt` (1-based, every job attempt of the run counted),
    strike `point` with `fault` ("crash" at a line; a service fault such as "503" at a call)."""

    attempt: int
    point: Point
    fault: str

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "point": point_to_dict(self.point), "fault": self.fault}


@dataclass(frozen=True, order=True)
class Duplicate:
    """The whole entry job is delivered once more after the run went quiet (at-least-once delivery)."""

    kind = "duplicate"
    fault = "redeliver"
    attempt = 0

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": 0, "point": {"kind": "duplicate"}, "fault": "redeliver"}


@dataclass(frozen=True, order=True)
class BrokerLoss:
    """Once execution `attempt` (1-based, as `FaultStep` counts) has ended, the broker forgets every job
    it holds (queued, scheduled, retrying, dead), as a Redis restarted without persistence does; see
    `Engine.forget`."""

    attempt: int
    kind = "broker"
    fault = "forget"

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "point": {"kind": "broker"}, "fault": "forget"}


@dataclass(frozen=True, order=True)
class Outage:
    """From the start of execution `attempt` (1-based, as `FaultStep` counts), `service` answers every
    call (of `operation` only, when given) with a 503 for `for_s` seconds of virtual time: the job's
    retries run into it on the engine's own schedule, and one that outlives an idempotency key's retention
    sends the key after the service forgot it."""

    attempt: int
    service: str
    for_s: float
    operation: str | None = None
    kind = "outage"
    fault = "outage"

    def to_dict(self) -> dict[str, Any]:
        point: dict[str, Any] = {"kind": "outage", "service": self.service, "for_s": self.for_s}
        if self.operation is not None:
            point["operation"] = self.operation
        return {"attempt": self.attempt, "point": point, "fault": "outage"}

    def describe(self) -> str:
        what = f"{self.service}.{self.operation}" if self.operation else self.service
        return f"{what} down for {span(self.for_s)}"


def span(seconds: float) -> str:
    """A stretch of time as people say it: `45 s`, `20 min`, `26 h`, `3 days`."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 3 * 24 * 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


Step = FaultStep | Duplicate | BrokerLoss | Outage
Plan = tuple[Step, ...]


def plan_to_json(plan: Sequence[Step]) -> str:
    """A compact JSON form of a plan, used in replay commands."""
    return json.dumps([step.to_dict() for step in plan], separators=(",", ":"), sort_keys=True)


#: What may strike a line point: the process dies there, or a plain bug (an ordinary exception) is raised.
LINE_FAULTS = ("crash", "bug")


def _whole(data: dict[str, Any], name: str, default: int | None = None, *, minimum: int = 1) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be a whole number, at least {minimum}, not {value!r}")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, not {value!r}")
    return value


def _point_from_dict(data: Any) -> Point:
    if not isinstance(data, dict):
        raise ConfigurationError(f"a step's point is a JSON object such as {{\"kind\": \"line\", ...}}, not {data!r}")
    kind = data.get("kind")
    if kind == "line":
        return LinePoint(os.path.abspath(_text(data, "file")), _whole(data, "line"), _whole(data, "hit", 1))
    if kind == "call":
        phase = data.get("phase", "before")
        if phase not in ("before", "after"):
            raise ConfigurationError(f"a call point's phase is 'before' or 'after', not {phase!r}")
        return CallPoint(_text(data, "service"), _text(data, "operation"), _whole(data, "call", 1), phase)
    raise ConfigurationError(
        f"unknown point kind {kind!r} (expected 'line', 'call', 'duplicate', 'broker' or 'outage')")


def _outage_from_dict(item: dict[str, Any], point: dict[str, Any]) -> Outage:
    from fake_services.behaviours import MAX_OUTAGE_S

    if item.get("fault", "outage") != "outage":
        raise ConfigurationError(f"an outage step's fault is 'outage', not {item.get('fault')!r}")
    unknown = sorted(set(point) - {"kind", "service", "for_s", "operation"})
    if unknown:
        raise ConfigurationError(f"an outage point takes service, for_s and operation, not {', '.join(unknown)}")
    for_s = point.get("for_s")
    if isinstance(for_s, bool) or not isinstance(for_s, int | float) or not 0 < for_s <= MAX_OUTAGE_S:
        raise ConfigurationError(f"an outage's for_s is a number of seconds above 0 and at most {MAX_OUTAGE_S:g}, "
                                 f"not {for_s!r}")
    operation = point.get("operation")
    if operation is not None and (not isinstance(operation, str) or not operation):
        raise ConfigurationError(f"an outage's operation is an operation name or absent, not {operation!r}")
    return Outage(_whole(item, "attempt"), _text(point, "service"), float(for_s), operation)


def _step_from_dict(item: Any) -> Step:
    from fake_services.behaviours import FAULTS as SERVICE_FAULTS

    if not isinstance(item, dict):
        raise ConfigurationError(f"each step of a plan is a JSON object with attempt, point and fault, not {item!r}")
    point = item.get("point")
    if isinstance(point, dict) and point.get("kind") == "duplicate":
        return Duplicate()
    if isinstance(point, dict) and point.get("kind") == "broker":
        if item.get("fault", "forget") != "forget":
            raise ConfigurationError(f"a broker step's fault is 'forget', not {item.get('fault')!r}")
        return BrokerLoss(_whole(item, "attempt"))
    if isinstance(point, dict) and point.get("kind") == "outage":
        return _outage_from_dict(item, point)
    parsed = _point_from_dict(point)
    fault = item.get("fault")
    allowed = LINE_FAULTS if isinstance(parsed, LinePoint) else SERVICE_FAULTS
    if fault not in allowed:
        raise ConfigurationError(
            f"unknown fault {fault!r} at a {parsed.kind} point; a {parsed.kind} point takes one of {', '.join(allowed)}"
        )
    return FaultStep(_whole(item, "attempt"), parsed, str(fault))


def plan_from_json(text: str | Iterable[dict[str, Any]]) -> Plan:
    """Parse what `plan_to_json` wrote (or the `plan` list of a JSON report); anything else is refused with
    a `ConfigurationError` that says what was expected."""
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except RecursionError:
        raise ConfigurationError("not a plan: the JSON is nested too deeply; pass the JSON a report printed") from None
    except ValueError as exc:
        raise ConfigurationError(f"not a plan: not JSON ({exc}); pass the JSON a report printed") from None
    if isinstance(raw, dict | str | bytes) or not isinstance(raw, Iterable):
        raise ConfigurationError(
            f"not a plan: a plan is a JSON list of steps ([{{\"attempt\": 1, \"point\": ..., \"fault\": ...}}]), "
            f"not {type(raw).__name__}"
        )
    return tuple(_step_from_dict(item) for item in raw)


def as_plan(plan: Any) -> Plan:
    """A plan from what a user may hand over: a plan (steps), a report's `plan` list, or its JSON text."""
    if isinstance(plan, str):
        return plan_from_json(plan)
    if isinstance(plan, tuple | list) and all(isinstance(step, FaultStep | Duplicate | BrokerLoss | Outage)
                                              for step in plan):
        return tuple(plan)
    if isinstance(plan, tuple | list):
        return plan_from_json(plan)
    raise ConfigurationError(
        f"not a plan: {type(plan).__name__}; pass a report's plan (its steps, its JSON list or the JSON text)"
    )
