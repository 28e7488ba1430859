"""The billing jobs under the harness's pytest plugin, loaded from the installed wheel's entry point.

`test_first_version_is_retry_safe` fails on purpose: the first version charges twice when it is retried.
"""

from __future__ import annotations

import os
import pathlib
import sysconfig

import pytest
from billing import scenarios

import fake_services
import harness as installed_harness


def test_the_harness_is_the_installed_wheel() -> None:
    site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    source = os.environ.get("ADOPTION_SOURCE_TREE")
    for module in (installed_harness, fake_services):
        where = pathlib.Path(str(module.__file__)).resolve()
        assert where.is_relative_to(site), f"{module.__name__} comes from {where}, not from {site}"
        assert not (source and where.is_relative_to(pathlib.Path(source).resolve())), f"{where} is in the source tree"


@pytest.mark.harness(seed=0, depth=1)
def test_fixed_version_is_retry_safe(harness) -> None:
    report = harness.explore(scenarios.FIXED)
    print(report.to_text())
    report.assert_safe()


def test_first_version_is_retry_safe(harness) -> None:
    harness.explore(scenarios.PLANTED).assert_safe()
