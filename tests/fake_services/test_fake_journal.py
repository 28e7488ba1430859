"""The journal, reset, deterministic ids, the OpenAPI document and the package's public names."""

from __future__ import annotations

import httpx
import pytest
from fake_api_helpers import CHARGE, EMAIL, FULFILL, NOTIFY, Api

from fake_services import FakeServices, FaultRule, ServicesTransport
from fake_services.openapi import openapi_document


def test_every_request_is_journalled_in_order_with_business_keys(api: Api) -> None:
    api.http.post("/payments/charge", json={**CHARGE, "metadata": {"order_id": 7, "idempotency_key": "c-7"}})
    api.http.post("/email/send", json=EMAIL)
    api.http.get("/email/emails", params={"email": EMAIL["to"], "template_id": EMAIL["template_id"]})
    api.http.put("/fulfillment/request", json=FULFILL)
    api.http.put("/error-catcher/notification", json=NOTIFY)
    api.http.post("/chat/webhook", json={"text": "hello", "channel": "#ops"})
    api.http.get("/fulfillment/status")
    api.http.delete("/chat/messages")
    journal = api.http.get("/journal").json()
    entries = journal["entries"]
    assert [e["seq"] for e in entries] == list(range(1, 9))
    assert [(e["service"], e["operation"]) for e in entries] == [
        ("payments", "charge"), ("email", "send"), ("email", "search"), ("fulfillment", "request"),
        ("error-catcher", "notify"), ("chat", "post"), ("fulfillment", "status"), ("chat", "clear")]
    assert entries[0]["keys"] == {"order_id": 7, "customer_id": 1, "amount_cents": 1500,
                                  "idempotency_key": "c-7"}
    assert entries[1]["keys"] == {"to": EMAIL["to"], "template_id": EMAIL["template_id"], "order_id": 7}
    assert entries[3]["keys"] == {"order_id": 7, "customer_id": 1, "product_id": 3, "quantity": 2}
    assert entries[4]["keys"] == {"exception_class": "ValueError"}
    assert entries[5]["keys"] == {"text": "hello"}
    assert [e["effect"] for e in entries] == [True, True, False, True, True, True, False, True]
    assert [e["status"] for e in entries] == [201, 202, 200, 202, 202, 200, 200, 200]
    assert all(e["fault"] is None and e["phase"] is None for e in entries)
    assert entries == [e.to_dict() for e in api.services.journal.entries()]


def test_keys_never_hold_generated_ids_or_times(api: Api) -> None:
    api.http.post("/payments/charge", json=CHARGE)
    api.http.put("/fulfillment/request", json=FULFILL)
    for entry in api.services.journal.entries():
        for value in entry.keys.values():
            assert not (isinstance(value, str) and value[:3] in ("ch_", "fr_", "em_"))
        assert "time" not in entry.keys


def test_the_idempotency_header_key_is_journalled_for_charges(api: Api) -> None:
    api.http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": '"charge-7"'})
    assert api.services.journal.entries()[0].keys["idempotency_key"] == "charge-7"


def test_faults_are_journalled_with_their_phase(api: Api) -> None:
    api.services.schedule("payments", FaultRule(fault="502", phase="after", nth=1))
    api.http.post("/payments/charge", json=CHARGE)
    api.http.post("/payments/charge", json=CHARGE, headers={"X-Throttle": "true"})
    faults = [(e.fault, e.phase, e.effect, e.status) for e in api.services.journal.entries()]
    assert faults == [("502", "after", True, 502), ("429", "before", False, 429)]
    assert [e.seq for e in api.services.effects()] == [1]


def test_journal_since_returns_only_later_entries(api: Api) -> None:
    for _ in range(3):
        api.http.post("/chat/webhook", json={"text": "x"})
    later = api.http.get("/journal", params={"since": 2}).json()["entries"]
    assert [e["seq"] for e in later] == [3]
    assert api.http.get("/journal", params={"since": "two"}).status_code == 422


def test_control_requests_are_not_journalled(api: Api) -> None:
    api.http.get("/behaviors")
    api.http.get("/journal")
    api.http.get("/")
    assert api.services.journal.entries() == []


def test_reset_forgets_everything(api: Api) -> None:
    api.http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": "k"})
    api.http.put("/behaviors/email", json={"crash": True, "sleep": 0.01})
    api.http.post("/behaviors/chat/faults", json={"fault": "503"})
    assert api.http.post("/reset").status_code == 200
    services = api.services
    assert all(s.records() == [] for s in services.services.values())
    assert services.behaviours["email"].crash is False and services.behaviours["email"].sleep == 0
    assert services.faults("chat") == [] and services.journal.entries() == []
    assert len(services.idempotency) == 0
    assert api.http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": "k"}).status_code == 201
    assert len(services.payments.records()) == 1


def _ids(services: FakeServices) -> list[str]:
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
        return [
            http.post("/payments/charge", json=CHARGE).json()["charge_id"],
            http.post("/email/send", json=EMAIL).json()["email_id"],
            http.put("/fulfillment/request", json=FULFILL).json()["request_id"],
            http.put("/error-catcher/notification", json=NOTIFY).json()["notification_id"],
            http.post("/payments/charge", json=CHARGE).json()["charge_id"],
        ]


def test_a_seed_makes_ids_deterministic_and_reset_repeats_them() -> None:
    seeded = FakeServices(seed=11)
    first = _ids(seeded)
    assert [i.split("_")[0] for i in first] == ["ch", "em", "fr", "err", "ch"]
    assert all(len(i.split("_")[1]) == 8 for i in first)
    assert first == _ids(FakeServices(seed=11))
    seeded.reset()
    assert _ids(seeded) == first
    assert _ids(FakeServices(seed=12)) != first
    assert _ids(FakeServices()) != _ids(FakeServices())


def test_the_seeds_random_crash_status_follows_the_seed() -> None:
    def crashes(seed: int) -> list[int]:
        services = FakeServices(seed=seed)
        services.behaviours["payments"].crash = True
        with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
            return [http.post("/payments/charge", json=CHARGE).status_code for _ in range(20)]

    assert crashes(1) == crashes(1) and set(crashes(1)) == {503, 504}


def test_openapi_document_covers_every_route(api: Api) -> None:
    document = api.http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for service in api.services.services.values():
        for method, rest in service.routes:
            assert method.lower() in paths[f"/{service.name}/{rest}"], (method, rest)
    controls = [("/behaviors", {"get"}), ("/behaviors/{service}", {"get", "put"}),
                ("/behaviors/{service}/ui", {"get"}), ("/journal", {"get", "delete"}), ("/journal/ui", {"get"}),
                ("/reset", {"post"}), ("/", {"get"})]
    for name in api.services.services:
        controls += [(f"/behaviors/{name}/faults", {"get", "post", "delete"}),
                     (f"/behaviors/{name}/faults/{{id}}", {"delete"})]
    for path, methods in controls:
        assert methods <= set(paths[path]), path


def test_openapi_document_is_well_formed() -> None:
    document = openapi_document(FakeServices())
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        validate(document)
    refs = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    schemas = document["components"]["schemas"]
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    for path, item in document["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in {"get", "put", "post", "delete"}
            assert operation["responses"], (path, method)
            assert all(code.isdigit() for code in operation["responses"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}


@pytest.mark.parametrize("name", ["payments", "email", "fulfillment", "error_catcher", "chat"])
def test_each_service_is_an_attribute_with_records_and_clear(name: str) -> None:
    services = FakeServices()
    service = getattr(services, name)
    assert service.records() == [] and service.clear() == 0
