"""HTML pages for people: an index of the services, one page per service (records, toggles, fault rules),
the journal, and a page for a form that could not be taken. Jinja2 templates ship in
`fake_services/templates/`; the handlers behind the forms are in `fake_services.forms`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jinja2

from fake_services.behaviours import CRASH_STATUSES, FAULTS, PHASES

if TYPE_CHECKING:
    from fake_services.behaviours import Behaviour
    from fake_services.hub import Hub
    from fake_services.service import Service

__all__ = ["Pages", "selector"]


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def selector(rule: dict[str, Any]) -> str:
    """Which calls a rule picks, as a person reads it: `nth=2`, `every=3`, `next=1`, `probability=0.5`."""
    for name in ("next", "nth", "every", "probability"):
        if rule.get(name) is not None:
            return f"{name}={rule[name]}"
    return "every call"


class Pages:
    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("fake_services", "templates"),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["cell"] = _cell
        self.env.filters["selector"] = selector

    def index(self, services: Hub, csrf: str) -> str:
        rows = [
            {"name": name, "title": service.title, "count": len(service._records),
             "behaviour": services.behaviours[name], "faults": len(services.faults(name))}
            for name, service in services.services.items()
        ]
        return self.env.get_template("index.html").render(services=rows, csrf=csrf, journal=len(services.journal))

    def service(self, service: Service, rows: list[dict[str, Any]], behaviour: Behaviour,
                faults: list[dict[str, Any]], operations: list[str], csrf: str) -> str:
        return self.env.get_template("service.html").render(
            service=service, columns=service.columns, rows=rows, behaviour=behaviour, faults=faults,
            operations=operations, kinds=FAULTS, phases=PHASES, statuses=CRASH_STATUSES, csrf=csrf)

    def journal(self, entries: list[dict[str, Any]], csrf: str) -> str:
        return self.env.get_template("journal.html").render(entries=entries, csrf=csrf)

    def error(self, title: str, message: str, back: str) -> str:
        return self.env.get_template("error.html").render(title=title, message=message, back=back)
