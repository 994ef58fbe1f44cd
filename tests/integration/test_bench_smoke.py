"""``python -m bench --smoke`` against the shared test network: the bench still runs end to end and
writes sane figures. It proves the benchmark works; it asserts nothing about speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_WORKLOADS = ("ceiling", "private", "transfer", "hot", "interbank")

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def smoke(profile_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    results = tmp_path_factory.mktemp("bench-results")
    command = [
        sys.executable, "-m", "bench", "--profile", str(profile_path), "--smoke", "--results-dir", str(results),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, f"bench --smoke failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    documents = sorted(results.glob("*.json"))
    assert len(documents) == 1, f"expected one results file, found {documents}"
    return json.loads(documents[0].read_text()), results, run.stdout


def _only_step(document: dict[str, Any], name: str) -> dict[str, Any]:
    workload = document["workloads"][name]
    assert "skipped" not in workload, f"{name} was skipped: {workload.get('skipped')}"
    assert len(workload["steps"]) == 1, "a smoke run has one rate step per workload"
    step: dict[str, Any] = workload["steps"][0]
    return step


@pytest.mark.parametrize("name", CLIENT_WORKLOADS)
def test_client_workloads_commit_and_report_sane_figures(smoke: tuple[dict[str, Any], Path, str], name: str) -> None:
    document, _, _ = smoke
    step = _only_step(document, name)
    per_operation = document["workloads"][name]["transactions_per_operation"]
    assert step["operations_ok"] > 0
    assert step["committed_tx"] >= step["operations_ok"] * per_operation
    assert step["throughput_ops"] > 0
    assert 0.0 <= step["failure_rate"] <= 1.0
    assert 0.0 <= step["mvcc_conflict_rate"] <= 1.0
    latency = step["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    # Every committed transaction costs the peers and orderers some CPU.
    assert step["cpu_ms_per_tx"]["peer"] > 0
    assert step["cpu_ms_per_tx"]["orderer"] > 0
    assert step["blocks"] > 0


def test_hot_merchant_has_no_mvcc_conflicts(smoke: tuple[dict[str, Any], Path, str]) -> None:
    document, _, _ = smoke
    step = _only_step(document, "hot")
    assert step["operations_ok"] > 0
    assert step["mvcc_conflicts"] == 0


def test_ratios_are_against_the_ceiling_of_the_same_run(smoke: tuple[dict[str, Any], Path, str]) -> None:
    document, _, _ = smoke
    workloads = document["workloads"]
    ceiling = workloads["ceiling"]["peak"]["committed_tx_per_s"]
    assert workloads["ceiling"]["ratio_to_ceiling"] == 1.0
    transfer = workloads["transfer"]
    assert transfer["ratio_to_ceiling"] == pytest.approx(transfer["peak"]["committed_tx_per_s"] / ceiling, abs=1e-3)


def test_rest_workload_runs_when_gateways_are_up(smoke: tuple[dict[str, Any], Path, str]) -> None:
    document, _, _ = smoke
    if not document["network"]["gateways"]:
        assert document["workloads"]["rest"]["skipped"] == "no REST gateway is running"
        return
    step = _only_step(document, "rest")
    assert step["operations_ok"] > 0, step["errors"]
    assert step["committed_tx"] == 2 * step["operations_ok"]


def test_table_and_plot_are_written(smoke: tuple[dict[str, Any], Path, str]) -> None:
    document, results, stdout = smoke
    assert "peak tx/s" in stdout and "ceiling" in stdout
    plot = Path(document["plot"])
    assert plot.parent == results
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert document["network"]["block_cutting"]["batch_timeout"]
