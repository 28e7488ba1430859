"""A harness that proves background jobs are safe to retry.

The public API is re-exported here; implementation lives in submodules. Importing `harness` imports
no job engine, no web framework and no Hypothesis (strategies live in `harness.strategies`, the stateful
mode in `harness.explore.stateful`).
"""

from __future__ import annotations

from harness.clock import RealClock, VirtualClock
from harness.engines import get_engine
from harness.engines.base import Engine, Hooks, Job, JobOptions, JobRecord, job
from harness.errors import (
    ConfigurationError,
    EngineUnavailable,
    HarnessError,
    InjectedCrash,
    InjectedError,
    JobArgumentError,
    ScenarioError,
    Shutdown,
    UnsafeJobError,
)
from harness.explore import Explorer, Report, Scenario, explore
from harness.invariants import effects_match, effects_match_clean_run, exactly_once
from harness.world import World

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Engine",
    "EngineUnavailable",
    "Explorer",
    "HarnessError",
    "Hooks",
    "InjectedCrash",
    "InjectedError",
    "Job",
    "JobArgumentError",
    "JobOptions",
    "JobRecord",
    "RealClock",
    "Report",
    "Scenario",
    "ScenarioError",
    "Shutdown",
    "UnsafeJobError",
    "VirtualClock",
    "World",
    "__version__",
    "effects_match",
    "effects_match_clean_run",
    "exactly_once",
    "explore",
    "get_engine",
    "job",
]
