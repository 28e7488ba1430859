"""A low-priority job on the `default` queue that talks to a service which can be slow (lesson 11).

When email slows down, newsletters pile up on `default`; order completion runs from `high`, which the
engine drains first, so customers' orders do not wait behind the backlog.
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app, db

__all__ = ["NEWSLETTER_TEMPLATE", "send_newsletter"]

NEWSLETTER_TEMPLATE = "newsletter"


@job(queue="default")
def send_newsletter(user_id: int, issue: str) -> None:
    with db.database().connect() as conn:
        user = conn.execute(db.users.select().where(db.users.c.id == user_id)).mappings().one()
    already = app.email().search(email=user["email"], template_id=NEWSLETTER_TEMPLATE)
    if any((sent.get("template_data") or {}).get("issue") == issue for sent in already):
        return
    app.email().send(to=user["email"], template_id=NEWSLETTER_TEMPLATE, template_data={"issue": issue})
