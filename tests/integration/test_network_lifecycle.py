"""A second, throw-away network: from nothing, port clashes, and a clean `down`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from network.ports import plan_ports, port_in_use
from network.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
BASE = int(os.environ.get("DT_TEST_LIFECYCLE_PORT", "17600"))
STATE = (ROOT / ".state" / f"lifecycle-{BASE}").resolve()

pytestmark = pytest.mark.network


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "network", "--base-port", str(BASE), "--state-dir", str(STATE), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def our_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(STATE).encode() in environ or str(STATE).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def test_a_taken_port_is_named_in_the_error() -> None:
    plan = plan_ports(load_topology(), BASE)
    busy = plan.peers["HKBankMSP"].operations
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((plan.peers["HKBankMSP"].host, busy))
        sock.listen()
        result = cli("up", "--no-deploy", "--no-gateways")
    assert result.returncode != 0
    assert f"port {busy}" in result.stderr
    assert "HKBankMSP" in result.stderr
    assert not STATE.exists() or not our_pids()


def test_up_from_nothing_then_down_frees_everything() -> None:
    plan = plan_ports(load_topology(), BASE)
    result = cli("up", "--no-deploy", "--no-gateways")
    try:
        assert result.returncode == 0, result.stderr + result.stdout
        assert our_pids(), "no process of the network found"
        status = cli("status")
        assert status.returncode == 0, status.stdout
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert our_pids() == []
    fabric = [item for item in plan.listeners() if "gateway" not in item.what and "chaincode" not in item.what]
    assert [item for item in fabric if port_in_use(item.port, item.host)] == []
    assert not STATE.exists()


def test_malformed_topology_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "network.yaml"
    text = (
        (ROOT / "network" / "network.yaml")
        .read_text()
        .replace("currencies: [HKD, CNH, USD]", "currencies: [HKD, XXX]")
    )
    bad.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "network", "--topology", str(bad), "status"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "banks[1].currencies[1]" in result.stderr
    assert "Traceback" not in result.stderr
