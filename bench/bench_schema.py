"""Schema conformance: schemathesis against `/openapi.json`, every default check, on a real socket.

The services run in this process under uvicorn; `st run` generates requests from the document (its
examples, coverage and fuzzing phases) and checks every answer: no 5xx, each status and media type
documented, each body valid against its schema, schema-valid requests accepted and invalid ones refused.
Each case meets freshly reset services (`_schema_hooks`). The figures are the number of generated cases
and the number of failures; the goal is 0 failures over at least 10,000 cases:

    python -m bench --only bench_schema            # the full run
    python -m bench.bench_schema --max-examples 5  # any size, with schemathesis' own report
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Examples per operation and phase: about 10,500 cases in all for the full run.
FULL_EXAMPLES = 300
QUICK_EXAMPLES = 5


def conformance(max_examples: int, seed: int = 0) -> dict[str, Any]:
    """Run schemathesis once; returns the cases generated, the failures found, the exit code and output."""
    from fake_services import FakeServices
    from fake_services.testing import serve_in_thread

    with serve_in_thread(FakeServices(seed=0)) as url:
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "bench._schema_hooks", "FAKE_SERVICES_URL": url,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        command = [str(pathlib.Path(sys.executable).with_name("st")), "run", f"{url}/openapi.json",
                   "--max-examples", str(max_examples), "--seed", str(seed), "--no-color",
                   "--suppress-health-check", "all"]
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:  # schemathesis keeps its own files where it runs
            done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=3600)
        elapsed = time.perf_counter() - started
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) (?:unique )?failures?\b", output.split("SUMMARY")[-1])
    return {"cases": int(generated.group(1)) if generated else 0,
            "failures": int(failures.group(1)) if failures and done.returncode else 0,
            "exit": done.returncode, "seconds": elapsed, "output": output}


def run(quick: bool) -> dict[str, dict]:
    examples = QUICK_EXAMPLES if quick else FULL_EXAMPLES
    result = conformance(examples)
    if result["cases"] == 0:
        raise RuntimeError(f"schemathesis generated nothing:\n{result['output'][-3000:]}")
    note = f"st run, every default check, --max-examples {examples} --seed 0, {result['seconds']:.0f} s"
    return {
        "schema.cases": {"value": result["cases"], "unit": "cases", "note": note},
        "schema.failures": {"value": result["failures"], "unit": "failures",
                            "note": f"schemathesis exit {result['exit']}; 0 is the goal"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_schema")
    parser.add_argument("--max-examples", type=int, default=FULL_EXAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = conformance(args.max_examples, args.seed)
    print(result["output"])
    print(f"cases: {result['cases']}, failures: {result['failures']}, {result['seconds']:.0f} s")
    return 0 if result["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
