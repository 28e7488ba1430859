"""Every example in `docs/` runs, and shows what really happens.

Each page's blocks run in order (see `doc_runner` for what each kind of block means). Blocks marked
`needs=postgres` or `needs=redis` run alone, as separate tests that skip when the service is absent (not on
CI).
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from doc_runner import (
    DOCS,
    ROOT,
    Block,
    DocError,
    PageRun,
    Shell,
    check_known,
    link_checkout,
    output_contains,
    pages,
    parse_blocks,
    parse_console,
)

#: Where a page's examples run. "checkout": commands at the root of a checkout of this repository (a
#: scratch copy made of links), Python in the repository itself. "project": an empty directory standing
#: for a project that adopts the harness; Python runs there too and imports the files the page wrote.
WORKDIR = {"plugin.md": "project", "invariants.md": "project", "adopting.md": "project"}

#: Names the existing reference pages use in their sketches without defining them, keyed by page and the
#: number of the block (0-based) they precede. They let those sketches run as written.
PREAMBLES: dict[str, dict[int, str]] = {
    "engines.md": {
        0: """
import dramatiq
from dramatiq.brokers.stub import StubBroker
from harness import job

@job(retry=1)
def complete_order(order_id):
    raise RuntimeError("payments is down")

@dramatiq.actor(broker=StubBroker(), max_retries=0)
def my_actor(order_id):
    raise RuntimeError("the team's own actor fails")
""",
    },
    "engines/sim.md": {
        0: """
from harness import job
from harness.engines.base import current_engine
from harness.engines.sim import SimEngine

alerts = []

def alert_a_person(record, exc):
    alerts.append(record)

@job(queue="high", retry=2)
def complete_order(order_id):
    raise RuntimeError("payments is down")

order_id = 1234

@job
def sync_inventory(product_id):
    current_engine().clock.sleep(60)
""",
        1: "clock = engine.clock\n",
    },
}

#: Checks run after a page, on what its examples left behind, so a sketch that silently did nothing fails.
AFTERWARDS: dict[str, str] = {
    "engines.md": "assert len(engine.dead()) == 2, engine.dead()\n",
    "engines/sim.md": """
assert len(alerts) == 1 and len(engine.dead()) == 1
runs = [e for e in engine.events if e.kind.name == "STARTED" and e.job.endswith("sync_inventory")]
assert len(runs) == 2 and any(e.kind.name == "PUSHED_BACK" for e in engine.events), engine.events
""",
}


def _name(page: pathlib.Path) -> str:
    return page.relative_to(DOCS).as_posix()


def _blocks(page: pathlib.Path) -> list[Block]:
    return parse_blocks(page)


@pytest.fixture
def page_run(request: pytest.FixtureRequest, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of `PageRun`s that cleans up the page's server, modules and paths afterwards."""
    runs: list[PageRun] = []

    def make(page: pathlib.Path) -> PageRun:
        name = _name(page)
        cwd = tmp_path / "work"
        cwd.mkdir()
        project = WORKDIR.get(name) == "project"
        if not project:
            link_checkout(cwd)
        python_dir = cwd if project else ROOT
        monkeypatch.chdir(python_dir)
        monkeypatch.syspath_prepend(str(python_dir))
        namespace: dict[str, Any] = {"__name__": "docs_" + re.sub(r"\W", "_", name[:-3])}
        run = PageRun(page, cwd, namespace, Shell(cwd))
        runs.append(run)
        return run

    before = set(sys.modules)
    yield make
    for run in runs:
        run.shell.close()
        _close_worlds(run.namespace)
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(tmp_path)):
            del sys.modules[name]


def _close_worlds(namespace: dict[str, Any]) -> None:
    from harness.engines.base import Engine
    from harness.world import World

    for value in namespace.values():
        if isinstance(value, World | Engine):
            value.close()


def _run_page(run: PageRun, *, only_needing: str | None = None) -> None:
    name = _name(run.page)
    preambles = PREAMBLES.get(name, {})
    for n, block in enumerate(_blocks(run.page)):
        if (block.needs or None) != only_needing:
            continue
        if n in preambles:
            exec(compile(preambles[n], f"<preamble of {name}>", "exec"), run.namespace)
        run.run(block)
    if only_needing is None and name in AFTERWARDS:
        exec(compile(AFTERWARDS[name], f"<checks after {name}>", "exec"), run.namespace)


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_page_examples_run_and_show_real_output(page: pathlib.Path, page_run: Any) -> None:
    _run_page(page_run(page))


def _needing() -> list[Any]:
    found = []
    for page in pages():
        for block in _blocks(page):
            if block.needs:
                found.append(
                    pytest.param(
                        page, block.needs, marks=getattr(pytest.mark, block.needs), id=f"{_name(page)}:{block.line}"
                    )
                )
    return found


def _postgres_reason(block_text: str) -> str | None:
    """None when the PostgreSQL the block names answers, else why not."""
    match = re.search(r"DATABASE_URL=(\S+)", block_text)
    url = match[1].strip("'\"") if match else "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    from scenarios.shop.db import unreachable

    reason = unreachable(url)
    return None if reason is None else f"PostgreSQL at {url} is unreachable ({reason})"


def _redis_reason(block_text: str) -> str | None:
    """None when the Redis the block names (`--harness-redis-url URL`) answers, else why not."""
    from harness.engines.workers import redis_available

    match = re.search(r"--harness-redis-url[= ](\S+)", block_text)
    url = match[1] if match else "redis://127.0.0.1:6379/0"
    return None if redis_available(url) else f"no Redis answers at {url}"


REASONS = {"postgres": _postgres_reason, "redis": _redis_reason}


@pytest.mark.parametrize(("page", "service"), _needing())
def test_examples_that_need_a_service(page: pathlib.Path, service: str, page_run: Any) -> None:
    text = "".join(b.body for b in _blocks(page) if b.needs == service)
    if service not in REASONS:
        raise DocError(f"{_name(page)}: needs={service} is not a service this test knows how to check")
    reason = REASONS[service](text)
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"{reason}, and CI is set")
        pytest.skip(reason)
    _run_page(page_run(page), only_needing=service)


# -- the pages' own consistency ----------------------------------------------------------------------------
def test_the_scenarios_page_names_every_lesson_module() -> None:
    text = (DOCS / "scenarios.md").read_text()
    modules = sorted(p.name for p in (ROOT / "scenarios").glob("test_*.py"))
    missing = [m for m in modules if m not in text]
    assert modules and not missing, f"docs/scenarios.md does not describe {missing}"


def test_the_plugin_page_names_every_fixture_option_and_marker_argument() -> None:
    import harness.pytest_plugin as plugin

    text = (DOCS / "plugin.md").read_text()
    source = (ROOT / "harness" / "pytest_plugin.py").read_text()
    fixtures = re.findall(r"^@pytest\.fixture(?:\(.*?\))?\ndef ([a-z]\w*)\(", source, re.M)
    options = re.findall(r'^[A-Z_]+_OPTION = "(--[\w-]+)"', source, re.M)
    arguments = list(plugin.HarnessOptions.__dataclass_fields__)
    missing = [f"`{name}`" for name in [*fixtures, *options] if f"`{name}`" not in text]
    missing += [f"{name}=" for name in arguments if f"{name}=" not in text]
    assert len(fixtures) >= 6 and len(options) >= 4 and not missing, f"docs/plugin.md does not describe {missing}"


def _anchors(page: pathlib.Path) -> set[str]:
    """The anchors of a page's headings, spelt as GitHub spells them."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_relative_links_between_pages_resolve() -> None:
    broken = []
    for page in pages():
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            linked = page.parent / target if target else page
            if not linked.exists():
                broken.append(f"{_name(page)} -> {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{_name(page)} -> {target}#{anchor} (no such heading)")
    assert not broken, broken


# -- the runner itself: it must be able to fail ------------------------------------------------------------
def test_shown_output_with_elisions_matches_and_a_difference_does_not() -> None:
    real = "shop.naive on sim (seed 0): UNSAFE\n  points: 41 line, 6 call; 0.27 s\n  [1] story\nend\n"
    assert output_contains(real, "shop.naive on sim (seed 0): UNSAFE\n  points: ... call; ... s\n")
    assert output_contains(real, "shop.naive ...\n...\nend\n")
    assert not output_contains(real, "shop.naive on sim (seed 0): SAFE\n")
    assert not output_contains(real, "  points: 41 line\nend\n")  # lines must follow each other


def test_a_block_it_cannot_run_fails_unless_marked_text(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\nharness demo\n```\n\n```bash\npip install x\n```\n\n```\n$ harness demo\n```\n\n"
        "```\nscenario --> explorer\n```\n\n```text\n$ rm -rf /\n```\n"
    )
    sh, bash, bare, diagram, text = parse_blocks(page)
    for block in (sh, bash, bare):
        with pytest.raises(DocError, match="cannot run"):
            check_known(block)
    check_known(diagram)
    check_known(text)


def test_a_failing_command_needs_echo_status_and_output_is_compared(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ false\n```\n\n```console\n$ false\n$ echo $?\n1\n```\n\n```console\n$ echo one\ntwo\n```\n"
    )
    fails, shown, wrong = parse_blocks(page)
    assert [c.text for c in parse_console(shown)] == ["false", "echo $?"]
    shell = Shell(tmp_path)
    with pytest.raises(DocError, match="exited 1"):
        shell.run_block(fails)
    shell.run_block(shown)
    with pytest.raises(DocError, match="does not contain"):
        shell.run_block(wrong)
