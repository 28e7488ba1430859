"""The `harness` command: `serve` the fake services, `explore` a scenario, run the `demo`.

Exit codes: 0 safe (or a clean exit), 1 a violation was found, 2 bad usage or a broken setup.
"""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the fake services on a socket")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8888)
    serve.add_argument("--seed", type=int, default=None, help="make generated ids deterministic")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from fake_services.server import serve

        serve(host=args.host, port=args.port, seed=args.seed)
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
