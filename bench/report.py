"""Figures of a run: per-step summaries, the JSON file, the terminal table and the PNG plot."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.cpu import KINDS, OVERSIGHT_GATEWAY, VALIDATOR
from bench.load import MVCC, OK, REFUSED, StepRun

Step = dict[str, Any]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def summarize_step(
    run: StepRun,
    transactions_per_operation: int,
    cpu_seconds: Mapping[str, float],
    blocks: tuple[int, int],
) -> Step:
    """One rate step in numbers. Throughput counts operations that ended well, over the time from the
    first due operation to the last commit (at least the step's duration), so a backlog that drains
    late lowers it."""
    tracker = run.tracker
    ok = tracker.outcomes[OK]
    refused = tracker.outcomes[REFUSED]
    last = tracker.last_finish if tracker.last_finish else run.t0 + run.duration
    window = max(run.duration, last - run.t0)
    wall = max(1e-9, run.end - run.t0)
    latencies = sorted(tracker.latencies)
    validated = tracker.transactions_valid + tracker.transactions_conflicted + tracker.transactions_invalid
    committed = tracker.transactions_valid
    block_count, block_transactions = blocks
    return {
        "offered_rate": run.rate,
        "duration_s": run.duration,
        "operations_offered": run.sent,
        "operations_ok": ok,
        "outcomes": dict(tracker.outcomes),
        "throughput_ops": round(ok / window, 2),
        "committed_tx": committed,
        "committed_tx_per_s": round(committed / window, 2),
        "transactions_per_operation": transactions_per_operation,
        "latency_ms": {
            "p50": _ms(percentile(latencies, 50)),
            "p95": _ms(percentile(latencies, 95)),
            "p99": _ms(percentile(latencies, 99)),
            "max": _ms(latencies[-1] if latencies else None),
        },
        # Refused early (overloaded, through every back-off) is not a failure: nothing was done, and
        # the client was told so at once; it is counted on its own.
        "failure_rate": round((run.sent - ok - refused) / run.sent, 4) if run.sent else 0.0,
        "refused_rate": round(refused / run.sent, 4) if run.sent else 0.0,
        "mvcc_conflict_rate": round(tracker.transactions_conflicted / validated, 4) if validated else 0.0,
        "mvcc_conflicts": tracker.transactions_conflicted,
        "operations_mvcc": tracker.outcomes[MVCC],
        "cpu_ms_per_tx": {
            kind: (round(cpu_seconds.get(kind, 0.0) * 1000 / committed, 2) if committed else None) for kind in KINDS
        },
        "cpu_cores_busy": {kind: round(cpu_seconds.get(kind, 0.0) / wall, 2) for kind in KINDS},
        # all validating-only peers together (their count is in the run's network.node_counts)
        "validator_cpu_ms_per_tx": (
            round(cpu_seconds[VALIDATOR] * 1000 / committed, 2) if committed and VALIDATOR in cpu_seconds else None
        ),
        # the regulator's gateway, watching: per transaction and per operation (a REST payment is two)
        "oversight_gateway_cpu_ms_per_tx": (
            round(cpu_seconds[OVERSIGHT_GATEWAY] * 1000 / committed, 2)
            if committed and OVERSIGHT_GATEWAY in cpu_seconds
            else None
        ),
        "oversight_gateway_cpu_ms_per_operation": (
            round(cpu_seconds[OVERSIGHT_GATEWAY] * 1000 / ok, 2) if ok and OVERSIGHT_GATEWAY in cpu_seconds else None
        ),
        "blocks": block_count,
        "transactions_per_block": round(block_transactions / block_count, 1) if block_count else None,
        "drained": run.drained,
        "window_s": round(window, 2),
        "errors": dict(tracker.errors.most_common(5)),
        "notes": dict(tracker.extra),
    }


def peak_step(steps: Sequence[Step]) -> Step | None:
    ladder = [s for s in steps if s.get("kind", "ladder") == "ladder"]
    if not ladder:
        return None
    return max(ladder, key=lambda s: s["committed_tx_per_s"])


def step_after_peak(steps: Sequence[Step], peak: Step) -> Step | None:
    """The step offered the next rate above the peak's (a ladder step, or the overload step)."""
    above = [
        s
        for s in steps
        if s.get("kind", "ladder") in ("ladder", "overload") and s["offered_rate"] > peak["offered_rate"]
    ]
    return min(above, key=lambda s: s["offered_rate"]) if above else None


def overload_figure(steps: Sequence[Step], peak: Step | None) -> dict[str, Any] | None:
    """Committed throughput of the step after the peak as a share of the peak's: how gracefully the
    network levels off when offered more than it commits (goal: at least ``OVERLOAD_GOAL``)."""
    if peak is None or not peak["committed_tx_per_s"]:
        return None
    after = step_after_peak(steps, peak)
    if after is None:
        return None
    return {
        "ratio": round(after["committed_tx_per_s"] / peak["committed_tx_per_s"], 3),
        "peak_offered_rate": peak["offered_rate"],
        "peak_tx_per_s": peak["committed_tx_per_s"],
        "offered_rate": after["offered_rate"],
        "tx_per_s": after["committed_tx_per_s"],
        "failure_rate": after["failure_rate"],
        "refused_rate": after.get("refused_rate", 0.0),
        "drained": after["drained"],
        "p50_ms": after["latency_ms"]["p50"],
    }


OVERLOAD_GOAL = 0.90


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(workloads: Mapping[str, Mapping[str, Any]]) -> str:
    """The short terminal summary: each workload at its peak, and its latency at half the peak."""
    header = (
        f"{'workload':<10} {'peak tx/s':>9} {'ops/s':>7} {'x ceil':>6} {'p50':>6} {'p95':>6} {'p99':>6}"
        f" {'fail%':>6} {'mvcc%':>6} {'½pk p50':>7} {'ovl':>5}  CPU ms/tx peer/ord/cc/gw/client"
    )
    lines = [header, "-" * len(header)]
    for name, result in workloads.items():
        peak = result.get("peak")
        if not peak:
            lines.append(f"{name:<10} (no result: {result.get('skipped') or 'no step finished'})")
            continue
        half = result.get("half_peak") or {}
        cpu = peak["cpu_ms_per_tx"]
        cpu_text = "/".join(_fmt(cpu.get(kind), 1) for kind in KINDS)
        latency = peak["latency_ms"]
        ratio = _fmt(result.get("ratio_to_ceiling"), 2)
        half_p50 = _fmt((half.get("latency_ms") or {}).get("p50"))
        overload = _fmt((result.get("overload") or {}).get("ratio"), 2)
        lines.append(
            f"{name:<10} {peak['committed_tx_per_s']:>9.1f} {peak['throughput_ops']:>7.1f} {ratio:>6}"
            f" {_fmt(latency['p50']):>6} {_fmt(latency['p95']):>6} {_fmt(latency['p99']):>6}"
            f" {peak['failure_rate'] * 100:>6.1f} {peak['mvcc_conflict_rate'] * 100:>6.2f}"
            f" {half_p50:>7} {overload:>5}  {cpu_text}"
        )
    lines.append(
        "peak = the rate step with the most committed tx/s; latency in ms from due time to commit; "
        "x ceil = committed tx/s / ceiling tx/s; ovl = committed tx/s of the step after the peak / the peak's"
    )
    return "\n".join(lines)


def plot(
    path: Path, workloads: Mapping[str, Mapping[str, Any]], title: str, latency_goal_ms: float | None = None
) -> None:
    """Throughput and latency against offered load, one line per workload (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 9), sharex=True)
    colours = {"ceiling": "black", "private": "tab:gray", "transfer": "tab:blue", "hot": "tab:orange",
               "interbank": "tab:green", "rest": "tab:red"}  # fmt: skip
    lowest, highest = math.inf, 1.0
    for name, result in workloads.items():
        steps = sorted(
            (s for s in result.get("steps", []) if s.get("kind", "ladder") in ("ladder", "overload")),
            key=lambda s: s["offered_rate"],
        )
        if not steps:
            continue
        colour = colours.get(name)
        offered = [s["offered_rate"] for s in steps]
        highest = max(highest, *offered)
        lowest = min(lowest, *offered)
        top.plot(offered, [s["throughput_ops"] for s in steps], marker="o", color=colour,
                 label=f"{name} ({result.get('unit', 'ops')}/s)")  # fmt: skip
        p50 = [s["latency_ms"]["p50"] for s in steps]
        p99 = [s["latency_ms"]["p99"] for s in steps]
        bottom.plot(offered, p50, marker="o", color=colour, label=f"{name} p50")
        bottom.plot(offered, p99, marker="x", linestyle="--", color=colour, label=f"{name} p99")
    if lowest < highest:
        top.plot([lowest, highest], [lowest, highest], color="grey", linewidth=0.8, linestyle=":",
                 label="done = offered")  # fmt: skip
    if latency_goal_ms:
        bottom.axhline(latency_goal_ms, color="grey", linewidth=0.8, linestyle=":",
                       label=f"{latency_goal_ms:g} ms = batch timeout + 150 ms")  # fmt: skip
    top.set_ylabel("completed operations per second (log scale)")
    top.set_yscale("log")
    top.set_title(title, fontsize=10)
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency, ms (log scale)")
    bottom.set_xlabel("offered load, operations per second (log scale)")
    bottom.set_xscale("log")
    top.set_xscale("log")
    bottom.grid(True, which="both", alpha=0.3)
    bottom.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
