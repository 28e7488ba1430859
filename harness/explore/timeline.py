"""A failing run as a timeline on virtual time: each job's attempts, the retry delays between them, the
dead set and the handlers, drawn as an SVG picture for the HTML report.

`entries(events)` turns an engine's event log into plain, JSON-simple entries (times relative to the
run's start), which a report keeps; `svg(entries)` draws them. Retry delays grow from seconds to days,
so time runs on a logarithmic axis: every attempt stays visible, and the labels give the real times.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["entries", "svg"]

#: Event kinds worth drawing, and how: (shape, colour, label).
_MARKS: dict[str, tuple[str, str, str]] = {
    "succeeded": ("circle", "#17692c", "succeeded"),
    "failed": ("cross", "#a31515", "failed"),
    "crashed": ("cross", "#222222", "crashed"),
    "dead": ("square", "#222222", "dead set"),
    "discarded": ("square", "#888888", "discarded"),
    "death_handler_called": ("diamond", "#6a3d9a", "death handler"),
    "error_handler_called": ("triangle", "#d97706", "error handler"),
    "pushed_back": ("circle-open", "#2563eb", "pushed back"),
    "recovered": ("circle-open", "#2563eb", "recovered by the broker (delivered again)"),
    "lost": ("square", "#a31515", "lost with the worker"),
}
_WIDTH, _LANE, _LEFT, _TOP = 760, 46, 170, 28


def entries(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The events of one run as plain entries: `t` (seconds since the run's first event), `kind`, `job`
    (the short name), `attempt`, and for retries `delay`; a failure by injected crash is `crashed`."""
    out: list[dict[str, Any]] = []
    start: float | None = None
    for event in events:
        data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
        if start is None:
            start = float(data["time"])
        kind = str(data["kind"])
        detail = data.get("detail") or {}
        if kind == "failed" and detail.get("error_class") == "InjectedCrash":
            kind = "crashed"  # engines that report a worker's death as a failure
        entry: dict[str, Any] = {
            "t": round(float(data["time"]) - start, 3),
            "kind": kind,
            "job": str(data["job"]).rsplit(".", 1)[-1],
            "attempt": int(data["attempt"]),
        }
        if kind == "retry_scheduled" and "delay" in detail:
            entry["delay"] = detail["delay"]
        if kind in ("failed", "crashed") and detail.get("error_class"):
            entry["error"] = detail["error_class"]
        out.append(entry)
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def svg(timeline: Sequence[dict[str, Any]]) -> str:
    """An SVG drawing of `timeline`: one lane per job, time on a log axis, a mark per attempt outcome,
    dashed arcs for retry delays. Empty when there is nothing to draw."""
    if not timeline:
        return ""
    lanes = list(dict.fromkeys(entry["job"] for entry in timeline))
    end = max(entry["t"] + float(entry.get("delay") or 0) for entry in timeline)
    scale = math.log1p(end) or 1.0

    def x(t: float) -> float:
        return _LEFT + (_WIDTH - _LEFT - 30) * math.log1p(max(t, 0.0)) / scale

    def y(job: str) -> float:
        return _TOP + _LANE * lanes.index(job) + _LANE / 2

    height = _TOP + _LANE * len(lanes) + 26
    out = [
        f"<svg class='timeline' xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{height}' "
        f"role='img' aria-label='timeline of the failing run'>",
        "<style>text{font:11px system-ui,sans-serif;fill:#333}.lane{stroke:#ddd}"
        ".retry{stroke:#888;stroke-dasharray:4 3;fill:none}</style>",
    ]
    for job in lanes:
        out.append(f"<line class='lane' x1='{_LEFT - 8}' x2='{_WIDTH - 10}' y1='{y(job)}' y2='{y(job)}'/>")
        out.append(f"<text x='8' y='{y(job) + 4}'>{html.escape(job)}</text>")
    for t in sorted({0.0, end}):
        anchor = "end" if t == end and end > 0 else "start"
        out.append(f"<text x='{x(t):.1f}' y='{height - 8}' text-anchor='{anchor}'>t+{_duration(t)}</text>")
    stacked: dict[tuple[str, float], int] = {}
    crashed_at: dict[str, float] = {}
    for entry in timeline:
        job, t, kind = entry["job"], float(entry["t"]), entry["kind"]
        if kind == "crashed":
            crashed_at[job] = t
        if kind == "recovered" and job in crashed_at:
            # The broker hands a dead worker's job out again: drawn as the wait between the two.
            since = crashed_at.pop(job)
            out.append(_arc(x(since), x(t), y(job), f"delivered again after {_duration(t - since)}"))
            middle = (x(since) + x(t)) / 2 - 14
            out.append(f"<text x='{middle:.1f}' y='{y(job) - 18:.1f}'>+{_duration(t - since)}</text>")
        if kind == "retry_scheduled":
            delay = float(entry.get("delay") or 0)
            start, stop = x(t), x(t + delay)
            top = y(job) - 16
            out.append(
                f"<path class='retry' d='M{start:.1f},{y(job):.1f} C{start:.1f},{top:.1f} {stop:.1f},{top:.1f} "
                f"{stop:.1f},{y(job):.1f}'><title>retry in {_duration(delay)}</title></path>"
            )
            out.append(f"<text x='{(start + stop) / 2 - 14:.1f}' y='{top - 2:.1f}'>+{_duration(delay)}</text>")
            continue
        mark = _MARKS.get(kind)
        if mark is None:
            continue
        # Marks of one moment stack upwards-right so that a failure, its handlers and the dead set all show.
        nth = stacked[(job, t)] = stacked.get((job, t), -1) + 1
        cx, cy = x(t) + 9 * nth, y(job)
        title = f"attempt {entry['attempt']}: {mark[2]}" + (f" ({entry['error']})" if entry.get("error") else "")
        title += f" at t+{_duration(t)}"
        out.append(_shape(mark[0], mark[1], cx, cy, html.escape(title)))
    out.append("</svg>")
    return "".join(out)


def _arc(start: float, stop: float, lane: float, title: str) -> str:
    top = lane - 16
    return (
        f"<path class='retry' d='M{start:.1f},{lane:.1f} C{start:.1f},{top:.1f} {stop:.1f},{top:.1f} "
        f"{stop:.1f},{lane:.1f}'><title>{html.escape(title)}</title></path>"
    )


def _shape(shape: str, colour: str, cx: float, cy: float, title: str) -> str:
    tip = f"<title>{title}</title>"
    if shape == "circle":
        return f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='5' fill='{colour}'>{tip}</circle>"
    if shape == "circle-open":
        ring = f"fill='none' stroke='{colour}' stroke-width='2'"
        return f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='5' {ring}>{tip}</circle>"
    if shape == "square":
        return f"<rect x='{cx - 5:.1f}' y='{cy - 5:.1f}' width='10' height='10' fill='{colour}'>{tip}</rect>"
    if shape == "diamond":
        points = f"{cx:.1f},{cy - 6:.1f} {cx + 6:.1f},{cy:.1f} {cx:.1f},{cy + 6:.1f} {cx - 6:.1f},{cy:.1f}"
        return f"<polygon points='{points}' fill='{colour}'>{tip}</polygon>"
    if shape == "triangle":
        points = f"{cx:.1f},{cy - 6:.1f} {cx + 6:.1f},{cy + 5:.1f} {cx - 6:.1f},{cy + 5:.1f}"
        return f"<polygon points='{points}' fill='{colour}'>{tip}</polygon>"
    # A cross: the attempt ended in an exception (red) or with the process's death (black).
    d = f"M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} M{cx + 5:.1f},{cy - 5:.1f} L{cx - 5:.1f},{cy + 5:.1f}"
    return f"<path d='{d}' stroke='{colour}' stroke-width='2.5'>{tip}</path>"
