"""The socket refuses what the control plane must not take: foreign Host names (DNS rebinding),
state changes sent from another site, and, with a token, control requests that lack it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from fake_api_helpers import CHARGE, csrf

from fake_services import FakeServices, ServicesHandle
from fake_services.guard import Access
from fake_services.server import ServeError, access_for, bind
from fake_services.testing import serve_in_thread

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeServices, str]]:
    services = FakeServices(seed=0)
    access = Access.build("127.0.0.1", allow_hosts=["fake-services"], allow_origins=["http://localhost:3000"])
    with serve_in_thread(services, access=access) as url:
        yield services, url


@pytest.fixture
def open_server(served: tuple[FakeServices, str]) -> Iterator[tuple[FakeServices, httpx.Client]]:
    services, url = served
    services.reset()
    with httpx.Client(base_url=url, timeout=5) as http:
        yield services, http


@pytest.fixture(scope="module")
def token_server() -> Iterator[tuple[FakeServices, str]]:
    services = FakeServices(seed=0)
    with serve_in_thread(services, access=Access.build("0.0.0.0", token=TOKEN)) as url:
        yield services, url


def _port(http: httpx.Client) -> int:
    return int(str(http.base_url).rstrip("/").rsplit(":", 1)[1])


@pytest.mark.parametrize("host", ["evil.example", "rebound.attacker.test:{port}", "localhost.evil.example",
                                  "127.0.0.1.nip.io:{port}"])
def test_a_foreign_host_is_refused_before_anything_happens(open_server, host: str) -> None:
    services, http = open_server
    headers = {"Host": host.format(port=_port(http))}
    for method, path, body in [("GET", "/behaviors", None), ("PUT", "/behaviors/payments", {"crash": True}),
                               ("POST", "/payments/charge", CHARGE), ("POST", "/reset", None)]:
        response = http.request(method, path, json=body, headers=headers)
        assert response.status_code == 400, (method, path)
        assert "--allow-host" in response.json()["detail"]
    assert not services.behaviours["payments"].crash and services.payments.records() == []


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "app.localhost:{port}",
                                  "[::1]:{port}", "10.1.2.3:{port}", "fake-services:{port}", "fake-services."])
def test_loopback_names_ip_literals_and_allowed_names_are_served(open_server, host: str) -> None:
    _, http = open_server
    response = http.get("/behaviors", headers={"Host": host.format(port=_port(http))})
    assert response.status_code == 200


def test_any_host_is_served_when_allowed_with_a_star() -> None:
    with serve_in_thread(FakeServices(), access=Access.build(allow_hosts=["*"])) as url:
        assert httpx.get(f"{url}/behaviors", headers={"Host": "anything.example"}).status_code == 200


def _cross_site(http: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    return http.request(method, path, **kwargs)


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}])
def test_cross_site_state_changes_are_refused(open_server, headers: dict) -> None:
    services, http = open_server
    http.post("/payments/charge", json=CHARGE)
    token = csrf(http, "/payments/ui")
    attempts = [
        # a form post turning crash on, even one that somehow carries the page's token
        ("POST", "/ui/payments/behaviour", {"data": {"crash": "on", "csrf": token}}),
        # text/plain and form bodies need no preflight: a fault rule, a reset, a charge
        ("POST", "/behaviors/payments/faults", {"content": b'{"fault": "503"}',
                                                "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/reset", {"content": b"", "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/ui/reset", {"data": {"service": "all", "csrf": token}}),
        ("POST", "/payments/charge", {"content": b'{"customer_id": 1}', "headers": {"Content-Type": "text/plain"}}),
        ("PUT", "/behaviors/payments", {"json": {"crash": True}}),
        ("DELETE", "/journal", {}),
    ]
    for method, path, kwargs in attempts:
        kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
        response = http.request(method, path, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert "another site" in response.json()["detail"]
    assert not services.behaviours["payments"].crash and services.faults("payments") == []
    assert len(services.payments.records()) == 1 and len(services.journal) >= 1


def test_same_origin_and_allowed_origins_may_change_state(open_server) -> None:
    services, http = open_server
    services.behaviours["payments"].sleep = 0
    own = f"http://127.0.0.1:{_port(http)}"
    for headers in [{"Origin": own, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                    {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site"}, {}]:
        assert http.put("/behaviors/payments", json={"sleep": 0}, headers=headers).status_code == 200, headers
    # Reading is never refused: the browser keeps another site from seeing the answer.
    assert http.get("/behaviors", headers={"Origin": "http://evil.example"}).status_code == 200


def test_the_control_plane_asks_for_its_token_and_the_services_stay_open(token_server) -> None:
    services, url = token_server
    with httpx.Client(base_url=url, timeout=5) as http:
        for method, path in [("GET", "/"), ("GET", "/behaviors"), ("PUT", "/behaviors/payments"),
                             ("POST", "/reset"), ("GET", "/journal"), ("GET", "/payments/ui"),
                             ("GET", "/journal/ui"), ("POST", "/behaviors/payments/faults")]:
            for auth in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]:
                response = http.request(method, path, json={"crash": True}, headers=auth)
                assert response.status_code == 401, (method, path, auth)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert "?token=" in response.json()["detail"]
        assert not services.behaviours["payments"].crash
        assert http.post("/payments/charge", json=CHARGE).status_code == 201
        assert http.get("/payments/charges").status_code == 200 and http.get("/payments/status").status_code == 200
        assert http.get("/openapi.json").status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert http.put("/behaviors/payments", json={"crash": True}, headers=bearer).status_code == 200
        assert services.behaviours["payments"].crash
        services.reset()


def test_a_browser_opens_the_pages_with_the_token_once(token_server) -> None:
    _, url = token_server
    with httpx.Client(base_url=url, timeout=5) as http:
        assert http.get("/payments/ui", params={"token": "wrong"}).status_code == 401
        first = http.get("/payments/ui", params={"token": TOKEN, "x": "1"})
        assert first.status_code == 303 and first.headers["location"] == "/payments/ui?x=1"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert http.get("/payments/ui").status_code == 200  # the client kept the cookie
        assert http.get("/journal/ui").status_code == 200


def test_a_remote_handle_sends_the_token(token_server, monkeypatch) -> None:
    _, url = token_server
    monkeypatch.delenv("HARNESS_SERVE_TOKEN", raising=False)
    with ServicesHandle.remote(url) as handle, pytest.raises(Exception, match="401"):
        handle.payments.behaviour()
    with ServicesHandle.remote(url, token=TOKEN) as handle:
        assert handle.payments.behaviour()["crash"] is False
    monkeypatch.setenv("HARNESS_SERVE_TOKEN", TOKEN)
    with ServicesHandle.remote(url) as handle:
        assert handle.payments.behave(sleep=0)["sleep"] == 0


def test_off_loopback_a_token_is_required_generated_when_not_given() -> None:
    access, generated = access_for("0.0.0.0", environ={})
    assert generated and access.token and len(access.token) >= 24
    assert access_for("0.0.0.0", environ={})[0].token != access.token
    assert access_for("0.0.0.0", "given", environ={}) == (Access.build("0.0.0.0", "given"), False)
    assert access_for("::", environ={"HARNESS_SERVE_TOKEN": "env"})[0].token == "env"
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert access_for(host, environ={}) == (Access.build(host), False)
    assert access_for("0.0.0.0", open_control=True, environ={"HARNESS_SERVE_TOKEN": "env"})[0].token is None
    with pytest.raises(ServeError, match="not both"):
        access_for("0.0.0.0", "given", open_control=True, environ={})


def _harness(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SERVE_TOKEN"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_serve_on_an_impossible_port_is_one_line_and_exit_2(port: str) -> None:
    done = _harness("serve", "--port", port)
    assert done.returncode == 2
    assert done.stderr.strip() == f"harness: --port must be from 0 to 65535, got {port}"


def test_serve_on_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _harness("serve", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"harness: cannot listen on 127.0.0.1:{port}: the port is in use (another server is running there?); "
        "stop it or pick another --port"]
    with pytest.raises(ServeError, match=r"cannot listen on 'no-such-host\.invalid'"):
        bind("no-such-host.invalid", 0)


def test_serve_off_loopback_prints_a_token_and_asks_for_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SERVE_TOKEN"}
    child = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--host", "0.0.0.0", "--port", str(port)],
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stderr is not None
        first = child.stderr.readline()
        token = re.search(r"need this token: (\S+)", first)
        assert token, first
        url = f"http://127.0.0.1:{port}"
        for _ in range(500):
            try:
                httpx.get(f"{url}/payments/status", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        assert httpx.put(f"{url}/behaviors/payments", json={"crash": True}).status_code == 401
        assert httpx.post(f"{url}/payments/charge", json=CHARGE).status_code == 201
        authorised = {"Authorization": f"Bearer {token.group(1)}"}
        assert httpx.put(f"{url}/behaviors/payments", json={"crash": True}, headers=authorised).status_code == 200
    finally:
        child.terminate()
        child.wait(10)
        if child.stderr is not None:
            child.stderr.close()
