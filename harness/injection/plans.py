"""Points, faults and plans: the vocabulary of what the explorer injects, and its JSON form.

A *point* is where a fault can strike: a `LinePoint` (file, line, hit) in target code, or a `CallPoint`
(service, operation, call number, phase) at a request to a fake service. A *plan* is the list of faults
of one run, each tied to the execution (the n-th job attempt of the run, counting every job) it hits.
`Duplicate` is the odd one out: the whole job is delivered again after it succeeded.
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
    "CallPoint",
    "Duplicate",
    "FaultStep",
    "LinePoint",
    "Plan",
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


Step = FaultStep | Duplicate
Plan = tuple[Step, ...]


def plan_to_json(plan: Sequence[Step]) -> str:
    """A compact JSON form of a plan, used in replay commands."""
    return json.dumps([step.to_dict() for step in plan], separators=(",", ":"), sort_keys=True)


def _point_from_dict(data: dict[str, Any]) -> Point:
    kind = data.get("kind")
    if kind == "line":
        return LinePoint(os.path.abspath(str(data["file"])), int(data["line"]), int(data.get("hit", 1)))
    if kind == "call":
        phase = str(data.get("phase", "before"))
        if phase not in ("before", "after"):
            raise ConfigurationError(f"a call point's phase is 'before' or 'after', not {phase!r}")
        return CallPoint(str(data["service"]), str(data["operation"]), int(data.get("call", 1)), phase)
    raise ConfigurationError(f"unknown point kind {kind!r} (expected 'line', 'call' or 'duplicate')")


def plan_from_json(text: str | Iterable[dict[str, Any]]) -> Plan:
    """Parse what `plan_to_json` wrote (or the `plan` list of a JSON report)."""
    try:
        raw = json.loads(text) if isinstance(text, str) else list(text)
        steps: list[Step] = []
        for item in raw:
            if item["point"].get("kind") == "duplicate":
                steps.append(Duplicate())
            else:
                steps.append(FaultStep(int(item["attempt"]), _point_from_dict(item["point"]), str(item["fault"])))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigurationError(f"not a plan ({exc!r}); pass the JSON a report printed") from None
    return tuple(steps)
