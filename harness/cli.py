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
    serve.add_argument("--token", default=None,
                       help="the token the control API and pages ask for (default: $HARNESS_SERVE_TOKEN; "
                            "off loopback, one is generated and printed)")
    serve.add_argument("--no-token", action="store_true",
                       help="off loopback, let anyone who reaches the port drive the control API")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer requests for this Host name (repeatable; '*' for any)")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="let pages of this origin change state, e.g. http://localhost:3000 (repeatable)")
    serve.add_argument("--smtp-port", type=int, default=None, metavar="PORT",
                       help="also serve the email fake over SMTP on this port (smtplib, Django's send_mail)")

    explore = sub.add_parser("explore", help="explore one scenario: crash it everywhere, check the world")
    explore.add_argument("target", metavar="MODULE:ATTR", nargs="+", help="a Scenario object to explore")
    _add_explore_options(explore)
    explore.add_argument("--html", metavar="PATH", help="write the annotated-source HTML report")
    explore.add_argument("--replay", metavar="PLAN", help="run one plan (the JSON a report printed)")
    explore.add_argument("--deliveries", type=_deliveries, default=None, metavar="N",
                         help="instead of faults, run N deliveries of the job at once (2 to 8) and explore "
                         "their interleavings under a deterministic scheduler (see docs/concurrent.md)")
    explore.add_argument("--preemptions", type=_preemptions, default=2, metavar="N",
                         help="with --deliveries: the most preemptions an interleaving may have (default 2)")
    explore.add_argument("--samples", type=_samples, default=0, metavar="N",
                         help="with --deliveries: N more random interleavings, drawn from --seed")
    explore.add_argument("--schedule", metavar="JSON",
                         help="with --deliveries: run one interleaving (the schedule a report printed)")

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
    parser.add_argument("--attempt-timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="wall-clock limit of one attempt before it is reported as hung "
                        "(default: the scenario's, 60 s; 0 for no limit)")
    parser.add_argument("--jobs", type=_workers, default=None, metavar="N",
                        help="processes running the exhaustive plans: this one and N-1 workers forked from it; "
                        "the report is the same as with --jobs 1 "
                        f"(default: this machine's cores, {os.cpu_count() or 1}, for a scenario that declares "
                        "`isolate`; 1 for one that does not, since its workers might share a database)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress on stderr (a bar on a terminal, else a line every 10 s)")


def _whole(text: str, least: int, most: int | None, what: str) -> int:
    """`text` as a whole number of `what` from `least` to `most` (None: no upper bound)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of {what}, got {text!r}") from None
    if value < least or (most is not None and value > most):
        bound = f"from {least} to {most}" if most is not None else f"at least {least}"
        raise argparse.ArgumentTypeError(f"expected a number of {what}, {bound}, got {value}")
    return value


def _workers(text: str) -> int:
    return _whole(text, 1, None, "processes")


def _preemptions(text: str) -> int:
    return _whole(text, 0, None, "preemptions")


def _samples(text: str) -> int:
    return _whole(text, 0, None, "interleavings")


def _deliveries(text: str) -> int:
    return _whole(text, 2, 8, "deliveries")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text!r}")
    return value


def _jobs(args: argparse.Namespace, scenario: Any) -> int:
    """--jobs as given; else every core for a scenario that says how to isolate its workers, else one: the
    workers of a scenario with a database of its own and no `isolate` would run their plans on one database."""
    if args.jobs is not None:
        return int(args.jobs)
    return (os.cpu_count() or 1) if getattr(scenario, "isolate", None) is not None else 1


def _timeout(args: argparse.Namespace) -> Any:
    """The CLI's --attempt-timeout for the explorer: the scenario's own unless given; 0 means none."""
    if args.attempt_timeout is None:
        return "scenario"
    return args.attempt_timeout or None


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
    except SyntaxError as exc:
        where = f" ({exc.filename}, line {exc.lineno})" if exc.filename else ""
        raise _UsageError(f"cannot import {module_name!r}: SyntaxError: {exc.msg}{where}") from None
    except (Exception, SystemExit) as exc:  # the module itself raised as it was imported
        raise _UsageError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise _UsageError(f"module {module_name!r} has no attribute {attr!r}") from None


def _explore_one(scenario: Any, args: argparse.Namespace, ref: str | None) -> Any:
    from harness.explore import Explorer

    _check_scenario(scenario, ref or scenario.__class__.__name__)
    from harness.explore.progress import ProgressLine

    explorer = Explorer(scenario, engine=args.engine, seed=args.seed, ref=ref, attempt_timeout=_timeout(args))
    progress = None if args.no_progress else ProgressLine(scenario.name)
    try:
        jobs = _jobs(args, scenario)
        return explorer.explore(
            depth=args.depth, examples=args.examples, routing=args.routing, progress=progress, jobs=jobs
        )
    finally:
        if progress is not None:
            progress.close()
        explorer.close()


def _replay(scenario: Any, args: argparse.Namespace, ref: str) -> int:
    from harness.explore import Explorer
    from harness.injection.plans import plan_from_json

    plan = plan_from_json(args.replay)
    explorer = Explorer(scenario, engine=args.engine, seed=args.seed, ref=ref, attempt_timeout=_timeout(args))
    try:
        result = explorer.replay(plan)
        from harness.explore.stories import tell

        print(f"{scenario.name}: {tell(plan, result)}")
        for violation in result.violations:
            print(f"  violation: {violation}")
        for step in result.unfired:
            print(f"  note: this fault never fired: {step.to_dict()}")
        if result.violations:
            print("  verdict: UNSAFE")
            return EXIT_UNSAFE
        if not plan:
            print("  verdict: STALE (an empty plan injects no fault, so a clean result proves nothing)")
            print("harness: the plan has no fault; replay a plan a report printed", file=sys.stderr)
            return EXIT_USAGE
        if result.unfired:
            # Nothing was tested: most likely the code moved since the plan was printed.
            print("  verdict: STALE (the plan did not run as written, so it proves nothing)")
            print(f"harness: {len(result.unfired)} fault(s) of the plan never fired; the job's code or the "
                  "scenario changed since the plan was printed? Explore again for a current plan.", file=sys.stderr)
            return EXIT_USAGE
        print("  verdict: SAFE")
        return EXIT_SAFE
    finally:
        explorer.close()


def _write(path: str, text: str) -> None:
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _check_writable(option: str, path: str | None) -> None:
    """Refuse an output path that cannot be written before exploring, not after (a long exploration
    would otherwise end in an error and lose its report)."""
    if not path:
        return
    target = pathlib.Path(path)
    if target.is_dir():
        raise _UsageError(f"{option} {path}: is a directory; give a file path")
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a"):
            pass
    except OSError as exc:
        raise _UsageError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    if not existed:
        target.unlink()


def _concurrent(args: argparse.Namespace) -> int:
    """`--deliveries N`: the interleavings of N deliveries at once, instead of faults."""
    from harness.explore.concurrent import Interleavings

    if args.replay or args.html or args.depth != 1 or args.routing:
        raise _UsageError("--deliveries explores interleavings; it takes --preemptions, --samples, --examples, "
                          "--schedule, --engine, --seed and --json, not --replay, --html, --depth or --routing")
    if args.schedule and len(args.target) != 1:
        raise _UsageError("--schedule runs one interleaving of one scenario: give exactly one MODULE:ATTR")
    reports = []
    for ref in args.target:
        scenario = _load(ref)
        _check_scenario(scenario, ref)
        with Interleavings(scenario, engine=args.engine, seed=args.seed, deliveries=args.deliveries) as explorer:
            if args.schedule:
                run = explorer.replay(args.schedule)
                print(f"{scenario.name}: {run.story()}")
                for violation in run.violations:
                    print(f"  violation: {violation}")
                print(f"  verdict: {'UNSAFE' if run.violations else 'SAFE'}")
                return EXIT_UNSAFE if run.violations else EXIT_SAFE
            report = explorer.explore(preemptions=args.preemptions, samples=args.samples, examples=args.examples)
        report.replay = (f"harness explore {ref} --engine {args.engine} --seed {args.seed} "
                         f"--deliveries {args.deliveries} --schedule")
        reports.append(report)
    for report in reports:
        print(report.to_text())
    if args.json:
        data = [r.to_dict() for r in reports]
        _write(args.json, json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n")
    return EXIT_UNSAFE if any(not r.safe for r in reports) else EXIT_SAFE


def _check_scenario(scenario: Any, ref: str) -> None:
    from harness.explore import Scenario

    if not isinstance(scenario, Scenario):
        raise _UsageError(f"{ref} is a {type(scenario).__name__}, not a harness.explore.Scenario")


def _cmd_explore(args: argparse.Namespace) -> int:
    if args.deliveries is not None:
        _check_writable("--json", args.json)
        return _concurrent(args)
    if args.schedule or args.preemptions != 2 or args.samples:
        raise _UsageError("--schedule, --preemptions and --samples go with --deliveries N")
    if args.replay and len(args.target) != 1:
        raise _UsageError("--replay runs one plan of one scenario: give exactly one MODULE:ATTR")
    _check_writable("--json", args.json)
    _check_writable("--html", args.html)
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
        from harness.explore.html import render_many

        _write(args.html, render_many(reports))
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
    _check_writable("--json", args.json)
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from fake_services.server import ServeError, serve

    try:
        serve(host=args.host, port=args.port, seed=args.seed, token=args.token, open_control=args.no_token,
              allow_hosts=args.allow_host, allow_origins=args.allow_origin, smtp_port=args.smtp_port)
    except ServeError as exc:
        raise _UsageError(str(exc)) from None
    return EXIT_SAFE


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from harness.errors import HarnessError

    try:
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "explore":
            return _cmd_explore(args)
        return _cmd_demo(args)
    except (_UsageError, HarnessError) as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted; no verdict", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `harness explore ... | head`: the reader left before the verdict; say no more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_USAGE


def _exit(code: int) -> None:
    """Exit with `code`, even past threads a job left running: a non-daemon one would keep the process
    alive after the report was printed."""
    import threading

    left = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not left:
        sys.exit(code)
    names = ", ".join(sorted(t.name for t in left)[:5])
    print(f"harness: a job left {len(left)} thread(s) running ({names}); exiting without waiting for them",
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run() -> None:
    """The console script's entry point."""
    _exit(main())


if __name__ == "__main__":
    run()
