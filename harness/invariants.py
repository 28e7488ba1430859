"""Reusable checks on the world after a run.

An invariant is a plain function `f(world) -> None | str | list[str]`: nothing when it holds, or
sentences naming the evidence when it does not. The built-in one needs no user code: the effects of a
faulty run must equal the effects of the clean run, compared per service, operation and business key
(generated ids and times never take part).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.world import World

__all__ = [
    "OBSERVERS",
    "EffectKey",
    "completed_within",
    "effect_counts",
    "effects_match",
    "effects_match_clean_run",
    "exactly_once",
]

#: Services that observe the system (error reports, chat alerts) rather than act for the customer.
#: Their records are judged by the routing checks, not by the effects comparison.
OBSERVERS = frozenset({"error-catcher", "error_catcher", "chat"})

EffectKey = tuple[str, str, tuple[tuple[str, str], ...]]


def _key(entry: Any) -> EffectKey:
    keys = tuple(sorted((str(k), json.dumps(v, sort_keys=True)) for k, v in (entry.keys or {}).items()))
    return (entry.service, entry.operation, keys)


def describe_effect(key: EffectKey) -> str:
    service, operation, keys = key
    shown = ", ".join(f"{k}={json.loads(v)!r}" for k, v in keys)
    return f"{service}.{operation}({shown})"


def effect_counts(world: World, *, ignore: Iterable[str] = OBSERVERS) -> Counter[EffectKey]:
    """How many times each effect (service, operation, business keys) happened in the world."""
    ignored = frozenset(ignore)
    return Counter(_key(e) for e in world.services.effects() if e.service not in ignored)


def effects_match(
    expected: Counter[EffectKey], *, allow_missing: bool = False, ignore: Iterable[str] = OBSERVERS
) -> Callable[[World], list[str]]:
    """An invariant: the world's effects are exactly `expected` (each as many times, no other)."""
    ignored = frozenset(ignore)

    def check(world: World) -> list[str]:
        actual = effect_counts(world, ignore=ignored)
        problems = []
        for key in sorted(set(actual) | set(expected)):
            got, want = actual.get(key, 0), expected.get(key, 0)
            if got > want:
                problems.append(f"{describe_effect(key)} happened {got} times (the clean run: {want})")
            elif got < want and not allow_missing:
                problems.append(
                    f"{describe_effect(key)} happened {got} times (the clean run: {want}); an effect was lost"
                )
        return problems

    check.__name__ = "effects_match_clean_run"
    return check


class _CleanRunMarker:
    """Stands for 'the effects equal the clean run's'; the explorer fills in the clean run."""

    __name__ = "effects_match_clean_run"

    def __init__(self, *, allow_missing: bool, ignore: Iterable[str]) -> None:
        self.allow_missing = allow_missing
        self.ignore = frozenset(ignore)

    def bind(self, expected: Counter[EffectKey]) -> Callable[[World], list[str]]:
        # The clean run's effects were counted with the default services ignored; ignore ours there too.
        kept = Counter({key: n for key, n in expected.items() if key[0] not in self.ignore})
        return effects_match(kept, allow_missing=self.allow_missing, ignore=self.ignore)

    def __call__(self, world: World) -> list[str]:
        raise TypeError(
            "effects_match_clean_run() needs a clean run to compare with: use it inside a Scenario "
            "given to the explorer, or call effects_match(expected) yourself"
        )


def effects_match_clean_run(
    *, allow_missing: bool = False, ignore: Iterable[str] = OBSERVERS
) -> Callable[[World], list[str]]:
    """The built-in invariant, for a Scenario's `invariants` when you want to set its options:
    `allow_missing=True` accepts lost effects (a job that must not be retried loses them by design)."""
    return _CleanRunMarker(allow_missing=allow_missing, ignore=ignore)


def exactly_once(
    service: str,
    operation: str,
    key: str,
    *,
    label: str | None = None,
    values: Callable[[World], Sequence[Any]] | None = None,
) -> Callable[[World], list[str]]:
    """An invariant: each value of business key `key` has exactly one `service.operation` effect.

    With `values(world)` (say, the ids of the orders the scenario created) a value with no effect at all
    is a violation too; without it only duplicates are.
    """
    what = label or f"{service}.{operation}"

    def check(world: World) -> list[str]:
        counts: Counter[Any] = Counter()
        for entry in world.services.effects():
            if entry.service == service and entry.operation == operation and key in (entry.keys or {}):
                counts[json.dumps(entry.keys[key], sort_keys=True)] += 1
        wanted = [json.dumps(v, sort_keys=True) for v in values(world)] if values is not None else []
        problems = [
            f"{what} happened {n} times for {key}={json.loads(v)!r} (expected 1)"
            for v, n in sorted(counts.items())
            if n > 1
        ]
        problems += [
            f"{what} never happened for {key}={json.loads(v)!r} (expected 1)" for v in wanted if v not in counts
        ]
        return problems

    check.__name__ = f"exactly_once_{service}_{operation}"
    return check


def completed_within(
    seconds: float,
    outcomes: Callable[[World], Mapping[Any, tuple[float, float | None]]],
    *,
    what: str = "item",
) -> Callable[[World], list[str]]:
    """A monitor of business outcomes, as an invariant: every item reaches its final state within
    `seconds` of virtual time.

    `outcomes(world)` maps each item (an order id, say) to (when it started, when it reached its final
    state, or None if it never did). A job the broker forgot raises nothing, so error reporting stays
    silent; this is the check that notices, as a production monitor of "orders not completed after an
    hour" does. The sentence says when error reporting saw nothing either.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValueError(f"completed_within takes a positive number of seconds, not {seconds!r}")

    def check(world: World) -> list[str]:
        reported = any(e.service in ("error-catcher", "error_catcher") for e in world.services.effects())
        silent = "" if reported else "; nothing was reported to the error catcher"
        problems = []
        for item, (started, finished) in sorted(outcomes(world).items(), key=lambda pair: str(pair[0])):
            if finished is None:
                problems.append(f"{what} {item} never completed: when the world went quiet, no job was left "
                                f"to finish it{silent}")
            elif finished - started > seconds:
                problems.append(f"{what} {item} completed {_span(finished - started)} after it started "
                                f"(the limit is {_span(seconds)})")
        return problems

    check.__name__ = f"completed_within_{int(seconds)}s"
    return check


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
