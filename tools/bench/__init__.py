"""`justtrades bench`: one table of latency and throughput, each beside its reference."""

from tools.bench.core import run_bench

__all__ = ["run_bench"]
