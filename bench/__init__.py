"""Benchmarks (not timed tests): `python -m bench.run` runs every bench/bench_*.py module's
`run(sizes) -> list[dict]` and writes docs/benchmarks.md with the machine described."""
