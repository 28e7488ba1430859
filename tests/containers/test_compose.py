"""compose.yaml, the Dockerfile and .dockerignore, checked where no Docker engine runs.

Each check ties a string in those files to something real in the repository: the worker's command to a
module whose CLI answers, the image's command to options `harness serve` accepts, the healthcheck to a
route of the fake services, every URL to a service the file defines. `docker compose config` runs too
where the CLI and an engine are there.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from fake_services import FakeServices, ServicesTransport

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, rest), continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _one(keyword: str) -> str:
    found = [rest for key, rest in _instructions() if key == keyword]
    assert len(found) == 1, f"expected one {keyword} in the Dockerfile, found {len(found)}"
    return found[0]


def _exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not an exec-form array: {text}"
    return value


def _image_command() -> list[str]:
    return _exec_form(_one("CMD"))


def _served_port() -> int:
    argv = _image_command()
    return int(argv[argv.index("--port") + 1])


def _healthcheck_url() -> str:
    check = _one("HEALTHCHECK")
    _, sep, command = check.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {check}"
    argv = _exec_form(command.strip())
    urls = re.findall(r"https?://[^'\"\s)]+", " ".join(argv))
    assert len(urls) == 1, f"expected one URL in the healthcheck, found {urls}"
    return urls[0]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> list[int]:
    ports = []
    for entry in service.get("ports") or []:
        target = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1].split("/")[0]
        ports.append(int(target))
    return ports


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_compose_defines_the_services_with_an_image_or_this_dockerfile():
    services = _services()
    assert {"fake-services", "redis", "shop-worker"} <= set(services)
    assert services["redis"]["image"].split(":")[0] == "redis"
    for name in ("fake-services", "shop-worker"):
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).resolve() == ROOT / "Dockerfile", name
    # One image for both, so it is built once and the worker runs the same code as the services.
    assert services["fake-services"]["image"] == services["shop-worker"]["image"]


def test_the_worker_command_runs_a_module_whose_cli_answers_help():
    command = _services()["shop-worker"]["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    assert argv[:2] == ["python", "-m"], argv
    module, rest = argv[2], argv[3:]
    assert importlib.util.find_spec(module) is not None, f"no module {module}"
    top = _run("-m", module, "--help")
    assert top.returncode == 0, top.stderr
    assert "enqueue-order" in top.stdout
    own = _run("-m", module, *rest, "--help")
    assert own.returncode == 0, own.stderr
    assert "--redis-url" in own.stdout and "--services-url" in own.stdout


def test_environment_urls_point_at_services_of_the_file():
    services = _services()
    env = _environment(services["shop-worker"])
    redis_url = urlsplit(env["REDIS_URL"])
    assert redis_url.scheme == "redis" and redis_url.hostname in services and redis_url.port == 6379
    assert services[redis_url.hostname]["image"].startswith("redis")
    services_url = urlsplit(env["HARNESS_SERVICES_URL"])
    assert services_url.hostname == "fake-services" and services_url.port == _served_port()
    # The SQLite file lives on a volume, so orders survive a restart of the worker's container.
    database = env["DATABASE_URL"]
    assert database.startswith("sqlite:////"), database
    mounts = [str(v).split(":")[1] for v in services["shop-worker"].get("volumes", [])]
    assert any(Path(database.removeprefix("sqlite:///")).is_relative_to(m) for m in mounts), (database, mounts)
    named = {str(v).split(":")[0] for v in services["shop-worker"]["volumes"]}
    assert named <= set(_compose().get("volumes") or {})


class _Asked(dict[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_variable_given_to_the_worker_is_one_it_reads():
    from scenarios.shop.worker import Settings

    # Compose fills `${NAME:-default}` from the shell; here the default stands in.
    given = _environment(_services()["shop-worker"])
    env = _Asked({k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in given.items()})
    settings = Settings.from_env(env)
    assert set(env) <= env.asked, f"the worker never reads {sorted(set(env) - env.asked)}"
    assert (settings.redis_url, settings.services_url) == (env["REDIS_URL"], env["HARNESS_SERVICES_URL"])
    assert settings.database_url == env["DATABASE_URL"]
    assert settings.retry_delay_scale == float(env["SHOP_RETRY_DELAY_SCALE"])


def test_the_published_port_is_the_one_the_image_serves_and_checks():
    port = _served_port()
    assert _container_ports(_services()["fake-services"]) == [port]
    assert _one("EXPOSE").split("/")[0] == str(port)
    assert urlsplit(_healthcheck_url()).port == port


def test_depends_on_targets_exist_and_can_become_healthy():
    services = _services()
    depends = services["shop-worker"]["depends_on"]
    assert set(depends) == {"fake-services", "redis"}
    for target, condition in depends.items():
        assert target in services
        if condition.get("condition") == "service_healthy":
            own = services[target].get("healthcheck")
            from_image = "build" in services[target] and any(k == "HEALTHCHECK" for k, _ in _instructions())
            assert (own and not own.get("disable")) or from_image, f"{target} has no healthcheck to wait for"


def test_the_image_command_is_harness_serve_with_options_it_accepts():
    argv = _image_command()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] == "harness" and scripts["harness"] == "harness.cli:run"
    top = _run("-m", "harness.cli", "--help")
    assert top.returncode == 0, top.stderr
    choices = re.search(r"\{([a-z,]+)\}", top.stdout)
    assert choices and argv[1] in choices.group(1).split(","), top.stdout
    help_text = _run("-m", "harness.cli", argv[1], "--help")
    assert help_text.returncode == 0, help_text.stderr
    for option in (a for a in argv[2:] if a.startswith("--")):
        assert option in help_text.stdout, f"harness {argv[1]} does not accept {option}"
    # The values parse too (argparse reads them before it reaches --help).
    parsed = _run("-m", "harness.cli", *argv[1:], "--help")
    assert parsed.returncode == 0, parsed.stderr
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # reachable from the other containers


def test_the_image_serves_the_compose_network_and_the_healthcheck_without_a_token():
    """Off loopback `harness serve` asks a token of the control API and refuses unknown Host names; the
    image opens both on purpose, for the healthcheck and the shop's worker on the compose network."""
    from fake_services.guard import Guard
    from fake_services.messages import Call
    from fake_services.server import access_for
    from harness.cli import _build_parser

    args = _build_parser().parse_args(_image_command()[1:])
    access, generated = access_for(args.host, args.token, open_control=args.no_token,
                                   allow_hosts=args.allow_host, environ={})
    assert not generated and access.token is None
    guard = Guard(FakeServices().front, access)
    port = _served_port()
    for host in (urlsplit(_healthcheck_url()).netloc, f"fake-services:{port}", f"localhost:{port}"):
        for method, path in (("GET", urlsplit(_healthcheck_url()).path), ("PUT", "/behaviors/email")):
            assert guard.check(Call.build(method, path, b"", {"host": host})) is None, (host, method, path)


def test_the_healthcheck_probes_a_route_of_the_fake_services_without_touching_the_journal():
    services = FakeServices()
    path = urlsplit(_healthcheck_url()).path
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services") as client:
        assert client.get(path).status_code == 200
        assert client.get(path + "-nothing-here").status_code == 404  # the app does not answer 200 to anything
    assert services.journal.entries() == []


def test_the_image_is_python_311_slim_and_runs_as_a_user():
    assert _one("FROM") == "python:3.11-slim"
    user = _one("USER")
    assert user not in ("root", "0") and not user.startswith("0:")


def test_dockerignore_keeps_what_the_dockerfile_copies():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [p for key, rest in _instructions() if key == "COPY" for p in rest.split()[:-1]]
    assert copied, "the Dockerfile copies nothing"
    for source in copied:
        name = source.rstrip("/")
        assert (ROOT / name).exists(), f"the Dockerfile copies {name}, which does not exist"
        ignored = [p for p in patterns if fnmatch.fnmatch(name, p.rstrip("/"))]
        assert not ignored, f".dockerignore drops {name} ({ignored}) but the Dockerfile copies it"


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def _compose_cli_reason() -> str | None:
    """None when `docker compose` exists and an engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if version.returncode != 0:
            return f"`docker compose` is not available: {_first_line(version.stderr or version.stdout)}"
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the docker CLI did not answer in 30 s"
    if info.returncode != 0:
        return f"no Docker engine is reachable: {_first_line(info.stderr or info.stdout)}"
    return None


def test_docker_compose_accepts_the_file():
    reason = _compose_cli_reason()
    if reason is not None:
        pytest.skip(reason)
    done = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
