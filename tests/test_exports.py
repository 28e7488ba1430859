"""The curated facades: `__all__` is complete, sorted, importable, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import fake_services
import harness


def test_harness_all_is_unique_and_importable():
    assert len(set(harness.__all__)) == len(harness.__all__)
    for name in harness.__all__:
        assert hasattr(harness, name), name
    assert {"explore", "Scenario", "job", "Report", "World", "InjectedCrash"} <= set(harness.__all__)


def test_fake_services_all():
    assert set(fake_services.__all__) == {
        "Behaviour", "FakeServices", "FaultRule", "JournalEntry", "ServiceHandle", "ServicesHandle",
        "ServicesTransport", "create_app",
    }
    for name in fake_services.__all__:
        assert hasattr(fake_services, name), name


def test_importing_harness_loads_no_engine_web_framework_or_hypothesis():
    code = (
        "import sys, harness; heavy = {'dramatiq', 'rq', 'celery', 'starlette', 'uvicorn', 'hypothesis'}; "
        "print(','.join(sorted(heavy & {m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
