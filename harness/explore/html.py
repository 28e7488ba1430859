"""The HTML report: each failure's story with a timeline on virtual time, and each target file's source
line by line, like a coverage report: every line the clean run executed carries its verdict, whether a
crash there ran or was pruned as equivalent to one that ran (its verdict then inherited and shown so).

`render(report)` makes the page of one exploration; `render_many(reports)` one page for several (the
CLI's `--html` with several scenarios), each in a section of its own.
"""

from __future__ import annotations

import html
import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.explore.timeline import svg
from harness.injection.plans import FaultStep

if TYPE_CHECKING:
    from harness.explore.report import Report

__all__ = ["render", "render_many"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1.05em; margin-top: 1.6em; }
.verdict-safe { color: #17692c; } .verdict-unsafe { color: #a31515; }
table.src { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 13px; }
table.src td { padding: 0 .6em; white-space: pre; }
td.n { color: #888; text-align: right; user-select: none; } td.v { color: #666; font-size: 11px; }
tr.safe td.code { background: #e6f4ea; } tr.unsafe td.code { background: #fde2e1; }
tr.inherited td.code { background-image: repeating-linear-gradient(135deg, transparent 0 6px, #ffffff99 6px 9px); }
tr.unsafe td.n { color: #a31515; font-weight: bold; }
.legend span { padding: 0 .5em; margin-right: 1em; }
li.story { margin-bottom: 1.2em; } code.replay { font-size: 12px; color: #555; }
svg.timeline { display: block; margin: .4em 0; }
"""

_LEGEND = (
    "<p class='legend'><span style='background:#e6f4ea'>safe: a crash here is recovered by retry</span>"
    "<span style='background:#fde2e1'>unsafe: a crash here breaks an invariant</span>"
    "<span style='background:repeating-linear-gradient(135deg,#e6f4ea 0 6px,#fff 6px 9px)'>hatched: verdict "
    "inherited from an equivalent crash point that ran (pruned)</span>"
    "<span>unmarked: not executed by the clean run (no crash point there)</span></p>"
)


def _unsafe_lines(report: Report) -> dict[tuple[str, int], list[str]]:
    found: dict[tuple[str, int], list[str]] = {}
    for unsafe in report.unsafe:
        for step in unsafe.plan:
            if isinstance(step, FaultStep) and step.fault == "crash":
                key = (step.point.file, step.point.line)  # type: ignore[union-attr]
                found.setdefault(key, []).extend(unsafe.violations)
    return found


def _page(title: str, body: list[str]) -> str:
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    return "\n".join([head + f"<style>{_STYLE}</style></head><body>", *body, "</body></html>"])


def render(report: Report) -> str:
    return _page(f"{report.scenario}: {report.verdict}", _section(report, level=1, anchor="r0"))


def render_many(reports: Sequence[Report]) -> str:
    """One page for several explorations: a summary list, then each report in a section of its own."""
    if len(reports) == 1:
        return render(reports[0])
    unsafe = sum(1 for r in reports if not r.safe)
    body = [f"<h1>{len(reports)} scenarios: {unsafe} unsafe, {len(reports) - unsafe} safe</h1><ul>"]
    for n, report in enumerate(reports):
        body.append(
            f"<li><a href='#r{n}'>{html.escape(report.scenario)} on {html.escape(report.engine)}</a>: "
            f"<span class='verdict-{report.verdict}'>{report.verdict}</span></li>"
        )
    body.append("</ul>")
    for n, report in enumerate(reports):
        body.extend(_section(report, level=2, anchor=f"r{n}"))
    return _page(f"{len(reports)} scenarios", body)


def _section(report: Report, *, level: int, anchor: str) -> list[str]:
    from harness.explore.report import plural, same_way

    h, sub = f"h{level}", f"h{level + 1}"
    unsafe = _unsafe_lines(report)
    verdicts = dict(report.lines)
    for key in unsafe:
        verdicts[key] = False
    inherited = report.inherited_lines - unsafe.keys()
    # The files with the most unsafe lines first: that is where the job needs fixing.
    bad = {file: sum(1 for (f, _), ok in verdicts.items() if f == file and not ok) for file, _ in verdicts}
    files = sorted(bad, key=lambda file: (-bad[file], file))
    out = [
        f"<{h} id='{anchor}'>{html.escape(report.scenario)} on {html.escape(report.engine)} (seed {report.seed}): "
        f"<span class='verdict-{report.verdict}'>{report.verdict}</span></{h}>",
        f"<p>{report.points.get('line', 0)} line points, {report.points.get('call', 0)} call points; "
        f"{report.plans_run} plans run, {report.plans_pruned} pruned; {report.duration_s:.2f} s</p>",
        _LEGEND,
    ]
    out.extend(f"<p class='warning'>warning: {html.escape(w)}</p>" for w in report.warnings)
    groups = report.failures()
    if groups:
        out.append(
            f"<{sub}>{plural(len(groups), 'distinct failure')} ({plural(len(report.unsafe), 'violating plan')})"
            f"</{sub}><ol>"
        )
        for members in groups:
            first = members[0]
            out.append(f"<li class='story'>{html.escape(first.story)}")
            out.append(svg(first.timeline))
            out.append("<ul>")
            out.extend(f"<li>{html.escape(v)}</li>" for v in first.violations)
            out.append(f"</ul><code class='replay'>{html.escape(first.replay)}</code>")
            others = same_way(members)
            if others:
                verb = "fails" if others == 1 else "fail"
                out.append(f"<details><summary>{plural(others, 'more plan')} {verb} the same way</summary><ul>")
                out.extend(f"<li>{html.escape(m.story)}</li>" for m in members[1:])
                pruned = sum(m.equivalents for m in members)
                if pruned:
                    out.append(f"<li>and {plural(pruned, 'plan')} pruned as equivalent to these</li>")
                out.append("</ul></details>")
            out.append("</li>")
        out.append("</ol>")
    for file in files:
        path = pathlib.Path(file)
        try:
            source = path.read_text().splitlines()
        except OSError:
            continue
        shown = os.path.relpath(file) if not os.path.relpath(file).startswith("..") else file
        out.append(f"<{sub}>{html.escape(shown)} ({plural(bad[file], 'unsafe line')})</{sub}><table class='src'>")
        for number, text in enumerate(source, 1):
            key = (file, number)
            verdict = verdicts.get(key)
            css, mark = "", ""
            if verdict is not None:
                css = "safe" if verdict else "unsafe"
                mark = css
                if key in inherited:
                    css += " inherited"
                    mark += " (inherited)"
            title = ""
            if key in unsafe:
                title = " title='" + html.escape("\n".join(dict.fromkeys(unsafe[key])), quote=True) + "'"
            out.append(
                f"<tr class='{css}'{title}><td class='n'>{number}</td><td class='v'>{mark}</td>"
                f"<td class='code'>{html.escape(text)}</td></tr>"
            )
        out.append("</table>")
    return out
