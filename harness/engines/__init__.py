"""Job engines behind one protocol. Backends are imported only when asked for by name."""

from __future__ import annotations

import importlib
from typing import Any

from harness.engines.base import (
    AttemptObserver,
    Engine,
    Event,
    EventKind,
    Hooks,
    Job,
    JobOptions,
    JobRecord,
    RetryPolicy,
    Stats,
    current_engine,
    job,
)
from harness.errors import ConfigurationError, EngineUnavailable

__all__ = [
    "ENGINE_NAMES",
    "AttemptObserver",
    "Engine",
    "Event",
    "EventKind",
    "Hooks",
    "Job",
    "JobOptions",
    "JobRecord",
    "RetryPolicy",
    "Stats",
    "current_engine",
    "get_engine",
    "job",
]

#: Backend name -> (module, class name, pip extra).
_BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "sim": ("harness.engines.sim", "SimEngine", None),
    "dramatiq": ("harness.engines.dramatiq", "DramatiqEngine", "dramatiq"),
    "rq": ("harness.engines.rq", "RQEngine", "rq"),
    "celery": ("harness.engines.celery", "CeleryEngine", "celery"),
}
ENGINE_NAMES = tuple(_BACKENDS)


def get_engine(name: str, **options: Any) -> Engine:
    """Build the backend called `name` (sim, dramatiq, rq, celery) in its deterministic mode."""
    try:
        module_name, class_name, extra = _BACKENDS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'retry-harness[{extra}]'" if extra else "reinstall the harness"
        raise EngineUnavailable(f"engine {name!r} cannot be imported ({exc}); {hint}") from exc
    engine: Engine = getattr(module, class_name)(**options)
    return engine
