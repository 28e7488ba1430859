"""Adding a service is one registration: its routes answer, with behaviours, faults, the journal, the
pages and the OpenAPI document; each route says which body types it takes (a form-encoded API here)."""

from __future__ import annotations

from typing import Any

import httpx

from fake_services import FakeServices, ServicesTransport
from fake_services.bodies import FORM
from fake_services.messages import Call, json_reply
from fake_services.service import Outcome, Route, Service


class Sms(Service):
    name = "sms"
    title = "SMS"
    id_prefix = "sms"
    collection = "messages"
    columns = ("to", "text")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self.routes[("POST", "v1/messages")] = Route("send", self._send, 201, accepts=(FORM,))

    def _send(self, call: Call, body: Any) -> Outcome:
        self._records.append({"to": body.get("to"), "text": body.get("text")})
        return Outcome(json_reply(201, {"id": self.new_id()}), True)


def test_one_registration_gives_a_service_everything() -> None:
    services = FakeServices(seed=0)
    services.add(Sms(0, services.clock))
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
        sent = http.post("/sms/v1/messages", data={"to": "+15550100", "text": "hi"})
        assert sent.status_code == 201 and services.sms.records() == [{"to": "+15550100", "text": "hi"}]
        # The route takes forms, so a JSON body is the wrong type (and a bare body is read as a form).
        assert http.post("/sms/v1/messages", json={"to": "x"}).status_code == 415
        assert http.post("/sms/v1/messages", content=b"to=%2B1&text=yo").status_code == 201
        assert [e.operation for e in services.journal.entries()] == ["send", "send", "send"]

        assert http.put("/behaviors/sms", json={"crash": True, "crash_status": 500}).status_code == 200
        assert http.post("/sms/v1/messages", data={"to": "y"}).status_code == 500
        http.put("/behaviors/sms", json={"crash": False})
        assert http.post("/behaviors/sms/faults", json={"fault": "429", "operation": "send", "next": 1}
                         ).status_code == 201
        assert http.post("/sms/v1/messages", data={"to": "z"}).status_code == 429

        assert 'href="/sms/ui"' in http.get("/").text and "+15550100" in http.get("/sms/ui").text
        documented = http.get("/openapi.json").json()["paths"]["/sms/v1/messages"]["post"]
        assert list(documented["requestBody"]["content"]) == [FORM]
        http.post("/reset")
        assert services.sms.records() == [] and not services.faults("sms")
