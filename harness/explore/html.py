"""The HTML report: each target file's source, line by line, marked safe, unsafe or not reached, like a
coverage report, with the violations of each unsafe line shown on hover."""

from __future__ import annotations

import html
import os
import pathlib
from typing import TYPE_CHECKING

from harness.injection.plans import FaultStep

if TYPE_CHECKING:
    from harness.explore.report import Report

__all__ = ["render"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
.verdict-safe { color: #17692c; } .verdict-unsafe { color: #a31515; }
table.src { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 13px; }
table.src td { padding: 0 .6em; white-space: pre; }
td.n { color: #888; text-align: right; user-select: none; }
tr.safe td.code { background: #e6f4ea; } tr.unsafe td.code { background: #fde2e1; }
tr.unsafe td.n { color: #a31515; font-weight: bold; }
.legend span { padding: 0 .5em; margin-right: 1em; }
li.story { margin-bottom: .8em; } code.replay { font-size: 12px; color: #555; }
"""


def _unsafe_lines(report: Report) -> dict[tuple[str, int], list[str]]:
    found: dict[tuple[str, int], list[str]] = {}
    for unsafe in report.unsafe:
        for step in unsafe.plan:
            if isinstance(step, FaultStep) and step.fault == "crash":
                key = (step.point.file, step.point.line)  # type: ignore[union-attr]
                found.setdefault(key, []).extend(unsafe.violations)
    return found


def render(report: Report) -> str:
    unsafe = _unsafe_lines(report)
    verdicts = dict(report.lines)
    for key in unsafe:
        verdicts[key] = False
    # The files with the most unsafe lines first: that is where the job needs fixing.
    bad = {file: sum(1 for (f, _), ok in verdicts.items() if f == file and not ok) for file, _ in verdicts}
    files = sorted(bad, key=lambda file: (-bad[file], file))
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.scenario)}: {report.verdict}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(report.scenario)} on {html.escape(report.engine)} (seed {report.seed}): "
        f"<span class='verdict-{report.verdict}'>{report.verdict}</span></h1>",
        f"<p>{report.points.get('line', 0)} line points, {report.points.get('call', 0)} call points; "
        f"{report.plans_run} plans run, {report.plans_pruned} pruned; {report.duration_s:.2f} s</p>",
        "<p class='legend'><span style='background:#e6f4ea'>safe: a crash here is recovered by retry</span>"
        "<span style='background:#fde2e1'>unsafe: a crash here breaks an invariant</span>"
        "<span>unmarked: not reached</span></p>",
    ]
    groups = report.failures()
    if groups:
        out.append(f"<h2>{len(groups)} distinct failures ({len(report.unsafe)} violating plans)</h2><ol>")
        for members in groups:
            first = members[0]
            out.append(f"<li class='story'>{html.escape(first.story)}<ul>")
            out.extend(f"<li>{html.escape(v)}</li>" for v in first.violations)
            out.append(f"</ul><code class='replay'>{html.escape(first.replay)}</code>")
            if len(members) > 1:
                out.append(f"<details><summary>{len(members) - 1} more plans fail the same way</summary><ul>")
                out.extend(f"<li>{html.escape(m.story)}</li>" for m in members[1:])
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
        out.append(f"<h2>{html.escape(shown)} ({bad[file]} unsafe lines)</h2><table class='src'>")
        for number, text in enumerate(source, 1):
            verdict = verdicts.get((file, number))
            css = "" if verdict is None else ("safe" if verdict else "unsafe")
            title = ""
            if (file, number) in unsafe:
                title = " title='" + html.escape("\n".join(dict.fromkeys(unsafe[(file, number)])), quote=True) + "'"
            out.append(
                f"<tr class='{css}'{title}><td class='n'>{number}</td><td class='code'>{html.escape(text)}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
