"""No request makes the services answer 5xx unless a behaviour asked for it (Hypothesis fuzzing)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_services import FakeServices
from fake_services.messages import Call

SERVICES = FakeServices(seed=0)

ROUTES = sorted({(method, f"/{service.name}/{rest}")
                 for service in SERVICES.services.values() for method, rest in service.routes}
                | {("GET", "/"), ("GET", "/behaviors"), ("PUT", "/behaviors/payments"),
                   ("POST", "/behaviors/email/faults"), ("POST", "/ui/chat/behaviour"), ("GET", "/journal"),
                   ("GET", "/openapi.json"), ("DELETE", "/behaviors/fulfillment/faults"),
                   ("POST", "/ui/payments/faults"), ("POST", "/ui/reset"), ("POST", "/ui/journal"),
                   ("POST", "/behaviors/chat/ui"),
                   ("GET", "/journal/ui"), ("DELETE", "/behaviors/payments/faults/payments-1"),
                   ("POST", "/reset")})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
FIELDS = ["customer_id", "payment_method_id", "amount_cents", "metadata", "to", "template_id",
          "template_data", "address", "product_id", "quantity", "exception_class", "exception_message",
          "text", "channel", "crash", "throttle", "sleep", "fault", "phase", "next", "nth", "every",
          "probability", "operation", "retry_after", "idempotency_key", "order_id"]
objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
FORM_FIELDS = ["action", "id", "fault", "phase", "calls", "count", "operation", "retry_after", "timeout_s", "seed",
               "crash", "throttle", "sleep", "crash_status", "service"]
form_values = st.sampled_from(["", "on", "add", "remove", "clear", "nth", "next", "every", "probability", "all",
                               "503", "429", "after", "charge", "2", "0.5", "-1", "1e9", "payments", "payments-1",
                               "x\u0000y", "%ff"]) | st.text(max_size=6)
# Forms carry the pages' token (read from the pages, as a browser would) or none.
forms = st.tuples(st.dictionaries(st.sampled_from(FORM_FIELDS), form_values, max_size=6), st.booleans()).map(
    lambda pair: urlencode({**pair[0], **({"csrf": SERVICES.front.control.forms.csrf} if pair[1] else {})}).encode())
bodies = (objects.map(lambda o: json.dumps(o).encode())
          | json_values.map(lambda v: json.dumps(v).encode())
          | forms
          | st.binary(max_size=40))
headers = st.fixed_dictionaries({}, optional={
    "accept": st.sampled_from(["*/*", "text/plain", "application/json;q=0.5", "", "image/*"]),
    "idempotency-key": st.text(max_size=10),
    "x-be-slow": st.sampled_from(["0", "-1", "nan", "abc", "0.0"]),
    "content-type": st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]),
})
queries = st.sampled_from(["", "email=a&template_id=b", "email=a", "since=1", "since=x", "%zz=%%"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=bodies, headers=headers, query=queries)
def test_no_request_gets_a_5xx_without_a_behaviour(route: tuple[str, str], body: bytes,
                                                   headers: dict[str, str], query: str) -> None:
    SERVICES.reset()
    method, path = route
    reply = SERVICES.handle(Call.build(method, path, query, headers, body))
    assert reply.status < 500, (route, body, reply.body)
    assert reply.action is None
    if reply.status >= 400 and reply.content_type and "json" in reply.content_type:
        detail = json.loads(reply.body)
        assert detail, "a 4xx must say what is wrong"
