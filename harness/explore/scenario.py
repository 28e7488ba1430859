"""A scenario: a job, how to set the world up for it, and what must hold afterwards."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigurationError

if TYPE_CHECKING:
    from harness.engines.base import Job
    from harness.world import World

__all__ = ["Invariant", "Scenario"]

#: An invariant looks at the world after a run and answers None (or an empty list) when it holds, or
#: one sentence (or several) naming the evidence when it does not.
Invariant = Callable[["World"], "str | Sequence[str] | None"]


@dataclass(frozen=True)
class Scenario:
    """What the explorer needs to know about one job.

    - `job`: the entry job; `jobs`: other jobs it may enqueue (registered up front).
    - `configure(world)`: once per world: install the app's hooks on `world.engine.hooks` and point
      its service clients at `world.http`.
    - `setup(world)`: before every plan, after the world was reset: prepare data, return the job's
      arguments (a list).
    - `invariants`: checks on the world after the run (the explorer always adds its own baseline check
      that the effects equal the clean run's unless `compare_to_clean_run=False`).
    - `targets`: module or package names whose lines are crash points (default: the job's package).
    - `fingerprint(world)`: see the field's comment.
    - `reset()`: drop process state after an injected crash (roll back and close connections, clear
      caches), as a fresh process would start.
    """

    name: str
    job: Job
    setup: Callable[[World], Sequence[Any]] = lambda world: []
    configure: Callable[[World], None] | None = None
    invariants: Sequence[Invariant] = ()
    targets: Sequence[str] = ()
    exclude: Sequence[str] = ()
    reset: Callable[[], None] | None = None
    jobs: Sequence[Job] = ()
    compare_to_clean_run: bool = True
    #: A hashable summary of the app's own state (its database rows, say). With it the explorer can
    #: tell that two crash points leave the same world and run only one of them (pruning).
    fingerprint: Callable[[World], Hashable] | None = None
    #: Virtual-time bound for one plan's run (seconds); 25 Sidekiq retries take about 21 days.
    max_time: float = 30 * 24 * 3600.0
    description: str = ""
    tags: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a scenario needs a name")
        if not callable(self.setup):
            raise ConfigurationError(f"scenario {self.name!r}: setup must be callable")

    @property
    def target_modules(self) -> list[str]:
        if self.targets:
            return list(self.targets)
        module = self.job.fn.__module__
        return [module.rsplit(".", 1)[0] if "." in module else module]
