"""Whatever a service accepts, every page keeps rendering and every JSON answer stays JSON (Hypothesis)."""

from __future__ import annotations

import json

import httpx
from fake_api_helpers import CHARGE, EMAIL, FULFILL, NOTIFY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_services import FakeServices, ServicesTransport

SERVICES = FakeServices(seed=0)
HTTP = httpx.Client(transport=ServicesTransport(SERVICES), base_url="http://fake-services")
WRITES = [("POST", "/payments/charge", CHARGE), ("POST", "/email/send", EMAIL),
          ("PUT", "/fulfillment/request", FULFILL), ("PUT", "/error-catcher/notification", NOTIFY),
          ("POST", "/chat/webhook", {"text": "hi"})]
FIELDS = sorted({name for _, _, body in WRITES for name in body} | {"channel", "note"})

# Any code point, lone surrogates included (what a JSON "\\uXXXX" escape can carry); Hypothesis rarely
# draws the surrogate block by itself, so strings holding one are drawn on purpose too.
surrogates = st.integers(0xD800, 0xDFFF).map(chr)
texts = (st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
         | st.tuples(st.text(max_size=3), surrogates, st.text(max_size=3)).map("".join))
scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
           | st.floats(allow_nan=False, allow_infinity=False) | texts)


def _nest(value: object, depth: int) -> object:
    for _ in range(depth):
        value = [value]
    return value


values = (st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(texts, inner, max_size=3), max_leaves=12)
          | st.builds(_nest, scalars, st.integers(20, 600)))
PAGES = ["/", "/journal", *(f"/{s}/ui" for s in SERVICES.services), *(f"/{s}/{c}" for s, c in [
    ("payments", "charges"), ("email", "emails"), ("fulfillment", "requests"),
    ("error-catcher", "notifications"), ("chat", "messages")])]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(write=st.sampled_from(WRITES), changes=st.dictionaries(st.sampled_from(FIELDS), values, max_size=3),
       rule_operation=st.none() | texts)
def test_pages_render_after_any_accepted_input(write: tuple, changes: dict, rule_operation: str | None) -> None:
    SERVICES.reset()
    method, path, body = write
    raw = json.dumps({**body, **changes}).encode()  # ensure_ascii: surrogates travel as \\u escapes
    reply = HTTP.request(method, path, content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code < 500, reply.text
    rule = json.dumps({"fault": "503", "operation": rule_operation, "nth": 3}).encode()
    assert HTTP.post("/behaviors/payments/faults", content=rule,
                     headers={"Content-Type": "application/json"}).status_code in (201, 422)
    for page in PAGES:
        response = HTTP.get(page)
        assert response.status_code == 200, (page, response.text[:300])
        text = response.content.decode("utf-8")
        if "json" in response.headers["content-type"]:
            # Strict JSON: no NaN or Infinity, and no escaped lone surrogate that no reader could use.
            loaded = json.loads(text, parse_constant=_not_json)
            json.dumps(loaded, ensure_ascii=False).encode("utf-8")


def _not_json(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")
