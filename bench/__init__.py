"""Benchmarks. Each `bench/bench_*.py` defines `run(quick: bool) -> dict[str, dict]` returning figures
`{name: {"value": number, "unit": str, "note": str}}`; `python -m bench` runs them all."""
