"""Fixtures for the fake services' tests: one API fixture parametrized over in-process and socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_api_helpers import Api

from fake_services import FakeServices, ServicesTransport
from fake_services.testing import serve_in_thread


@pytest.fixture(scope="session")
def socket_server() -> Iterator[tuple[FakeServices, str]]:
    services = FakeServices(seed=0)
    with serve_in_thread(services) as url:
        yield services, url


@pytest.fixture(params=["inprocess", "socket"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "inprocess":
        services = FakeServices(seed=0)
        with httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services") as http:
            yield Api("inprocess", services, http, "http://fake-services")
        return
    services, url = request.getfixturevalue("socket_server")
    services.reset()
    with httpx.Client(base_url=url, timeout=5.0) as http:
        yield Api("socket", services, http, url)
    services.reset()
