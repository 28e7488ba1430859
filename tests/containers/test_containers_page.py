"""docs/containers.md says true things: its curl calls work, its commands parse, its test passes.

The page's examples need Docker, so they are shown, not run, by the docs runner; here each kind of
example is checked against the same code without Docker: every `curl` against the in-process services,
every `python -m scenarios.shop.worker ...` line against the worker's parser, every method the page calls
on `Containers` against the class, and the page's test file under `--harness-services-url`.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import httpx
import pytest

from fake_services import FakeServices, ServicesTransport
from fake_services.testing import serve_in_thread
from harness.containers import Containers

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "containers.md"
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```$", re.M | re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(m["info"].strip(), m["body"]) for m in _FENCE.finditer(PAGE.read_text())]


def _lines() -> list[str]:
    """Every line of every block, continuation lines joined, comments dropped."""
    out = []
    for _, body in _blocks():
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_every_curl_on_the_page_is_answered() -> None:
    calls = [line for line in _lines() if line.startswith("curl ")]
    assert len(calls) >= 8, calls
    services = FakeServices()
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services") as client:
        for line in calls:
            argv = shlex.split(line)[1:]
            method = argv[argv.index("-X") + 1] if "-X" in argv else "GET"
            body = json.loads(argv[argv.index("-d") + 1]) if "-d" in argv else None
            url = next(a for a in argv if a.startswith("localhost:8000"))
            response = client.request(method, url.removeprefix("localhost:8000"), json=body)
            assert response.status_code < 400, f"{line}: {response.status_code} {response.text}"


def test_every_worker_command_on_the_page_parses() -> None:
    from scenarios.shop.worker import COMMANDS, _parser

    spans = re.findall(r"`([^`\n]+)`", _FENCE.sub("", PAGE.read_text()))  # inline code in the prose
    commands = [line.split("python -m scenarios.shop.worker", 1)[1] for line in [*_lines(), *spans]
                if "python -m scenarios.shop.worker" in line]
    assert len(commands) >= 3, commands
    for rest in commands:
        argv = shlex.split(rest)
        if not argv or argv[0] not in COMMANDS:
            argv.insert(0, "work")
        _parser().parse_args(argv)  # exits (and fails the test) on an unknown command or option


def test_every_containers_method_the_page_calls_exists() -> None:
    called = set(re.findall(r"\bcontainers\.(\w+)\(", PAGE.read_text()))
    assert {"paused", "kill", "restart", "wait_until"} <= called
    missing = sorted(name for name in called if not callable(getattr(Containers, name, None)))
    assert not missing, f"the page calls Containers.{missing}, which do not exist"


def test_the_page_test_passes_against_services_on_a_socket(pytester: pytest.Pytester) -> None:
    [body] = [body for info, body in _blocks() if "file=test_against_containers.py" in info]
    pytester.makepyfile(test_against_containers=body)
    with serve_in_thread(FakeServices()) as url:
        result = pytester.runpytest_subprocess("--harness-services-url", url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
