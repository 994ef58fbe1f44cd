"""Cost against the number of banks: the same workloads on consortia of N banks, one after another.

``python -m bench --banks 3,5,8`` writes a topology with N banks for each N (the first banks and
every other section come from ``--topology``; the extra banks are generated, issue USD and run no
ordering node, so the orderer set, and its CPU, stay the same), starts that network on the bench's
ports, runs the selected workloads on it, stops it, and goes on with the next N. Each N is one
ordinary bench run with its own JSON; this module adds the comparison across them.

On a machine with a fixed number of cores, every added peer takes CPU from the others, so absolute
rates fall as banks join whatever the design. What says whether a design scales is the CPU **one
peer** spends on one transaction (every peer validates and commits every transaction, so a cost
that grows with N shows there), and the workload's ratio to the ceiling of the same run.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from network.topology import MAX_BANKS, parse_topology

DEFAULT_WORKLOADS = ("ceiling", "private", "transfer", "interbank")
GROWTH_LIMIT = 0.15  # more than this from the fewest to the most banks counts as growing with N
CARRIED = 0.80  # a step that completed less than this share of what it was offered is past the knee

# Jurisdictions of generated banks, each with the currency it would issue at home when the topology
# lists it. Every generated bank also issues USD, which is what the bench pays in.
_JURISDICTIONS = (
    ("GB", "GBP"), ("DE", "EUR"), ("JP", "JPY"), ("CH", "CHF"), ("AU", "AUD"), ("CA", "CAD"),
    ("FR", "EUR"), ("IN", "INR"), ("AE", "AED"), ("BR", "BRL"), ("KR", "KRW"), ("ZA", "ZAR"),
    ("MX", "MXN"), ("SE", "SEK"), ("NO", "NOK"), ("NZ", "NZD"), ("IT", "EUR"), ("ES", "EUR"),
    ("NL", "EUR"), ("IE", "EUR"),
)  # fmt: skip
_BENCH_CURRENCY = "USD"


def bank_counts(text: str) -> list[int]:
    """``--banks 3,5,8``: distinct bank counts from 2 (an interbank payment needs two) to MAX_BANKS."""
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            count = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bank counts are whole numbers and commas, got {text!r}") from None
        if not 2 <= count <= MAX_BANKS:
            raise argparse.ArgumentTypeError(f"a bank count must be from 2 to {MAX_BANKS}, got {count}")
        if count not in counts:
            counts.append(count)
    if not counts:
        raise argparse.ArgumentTypeError("give at least one bank count, e.g. 3,5,8")
    return counts


def topology_with_banks(raw: Mapping[str, Any], count: int) -> dict[str, Any]:
    """A copy of a topology document with exactly ``count`` founding banks.

    The first banks are the document's own, in order; when it has fewer, banks are added with their
    own jurisdiction, host (the next free 127.0.0.x) and no ordering node. Banks that joined a
    running channel later (``joined_banks``) are left out: the generated network founds them all.
    The result is checked by the network tool's own parser, so a count the port plan or the
    orderer rules cannot take fails here, before a network is started.
    """
    document = copy.deepcopy(dict(raw))
    document.pop("joined_banks", None)
    own = list(document.get("banks") or [])
    if not own:
        raise ValueError("the topology has no bank to start from")
    banks = own[:count]
    currencies = dict(document.get("currencies") or {})
    if _BENCH_CURRENCY not in currencies:
        raise ValueError(f"the topology must list {_BENCH_CURRENCY}: every generated bank issues it")
    taken_names = {str(bank["name"]).lower() for bank in banks}
    taken_msps = {str(bank["msp_id"]) for bank in banks}
    taken_hosts = {str(org.get("host", "127.0.0.1")) for org in (*banks, document.get("regulator") or {})}
    jurisdictions = iter(
        (code, home) for code, home in _JURISDICTIONS
        if f"{code.lower()}bank" not in taken_names and f"{code}BankMSP" not in taken_msps
    )  # fmt: skip
    next_host = 2
    while len(banks) < count:
        try:
            code, home = next(jurisdictions)
        except StopIteration:
            raise ValueError(f"no more generated jurisdictions for {count} banks") from None
        while f"127.0.0.{next_host}" in taken_hosts:
            next_host += 1
        host = f"127.0.0.{next_host}"
        taken_hosts.add(host)
        issued = [_BENCH_CURRENCY] + ([home] if home in currencies and home != _BENCH_CURRENCY else [])
        banks.append(
            {
                "name": f"{code}Bank",
                "msp_id": f"{code}BankMSP",
                "jurisdiction": code,
                "currencies": issued,
                "host": host,
                "orderers": 0,
            }
        )
    for bank in banks:
        if _BENCH_CURRENCY not in bank.get("currencies", []):
            raise ValueError(f"bank {bank.get('name')} does not issue {_BENCH_CURRENCY}, which the bench pays in")
    document["banks"] = banks
    parse_topology(document)  # raises TopologyError naming the field
    return document


def write_topology_with_banks(source: Path, target_dir: Path, count: int) -> Path:
    """``topology_with_banks`` of the file ``source``, written as ``target_dir/network.yaml``."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    document = topology_with_banks(raw, count)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "network.yaml"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


# -- the figures across runs ---------------------------------------------------------------------


def _ladder(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in info.get("steps", []) if s.get("kind", "ladder") == "ladder"]


def _carried(step: Mapping[str, Any]) -> bool:
    return bool(step.get("drained")) and step["throughput_ops"] >= CARRIED * step["offered_rate"]


def _per_peer(step: Mapping[str, Any], peers: int) -> float | None:
    peer = step["cpu_ms_per_tx"].get("peer")
    return None if peer is None or not peers else peer / peers


def _per_validator(step: Mapping[str, Any], validators: int) -> float | None:
    value = step.get("validator_cpu_ms_per_tx")
    return None if value is None or not validators else value / validators


def _total(step: Mapping[str, Any]) -> float | None:
    values = [v for v in step["cpu_ms_per_tx"].values() if v is not None]
    return sum(values) if values else None


def reference_rate(ladders: Sequence[Sequence[Mapping[str, Any]]]) -> float | None:
    """The highest offered rate that every run carried (completed at least 80 % of, and drained).

    CPU per transaction falls as blocks fill, so costs are compared at one offered rate, the same
    for every bank count; ``None`` when no rate was carried by all.
    """
    common: set[float] | None = None
    for steps in ladders:
        carried = {float(s["offered_rate"]) for s in steps if _carried(s)}
        common = carried if common is None else common & carried
    return max(common) if common else None


def summarize_scaling(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per workload and bank count: CPU one peer spends per transaction at the reference rate, the
    cost relative to the ceiling's at its reference rate, and the throughput ratio to the ceiling's
    peak, all within each run. Repeated runs of one bank count give the median and the spread."""
    runs: list[dict[str, Any]] = []
    for document in documents:
        network = document["network"]
        runs.append(
            {
                "banks": len(network["banks"]),
                "peers": int(network.get("node_counts", {}).get("peer", len(network["banks"]) + 1)),
                "validators": int(network.get("node_counts", {}).get("validator", 0)),
                "run_id": document.get("run_id"),
                "workloads": document.get("workloads", {}),
            }
        )
    counts = sorted({run["banks"] for run in runs})
    names: list[str] = []
    for run in runs:
        names += [name for name in run["workloads"] if name not in names]
    references = {
        name: reference_rate([_ladder(run["workloads"][name]) for run in runs if name in run["workloads"]])
        for name in names
    }
    workloads: dict[str, Any] = {}
    for name in names:
        by_banks: dict[str, Any] = {}
        for count in counts:
            samples = []
            for run in (r for r in runs if r["banks"] == count and name in r["workloads"]):
                sample = _sample(run, name, references)
                if sample is not None:
                    samples.append(sample)
            if samples:
                by_banks[str(count)] = _combine(samples)
        info = next(run["workloads"][name] for run in runs if name in run["workloads"])
        workloads[name] = {
            "transactions_per_operation": info.get("transactions_per_operation", 1),
            "reference_rate": references[name],
            "by_banks": by_banks,
            "growth": _growth(by_banks),
        }
    return {
        "bank_counts": counts,
        "runs": [{key: run[key] for key in ("banks", "peers", "run_id")} for run in runs],
        "growth_limit": GROWTH_LIMIT,
        "workloads": workloads,
    }


def _sample(run: Mapping[str, Any], name: str, references: Mapping[str, float | None]) -> dict[str, Any] | None:
    workloads = run["workloads"]
    info = workloads[name]
    steps = _ladder(info)
    if not steps:
        return None
    rate = references.get(name)
    at = next((s for s in steps if rate is not None and float(s["offered_rate"]) == rate), None)
    basis = "reference rate"
    if at is None:
        at, basis = info.get("peak") or max(steps, key=lambda s: s["committed_tx_per_s"]), "peak"
    peers = int(run["peers"])
    sample: dict[str, Any] = {
        "offered_rate": at["offered_rate"],
        "basis": basis,
        "committed_tx_per_s": at["committed_tx_per_s"],
        "peer_cpu_ms_per_tx": _per_peer(at, peers),
        "validator_cpu_ms_per_tx": _per_validator(at, int(run["validators"])),
        "all_cpu_ms_per_tx": _total(at),
        "ratio_to_ceiling": info.get("ratio_to_ceiling"),
        "ratio_to_ceiling_ops": info.get("ratio_to_ceiling_ops"),
        "cost_vs_ceiling": None,
    }
    ceiling = workloads.get("ceiling")
    if ceiling is not None and name != "ceiling":
        ceiling_sample = _sample(run, "ceiling", references)
        mine, theirs = sample["peer_cpu_ms_per_tx"], ceiling_sample and ceiling_sample["peer_cpu_ms_per_tx"]
        if mine and theirs:
            sample["cost_vs_ceiling"] = mine / theirs
    elif name == "ceiling":
        sample["cost_vs_ceiling"] = 1.0
    return sample


def _combine(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [s[key] for s in samples if s[key] is not None]
        return round(statistics.median(values), 3) if values else None

    def spread(key: str) -> list[float] | None:
        values = [s[key] for s in samples if s[key] is not None]
        return [round(min(values), 3), round(max(values), 3)] if values else None

    return {
        "runs": len(samples),
        "offered_rate": samples[0]["offered_rate"],
        "basis": samples[0]["basis"],
        "committed_tx_per_s": median("committed_tx_per_s"),
        "peer_cpu_ms_per_tx": median("peer_cpu_ms_per_tx"),
        "peer_cpu_ms_per_tx_range": spread("peer_cpu_ms_per_tx"),
        "validator_cpu_ms_per_tx": median("validator_cpu_ms_per_tx"),
        "validator_cpu_ms_per_tx_range": spread("validator_cpu_ms_per_tx"),
        "all_cpu_ms_per_tx": median("all_cpu_ms_per_tx"),
        "cost_vs_ceiling": median("cost_vs_ceiling"),
        "ratio_to_ceiling": median("ratio_to_ceiling"),
        "ratio_to_ceiling_ops": median("ratio_to_ceiling_ops"),
    }


def _growth(by_banks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """From the fewest to the most banks: relative change of per-peer CPU per transaction, of a
    validating peer's, and of the cost relative to the ceiling (which cancels what the machine's load
    did to the whole run). It grows when either per-transaction figure grows past the limit: the
    average over peers alone would hide a growing validation cost behind endorsements spread over
    more peers."""
    counts = sorted(int(count) for count in by_banks)
    if len(counts) < 2:
        return None
    first, last = by_banks[str(counts[0])], by_banks[str(counts[-1])]

    def change(key: str) -> float | None:
        a, b = first.get(key), last.get(key)
        return None if not a or b is None else round(b / a - 1, 3)

    per_tx = change("peer_cpu_ms_per_tx")
    validator = change("validator_cpu_ms_per_tx")
    known = [value for value in (per_tx, validator) if value is not None]
    return {
        "from_banks": counts[0],
        "to_banks": counts[-1],
        "peer_cpu_per_tx": per_tx,
        "validator_cpu_per_tx": validator,
        "cost_vs_ceiling": change("cost_vs_ceiling"),
        "grows": max(known) > GROWTH_LIMIT if known else None,
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def scaling_table(summary: Mapping[str, Any]) -> str:
    header = (
        f"{'workload':<10} {'banks':>5} {'runs':>4} {'rate':>6} {'tx/s':>7} {'peer ms/tx':>10} {'range':>11}"
        f" {'val ms/tx':>9} {'all ms/tx':>9} {'cost/ceil':>9} {'x ceil':>6} {'ops':>5}"
    )
    lines = [header, "-" * len(header)]
    for name, info in summary["workloads"].items():
        for count, row in sorted(info["by_banks"].items(), key=lambda item: int(item[0])):
            spread = row["peer_cpu_ms_per_tx_range"]
            spread_text = "-" if not spread or row["runs"] < 2 else f"{spread[0]:.2f}-{spread[1]:.2f}"
            rate = _fmt(float(row["offered_rate"]), 0) + ("" if row["basis"] == "reference rate" else "*")
            lines.append(
                f"{name:<10} {count:>5} {row['runs']:>4} {rate:>6} {_fmt(row['committed_tx_per_s'], 1):>7}"
                f" {_fmt(row['peer_cpu_ms_per_tx']):>10} {spread_text:>11}"
                f" {_fmt(row.get('validator_cpu_ms_per_tx')):>9} {_fmt(row['all_cpu_ms_per_tx']):>9}"
                f" {_fmt(row['cost_vs_ceiling']):>9} {_fmt(row['ratio_to_ceiling']):>6}"
                f" {_fmt(row['ratio_to_ceiling_ops']):>5}"
            )
        growth = info.get("growth")
        if growth:
            verdict = {True: "GROWS", False: "flat", None: "?"}[growth["grows"]]
            lines.append(
                f"{'':<10} {growth['from_banks']} -> {growth['to_banks']} banks: per-peer CPU per tx "
                f"{_percent(growth['peer_cpu_per_tx'])}, validating peer "
                f"{_percent(growth.get('validator_cpu_per_tx'))}, cost relative to the ceiling "
                f"{_percent(growth['cost_vs_ceiling'])} ({verdict}, limit +{GROWTH_LIMIT * 100:.0f} %)"
            )
    lines.append(
        "peer ms/tx = peer CPU per committed transaction divided by the number of peers, at the highest rate "
        "every bank count carried (* = at the run's peak instead); val ms/tx = the same for a peer that "
        "endorses nothing (the regulator's); cost/ceil = peer ms/tx over the ceiling's, same run; "
        "x ceil = peak tx/s over the ceiling's peak tx/s, same run (ops: counting a payment once)"
    )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.0f} %"


def plot_scaling(path: Path, summary: Mapping[str, Any], title: str) -> None:
    """Per-peer and validating-peer CPU per transaction, and cost relative to the ceiling, against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ceiling": "black", "private": "tab:gray", "transfer": "tab:blue", "hot": "tab:orange",
               "interbank": "tab:green", "rest": "tab:red"}  # fmt: skip
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 11), sharex=True)
    for name, info in summary["workloads"].items():
        rows = sorted(((int(n), row) for n, row in info["by_banks"].items()), key=lambda item: item[0])
        colour = colours.get(name)
        for axis, key in ((top, "peer_cpu_ms_per_tx"), (middle, "validator_cpu_ms_per_tx")):
            points = [(n, row) for n, row in rows if row.get(key) is not None]
            if not points:
                continue
            axis.plot([n for n, _ in points], [row[key] for _, row in points], marker="o", color=colour, label=name)
            for n, row in points:
                spread = row.get(f"{key}_range")
                if spread and row["runs"] > 1:
                    axis.vlines(n, spread[0], spread[1], color=colour, alpha=0.4)
        relative = [(n, row["cost_vs_ceiling"]) for n, row in rows if row["cost_vs_ceiling"] is not None]
        if relative and name != "ceiling":
            bottom.plot([n for n, _ in relative], [v for _, v in relative], marker="o", color=colour, label=name)
    top.set_title(title, fontsize=10)
    top.set_ylabel("peer CPU ms per transaction,\naverage over the peers")
    middle.set_ylabel("CPU ms per transaction of a\npeer that only validates")
    for axis in (top, middle):
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")
    bottom.set_ylabel("per-peer CPU per transaction / the ceiling's")
    bottom.set_xlabel("banks in the consortium (each with one peer, plus the regulator's)")
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8, loc="upper left")
    bottom.set_xticks(list(summary["bank_counts"]))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the runs ------------------------------------------------------------------------------------


def run_bank_counts(args: argparse.Namespace) -> int:
    """One bench run per bank count (``args.banks``, ``args.repeat`` times over, interleaved so a
    change in the machine's load spreads over every count), then the comparison."""
    from bench.report import write_json
    from bench.run import Bench, say

    if args.profile:
        raise ValueError("--banks builds its own networks; it cannot use --profile")
    order = [count for _ in range(args.repeat) for count in args.banks]
    if args.keep_network and len(order) > 1:
        raise ValueError("--keep-network keeps one network: give one bank count and no --repeat")
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.results_dir / f"{run_id}-banks.json"
    png_path = args.results_dir / f"{run_id}-banks.png"
    documents: list[dict[str, Any]] = []
    run_files: list[str] = []
    summary: dict[str, Any] = {}
    for i, count in enumerate(order, 1):
        state_dir = args.state_dir.parent / f"{args.state_dir.name}-{count}banks"
        topology = write_topology_with_banks(args.topology, state_dir.parent / f"{state_dir.name}-topology", count)
        say(f"\n==== {count} banks (run {i} of {len(order)}): topology {topology}")
        run_args = argparse.Namespace(**vars(args))
        run_args.topology, run_args.state_dir = topology, state_dir
        bench = Bench(run_args)
        code = bench.run()
        if code != 0:
            return code
        documents.append(bench.document)
        run_files.append(str(bench.json_path))
        summary = summarize_scaling(documents)
        document = {
            "run_id": run_id,
            "command": " ".join(sys.argv),
            "machine": {"cpus": os.cpu_count()},
            "runs": run_files,
            "summary": summary,
        }
        write_json(json_path, document)
    title = f"run {run_id}: cost against the number of banks, {os.cpu_count()} CPUs"
    try:
        plot_scaling(png_path, summary, title)
    except ImportError as error:
        say(f"    no plot: {error}")
    say("")
    say(scaling_table(summary))
    say(f"\nresults: {json_path}\nplot:    {png_path}")
    return 0
