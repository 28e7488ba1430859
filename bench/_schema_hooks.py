"""schemathesis hooks for `bench_schema`: every generated request meets freshly reset services.

One request per case, each on a clean world: a behaviour or fault rule one case arms (that is what the
control API is for) must not fail the next case's request, which would say nothing about the schema.
A rule is armed before each removal of one, so removing finds it. Forms get the pages' token, as a
browser showing the page would send it (the document leaves the forms out; the refusal of forms without
the token is tested in tests/fake_services/test_fake_ui.py).
"""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
import schemathesis

_HTTP = httpx.Client(timeout=10)
_TOKEN: list[str] = []


def _token(base: str) -> str:
    if not _TOKEN:
        found = re.search(r'name="csrf" value="([^"]+)"', _HTTP.get(f"{base}/").text)
        _TOKEN.append(found.group(1) if found else "")
    return _TOKEN[0]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    base = os.environ["FAKE_SERVICES_URL"]
    _HTTP.post(f"{base}/reset").raise_for_status()
    path = case.operation.path
    if path.endswith("/faults/{id}"):
        # A rule for the document's example id (`payments-1`) to remove: a rule nobody will trigger.
        service = path.split("/")[2]
        _HTTP.post(f"{base}/behaviors/{service}/faults", json={"fault": "503", "nth": 10**9}).raise_for_status()
    if path.startswith("/stripe/"):
        # A Stripe client always sends its key; without one every call is the documented 401.
        case.headers = {**(case.headers or {}), "Authorization": "Bearer sk_test_schema"}
    elif case.media_type == "application/x-www-form-urlencoded" and isinstance(case.body, dict):
        case.body["csrf"] = _token(base)
