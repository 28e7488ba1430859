"""The services' clock is a protocol: a clock says whether sleeping blocks, no class is recognised by name,
and the fake services never import the harness."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import fake_services
from fake_services import FakeServices
from fake_services.clock import WallClock, blocks
from harness.clock import RealClock, VirtualClock


def test_clocks_say_whether_sleeping_blocks() -> None:
    assert FakeServices().blocking is True  # the default wall clock
    assert FakeServices(clock=WallClock()).blocking is True
    assert FakeServices(clock=RealClock()).blocking is True
    assert FakeServices(clock=VirtualClock()).blocking is False


def test_a_clock_is_known_by_what_it_says_not_by_its_class_name() -> None:
    class RealClock:  # the harness's class name, without the attribute
        def time(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            pass

    class Blocking(RealClock):
        blocks = True

    assert blocks(RealClock()) is False and FakeServices(clock=RealClock()).blocking is False
    assert FakeServices(clock=Blocking()).blocking is True


def test_fake_services_never_import_the_harness() -> None:
    root = pathlib.Path(fake_services.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import harness" not in text and "from harness" not in text, path.name
    modules = [f"fake_services.{p.stem}" for p in root.glob("*.py") if p.stem != "__init__"]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'harness'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
