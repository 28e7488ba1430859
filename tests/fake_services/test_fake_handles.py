"""Per-service handles drive the same control API in-process and over a socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fake_services import FakeServices, FaultRule, ServicesTransport
from fake_services.clients import EmailClient, PaymentsClient, TransientServiceError
from fake_services.handles import ControlError, ServicesHandle


@pytest.fixture(params=["local", "remote"])
def wired(request: pytest.FixtureRequest) -> Iterator[tuple[ServicesHandle, httpx.Client]]:
    """A handle and a job-side client on the same services, in-process or on the shared socket."""
    if request.param == "local":
        services = FakeServices(seed=0)
        http = httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services")
        with ServicesHandle.local(services) as handle:
            yield handle, http
        http.close()
        return
    services, url = request.getfixturevalue("socket_server")
    services.reset()
    with ServicesHandle.remote(url) as handle, httpx.Client(base_url=url) as http:
        yield handle, http


def _charge(http: httpx.Client, order_id: int = 1) -> None:
    PaymentsClient(str(http.base_url), http=http).charge(customer_id=1, payment_method_id=1, amount_cents=100,
                                     metadata={"order_id": order_id})


def test_behaviours_toggle_and_read_back(wired):
    handle, http = wired
    assert handle.payments.behave(crash=True)["crash"] is True
    assert handle.payments.behaviour()["crash"] is True
    with pytest.raises(TransientServiceError):
        _charge(http)
    handle.payments.behave(crash=False)
    _charge(http)
    assert len(handle.payments.effects("charge")) == 1


def test_a_rule_that_strikes_is_not_unfired_and_one_that_waits_is(wired):
    handle, http = wired
    struck = handle.email.schedule(FaultRule(fault="503", phase="after", next=1))
    waiting = handle.email.schedule({"fault": "429", "nth": 5})
    with pytest.raises(TransientServiceError):
        EmailClient(str(http.base_url), http=http).send(to="a@example.com", template_id="confirmation",
                                                        template_data={"order_id": 1})
    assert [r["id"] for r in handle.email.unfired()] == [waiting]
    assert list(handle.unfired()) == ["email"]
    rules = {r["id"]: r for r in handle.email.faults()}
    assert rules[struck]["fired"] == 1 and rules[waiting]["seen"] == 1
    # the email was sent before the 503: the journal shows the effect and the fault on the same request
    [sent] = handle.email.effects()
    assert sent.fault == "503" and sent.phase == "after"
    handle.email.clear_faults()
    assert handle.unfired() == {}


def test_reset_and_the_journal_of_every_service(wired):
    handle, http = wired
    _charge(http, 1)
    _charge(http, 2)
    assert [e.operation for e in handle.journal()] == ["charge", "charge"]
    assert handle.email.journal() == []
    handle.reset()
    assert handle.journal() == [] and handle.payments.effects() == []


def test_names_and_bad_input_are_explained(wired):
    handle, _http = wired
    assert handle.error_catcher is handle["error-catcher"]
    with pytest.raises(AttributeError, match="the services are payments"):
        _ = handle.billing
    with pytest.raises(ControlError, match="unknown field"):
        handle.payments.behave(explode=True)
    with pytest.raises(ControlError, match="fault must be one of"):
        handle.payments.schedule({"fault": "418"})
    assert handle.payments.behaviour()["crash"] is False  # nothing applied by the refused requests


def test_a_remote_url_must_be_http():
    with pytest.raises(ValueError, match="http://"):
        ServicesHandle.remote("localhost:8000")
