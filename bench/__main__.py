"""``python -m bench``: see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fabric_client import DEFAULT_MAX_IN_FLIGHT, GatewayError

from bench.rest import RestError
from bench.run import WORKLOADS, Bench
from bench.scaling import DEFAULT_WORKLOADS, bank_counts, run_bank_counts
from bench.testbed import DEFAULT_TOPOLOGY, ROOT, TestbedError
from bench.workloads import COMPLETION_GROUP, INITIATION_GROUP


def _workloads(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(unknown) or '(none)'}; choose from {', '.join(WORKLOADS)}"
        )
    return names


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates must be numbers separated by commas, got {text!r}") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput and latency of each workload at increasing open-loop load, against the "
        "ceiling (a blind write) measured in the same run. Writes bench/results/<time>.json and .png.",
    )
    p.add_argument("--base-port", type=int, default=19000, help="ports of the bench's own network (%(default)s)")
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state" / "bench", help="its state (%(default)s)")
    p.add_argument("--profile", type=Path, help="use the running network of this profile.json instead")
    p.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY, help="topology of the own network")
    p.add_argument("--batch-timeout", help="own network only: BatchTimeout to measure instead, e.g. 100ms")
    p.add_argument("--max-message-count", type=int, help="own network only: MaxMessageCount to measure instead")
    p.add_argument("--no-gateways", action="store_true", help="own network without REST gateways (no 'rest')")
    p.add_argument("--keep-network", action="store_true", help="leave the own network running afterwards")
    p.add_argument(
        "--workloads", type=_workloads,
        help=f"{','.join(WORKLOADS)} (default: all; with --banks: {','.join(DEFAULT_WORKLOADS)})",
    )  # fmt: skip
    p.add_argument(
        "--banks", type=bank_counts,
        help="compare consortia of these bank counts, e.g. 3,5,8: one own network each, one after another",
    )  # fmt: skip
    p.add_argument("--repeat", type=int, default=1, help="with --banks: runs per bank count, interleaved (1)")
    p.add_argument("--duration", type=_positive, help="seconds per rate step (default 15; 3 with --smoke)")
    p.add_argument("--drain-timeout", type=_positive, default=30.0, help="seconds to wait for stragglers")
    p.add_argument("--rates", type=_rates, help="explicit rate steps (ops/s), e.g. 10,20,40")
    p.add_argument("--start-rate", type=_positive, help="first rate step (default per workload)")
    p.add_argument("--max-rate", type=_positive, default=1280.0, help="highest rate step (%(default)s)")
    p.add_argument("--smoke", action="store_true", help="one short step per workload: proves the bench works")
    p.add_argument("--smoke-rate", type=_positive, default=5.0, help="rate of the smoke step (%(default)s)")
    p.add_argument("--payers-per-bank", type=int, help="payer accounts per bank (default 200; 6 with --smoke)")
    p.add_argument(
        "--workers", type=int, default=256,
        help="endorse/submit threads (%(default)s); an interbank initiation holds one until its group "
        "commits, as a gateway's request thread does (at most 64 per payer bank)",
    )  # fmt: skip
    p.add_argument(
        "--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT,
        help="transactions each bank's connection has in flight until committed; more are refused and "
        "retried after a back-off (%(default)s; 0: no bound, as before decision 0032)",
    )  # fmt: skip
    p.add_argument(
        "--completer", choices=("auto", "bench", "gateway"), default="auto",
        help="who completes interbank payments: the gateways' followers, or the bench (auto: gateways if up)",
    )  # fmt: skip
    p.add_argument(
        "--completion-group", type=int, default=COMPLETION_GROUP, metavar="K",
        help="most completions the bench puts in one transaction when it completes payments itself "
        "(%(default)s; 1: each on its own, as before decision 0037). The gateways follow their own "
        "completion_group setting",
    )  # fmt: skip
    p.add_argument(
        "--initiation-group", type=int, default=INITIATION_GROUP, metavar="K",
        help="most interbank payments the bench initiates in one transaction, as a payer bank's gateway "
        "does (%(default)s; 1: each on its own, as before decision 0038). The gateways follow their own "
        "initiation_group setting",
    )  # fmt: skip
    p.add_argument(
        "--commit-wait", choices=("events", "status"), default="events",
        help="how the bench learns a commit: peers' block streams, or a CommitStatus call per transaction",
    )  # fmt: skip
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--verbose", action="store_true", help="show the network tool's output and debug logs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.workloads is None:
        args.workloads = list(DEFAULT_WORKLOADS if args.banks else WORKLOADS)
    if args.repeat < 1:
        parser().error("--repeat must be at least 1")
    if not 1 <= args.completion_group <= COMPLETION_GROUP:
        parser().error(f"--completion-group must be 1 to {COMPLETION_GROUP}")
    if not 1 <= args.initiation_group <= INITIATION_GROUP:
        parser().error(f"--initiation-group must be 1 to {INITIATION_GROUP}")
    try:
        if args.banks:
            return run_bank_counts(args)
        return Bench(args).run()
    except (TestbedError, RestError, GatewayError, RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
