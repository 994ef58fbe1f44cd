"""One benchmark run: network, preload, each workload's rate ladder, then the report."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fabric_client.profile import connect_org

from bench.books import Books, Preloader
from bench.cpu import OVERSIGHT_GATEWAY, VALIDATOR, CpuMeter
from bench.load import AccountPool, Client, Driver, StepRun, run_step
from bench.metrics import FabricMetrics, Totals, metrics_urls
from bench.report import (
    OVERLOAD_GOAL,
    overload_figure,
    peak_step,
    plot,
    step_after_peak,
    summarize_step,
    table,
    write_json,
)
from bench.rest import Merchant, open_merchants, run_rest_step, users_for
from bench.testbed import ROOT, Testbed, topology_with_block_cutting
from bench.watch import CommitWatcher, PaymentWatcher
from bench.workloads import Workload, ceiling, escrows, interbank, private_ceiling, transfers

log = logging.getLogger("bench")

WORKLOADS = ("ceiling", "private", "transfer", "hot", "interbank", "escrow", "rest")
START_RATES = {
    "ceiling": 10.0, "private": 10.0, "transfer": 10.0, "hot": 10.0, "interbank": 5.0, "escrow": 5.0, "rest": 2.0,
}  # fmt: skip
GROWTH = 1.10  # a step must beat the best so far by 10 % for the ladder to go on
SATURATED = 0.80  # a step that completes less than this share of the offered rate is past the knee
# The REST ladder needs one merchant account (opened through a gateway) per 0.5 request/s.
REST_MAX_RATE = 64.0
MAX_P50_S = 10.0
# The overload step, when the ladder stopped at its peak: offered this many times the peak's rate.
OVERLOAD_FACTOR = 2.0


# What one rate step measured: the run, CPU seconds per kind, (blocks, transactions) seen, and the
# Fabric histogram totals before and after.
Measured = tuple[StepRun, dict[str, float], tuple[int, int], Totals, Totals]


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.smoke: bool = args.smoke
        self.duration: float = args.duration if args.duration else (3.0 if self.smoke else 15.0)
        self.drain: float = args.drain_timeout
        self.run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.tag = f"{self.run_id[2:8]}{secrets.token_hex(3)}"  # in account ids and keys: unique per run
        self.results_dir: Path = args.results_dir
        self.json_path = self.results_dir / f"{self.run_id}.json"
        self.png_path = self.results_dir / f"{self.run_id}.png"
        self.testbed: Testbed | None = None
        self.clients: dict[str, Client] = {}
        self.payment_watchers: dict[str, PaymentWatcher] = {}
        self.driver: Driver | None = None
        self.preloader: Preloader | None = None
        self.fabric_metrics = FabricMetrics([], [])
        self.document: dict[str, Any] = {}

    # -- the whole run -----------------------------------------------------------
    def run(self) -> int:
        selected = self.args.workloads
        started = time.time()
        self.testbed = self._testbed()
        try:
            self._connect()
            bed = self.testbed
            gateways = bed.healthy_gateways()
            pids = {
                **bed.pids_by_kind(),
                VALIDATOR: bed.validator_pids(),
                OVERSIGHT_GATEWAY: bed.oversight_gateway_pids(),
            }
            completer = self.args.completer
            if completer == "auto":
                completer = "gateway" if gateways else "bench"
            self.document = {
                "run_id": self.run_id,
                "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
                "command": " ".join(sys.argv),
                "git_commit": _git_commit(),
                "machine": {"cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg())},
                "network": {
                    "profile": str(bed.profile_path),
                    "started_by_bench": bed.own,
                    "banks": bed.banks(),
                    "block_cutting": bed.block_cutting().__dict__,
                    "gateways": gateways,
                    # per-node figures (CPU one peer spends per transaction) divide by these
                    "node_counts": {kind: len(found) for kind, found in sorted(pids.items())},
                },
                "settings": {
                    "smoke": self.smoke,
                    "duration_s": self.duration,
                    "drain_timeout_s": self.drain,
                    "workers": self.args.workers,
                    "payers_per_bank": self._payers_per_bank(),
                    "interbank_completer": completer,
                    "completion_group": self.args.completion_group if completer == "bench" else None,
                    "initiation_group": self.args.initiation_group,
                    "commit_wait": self.args.commit_wait,
                    "max_in_flight_per_bank": self.args.max_in_flight or None,
                },
                "workloads": {},
            }
            books = self._preload()
            assert self.driver is not None
            pools = {bank: AccountPool(accounts) for bank, accounts in books.payers.items()}
            nodes = bed.nodes()
            meter = CpuMeter(pids)
            self.fabric_metrics = FabricMetrics(*metrics_urls(bed.profile, nodes))
            banks = bed.banks()
            have = bed.chaincodes()
            for name in selected:
                if name == "ceiling":
                    if "conformance" not in have:
                        self._skip(name, "the conformance chaincode is not deployed (up --with-test-chaincodes)")
                        continue
                    self._ladder(ceiling(self.driver, banks, self.tag), meter)
                elif name == "private":
                    if "conformance" not in have:
                        self._skip(name, "the conformance chaincode is not deployed (up --with-test-chaincodes)")
                        continue
                    self._ladder(private_ceiling(self.driver, banks, self.tag), meter)
                elif name == "transfer":
                    self._ladder(transfers(self.driver, books, pools, banks, self.tag), meter)
                elif name == "hot":
                    self._ladder(transfers(self.driver, books, pools, banks, self.tag, hot=True), meter)
                elif name == "interbank":
                    if completer == "gateway":
                        self._payment_watchers()
                    workload = interbank(
                        self.driver, books, pools, banks, self.tag,
                        completer=completer, payment_watchers=self.payment_watchers,
                        completion_group=self.args.completion_group, initiation_group=self.args.initiation_group,
                    )  # fmt: skip
                    self._ladder(workload, meter)
                elif name == "escrow":
                    self._ladder(escrows(self.driver, books, pools, banks, self.tag), meter)
                elif name == "rest":
                    if not gateways:
                        self._skip(name, "no REST gateway is running")
                        continue
                    self._rest(books, meter)
                self._ratios()
                write_json(self.json_path, self.document)
            self._finish(started)
            return 0
        finally:
            self._close()

    # -- set-up ---------------------------------------------------------------------
    def _testbed(self) -> Testbed:
        if self.args.profile:
            say(f"==> Using the network of {self.args.profile}")
            return Testbed.from_profile(self.args.profile)
        topology = self.args.topology
        if self.args.batch_timeout or self.args.max_message_count:
            topology = topology_with_block_cutting(
                topology,
                self.args.state_dir.parent / f"{self.args.state_dir.name}-topology",
                self.args.batch_timeout,
                self.args.max_message_count,
            )
        say(f"==> Starting the bench network (base port {self.args.base_port}, state {self.args.state_dir})")
        return Testbed.start_own(
            self.args.state_dir, self.args.base_port, topology=topology,
            gateways=not self.args.no_gateways, log=say if self.args.verbose else None,
        )  # fmt: skip

    def _connect(self) -> None:
        bed = self.testbed
        assert bed is not None
        for bank in bed.banks():
            gateway = connect_org(bed.profile_path, bank, max_in_flight=self.args.max_in_flight or None)
            watcher = CommitWatcher(gateway, bed.channel, bank)
            watcher.start()
            self.clients[bank] = Client(bank, gateway, watcher, bed.channel)
        for client in self.clients.values():
            if not client.watcher.ready.wait(10):
                raise RuntimeError(f"the block stream of {client.org} did not start")
        self.driver = Driver(self.clients, workers=self.args.workers, commit_wait=self.args.commit_wait)
        self._warm_up()

    def _warm_up(self) -> None:
        """One transaction per bank, seen by every watcher: the streams are live, the code is loaded."""
        assert self.driver is not None and self.testbed is not None
        chaincode = "conformance" if "conformance" in self.testbed.chaincodes() else "deposit_token"
        for attempt in range(3):
            seen = threading.Semaphore(0)

            def saw(code: int, at: float, seen: threading.Semaphore = seen) -> None:
                seen.release()

            expected = 0
            for bank in self.clients:
                watch = dict.fromkeys(self.clients, saw)
                if chaincode == "conformance":
                    key = f"bench-{self.tag}-warm-{bank}-{attempt}"
                    self.driver.submit(bank, chaincode, "PutState", key, "v", watch=watch)
                else:
                    self.driver.submit(bank, chaincode, "GetReferenceData", watch=watch)
                expected += len(watch)
            if all(seen.acquire(timeout=30) for _ in range(expected)):
                return
        raise RuntimeError("warm-up transactions were not seen on every peer's block stream")

    def _payers_per_bank(self) -> int:
        if self.args.payers_per_bank:
            return int(self.args.payers_per_bank)
        return 6 if self.smoke else 200

    def _preload(self) -> Books:
        assert self.testbed is not None
        banks = self.testbed.banks()
        payers = self._payers_per_bank()
        payees = 4 if self.smoke else 20
        say(f"==> Preloading books: {payers} payers and {payees} payees per bank, one merchant")
        t = time.time()
        self.preloader = Preloader(self.clients, self.testbed.profile["orgs"], log_line=say)
        books = self.preloader.preload(self.tag, banks, payers, payees)
        seconds = time.time() - t
        say(f"    {books.transactions} transactions in {seconds:.1f}s")
        self.document["preload"] = {
            "transactions": books.transactions,
            "seconds": round(seconds, 1),
            "pending_credit_source": books.pending_credit_source,
        }
        return books

    def _payment_watchers(self) -> None:
        for bank, client in self.clients.items():
            if bank not in self.payment_watchers:
                watcher = PaymentWatcher(client.gateway, client.channel, bank)
                watcher.start()
                self.payment_watchers[bank] = watcher
        time.sleep(1.0)  # let the event streams attach before the first payment

    # -- ladders --------------------------------------------------------------------------
    def _rates(self, name: str) -> list[float]:
        if self.args.rates:
            return list(self.args.rates)
        if self.smoke:
            return [self.args.smoke_rate if name != "rest" else min(self.args.smoke_rate, 2.0)]
        rate = self.args.start_rate or START_RATES[name]
        highest = min(self.args.max_rate, REST_MAX_RATE) if name == "rest" else self.args.max_rate
        rates = []
        while rate <= highest:
            rates.append(rate)
            rate *= 2
        return rates

    def _record(self, name: str, info: dict[str, Any]) -> dict[str, Any]:
        workloads: dict[str, Any] = self.document["workloads"]
        workloads[name] = info
        return info

    def _skip(self, name: str, reason: str) -> None:
        say(f"==> {name}: skipped ({reason})")
        self._record(name, {"skipped": reason, "steps": []})
        write_json(self.json_path, self.document)

    def _ladder(self, workload: Workload, meter: CpuMeter) -> None:
        assert self.driver is not None
        driver = self.driver
        say(f"==> {workload.name}: {workload.title}" + (f" ({workload.notes})" if workload.notes else ""))
        info = self._record(
            workload.name,
            {
                "title": workload.title,
                "notes": workload.notes,
                "unit": "payments" if workload.transactions_per_operation == 2 else "tx",
                "transactions_per_operation": workload.transactions_per_operation,
                "steps": [],
            },
        )

        def step(rate: float) -> Measured:
            return self._measure(meter, lambda: run_step(driver, workload.operation, rate, self.duration, self.drain))

        self._climb(workload.name, info, workload.transactions_per_operation, step)

    def _measure(self, meter: CpuMeter, run: Callable[[], StepRun]) -> Measured:
        self._settle()
        stages_before = self.fabric_metrics.snapshot()
        before, blocks_before = meter.snapshot(), self._blocks()
        result = run()
        after, blocks_after = meter.snapshot(), self._blocks()
        stages_after = self.fabric_metrics.snapshot()
        blocks = (blocks_after[0] - blocks_before[0], blocks_after[1] - blocks_before[1])
        return result, CpuMeter.delta(before, after), blocks, stages_before, stages_after

    def _climb(
        self,
        name: str,
        info: dict[str, Any],
        per_operation: int,
        step: Callable[[float], Measured],
    ) -> None:
        best = 0.0
        for rate in self._rates(name):
            summary = self._summarize(step, rate, per_operation, "ladder")
            info["steps"].append(summary)
            write_json(self.json_path, self.document)
            throughput = summary["committed_tx_per_s"]
            p50 = summary["latency_ms"]["p50"]
            if self.smoke:
                break
            grew = throughput >= best * GROWTH
            best = max(best, throughput)
            if not grew or summary["failure_rate"] > 0.5 or (p50 is not None and p50 > MAX_P50_S * 1000):
                break
            if not summary["drained"] or summary["throughput_ops"] < SATURATED * rate:
                break
        peak = peak_step(info["steps"])
        info["peak"] = peak
        if peak and not self.smoke and peak["committed_tx_per_s"] > 0 and step_after_peak(info["steps"], peak) is None:
            # The ladder stopped at its peak (it completed too little of what it was offered): offer
            # more once, to see whether the network levels off or collapses past it.
            rate = peak["offered_rate"] * OVERLOAD_FACTOR
            info["steps"].append(self._summarize(step, rate, per_operation, "overload"))
        info["overload"] = overload_figure(info["steps"], peak)
        if peak and not self.smoke and peak["throughput_ops"] > 0:
            half = round(peak["throughput_ops"] / 2, 1)
            info["half_peak"] = self._summarize(step, half, per_operation, "half_peak")
            info["steps"].append(info["half_peak"])

    def _summarize(
        self,
        step: Callable[[float], Measured],
        rate: float,
        per_operation: int,
        kind: str,
    ) -> dict[str, Any]:
        run, cpu, blocks, stages_before, stages_after = step(rate)
        summary = summarize_step(run, per_operation, cpu, blocks)
        summary["kind"] = kind
        summary["fabric"] = FabricMetrics.summarize(stages_before, stages_after, summary["committed_tx"])
        latency = summary["latency_ms"]
        label = {"half_peak": "½ peak", "overload": "overload"}.get(kind, "offered")
        say(
            f"    {label} {rate:>6.1f}/s: {summary['throughput_ops']:>7.1f} ops/s"
            f" {summary['committed_tx_per_s']:>7.1f} tx/s  p50 {latency['p50']} p95 {latency['p95']}"
            f" p99 {latency['p99']} ms  fail {summary['failure_rate'] * 100:.1f}%"
            f"  refused {summary['refused_rate'] * 100:.1f}%"
            f"  mvcc {summary['mvcc_conflicts']}  tx/block {summary['transactions_per_block']}"
            + ("" if summary["drained"] else "  (not drained)")
        )
        if summary["errors"]:
            say(f"      errors: {summary['errors']}")
        return summary

    def _blocks(self) -> tuple[int, int]:
        first = next(iter(self.clients.values()))
        return first.watcher.counters()

    def _settle(self, quiet: float = 1.5, limit: float = 120.0) -> None:
        """Wait until no block has been committed for ``quiet`` seconds (a backlog from the last step,
        such as payments a gateway is still completing, must not count in the next one)."""
        deadline = time.time() + limit
        last = self._blocks()
        quiet_since = time.time()
        while time.time() < deadline:
            time.sleep(0.25)
            now = self._blocks()
            if now != last:
                last, quiet_since = now, time.time()
            elif time.time() - quiet_since >= quiet:
                return

    # -- REST -------------------------------------------------------------------------------
    def _rest(self, books: Books, meter: CpuMeter) -> None:
        assert self.testbed is not None
        bed = self.testbed
        rates = self._rates("rest")
        say("==> rest: interbank payments through the REST gateways (Locust, headless)")
        self._payment_watchers()
        # Enough merchants for the overload step too (twice the peak's rate at most).
        count = users_for(min(max(rates) * OVERLOAD_FACTOR, REST_MAX_RATE * OVERLOAD_FACTOR))
        assert self.preloader is not None, "the books are preloaded before any workload"
        merchants: list[Merchant] = open_merchants(bed.profile["orgs"], bed.banks(), books, self.preloader, count, say)
        info = self._record(
            "rest",
            {
                "title": "interbank payment via POST /v1/payments (Locust), completed by the payee's gateway",
                "notes": f"{len(merchants)} merchants, {1 / 0.5:.0f} s between a merchant's requests at most",
                "unit": "payments",
                "transactions_per_operation": 2,
                "steps": [],
            },
        )
        work_dir = self.results_dir / f"{self.run_id}-rest"

        def step(rate: float) -> Measured:
            def run() -> StepRun:
                return run_rest_step(
                    merchants, self.payment_watchers, rate, self.duration, self.drain, work_dir, f"rate{rate:g}"
                )[0]

            return self._measure(meter, run)

        self._climb("rest", info, 2, step)

    # -- results ----------------------------------------------------------------------------
    def _ratios(self) -> None:
        workloads: dict[str, Any] = self.document["workloads"]
        ceiling_peak = (workloads.get("ceiling") or {}).get("peak")
        if not ceiling_peak or not ceiling_peak["committed_tx_per_s"]:
            return
        reference = ceiling_peak["committed_tx_per_s"]
        for info in workloads.values():
            peak = info.get("peak")
            if peak:
                info["ratio_to_ceiling"] = round(peak["committed_tx_per_s"] / reference, 3)
                info["ratio_to_ceiling_ops"] = round(peak["throughput_ops"] / reference, 3)

    def _targets(self) -> dict[str, Any]:
        assert self.testbed is not None
        workloads: dict[str, Any] = self.document["workloads"]
        timeout_ms = self.testbed.block_cutting().batch_timeout_ms
        targets: dict[str, Any] = {}

        def ratio(name: str, key: str, goal: float) -> dict[str, Any]:
            value = (workloads.get(name) or {}).get(key)
            return {"goal": f">= {goal}", "value": value, "met": None if value is None else value >= goal}

        targets["transfer_ratio_to_ceiling"] = ratio("transfer", "ratio_to_ceiling", 0.70)
        targets["rest_payments_ratio_to_ceiling"] = ratio("rest", "ratio_to_ceiling_ops", 0.60)
        targets["rest_transactions_ratio_to_ceiling"] = ratio("rest", "ratio_to_ceiling", 0.60)
        hot_steps = (workloads.get("hot") or {}).get("steps") or []
        conflicts = sum(s["mvcc_conflicts"] for s in hot_steps) if hot_steps else None
        targets["hot_mvcc_conflicts"] = {
            "goal": "0", "value": conflicts, "met": None if conflicts is None else conflicts == 0,
        }  # fmt: skip
        for name, info in workloads.items():
            overload = info.get("overload")
            if overload:
                targets[f"{name}_overload_ratio"] = {
                    "goal": f">= {OVERLOAD_GOAL} (committed tx/s of the step after the peak / the peak's)",
                    "value": overload["ratio"],
                    "met": overload["ratio"] >= OVERLOAD_GOAL,
                }
        limit = timeout_ms + 150
        for name, info in workloads.items():
            half = info.get("half_peak")
            # The goal is for one transaction; a payment is two in sequence, each waiting for its block.
            if half and info.get("transactions_per_operation") == 1:
                p50 = half["latency_ms"]["p50"]
                targets[f"{name}_p50_at_half_peak_ms"] = {
                    "goal": f"<= {limit:g} (batch timeout + 150 ms)",
                    "value": p50,
                    "met": None if p50 is None else p50 <= limit,
                }
        return targets

    def _finish(self, started: float) -> None:
        self._ratios()
        self.document["targets"] = self._targets()
        self.document["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        self.document["elapsed_s"] = round(time.time() - started, 1)
        self.document["machine"]["loadavg_at_end"] = list(os.getloadavg())
        self.document["plot"] = str(self.png_path)
        write_json(self.json_path, self.document)
        workloads = self.document["workloads"]
        try:
            cutting = self.document["network"]["block_cutting"]
            title = (
                f"{'smoke: ' if self.smoke else ''}run {self.run_id}, "
                f"BatchTimeout {cutting['batch_timeout']}, MaxMessageCount {cutting['max_message_count']}, "
                f"{os.cpu_count()} CPUs"
            )
            goal = self.testbed.block_cutting().batch_timeout_ms + 150 if self.testbed else None
            plot(self.png_path, workloads, title, goal)
        except ImportError as error:
            say(f"    no plot: {error}")
        say("")
        say(table(workloads))
        say("")
        for name, target in self.document["targets"].items():
            mark = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
            say(f"  target {name}: {target['value']} (goal {target['goal']}): {mark}")
        say(f"\nresults: {self.json_path}\nplot:    {self.png_path}")

    def _close(self) -> None:
        for watcher in self.payment_watchers.values():
            watcher.stop()
        for client in self.clients.values():
            client.watcher.stop()
        if self.driver is not None:
            self.driver.close()
        for client in self.clients.values():
            client.gateway.close()
        if self.testbed is not None and self.testbed.own and not self.args.keep_network:
            say("==> Stopping the bench network")
            say("    " + self.testbed.down())


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return result.stdout.strip() or None
