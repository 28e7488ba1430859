"""What an exploration found, in three forms: text for people, JSON (`harness.report/1`) for tools, and
HTML (the job's source annotated line by line)."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import UnsafeJobError
from harness.injection.plans import CallPoint, Plan, plan_from_json

if TYPE_CHECKING:
    from harness.explore.scenario import Scenario

__all__ = ["SCHEMA", "Report", "UnsafePlan", "plural", "same_way", "scenario_ref"]

SCHEMA = "harness.report/1"

#: Ids services generate: the fakes' `ch_1a2b3c4d` or `msg_0f1e2d3c` (any short prefix, 8 hex digits) and
#: Stripe-shaped `pi_3Nq...` ones (14 or more letters and digits). Two failures that differ only in them
#: are one failure.
_GENERATED_ID = re.compile(r"\b[a-z]{2,5}_(?:[0-9a-f]{8}|[0-9A-Za-z]{14,})\b")


#: id(scenario) -> (scenario, "module:attr") found before: checked again on use, since a module may drop
#: or rebind the name, and kept with the scenario so the id is never another object's.
_found_refs: dict[int, tuple[Scenario, str]] = {}


def scenario_ref(scenario: Scenario) -> str:
    """`module:attr` under which `scenario` can be imported, found by looking; its name if none."""
    known = _found_refs.get(id(scenario))
    if known is not None and known[0] is scenario:
        name, attr = known[1].split(":", 1)
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__dict__", {}).get(attr) is scenario:
            return known[1]
    # Every loaded module's namespace: a few milliseconds, once per scenario.
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith(("_", "harness.", "hypothesis", "pytest", "_pytest")):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if value is scenario:
                _found_refs[id(scenario)] = (scenario, f"{name}:{attr}")
                return f"{name}:{attr}"
    return scenario.name


def plural(count: int, noun: str) -> str:
    """`1 violating plan`, `2 violating plans`: the one place reports count things."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def same_way(members: list[UnsafePlan]) -> int:
    """How many plans besides the first of a group fail the same way: the group's other members and every
    plan pruned as equivalent to any of them. Text and HTML both say this number."""
    return len(members) - 1 + sum(u.equivalents for u in members)


@dataclass
class UnsafePlan:
    plan: Plan
    violations: list[str]
    story: str
    replay: str
    #: How many other plans were pruned as equivalent to this one (they fail the same way).
    equivalents: int = 0
    #: The run on virtual time: attempts, retry delays, dead set, handlers (see `harness.explore.timeline`).
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": [step.to_dict() for step in self.plan],
            "violations": list(self.violations),
            "story": self.story,
            "replay": self.replay,
            "equivalents": self.equivalents,
            "timeline": list(self.timeline),
        }


@dataclass
class Report:
    scenario: str
    engine: str
    seed: int
    points: dict[str, int]
    plans_run: int
    plans_pruned: int
    duration_s: float
    unsafe: list[UnsafePlan]
    routing: list[dict[str, Any]] = field(default_factory=list)
    #: (file, line) -> True (every crash there was safe) / False (one was not), for the HTML form.
    lines: dict[tuple[str, int], bool] = field(default_factory=dict)
    description: str = ""
    #: Lines of `lines` whose every crash point was pruned: their verdict is an equivalent point's.
    inherited_lines: frozenset[tuple[str, int]] = frozenset()
    #: What the explorer noticed that may make the verdict less than it seems (said in every form).
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        routing_broken = any(not row["ok"] for row in self.routing)
        return "unsafe" if self.unsafe or routing_broken else "safe"

    @property
    def safe(self) -> bool:
        return self.verdict == "safe"

    # -- forms ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "scenario": self.scenario,
            "engine": self.engine,
            "seed": self.seed,
            "points": dict(self.points),
            "plans_run": self.plans_run,
            "plans_pruned": self.plans_pruned,
            "duration_s": round(self.duration_s, 6),
            "verdict": self.verdict,
            "unsafe": [u.to_dict() for u in self.unsafe],
            "routing": list(self.routing),
            "warnings": list(self.warnings),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def to_text(self, *, limit: int = 10) -> str:
        head = f"{self.scenario} on {self.engine} (seed {self.seed}): {self.verdict.upper()}"
        counts = (
            f"  points: {self.points.get('line', 0)} line, {self.points.get('call', 0)} call; "
            f"plans: {self.plans_run} run, {self.plans_pruned} pruned as equivalent; "
            f"{self.duration_s:.2f} s"
        )
        lines = [head, counts]
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        groups = self.failures()
        if groups:
            equivalent = sum(u.equivalents for u in self.unsafe)
            pruned = f" (and {equivalent} pruned as equivalent to them)" if equivalent else ""
            lines.append(
                f"  {plural(len(self.unsafe), 'violating plan')}{pruned}, "
                f"{plural(len(groups), 'distinct failure')}:"
            )
        for n, members in enumerate(groups[:limit], 1):
            first = members[0]
            lines.append(f"  [{n}] {first.story}")
            for violation in first.violations:
                lines.append(f"      violation: {violation}")
            others = same_way(members)
            if others:
                lines.append(f"      ({plural(others, 'more plan')} {'fails' if others == 1 else 'fail'} the same way)")
            lines.append(f"      replay: {first.replay}")
        if len(groups) > limit:
            more = len(groups) - limit
            lines.append(f"  ... and {plural(more, 'more distinct failure')} (see the JSON report)")
        if self.routing:
            lines.append("  routing:")
            for row in self.routing:
                mark = "ok " if row["ok"] else "BAD"
                lines.append(
                    f"    {mark} {row['fault']:<10} retried={row['retried']!s:<5} reported={row['reported']} "
                    f"dead={row['dead']!s:<5} death_handler={row['death_handler']}  expected: {row['expected']}"
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def failures(self) -> list[list[UnsafePlan]]:
        """The violating plans grouped by what they broke (generated ids aside), smallest plan first in
        each group, groups in the order they were found."""
        groups: dict[tuple[str, ...], list[UnsafePlan]] = {}
        for unsafe in self.unsafe:
            key = tuple(sorted(_GENERATED_ID.sub("<id>", v) for v in unsafe.violations))
            groups.setdefault(key, []).append(unsafe)
        return [sorted(members, key=lambda u: len(u.plan)) for members in groups.values()]

    def to_html(self) -> str:
        from harness.explore.html import render

        return render(self)

    def assert_safe(self) -> None:
        """Raise `UnsafeJobError` (an AssertionError) with the stories when the verdict is unsafe."""
        __tracebackhide__ = True
        if not self.safe:
            raise UnsafeJobError(self.to_text())

    def assert_unsafe(self) -> None:
        """The opposite, for scenarios that must keep finding a planted bug."""
        __tracebackhide__ = True
        if self.safe:
            raise AssertionError(f"expected the harness to find a violation, but:\n{self.to_text()}")

    def found(
        self, *, fault: str | None = None, service: str | None = None, text: str | None = None
    ) -> list[UnsafePlan]:
        """The violating plans that match: a fault kind, a service, a phrase in the violations."""
        matches = []
        for unsafe in self.unsafe:
            steps = [s for s in unsafe.plan if hasattr(s, "fault")]
            if fault is not None and not any(getattr(s, "fault", None) == fault for s in steps):
                continue
            if service is not None and not any(
                (isinstance(point := getattr(s, "point", None), CallPoint) and point.service == service)
                or getattr(s, "service", None) == service for s in steps
            ):
                continue
            if text is not None and not any(text in v for v in unsafe.violations):
                continue
            matches.append(unsafe)
        return matches

    @staticmethod
    def plan_of(unsafe: dict[str, Any]) -> Plan:
        """The plan of one entry of a JSON report's `unsafe` list."""
        return plan_from_json(unsafe["plan"])
