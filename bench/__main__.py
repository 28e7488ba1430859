"""Run every benchmark under bench/, print a table, optionally write the figures as JSON.

    python -m bench [--quick] [--json PATH] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import traceback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for CI smoke runs)")
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH")
    parser.add_argument("--only", nargs="*", default=None, help="module names, e.g. bench_services")
    args = parser.parse_args(argv)

    here = pathlib.Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {', '.join(names)}")
        names = [n for n in names if n in args.only]

    figures: dict[str, dict] = {}
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        try:
            figures.update(module.run(quick=args.quick))
        except Exception:
            failed.append(name)
            traceback.print_exc()

    width = max((len(k) for k in figures), default=10)
    for key in sorted(figures):
        fig = figures[key]
        print(f"{key:<{width}}  {fig['value']:>12.4g} {fig['unit']:<8} {fig.get('note', '')}")
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    if failed:
        print(f"benchmarks that broke: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
