"""What an exploration found, in three forms: text for people, JSON (`harness.report/1`) for tools, and
HTML (the job's source annotated line by line)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import UnsafeJobError
from harness.injection.plans import CallPoint, Plan, plan_from_json

if TYPE_CHECKING:
    from harness.explore.explorer import Explorer
    from harness.explore.runner import RunResult
    from harness.explore.scenario import Scenario

__all__ = ["SCHEMA", "Report", "UnsafePlan", "scenario_ref"]

SCHEMA = "harness.report/1"

#: Ids the fake services generate (`ch_1a2b3c4d`); two failures that differ only in them are one failure.
_GENERATED_ID = re.compile(r"\b(?:ch|em|fr|err)_[0-9a-f]{8}\b")


def scenario_ref(scenario: Scenario) -> str:
    """`module:attr` under which `scenario` can be imported, found by looking; its name if none."""
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith(("_", "harness.", "hypothesis", "pytest", "_pytest")):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if value is scenario:
                return f"{name}:{attr}"
    return scenario.name


@dataclass
class UnsafePlan:
    plan: Plan
    violations: list[str]
    story: str
    replay: str
    #: How many other plans were pruned as equivalent to this one (they fail the same way).
    equivalents: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": [step.to_dict() for step in self.plan],
            "violations": list(self.violations),
            "story": self.story,
            "replay": self.replay,
            "equivalents": self.equivalents,
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

    @property
    def verdict(self) -> str:
        routing_broken = any(not row["ok"] for row in self.routing)
        return "unsafe" if self.unsafe or routing_broken else "safe"

    @property
    def safe(self) -> bool:
        return self.verdict == "safe"

    @classmethod
    def build(
        cls,
        *,
        explorer: Explorer,
        baseline: RunResult,
        plans_run: int,
        plans_pruned: int,
        unsafe: Sequence[UnsafePlan],
        safe_lines: dict[tuple[str, int], bool],
        routing: list[dict[str, Any]],
        duration_s: float,
    ) -> Report:
        line_points = sum(len(e.lines) for e in baseline.executions)
        call_points = 0
        for execution in baseline.executions:
            call_points += sum(2 if effect else 1 for _, effect in execution.calls)
        return cls(
            scenario=explorer.scenario.name,
            engine=explorer.engine_name,
            seed=explorer.seed,
            points={"line": line_points, "call": call_points},
            plans_run=plans_run,
            plans_pruned=plans_pruned,
            duration_s=duration_s,
            unsafe=list(unsafe),
            routing=routing,
            lines=safe_lines,
            description=explorer.scenario.description,
        )

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
        groups = self.failures()
        if groups:
            equivalent = sum(u.equivalents for u in self.unsafe)
            pruned = f" (and {equivalent} pruned as equivalent to them)" if equivalent else ""
            lines.append(f"  {len(self.unsafe)} violating plans{pruned}, {len(groups)} distinct failures:")
        for n, members in enumerate(groups[:limit], 1):
            first = members[0]
            lines.append(f"  [{n}] {first.story}")
            for violation in first.violations:
                lines.append(f"      violation: {violation}")
            others = len(members) - 1 + sum(u.equivalents for u in members)
            if others:
                lines.append(f"      ({others} more plans fail the same way)")
            lines.append(f"      replay: {first.replay}")
        if len(groups) > limit:
            lines.append(f"  ... and {len(groups) - limit} more distinct failures (see the JSON report)")
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
                isinstance(point := getattr(s, "point", None), CallPoint) and point.service == service for s in steps
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
