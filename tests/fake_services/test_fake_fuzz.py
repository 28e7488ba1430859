"""No request makes the services answer 5xx unless a behaviour asked for it (Hypothesis fuzzing)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_services import FakeServices
from fake_services.messages import Call

SERVICES = FakeServices(seed=0)

ROUTES = sorted({(method, f"/{service.name}/{rest}")
                 for service in SERVICES.services.values() for method, rest in service.routes}
                | {("GET", "/"), ("GET", "/behaviors"), ("PUT", "/behaviors/payments"),
                   ("POST", "/behaviors/email/faults"), ("POST", "/behaviors/chat/ui"), ("GET", "/journal"),
                   ("GET", "/openapi.json"), ("DELETE", "/behaviors/fulfillment/faults")})

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
bodies = (objects.map(lambda o: json.dumps(o).encode())
          | json_values.map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=40))
headers = st.fixed_dictionaries({}, optional={
    "accept": st.sampled_from(["*/*", "text/plain", "application/json;q=0.5", "", "image/*"]),
    "idempotency-key": st.text(max_size=10),
    "x-be-slow": st.sampled_from(["0", "-1", "nan", "abc", "0.0"]),
    "content-type": st.sampled_from(["application/json", "application/x-www-form-urlencoded"]),
})
queries = st.sampled_from(["", "email=a&template_id=b", "email=a", "since=1", "since=x", "%zz=%%"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
