"""The web pages do what the control API does: toggles, fault rules, removing them, resets, the journal.
A form that cannot be taken answers a page that says why; a form without the pages' token is refused."""

from __future__ import annotations

import httpx
import pytest
from fake_api_helpers import CHARGE, EMAIL, Api, csrf


def _post(api: Api, path: str, **fields: str) -> httpx.Response:
    return api.http.post(path, data={"csrf": csrf(api.http, "/payments/ui"), **fields})


def test_the_behaviour_form_sets_retry_after_and_crash_status(api: Api) -> None:
    response = _post(api, "/ui/payments/behaviour", throttle="on", retry_after="30", crash="on",
                     crash_status="502", sleep="0")
    assert response.status_code == 303 and response.headers["location"] == "/payments/ui"
    assert api.http.get("/behaviors/payments").json() == {
        "crash": True, "throttle": True, "sleep": 0.0, "retry_after": 30.0, "crash_status": 502}
    throttled = api.http.post("/payments/charge", json=CHARGE)
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "30"
    _post(api, "/ui/payments/behaviour", crash="on", crash_status="502", retry_after="")
    assert api.http.post("/payments/charge", json=CHARGE).status_code == 502
    page = api.http.get("/payments/ui").text
    assert '<option value="502" selected>' in page


@pytest.mark.parametrize(("fields", "message"), [
    ({"crash_status": "501"}, "crash_status must be null or one of 500, 502, 503, 504"),
    ({"sleep": "soon"}, "sleep must be a number of seconds"),
    ({"retry_after": "1e9"}, "retry_after must be a number of seconds"),
    ({"sleep": "7200"}, "from 0 to 3600"),
])
def test_a_bad_behaviour_form_answers_a_page_that_says_why(api: Api, fields: dict, message: str) -> None:
    response = _post(api, "/ui/payments/behaviour", crash="on", **fields)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text and 'href="/payments/ui"' in response.text
    assert api.services.behaviours["payments"].crash is False  # nothing of the form applied


def test_a_fault_rule_is_scheduled_shown_with_its_selector_and_removed(api: Api) -> None:
    response = _post(api, "/ui/payments/faults", fault="503", phase="after", calls="nth", count="2",
                     operation="charge")
    assert response.status_code == 303
    [rule] = api.http.get("/behaviors/payments/faults").json()["faults"]
    assert (rule["fault"], rule["phase"], rule["nth"], rule["operation"]) == ("503", "after", 2, "charge")
    assert "nth=2" in api.http.get("/payments/ui").text
    assert [api.http.post("/payments/charge", json=CHARGE).status_code for _ in range(3)] == [201, 503, 201]
    assert len(api.services.payments.records()) == 3  # after the effect: the charge happened
    assert _post(api, "/ui/payments/faults", action="remove", id=rule["id"]).status_code == 303
    assert api.http.get("/behaviors/payments/faults").json()["faults"] == []
    gone = _post(api, "/ui/payments/faults", action="remove", id=rule["id"])
    assert gone.status_code == 422 and "no fault rule" in gone.text


@pytest.mark.parametrize(("fields", "expected"), [
    ({"fault": "429", "calls": "next", "count": "3", "retry_after": "7"}, {"next": 3, "retry_after": 7.0}),
    ({"fault": "timeout", "calls": "every", "count": "2", "timeout_s": "0.5"}, {"every": 2, "timeout_s": 0.5}),
    ({"fault": "drop", "calls": "probability", "count": "0.25", "seed": "9"}, {"probability": 0.25, "seed": 9}),
    ({"fault": "malformed", "calls": "all", "phase": "after"}, {"phase": "after", "next": None}),
])
def test_the_fault_form_takes_each_kind_and_selector(api: Api, fields: dict, expected: dict) -> None:
    assert _post(api, "/ui/payments/faults", **fields).status_code == 303
    [rule] = api.services.faults("payments")
    assert rule["fault"] == fields["fault"]
    assert {k: rule[k] for k in expected} == expected


@pytest.mark.parametrize(("fields", "message"), [
    ({"fault": "418"}, "fault must be one of"),
    ({"fault": "503", "calls": "nth", "count": "two"}, "nth needs a whole number"),
    ({"fault": "503", "calls": "probability", "count": "2"}, "probability must be a number from 0 to 1"),
    ({"fault": "503", "operation": "send"}, "operation must be one of"),
])
def test_a_bad_fault_form_answers_a_page_that_says_why(api: Api, fields: dict, message: str) -> None:
    response = _post(api, "/ui/payments/faults", **fields)
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert message in response.text
    assert api.services.faults("payments") == []


def test_every_rule_is_cleared_at_once(api: Api) -> None:
    for count in ("1", "2"):
        _post(api, "/ui/email/faults", fault="503", calls="nth", count=count)
    assert len(api.services.faults("email")) == 2
    assert _post(api, "/ui/email/faults", action="clear").status_code == 303
    assert api.services.faults("email") == []


def test_one_service_or_all_are_reset_from_the_pages(api: Api) -> None:
    api.http.post("/payments/charge", json=CHARGE)
    api.http.post("/email/send", json=EMAIL)
    _post(api, "/ui/payments/behaviour", crash="on")
    response = _post(api, "/ui/reset", service="payments")
    assert response.status_code == 303 and response.headers["location"] == "/payments/ui"
    assert api.services.payments.records() == [] and not api.services.behaviours["payments"].crash
    assert len(api.services.email.records()) == 1 and len(api.services.journal) > 0
    assert _post(api, "/ui/reset", service="all").status_code == 303
    assert api.services.email.records() == [] and len(api.services.journal) == 0


def test_the_journal_page_lists_requests_and_empties(api: Api) -> None:
    api.http.post("/payments/charge", json=CHARGE, headers={"X-Throttle": "true"})
    page = api.http.get("/journal/ui")
    assert page.status_code == 200 and "charge" in page.text and ">429<" in page.text
    assert _post(api, "/ui/journal").status_code == 303
    assert len(api.services.journal) == 0


@pytest.mark.parametrize("path", ["/ui/payments/behaviour", "/ui/payments/faults", "/ui/reset",
                                  "/ui/journal"])
@pytest.mark.parametrize("token", [None, "guessed"])
def test_a_form_without_the_pages_token_is_refused(api: Api, path: str, token: str | None) -> None:
    api.http.post("/payments/charge", json=CHARGE)
    fields = {"crash": "on", "fault": "503", "service": "all"}
    if token is not None:
        fields["csrf"] = token
    response = api.http.post(path, data=fields)
    assert response.status_code == 403 and "Reload the page" in response.text
    assert not api.services.behaviours["payments"].crash and api.services.faults("payments") == []
    assert len(api.services.payments.records()) == 1 and len(api.services.journal) > 0


def test_one_rule_is_removed_over_the_api_and_one_service_reset(api: Api) -> None:
    first = api.http.post("/behaviors/payments/faults", json={"fault": "503", "nth": 1}).json()["id"]
    api.http.post("/behaviors/payments/faults", json={"fault": "429", "nth": 2})
    remaining = api.http.delete(f"/behaviors/payments/faults/{first}")
    assert remaining.status_code == 200 and [r["fault"] for r in remaining.json()["faults"]] == ["429"]
    assert api.http.delete(f"/behaviors/payments/faults/{first}").status_code == 404
    api.http.post("/chat/webhook", json={"text": "kept"})
    assert api.http.post("/reset", params={"service": "payments"}).status_code == 200
    assert api.services.faults("payments") == [] and len(api.services.chat.records()) == 1
    assert api.http.post("/reset", params={"service": "sms"}).status_code == 404
