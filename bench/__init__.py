"""``make bench``: throughput and latency of the deposit-token network, measured against its own
ceiling (``python -m bench --help``; docs/benchmarks.md)."""
