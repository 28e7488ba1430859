"""HTML pages for people: an index of the services and one page per service with its records,
its behaviour form and its scheduled faults. Jinja2 templates ship in `fake_services/templates/`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from fake_services.behaviours import Behaviour
    from fake_services.service import Service
    from fake_services.state import FakeServices

__all__ = ["Pages"]


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


class Pages:
    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("fake_services", "templates"),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["cell"] = _cell

    def index(self, services: FakeServices) -> str:
        rows = [
            {"name": name, "title": service.title, "count": len(service._records),
             "behaviour": services.behaviours[name], "faults": len(services.faults(name))}
            for name, service in services.services.items()
        ]
        return self.env.get_template("index.html").render(services=rows)

    def service(self, service: Service, rows: list[dict[str, Any]], behaviour: Behaviour,
                faults: list[dict[str, Any]]) -> str:
        return self.env.get_template("service.html").render(
            service=service, columns=service.columns, rows=rows, behaviour=behaviour, faults=faults
        )
