"""Container faults by compose service name: the logic on a fake docker client, one run on a real engine.

The fake client answers `containers.list(all=, filters={"label": [...]})` as the engine does (every
label must match; without `all` only running containers), so the tests show which containers each fault
reaches. The real-engine test skips with the reason where the SDK or an engine is missing.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.containers import DEFAULT_PROJECT, PROJECT_LABEL, SERVICE_LABEL, Containers, ContainersUnavailable
from harness.errors import ConfigurationError, EngineUnavailable

ROOT = Path(__file__).resolve().parents[2]


class FakeContainer:
    def __init__(self, log: list[tuple[str, ...]], name: str, project: str, service: str,
                 status: str = "running", healthy_after: int | None = None) -> None:
        self.log = log
        self.name = name
        self.labels = {PROJECT_LABEL: project, SERVICE_LABEL: service}
        self.status = status
        self.reloads = 0
        self.healthy_after = healthy_after

    @property
    def attrs(self) -> dict[str, Any]:
        if self.healthy_after is None:
            return {"State": {"Status": self.status}}
        health = "healthy" if self.reloads >= self.healthy_after else "starting"
        return {"State": {"Status": self.status, "Health": {"Status": health}}}

    def _act(self, action: str, *details: str, becomes: str) -> None:
        self.log.append((action, self.name, *details))
        self.status = becomes

    def stop(self, timeout: int = 10) -> None:
        self._act("stop", f"timeout={timeout}", becomes="exited")

    def kill(self, signal: str | int = "SIGKILL") -> None:
        self._act("kill", str(signal), becomes="exited")

    def start(self) -> None:
        self._act("start", becomes="running")

    def restart(self, timeout: int = 10) -> None:
        self._act("restart", f"timeout={timeout}", becomes="running")

    def pause(self) -> None:
        if self.status != "running":
            raise RuntimeError(f"{self.name} is not running")
        self._act("pause", becomes="paused")

    def unpause(self) -> None:
        self._act("unpause", becomes="running")

    def reload(self) -> None:
        self.reloads += 1


class FakeCollection:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self._containers = containers

    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[FakeContainer]:
        wanted = dict(label.split("=", 1) for label in (filters or {}).get("label", []))
        return [
            c for c in self._containers
            if (all or c.status == "running") and all_match(c.labels, wanted)
        ]


def all_match(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


class FakeClient:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = FakeCollection(containers)


@pytest.fixture
def log() -> list[tuple[str, ...]]:
    return []


@pytest.fixture
def client(log: list[tuple[str, ...]]) -> FakeClient:
    return FakeClient([
        FakeContainer(log, "retry-harness-redis-1", "retry-harness", "redis"),
        FakeContainer(log, "retry-harness-shop-worker-1", "retry-harness", "shop-worker"),
        FakeContainer(log, "retry-harness-shop-worker-2", "retry-harness", "shop-worker", status="exited"),
        FakeContainer(log, "other-redis-1", "other", "redis"),
    ])


def test_a_fault_reaches_only_the_service_of_its_project(client: FakeClient, log: list[tuple[str, ...]]) -> None:
    Containers("retry-harness", client=client).kill("redis")
    assert log == [("kill", "retry-harness-redis-1", "SIGKILL")]


def test_every_container_of_a_scaled_service_running_or_not(client: FakeClient, log: list[tuple[str, ...]]) -> None:
    containers = Containers("retry-harness", client=client)
    containers.stop("shop-worker", timeout=3)
    containers.kill("shop-worker", signal="SIGTERM")
    containers.restart("shop-worker", timeout=1)
    assert log == [
        ("stop", "retry-harness-shop-worker-1", "timeout=3"),
        ("stop", "retry-harness-shop-worker-2", "timeout=3"),
        ("kill", "retry-harness-shop-worker-1", "SIGTERM"),
        ("kill", "retry-harness-shop-worker-2", "SIGTERM"),
        ("restart", "retry-harness-shop-worker-1", "timeout=1"),
        ("restart", "retry-harness-shop-worker-2", "timeout=1"),
    ]
    assert containers.status("shop-worker") == {
        "retry-harness-shop-worker-1": "running",
        "retry-harness-shop-worker-2": "running",
    }


def test_paused_unpauses_even_when_the_block_fails(client: FakeClient, log: list[tuple[str, ...]]) -> None:
    containers = Containers("retry-harness", client=client)
    with pytest.raises(ZeroDivisionError), containers.paused("redis"):
        assert containers.status("redis") == {"retry-harness-redis-1": "paused"}
        _ = 1 / 0
    assert [entry[0] for entry in log] == ["pause", "unpause"]
    assert containers.status("redis") == {"retry-harness-redis-1": "running"}


def test_stopped_starts_again_after_the_block(client: FakeClient, log: list[tuple[str, ...]]) -> None:
    with Containers("retry-harness", client=client).stopped("redis", timeout=0):
        assert log == [("stop", "retry-harness-redis-1", "timeout=0")]
    assert log[-1] == ("start", "retry-harness-redis-1")


def test_an_unknown_service_names_the_ones_there_are(client: FakeClient) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Containers("retry-harness", client=client).pause("fake-services")
    message = str(caught.value)
    assert "'fake-services'" in message and "redis, shop-worker" in message and "docker compose up" in message


def test_the_default_project_is_the_one_compose_yaml_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    compose_name = yaml.safe_load((ROOT / "compose.yaml").read_text())["name"]
    assert Containers(client=object()).project == DEFAULT_PROJECT == compose_name
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "shop-ci")
    assert Containers(client=object()).project == "shop-ci"


def test_wait_until_healthy_polls_the_healthcheck(log: list[tuple[str, ...]]) -> None:
    container = FakeContainer(log, "retry-harness-fake-services-1", "retry-harness", "fake-services", healthy_after=3)
    containers = Containers(client=FakeClient([container]))
    containers.wait_until("fake-services", "healthy", timeout=10)
    assert container.reloads >= 3
    container.healthy_after = 10**6
    with pytest.raises(TimeoutError, match="not healthy"):
        containers.wait_until("fake-services", "healthy", timeout=0.3)


def test_without_the_sdk_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` now fails as if it were not installed
    with pytest.raises(ContainersUnavailable, match=r"pip install 'retry-harness\[docker\]'") as caught:
        Containers().pause("redis")
    assert isinstance(caught.value, EngineUnavailable)


def test_without_an_engine_the_error_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("docker", reason="the docker SDK is not installed (pip install 'retry-harness[docker]')")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # loopback, a port nothing listens on
    with pytest.raises(ContainersUnavailable, match=r"no Docker engine answers at tcp://127\.0\.0\.1:1"):
        Containers().kill("shop-worker")


# -- a real engine --------------------------------------------------------------------------------------
def _real_client() -> Any:
    try:
        from harness.containers import connect

        return connect()
    except ContainersUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def real_redis_container() -> Iterator[tuple[Any, str]]:
    """A Redis container labelled as service `redis` of a project of its own; removed afterwards."""
    client = _real_client()
    import docker

    image = "redis:7-alpine"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(image)
        except docker.errors.DockerException as exc:
            pytest.skip(f"cannot pull {image}: {exc}")
    project = f"harness-test-{uuid.uuid4().hex[:8]}"
    container = client.containers.run(
        image, detach=True, labels={PROJECT_LABEL: project, SERVICE_LABEL: "redis"}, name=f"{project}-redis-1"
    )
    try:
        yield client, project
    finally:
        container.remove(force=True)
        client.close()


@pytest.mark.slow
def test_faults_on_a_real_engine(real_redis_container: tuple[Any, str]) -> None:
    client, project = real_redis_container
    containers = Containers(project, client=client)
    containers.wait_until("redis", "running", timeout=30)
    with containers.paused("redis"):
        assert set(containers.status("redis").values()) == {"paused"}
    assert set(containers.status("redis").values()) == {"running"}
    containers.kill("redis")
    assert set(containers.status("redis").values()) == {"exited"}
    containers.start("redis")
    containers.restart("redis", timeout=1)
    containers.wait_until("redis", "running", timeout=30)
