"""Container faults for a compose setup: stop, kill, pause, unpause or restart the container of a service.

The fake services fail one request at a time; a container fault takes a whole dependency away, as an
outage does: Redis paused while a job waits on it, the worker killed as the kernel's OOM killer would,
the fake services restarted with their memory gone. Services are named as in compose.yaml and found by
the labels compose puts on every container. Needs the `docker` SDK (`pip install
'retry-harness[docker]'`, imported only when a client is needed) and a reachable Docker engine.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.errors import ConfigurationError, EngineUnavailable

__all__ = ["DEFAULT_PROJECT", "Containers", "ContainersUnavailable", "connect"]

#: The project `name:` of the repository's compose.yaml.
DEFAULT_PROJECT = "retry-harness"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class ContainersUnavailable(EngineUnavailable):
    """Container faults cannot run here: the docker SDK is not installed or no Docker engine answers."""


def connect() -> Any:
    """A docker SDK client from the environment (`DOCKER_HOST`, ...) that has answered a ping."""
    try:
        import docker
    except ImportError:
        raise ContainersUnavailable(
            "container faults need the docker SDK: pip install 'retry-harness[docker]'"
        ) from None
    where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    reason = None
    # A refused connection leaves the SDK's socket to the garbage collector, which warns about it; the
    # error below is the news, so the warning is collected here, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        client = None
        try:
            client = docker.from_env()
            client.ping()
        except Exception as exc:  # the SDK's DockerException, or requests' connection errors
            reason = f"{type(exc).__name__}: {exc}"
            if client is not None:
                client.close()
        gc.collect()
    if reason is not None:
        raise ContainersUnavailable(f"no Docker engine answers at {where} ({reason}); start Docker or set DOCKER_HOST")
    return client


class Containers:
    """The containers of one compose project, by service name.

    `project`: the compose project (default `$COMPOSE_PROJECT_NAME`, else `retry-harness`, the name in
    compose.yaml). `client`: a docker SDK client, or anything shaped like one (tests pass a fake); by
    default one is made from the environment on first use. A service scaled to several containers is
    acted on as a whole: every one of its containers.
    """

    def __init__(self, project: str | None = None, *, client: Any = None) -> None:
        self.project = project or os.environ.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect()
        return self._client

    # -- finding containers -----------------------------------------------------------------------------
    def containers(self, service: str) -> list[Any]:
        """The containers of `service` (running or not), by name; ConfigurationError when there are none."""
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]
        found = self.client.containers.list(all=True, filters={"label": labels})
        if not found:
            known = ", ".join(self.services()) or "none"
            raise ConfigurationError(
                f"no container of service {service!r} in compose project {self.project!r} (its services: "
                f"{known}); start them with `docker compose up -d`, or pass project= if it has another name"
            )
        return sorted(found, key=lambda c: c.name)

    def services(self) -> list[str]:
        """The service names of the project's containers."""
        found = self.client.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={self.project}"]})
        return sorted({c.labels.get(SERVICE_LABEL, "") for c in found} - {""})

    def status(self, service: str) -> dict[str, str]:
        """Container name -> state (`running`, `paused`, `exited`, ...), fresh from the engine."""
        states = {}
        for container in self.containers(service):
            container.reload()
            states[container.name] = container.status
        return states

    # -- faults -----------------------------------------------------------------------------------------
    def stop(self, service: str, *, timeout: int = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds: a deploy or a scale-down."""
        for container in self.containers(service):
            container.stop(timeout=timeout)

    def kill(self, service: str, signal: str | int = "SIGKILL") -> None:
        """Send `signal` (SIGKILL by default: no shutdown code runs, as in an OOM kill or a lost host)."""
        for container in self.containers(service):
            container.kill(signal=signal)

    def start(self, service: str) -> None:
        """Start the stopped or killed containers again."""
        for container in self.containers(service):
            container.start()

    def restart(self, service: str, *, timeout: int = 10) -> None:
        """Stop (as `stop`), then start: the process and its memory are new."""
        for container in self.containers(service):
            container.restart(timeout=timeout)

    def pause(self, service: str) -> None:
        """Freeze every process of the service: connections stay open and nothing answers."""
        for container in self.containers(service):
            container.pause()

    def unpause(self, service: str) -> None:
        for container in self.containers(service):
            container.unpause()

    @contextmanager
    def paused(self, service: str) -> Iterator[None]:
        """Paused inside the block, unpaused after it, whatever happens inside."""
        self.pause(service)
        try:
            yield
        finally:
            self.unpause(service)

    @contextmanager
    def stopped(self, service: str, *, timeout: int = 10) -> Iterator[None]:
        """Stopped inside the block, started again after it."""
        self.stop(service, timeout=timeout)
        try:
            yield
        finally:
            self.start(service)

    def wait_until(self, service: str, state: str = "running", *, timeout: float = 60.0) -> None:
        """Wait until every container of the service is `running` (or `healthy`, by its healthcheck)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = {c.name: _state(c, state) for c in self._reloaded(service)}
            if all(found == state for found in seen.values()):
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{service} is not {state} after {timeout} s: {seen}")
            time.sleep(0.2)

    def _reloaded(self, service: str) -> list[Any]:
        containers = self.containers(service)
        for container in containers:
            container.reload()
        return containers


def _state(container: Any, wanted: str) -> str:
    if wanted != "healthy":
        return str(container.status)
    health = (container.attrs.get("State") or {}).get("Health") or {}
    return str(health.get("Status", "no healthcheck"))
