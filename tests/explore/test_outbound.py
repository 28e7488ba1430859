"""The jobs' own HTTP clients, unmodified: mapped hosts are answered by the fakes, declared routes by
their canned answers, loopback passes, and anything else is refused, never sent, and reported."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import subprocess
import sys
import threading

import httpx
import outbound_jobs
import pytest
import requests

from fake_services import FakeServices
from harness.errors import CleanRunError, ConfigurationError
from harness.explore import explore
from harness.outbound import Outbound

ENGINES = ["sim", "dramatiq", "rq", "celery"]


@pytest.fixture
def outbound() -> Outbound:
    return Outbound(FakeServices(seed=0))


@pytest.mark.parametrize("engine", ENGINES)
def test_module_level_clients_are_explored_unmodified_and_the_retry_bug_is_found(engine):
    report = explore(outbound_jobs.UNSAFE, engine=engine)
    assert not report.safe
    text = report.to_text()
    assert "payments.charge(amount_cents=1500, customer_id=1, order_id=7) happened 2 times" in text
    assert "partner.example.order_hook(order_id=7) happened 2 times" in text
    # The declared route's calls are call points like the fakes' own: a lost response there is a plan.
    assert "`partner.example.order_hook` did it, but the connection dropped" in text


@pytest.mark.parametrize("engine", ENGINES)
def test_the_fixed_twin_is_safe_with_its_idempotent_put_repeated(engine):
    report = explore(outbound_jobs.SAFE, engine=engine)
    assert report.safe, report.to_text()
    assert report.points["call"] >= 2


@pytest.mark.parametrize("engine", ENGINES)
def test_a_request_nobody_routed_fails_the_clean_run_and_is_never_sent(engine):
    with pytest.raises(CleanRunError, match=r"made a request that nothing routes: POST "
                                            r"https://api\.pay\.example/payments/charge.*never sent"):
        explore(outbound_jobs.UNROUTED, engine=engine)


def test_the_cli_exits_2_on_a_clean_run_that_made_an_unrouted_request():
    done = subprocess.run([sys.executable, "-m", "harness.cli", "explore", "outbound_jobs:UNROUTED"],
                          cwd=pathlib.Path(__file__).parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "refused it (never sent)" in done.stderr and "Traceback" not in done.stderr


def test_a_request_nobody_routed_made_only_under_a_fault_is_a_finding():
    report = explore(outbound_jobs.ALERTS)
    assert not report.safe
    assert "the job made a request nobody routed, refused before it left the machine: " \
           "POST https://pager.example/alert" in report.to_text()


def test_httpx_sync_and_async_and_requests_reach_the_mapped_fake(outbound):
    outbound.map("https://api.pay.example", "payments")
    body = {"customer_id": 1, "payment_method_id": 2, "amount_cents": 100}

    async def async_charge() -> int:
        async with httpx.AsyncClient() as client:
            return (await client.post("https://api.pay.example/charge", json=body)).status_code

    with outbound.active():
        assert httpx.post("https://api.pay.example/charge", json=body).status_code == 201
        assert asyncio.run(async_charge()) == 201
        answered = requests.post("https://api.pay.example/charge", json=body, timeout=5)
        assert answered.status_code == 201 and answered.json()["status"] == "success"
    assert [e.operation for e in outbound.services.effects()] == ["charge"] * 3
    assert outbound.refused == []


def test_faults_on_a_mapped_host_raise_what_each_library_raises(outbound):
    outbound.map("https://api.pay.example", "payments")
    from fake_services import FaultRule

    body = {"customer_id": 1, "payment_method_id": 2, "amount_cents": 100}
    with outbound.active():
        for fault, phase, expected in [("drop", "after", requests.ConnectionError),
                                       ("drop", "before", requests.ConnectionError),
                                       ("timeout", "before", requests.ReadTimeout)]:
            outbound.services.schedule("payments", FaultRule(fault=fault, phase=phase, operation="charge"))
            with pytest.raises(expected):
                requests.post("https://api.pay.example/charge", json=body, timeout=5)
            outbound.services.clear_faults()
        outbound.services.schedule("payments", FaultRule(fault="drop", phase="after", operation="charge"))
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post("https://api.pay.example/charge", json=body)
    # Lost after the fact: the fake did charge, twice (requests' and httpx's).
    assert len(outbound.services.effects()) == 2


def test_declared_routes_answer_and_journal_effects_for_unsafe_methods_only(outbound):
    outbound.route("POST", "https://partner.example/hooks/*", status=202, json={"ok": True}, name="hook")
    outbound.route("GET", "https://partner.example/status", text="fine")
    with outbound.active():
        answered = requests.post("https://partner.example/hooks/orders?source=shop", json={"order": {"id": 3}})
        assert answered.status_code == 202 and answered.json() == {"ok": True}
        assert httpx.get("https://partner.example/status").text == "fine"
    entries = outbound.services.journal.entries()
    assert [(e.service, e.operation, e.effect) for e in entries] == [
        ("partner.example", "hook", True), ("partner.example", "status", False)]
    assert entries[0].keys == {"source": "shop", "order.id": 3}
    assert outbound.services.services["partner.example"].records()[0]["url"] == \
        "https://partner.example/hooks/orders"


def test_a_route_may_name_its_service_and_the_keys_it_journals(outbound):
    outbound.route("POST", "https://api.warehouse.example/v2/orders", service="warehouse", name="order",
                   status=201, keys=("order_id",))
    with outbound.active():
        assert requests.post("https://api.warehouse.example/v2/orders",
                             json={"order_id": 4, "email": "pat@example.com"}).status_code == 201
    [entry] = outbound.services.journal.entries()
    assert (entry.service, entry.operation, entry.keys, entry.effect) == ("warehouse", "order", {"order_id": 4},
                                                                          True)
    with pytest.raises(ConfigurationError, match="service= names"):
        outbound.route("POST", "https://x.example/", service="a/b")


def test_unrouted_requests_and_connections_are_refused_with_the_fix_and_recorded(outbound):
    with outbound.active():
        with pytest.raises(httpx.ConnectError, match=r"refused POST https://api\.stripe\.com/v1/charges "
                                                     r"\(never sent\).*world\.outbound\.map"):
            httpx.post("https://api.stripe.com/v1/charges?x=1", data={"amount": 5})
        with pytest.raises(requests.ConnectionError, match=r"world\.outbound\.route"):
            requests.get("http://metrics.example:8080/push")
        with pytest.raises(ConnectionRefusedError, match=r"refused 203\.0\.113\.9:25"):
            socket.create_connection(("203.0.113.9", 25), timeout=1)
    assert [str(r) for r in outbound.refused] == [
        "POST https://api.stripe.com/v1/charges", "GET http://metrics.example:8080/push", "203.0.113.9:25"]
    assert [r.client for r in outbound.refused] == ["http", "http", "socket"]


def test_loopback_and_allowed_origins_pass_through(outbound):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted = threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True)
    accepted.start()
    with outbound.active():
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        outbound.allow("http://10.1.2.3:6379")
        assert outbound.allows_connection("10.1.2.3", 6379)
        assert not outbound.allows_connection("10.1.2.3", 6380)
        outbound.allow("redis://redis:6379")
        outbound.allow("postgresql://db.internal")
        assert outbound.allows_connection("redis", 6379) and outbound.allows_connection("db.internal", 5432)
        with pytest.raises(ConfigurationError, match="scheme and a host"):
            outbound.allow("redis")
    accepted.join(2)
    listener.close()
    assert outbound.refused == []


def test_the_patches_are_gone_when_the_last_outbound_ends(outbound):
    before = (httpx.HTTPTransport.handle_request, requests.adapters.HTTPAdapter.send, socket.socket.connect)
    other = Outbound(FakeServices(seed=0))
    with outbound.active():
        with other.active():
            pass
        # The outer one still answers after the inner one ended.
        with pytest.raises(httpx.ConnectError):
            httpx.get("https://unrouted.example/")
    assert (httpx.HTTPTransport.handle_request, requests.adapters.HTTPAdapter.send,
            socket.socket.connect) == before
    assert "connect" not in socket.socket.__dict__
    assert len(outbound.refused) == 1 and other.refused == []


def test_the_longest_mapped_prefix_wins_and_declarations_are_checked(outbound):
    outbound.map("https://api.example.com", "payments")
    outbound.map("https://api.example.com/mail", "email")
    assert outbound.decide("GET", "https://api.example.com/mail/emails?email=a").path == "/email/emails"
    assert outbound.decide("GET", "https://api.example.com/charges").path == "/payments/charges"
    assert outbound.decide("GET", "https://api.example.com:443/mailbox").path == "/payments/mailbox"
    with pytest.raises(ConfigurationError, match="no fake service 'strip'"):
        outbound.map("https://api.stripe.com", "strip")
    with pytest.raises(ConfigurationError, match="http"):
        outbound.map("api.stripe.com")
    with pytest.raises(ConfigurationError, match="status"):
        outbound.route("POST", "https://x.example/", status=1000)
    with pytest.raises(ConfigurationError, match="map it instead"):
        outbound.route("POST", "https://payments/charge")
    for bad in ("smtp://mail.example:25", "mail.example:smtp", ":25"):
        with pytest.raises(ConfigurationError, match="map_smtp takes 'host:port'"):
            outbound.map_smtp(bad)


def test_services_ignored_by_the_clean_run_comparison_are_ignored_on_both_sides():
    """A declared route's calls left out of `effects_match_clean_run(ignore=...)` are neither counted
    now nor expected from the clean run (a receipt that may go twice is not a lost effect either)."""
    from dataclasses import replace

    from harness import effects_match_clean_run

    twice_is_fine = replace(outbound_jobs.UNSAFE, name="outbound.partner_may_hear_twice",
                            invariants=[effects_match_clean_run(ignore=("partner.example",))])
    text = explore(twice_is_fine).to_text()
    assert "payments.charge(amount_cents=1500, customer_id=1, order_id=7) happened 2 times" in text
    assert "partner.example" not in text
