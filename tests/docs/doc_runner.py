"""Reads the fenced code blocks of the docs and runs them, so every example stays true.

What each kind of block means (the pages state the same in their conventions):

- ```python: executed, in order, in one namespace per page; with `file=NAME` in the info string it is
  written to the page's working directory instead (a module or a test file that later blocks use).
- ```pycon: `>>>` examples run with doctest in the same namespace; the shown output must match.
- ```console: `$ command` lines run with bash in the page's working directory; the lines after a command
  are its output, which the real output must contain. A command must exit 0 unless the next command is
  `echo $?`, whose output is then the exit code. `harness serve` runs in the background on a free port,
  which replaces the documented 8888 in the commands and output after it. `needs=postgres` (or
  `needs=redis`) in the info string: the block runs on its own, where that service answers.
- ```text: shown, never run. ```json: must parse. Any block with `file=NAME` is written to that file.

In shown output, a line that is only `...` stands for any number of lines, and `...` inside a line for any
text. A block of any other kind fails the test, and so does an unlabelled one that looks runnable: mark a
block that must not run ```text.
"""

from __future__ import annotations

import doctest
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"
VENV_BIN = pathlib.Path(sys.executable).parent

#: Kinds of block run or checked here; anything else must say `text` (or carry `file=`).
RUNNABLE = ("python", "pycon", "console")
INERT = ("text", "json")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
#: What makes an unlabelled block look runnable: a prompt, a command, code.
_LOOKS_RUNNABLE = re.compile(
    r"^\s*(\$ |>>> |import |from \S+ import |def |class |curl |harness |pytest |python3? )", re.M
)
#: The documented port of `harness serve`; the test serves on a free port and rewrites it.
DOC_PORT = 8888
COMMAND_TIMEOUT_S = 180


class DocError(AssertionError):
    """A docs example failed: the message names the page, the line and what differed."""


@dataclass
class Block:
    page: pathlib.Path
    line: int  # 1-based line of the block's first body line
    kind: str
    attrs: dict[str, str]
    body: str

    @property
    def where(self) -> str:
        return f"{shown(self.page)}:{self.line}"

    @property
    def file(self) -> str | None:
        return self.attrs.get("file")

    @property
    def needs(self) -> str | None:
        return self.attrs.get("needs")


def shown(page: pathlib.Path) -> str:
    """A page's path as messages name it: relative to the checkout when it is in it."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def pages() -> list[pathlib.Path]:
    return sorted(DOCS.rglob("*.md"))


def parse_blocks(page: pathlib.Path, text: str | None = None) -> list[Block]:
    """Every fenced block of a Markdown page, with its kind (`python`), attributes (`file=x.py`) and body."""
    lines = (page.read_text() if text is None else text).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, fence = opened["indent"], opened["fence"]
        words = opened["info"].split()
        kind = words[0] if words else ""
        attrs = dict(word.partition("=")[::2] for word in words[1:])
        body: list[str] = []
        i += 1
        start = i + 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and not lines[i].strip().strip(fence[0])):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        if i >= len(lines):
            raise DocError(f"{page}:{start - 1}: a ``` block is never closed")
        blocks.append(Block(page, start, kind, attrs, "\n".join(body) + "\n"))
        i += 1
    return blocks


def check_known(block: Block) -> None:
    """Fail on a block the runner does not know how to run (unless it plainly is not runnable)."""
    if block.file is not None or block.kind in RUNNABLE or block.kind in INERT:
        return
    if block.kind == "" and not _LOOKS_RUNNABLE.search(block.body):
        return  # a diagram or a listing with no language
    raise DocError(
        f"{block.where}: a ```{block.kind or ''} block this test cannot run; use python, pycon, console or "
        "for an example that runs (commands with `$ ` prompts), or mark it ```text if it must not run"
    )


# -- comparing output ------------------------------------------------------------------------------------
def _pattern(expected: str) -> re.Pattern[str]:
    parts = []
    for line in expected.strip("\n").splitlines():
        line = line.rstrip()
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("^" + "[^\n]*".join(re.escape(piece) for piece in line.split("...")) + r"[ \t]*\n")
    return re.compile("".join(parts), re.M)


def output_contains(actual: str, expected: str) -> bool:
    """True when `actual` holds the lines of `expected` in order, `...` standing for elided text."""
    if not expected.strip():
        return True
    normalised = "\n".join(line.rstrip() for line in actual.splitlines()) + "\n"
    return _pattern(expected).search(normalised) is not None


def _shorten(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :]


# -- console --------------------------------------------------------------------------------------------
@dataclass
class Command:
    line: int
    text: str
    expected: str = ""


def parse_console(block: Block) -> list[Command]:
    commands: list[Command] = []
    lines = block.body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if not commands:
                if line.strip():
                    raise DocError(f"{block.where}: a console block starts with output; begin with `$ command`")
            else:
                commands[-1].expected += line + "\n"
            i += 1
            continue
        first = block.line + i
        text = line[2:]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        commands.append(Command(first, text.strip()))
        i += 1
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command_env() -> dict[str, str]:
    """The environment a reader has after activating the project's virtualenv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env.pop("PYTHONPATH", None)
    return env


@dataclass
class Shell:
    """Runs a page's commands in its working directory; owns the `harness serve` it may start."""

    cwd: pathlib.Path
    port: int | None = None
    server: subprocess.Popen[bytes] | None = None
    server_log: pathlib.Path | None = None
    last_rc: int = 0
    env: dict[str, str] = field(default_factory=command_env)

    def substitute(self, text: str) -> str:
        if self.port is None:
            return text
        return re.sub(rf"(?<=:){DOC_PORT}\b", str(self.port), text)

    def run_block(self, block: Block) -> None:
        commands = parse_console(block)
        if not commands:
            raise DocError(f"{block.where}: a console block with no `$ command`")
        for n, command in enumerate(commands):
            text = self.substitute(command.text)
            if text == "echo $?":
                output, rc = f"{self.last_rc}\n", 0
            elif re.match(r"harness serve\b", text):
                output, rc = self._serve(text, command), 0
            else:
                output, rc = self._run(text, command)
            expected = self.substitute(command.expected)  # after `harness serve` chose the port
            following = commands[n + 1].text if n + 1 < len(commands) else ""
            if rc != 0 and following != "echo $?":
                raise DocError(
                    f"{shown(block.page)}:{command.line}: `{text}` exited {rc} (show `echo $?` after "
                    f"a command that is meant to fail):\n{_shorten(output)}"
                )
            if not output_contains(output, expected):
                raise DocError(
                    f"{shown(block.page)}:{command.line}: the output of `{text}` does not contain "
                    f"what the page shows.\n--- shown:\n{expected}--- real:\n{_shorten(output)}"
                )
            self.last_rc = rc

    def _run(self, text: str, command: Command) -> tuple[str, int]:
        try:
            done = subprocess.run(
                ["bash", "-c", text],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise DocError(f"line {command.line}: `{text}` ran longer than {COMMAND_TIMEOUT_S} s") from exc
        return done.stdout, done.returncode

    def _serve(self, text: str, command: Command) -> str:
        """`harness serve ...` runs in the background on a free port until the page is done."""
        if self.server is not None:
            raise DocError(f"line {command.line}: a page starts `harness serve` once")
        self.port = free_port()
        text = re.sub(r"\s--port\s+\d+", "", text) + f" --port {self.port}"
        self.server_log = self.cwd / "harness-serve.log"
        with self.server_log.open("wb") as log:
            self.server = subprocess.Popen(
                ["bash", "-c", f"exec {text}"], cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise DocError(f"line {command.line}: `{text}` exited:\n{self.server_log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise DocError(f"line {command.line}: `{text}` did not listen on port {self.port} within 20 s")
        for _ in range(40):  # the startup lines are flushed just after the socket opens
            if "Uvicorn running" in self.server_log.read_text():
                break
            time.sleep(0.05)
        return self.server_log.read_text()

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(10)
            self.server = None


# -- Python ----------------------------------------------------------------------------------------------
def run_python(block: Block, namespace: dict[str, Any]) -> None:
    source = "\n" * (block.line - 1) + block.body
    code = compile(source, str(block.page), "exec")
    exec(code, namespace)


def run_pycon(block: Block, namespace: dict[str, Any]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.body, namespace, block.where, str(block.page), block.line - 1)
    if not test.examples:
        raise DocError(f"{block.where}: a pycon block with no `>>>` example")
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # a DocTest runs on a copy of the namespace; later blocks build on it
    if result.failed:
        raise DocError(f"{block.where}: a >>> example does not do what the page shows\n" + "".join(report))


def check_json(block: Block) -> None:
    try:
        json.loads(block.body)
    except ValueError as exc:
        raise DocError(f"{block.where}: a ```json block that is not JSON: {exc}") from None


def write_file(block: Block, directory: pathlib.Path) -> pathlib.Path:
    target = directory / block.attrs["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.body)
    return target


@dataclass
class PageRun:
    """Everything one page's examples share: a working directory, a Python namespace, a shell."""

    page: pathlib.Path
    cwd: pathlib.Path
    namespace: dict[str, Any]
    shell: Shell

    def run(self, block: Block) -> None:
        check_known(block)
        if block.file is not None:
            write_file(block, self.cwd)
        elif block.kind == "python":
            run_python(block, self.namespace)
        elif block.kind == "pycon":
            run_pycon(block, self.namespace)
        elif block.kind == "console":
            self.shell.run_block(block)
        elif block.kind == "json":
            check_json(block)


def link_checkout(directory: pathlib.Path) -> None:
    """Make `directory` look like the root of a checkout (the example shop and the project's pytest
    settings) without letting examples write files into the real one."""
    for name in ("scenarios", "pyproject.toml"):
        (directory / name).symlink_to(ROOT / name)


def blocks_of(page: pathlib.Path) -> Iterator[Block]:
    yield from parse_blocks(page)
