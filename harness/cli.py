"""The `harness` command: `serve` the fake services, `explore` a scenario, run the `demo`.

Exit codes: 0 safe (or a clean exit), 1 a violation was found, 2 bad usage or a broken setup.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import sys
from typing import Any

EXIT_SAFE, EXIT_UNSAFE, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """Bad usage or a broken setup: printed as one line, exit 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Proves background jobs are safe to retry.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the fake services on a socket")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8888)
    serve.add_argument("--seed", type=int, default=None, help="make generated ids deterministic")

    explore = sub.add_parser("explore", help="explore one scenario: crash it everywhere, check the world")
    explore.add_argument("target", metavar="MODULE:ATTR", nargs="+", help="a Scenario object to explore")
    _add_explore_options(explore)
    explore.add_argument("--html", metavar="PATH", help="write the annotated-source HTML report")
    explore.add_argument("--replay", metavar="PLAN", help="run one plan (the JSON a report printed)")

    demo = sub.add_parser("demo", help="explore the example shop's jobs, naive to idempotent")
    _add_explore_options(demo)
    return parser


def _add_explore_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="sim", choices=["sim", "dramatiq", "rq", "celery"])
    parser.add_argument("--depth", type=int, default=1, choices=[0, 1, 2], help="exhaustive depth")
    parser.add_argument("--examples", type=int, default=0, help="Hypothesis-generated deeper plans")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--routing", action="store_true", help="also check error routing")
    parser.add_argument("--json", metavar="PATH", help="write the JSON report(s) here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _load(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(f"expected MODULE:ATTR (e.g. scenarios.shop.scenarios:naive), got {ref!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _UsageError(f"cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise _UsageError(f"module {module_name!r} has no attribute {attr!r}") from None


class _Progress:
    """A one-line progress bar on stderr, drawn only on a terminal and only for long runs."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < 50 or (done % 10 and done != total):
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\r" + " " * 79 + "\r")


def _explore_one(scenario: Any, args: argparse.Namespace, ref: str | None) -> Any:
    from harness.explore import Explorer, Scenario

    if not isinstance(scenario, Scenario):
        raise _UsageError(f"{ref} is a {type(scenario).__name__}, not a harness Scenario")
    explorer = Explorer(scenario, engine=args.engine, seed=args.seed, ref=ref)
    progress = _Progress(scenario.name, not args.no_progress)
    try:
        return explorer.explore(depth=args.depth, examples=args.examples, routing=args.routing, progress=progress)
    finally:
        progress.close()
        explorer.close()


def _replay(scenario: Any, args: argparse.Namespace, ref: str) -> int:
    from harness.explore import Explorer
    from harness.injection.plans import plan_from_json

    plan = plan_from_json(args.replay)
    explorer = Explorer(scenario, engine=args.engine, seed=args.seed, ref=ref)
    try:
        result = explorer.replay(plan)
        from harness.explore.stories import tell

        print(f"{scenario.name}: {tell(plan, result, explorer.world)}")
        for violation in result.violations:
            print(f"  violation: {violation}")
        for step in result.unfired:
            print(f"  note: this fault never fired: {step.to_dict()}")
        if result.violations:
            print("  verdict: UNSAFE")
            return EXIT_UNSAFE
        if result.unfired:
            # Nothing was tested: most likely the code moved since the plan was printed.
            print("  verdict: STALE (the plan did not run as written, so it proves nothing)")
            print(f"harness: {len(result.unfired)} fault(s) of the plan never fired; the job's code or the "
                  "scenario changed since the plan was printed? Explore again for a current plan.", file=sys.stderr)
            return EXIT_USAGE
        print("  verdict: safe")
        return EXIT_SAFE
    finally:
        explorer.close()


def _write(path: str, text: str) -> None:
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _cmd_explore(args: argparse.Namespace) -> int:
    if args.replay and len(args.target) != 1:
        raise _UsageError("--replay runs one plan of one scenario: give exactly one MODULE:ATTR")
    reports = []
    for ref in args.target:
        scenario = _load(ref)
        if args.replay:
            return _replay(scenario, args, ref)
        reports.append(_explore_one(scenario, args, ref))
    for report in reports:
        print(report.to_text())
    if args.json:
        data = [r.to_dict() for r in reports]
        _write(args.json, json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n")
    if args.html:
        _write(args.html, reports[0].to_html())
    return EXIT_UNSAFE if any(not r.safe for r in reports) else EXIT_SAFE


def _import_shop_stages() -> dict[str, Any]:
    """The example shop lives in the repository's scenarios/ folder, beside the package."""
    for root in (pathlib.Path.cwd(), pathlib.Path(__file__).resolve().parent.parent):
        if (root / "scenarios" / "shop").is_dir():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            break
    try:
        module = importlib.import_module("scenarios.shop.scenarios")
    except ImportError as exc:
        raise _UsageError(
            f"the demo needs the example shop from the repository's scenarios/ folder ({exc}); run it from a checkout"
        ) from None
    stages: dict[str, Any] = module.STAGES
    return stages


def _cmd_demo(args: argparse.Namespace) -> int:
    stages = _import_shop_stages()
    print("Exploring the example shop's order-completion job, stage by stage: every line crashed, every")
    print(f"service call failed before and after its effect, retried by the {args.engine!r} engine.\n")
    reports = []
    for scenario in stages.values():
        report = _explore_one(scenario, args, None)
        reports.append(report)
        print(report.to_text(limit=3))
        print()
    unsafe = [r.scenario for r in reports if not r.safe]
    safe = [r.scenario for r in reports if r.safe]
    print(f"unsafe: {', '.join(unsafe) or 'none'}; safe: {', '.join(safe) or 'none'}")
    if args.json:
        _write(args.json, json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    # The demo shows bugs on purpose: it succeeds when the naive stages are found unsafe and the last
    # (idempotent) stage is safe.
    return EXIT_SAFE if reports and reports[-1].safe and unsafe else EXIT_UNSAFE


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from harness.errors import HarnessError

    try:
        if args.command == "serve":
            from fake_services.server import serve

            serve(host=args.host, port=args.port, seed=args.seed)
            return EXIT_SAFE
        if args.command == "explore":
            return _cmd_explore(args)
        return _cmd_demo(args)
    except (_UsageError, HarnessError) as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `harness explore ... | head`: the reader left before the verdict; say no more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
