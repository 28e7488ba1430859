"""Junk input gets a 4xx that says what is wrong, stores nothing, and never breaks a page afterwards."""

from __future__ import annotations

import json

import httpx
import pytest
from fake_api_helpers import CHARGE, EMAIL, FULFILL, NOTIFY, Api, csrf

from fake_services.bodies import MAX_BODY_BYTES, MAX_DEPTH

CHAT = {"text": "retries above 50", "channel": "#ops"}
#: Every write of every service: (method, path, a valid body, the string fields it stores).
WRITES = {
    "payments": ("POST", "/payments/charge", CHARGE, ["customer_id", "payment_method_id", "metadata.note"]),
    "email": ("POST", "/email/send", EMAIL, ["to", "template_id", "template_data.note"]),
    "fulfillment": ("PUT", "/fulfillment/request", FULFILL, ["customer_id", "address", "product_id",
                                                             "metadata.note"]),
    "error-catcher": ("PUT", "/error-catcher/notification", NOTIFY, ["exception_class", "exception_message"]),
    "chat": ("POST", "/chat/webhook", CHAT, ["text", "channel"]),
}
NESTABLE = {"payments": "metadata", "email": "template_data", "fulfillment": "address"}
PAGES = ["/", *(f"/{name}/ui" for name in WRITES), *(f"/behaviors/{name}/ui" for name in WRITES)]


def _with(body: dict, field: str, value: object) -> dict:
    out = json.loads(json.dumps(body))
    *path, last = field.split(".")
    target = out
    for name in path:
        target = target.setdefault(name, {})
    target[last] = value
    return out


def _send(api: Api, method: str, path: str, body: object, **headers: str) -> httpx.Response:
    # ensure_ascii (the default) writes a lone surrogate as the escape "\ud800", as a client would.
    return api.http.request(method, path, content=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json", **headers})


def _pages_render(api: Api) -> None:
    for page in PAGES:
        response = api.http.get(page)
        assert response.status_code == 200, (page, response.text[:300])
    journal = api.http.get("/journal")
    assert journal.status_code == 200 and json.loads(journal.text)


def _stored(api: Api) -> int:
    return sum(len(service.records()) for service in api.services.services.values())


def test_each_write_stores_its_valid_body(api: Api) -> None:
    for method, path, body, _ in WRITES.values():
        assert _send(api, method, path, body).status_code < 300, path
    assert _stored(api) == len(WRITES)


@pytest.mark.parametrize(("service", "field"), [(s, f) for s, w in WRITES.items() for f in w[3]])
def test_a_lone_surrogate_in_any_stored_string_is_refused(api: Api, service: str, field: str) -> None:
    method, path, body, _ = WRITES[service]
    response = _send(api, method, path, _with(body, field, "note \ud800 here"))
    assert response.status_code == 422
    assert "surrogate" in response.json()["detail"]
    assert _stored(api) == 0
    _pages_render(api)


def test_a_surrogate_pair_escape_is_text_and_is_kept(api: Api) -> None:
    response = _send(api, "POST", "/chat/webhook", {"text": "ok \ud83d\ude00"})
    assert response.status_code == 200
    assert api.services.chat.records()[0]["text"] == "ok \U0001f600"
    _pages_render(api)


@pytest.mark.parametrize("field", ["operation", "phase", "fault"])
def test_a_lone_surrogate_in_a_fault_rule_is_refused(api: Api, field: str) -> None:
    rule = _with({"fault": "503", "next": 1, "operation": "charge"}, field, "\udfff")
    response = _send(api, "POST", "/behaviors/payments/faults", rule)
    assert response.status_code == 422 and "surrogate" in response.json()["detail"]
    assert api.services.faults("payments") == []
    _pages_render(api)


def test_a_fault_rule_names_an_operation_of_its_service(api: Api) -> None:
    response = _send(api, "POST", "/behaviors/payments/faults", {"fault": "503", "operation": "send"})
    assert response.status_code == 422
    assert "charge" in response.json()["detail"] and "'send'" in response.json()["detail"]


def _nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = {"in": value}
    return value


@pytest.mark.parametrize("service", sorted(NESTABLE))
def test_json_nested_past_the_bound_is_refused_with_the_bound(api: Api, service: str) -> None:
    method, path, body, _ = WRITES[service]
    for depth in (MAX_DEPTH, 490):
        response = _send(api, method, path, _with(body, NESTABLE[service], _nested(depth)))
        assert response.status_code == 422, depth
        assert str(MAX_DEPTH) in response.json()["detail"]
    # Deeper than Python's own recursion limit: written by hand, as no JSON encoder here would.
    placeholder = json.dumps(_with(body, NESTABLE[service], "HOLE"))
    raw = placeholder.replace('"HOLE"', '{"in": ' * 5000 + "1" + "}" * 5000)
    response = api.http.request(method, path, content=raw.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and str(MAX_DEPTH) in response.json()["detail"]
    assert _stored(api) == 0
    # The body itself is one level: a field nested to just under the bound is taken.
    assert _send(api, method, path, _with(body, NESTABLE[service], _nested(MAX_DEPTH - 1))).status_code < 300
    _pages_render(api)


@pytest.mark.parametrize("status", [503.0, "503", True, 501, None])
def test_crash_status_must_be_an_integer_status(api: Api, status: object) -> None:
    response = _send(api, "PUT", "/behaviors/payments", {"crash": True, "crash_status": status})
    if status is None:
        assert response.status_code == 200
        return
    assert response.status_code == 422 and "crash_status" in response.json()["detail"]
    assert api.services.behaviours["payments"].crash is False  # nothing of the body applied


@pytest.mark.parametrize(("path", "field"), [("/behaviors/payments", "sleep"),
                                             ("/behaviors/payments", "retry_after"),
                                             ("/behaviors/payments/faults", "retry_after"),
                                             ("/behaviors/payments/faults", "timeout_s")])
@pytest.mark.parametrize("seconds", [1e308, 3601, -1])
def test_seconds_are_bounded_and_the_error_says_the_bound(api: Api, path: str, field: str,
                                                           seconds: float) -> None:
    body = {field: seconds} if "faults" not in path else {"fault": "429", field: seconds}
    response = _send(api, "PUT" if "faults" not in path else "POST", path, body)
    assert response.status_code == 422
    assert "3600" in response.json()["detail"] and field in response.json()["detail"]
    assert api.services.behaviours["payments"].sleep == 0 and api.services.faults("payments") == []


@pytest.mark.parametrize("value", ["1e308", "3601", "-1", "nan", "1_0", "abc", "5s", "inf"])
def test_x_be_slow_out_of_bounds_or_not_a_number_is_refused(api: Api, value: str) -> None:
    response = _send(api, "POST", "/payments/charge", CHARGE, **{"X-Be-Slow": value})
    assert response.status_code == 400
    assert "3600" in response.json()["detail"] and repr(value) in response.json()["detail"]
    assert _stored(api) == 0


def test_x_be_slow_within_the_bound_is_taken(api: Api) -> None:
    assert _send(api, "POST", "/payments/charge", CHARGE, **{"X-Be-Slow": "0.0"}).status_code == 201


def test_a_body_over_the_limit_gets_413_and_nothing_is_stored(api: Api) -> None:
    big = {**CHARGE, "metadata": {"blob": "x" * (MAX_BODY_BYTES + 10)}}
    response = _send(api, "POST", "/payments/charge", big)
    assert response.status_code == 413 and str(MAX_BODY_BYTES) in response.json()["detail"]
    huge = api.http.put("/behaviors/payments", content=b" " * (16 << 20),
                        headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert _stored(api) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x", "application/json; charset=latin-1"])
def test_a_json_route_refuses_other_media_types_with_415(api: Api, content_type: str) -> None:
    writes = [*WRITES.values(), ("PUT", "/behaviors/payments", {"crash": True}, []),
              ("POST", "/behaviors/payments/faults", {"fault": "503"}, [])]
    for method, path, body, _ in writes:
        response = api.http.request(method, path, content=json.dumps(body).encode(),
                                    headers={"Content-Type": content_type})
        assert response.status_code == 415, (path, response.text)
        assert "application/json" in response.json()["detail"]
    assert _stored(api) == 0 and not api.services.behaviours["payments"].crash
    assert api.services.faults("payments") == []


def test_json_without_a_content_type_is_read_as_json(api: Api) -> None:
    """What scripts and the seed's old clients send; the route's own type is assumed."""
    request = api.http.build_request("POST", "/payments/charge", content=json.dumps(CHARGE).encode())
    assert "content-type" not in request.headers
    assert api.http.send(request).status_code == 201
    assert _send(api, "POST", "/payments/charge", CHARGE, **{"Content-Type": "application/json; charset=utf-8"}
                 ).status_code == 201


def test_the_form_takes_plain_decimal_seconds_only(api: Api) -> None:
    token = csrf(api.http, "/payments/ui")
    for sleep in ["1_0", "1e3", "inf", "0x10", "3601"]:
        response = api.http.post("/ui/payments/behaviour", data={"sleep": sleep, "csrf": token})
        assert response.status_code == 422, sleep
    assert api.services.behaviours["payments"].sleep == 0
    response = api.http.post("/ui/payments/behaviour", data={"sleep": "1.5", "csrf": token})
    assert response.status_code == 303 and api.services.behaviours["payments"].sleep == 1.5


def test_the_socket_answers_413_before_reading_a_body_it_announces_too_large(socket_server) -> None:
    services, url = socket_server
    host, port = url.removeprefix("http://").split(":")
    import socket

    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST /payments/charge HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {16 << 20}\r\n\r\n".encode() + b"{")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert services.payments.records() == []


def test_a_chunked_body_past_the_limit_gets_413(socket_server) -> None:
    services, url = socket_server

    def chunks():
        for _ in range(40):
            yield b" " * (64 << 10)

    response = httpx.post(f"{url}/payments/charge", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and services.payments.records() == []
