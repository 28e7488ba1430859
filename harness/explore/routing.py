"""Routing checks: for each kind of failure, did the engine and the app route it where it belongs?

The declared policy, from the lessons the harness re-enacts: a transient failure is retried and stays
silent; a permanent one (a bug) is reported; a failure that outlasts every retry ends in the dead set
with exactly one death notification. A job that must not be retried (`retry=0` or `retry=False`) dies on
its first failure and notifies once. Each row of the matrix says what happened and what was expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.engines.base import EventKind
from harness.injection.plans import CallPoint, FaultStep

if TYPE_CHECKING:
    from harness.explore.runner import RunSession

__all__ = ["TRANSIENT_FAULTS", "check_routing"]

TRANSIENT_FAULTS = ("503", "429", "timeout", "drop")


def _observe(session: RunSession) -> dict[str, Any]:
    world = session.world
    events = world.engine.events
    return {
        "retried": any(e.kind is EventKind.RETRY_SCHEDULED for e in events),
        "reported": len(world.services.error_catcher.records()),
        "dead": bool(world.engine.dead()),
        "death_handler": sum(1 for e in events if e.kind is EventKind.DEATH_HANDLER_CALLED),
    }


def _row(fault: str, seen: dict[str, Any], expected: dict[str, Any], words: str) -> dict[str, Any]:
    ok = all(seen[key] == value for key, value in expected.items())
    return {"fault": fault, **seen, "expected": words, "ok": ok}


def check_routing(session: RunSession) -> list[dict[str, Any]]:
    """Run one plan per failure kind and compare the outcome with the policy."""
    baseline = session.baseline()
    if not baseline.executions:
        return []
    first = baseline.executions[0]
    policy = session.world.engine.retry_policy(session.scenario.job)
    retries = policy.max_retries
    keeps_dead = policy.dead
    rows: list[dict[str, Any]] = []
    call = first.calls[0][0] if first.calls else None

    with session.tracing():
        if call is not None:
            point = CallPoint(call.service, call.operation, call.call, "before")
            for fault in TRANSIENT_FAULTS:
                session.run(((FaultStep(1, point, fault)),))
                seen = _observe(session)
                if retries:
                    rows.append(
                        _row(
                            f"transient {fault}",
                            seen,
                            {"retried": True, "reported": 0, "dead": False, "death_handler": 0},
                            "retried, not reported",
                        )
                    )
                else:
                    rows.append(
                        _row(
                            f"transient {fault}",
                            seen,
                            {"retried": False, "dead": keeps_dead, "death_handler": 1, "reported": 1},
                            "not retried: dead at once, one death notification",
                        )
                    )

        if first.lines:
            line = first.lines[0]
            attempts = (retries or 0) + 1
            plan = tuple(FaultStep(n, line, "bug") for n in range(1, attempts + 1))
            session.run(plan)
            seen = _observe(session)
            row = _row("permanent", seen, {"death_handler": 1}, "reported")
            row["ok"] = row["ok"] and seen["reported"] >= 1
            rows.append(row)

        if call is not None:
            from fake_services import FaultRule

            def break_service() -> None:
                session.world.services.schedule(
                    call.service, FaultRule(fault="503", phase="before", every=1, operation=call.operation)
                )

            session.run((), before_run=break_service)
            seen = _observe(session)
            rows.append(
                _row(
                    "exhausted",
                    seen,
                    {"dead": keeps_dead, "death_handler": 1, "reported": 1},
                    "dead, one death notification" if keeps_dead else "one death notification",
                )
            )
    return rows
