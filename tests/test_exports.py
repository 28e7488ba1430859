"""The curated facades: `__all__` is complete, sorted, importable, and importing stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import fake_services
import harness

#: The public API, pinned: a name added or dropped is a decision, made here on purpose.
HARNESS_API = [
    "ConfigurationError", "Engine", "EngineUnavailable", "Explorer", "HarnessError", "Hooks", "InjectedCrash",
    "InjectedError", "Job", "JobArgumentError", "JobOptions", "JobRecord", "RealClock", "Report", "Scenario",
    "ScenarioError", "Shutdown", "UnsafeJobError", "VirtualClock", "World", "__version__", "effects_match",
    "effects_match_clean_run", "exactly_once", "explore", "get_engine", "job",
]
FAKE_SERVICES_API = [
    "Behaviour", "FakeServices", "FaultRule", "JournalEntry", "ServiceHandle", "ServicesHandle",
    "ServicesTransport", "create_app",
]


@pytest.mark.parametrize(("module", "expected"), [(harness, HARNESS_API), (fake_services, FAKE_SERVICES_API)])
def test_all_is_the_pinned_sorted_api(module: types.ModuleType, expected: list[str]):
    assert module.__all__ == sorted(module.__all__), "keep __all__ sorted"
    assert module.__all__ == expected


@pytest.mark.parametrize("module", [harness, fake_services])
def test_every_public_name_of_the_facade_is_in_all_and_importable(module: types.ModuleType):
    for name in module.__all__:
        assert hasattr(module, name), name
    # What the facade itself offers (submodules aside) is exactly what it declares.
    offered = {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert offered == {name for name in module.__all__ if not name.startswith("_")}


def test_importing_harness_loads_no_engine_web_framework_or_hypothesis():
    code = (
        "import sys, harness; heavy = {'dramatiq', 'rq', 'celery', 'starlette', 'uvicorn', 'hypothesis'}; "
        "print(','.join(sorted(heavy & {m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
