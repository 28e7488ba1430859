"""A harness that proves background jobs are safe to retry.

The public API is re-exported here; implementation lives in submodules. Importing `harness` imports
no job engine, no web framework and no Hypothesis.
"""

from __future__ import annotations

from harness.clock import RealClock, VirtualClock
from harness.engines.base import Engine, Hooks, Job, JobOptions, JobRecord, job
from harness.errors import (
    ConfigurationError,
    EngineUnavailable,
    HarnessError,
    InjectedCrash,
    JobArgumentError,
    ScenarioError,
    Shutdown,
    UnsafeJobError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Engine",
    "EngineUnavailable",
    "HarnessError",
    "Hooks",
    "InjectedCrash",
    "Job",
    "JobArgumentError",
    "JobOptions",
    "JobRecord",
    "RealClock",
    "ScenarioError",
    "Shutdown",
    "UnsafeJobError",
    "VirtualClock",
    "__version__",
    "job",
]
