"""``python -m chaincode`` as the network tool runs it: env contract, JSON logs, SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaincode.shim.scripted_peer import ScriptedPeer

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = "chaincode.conformance.contract:ConformanceContract"


class ChaincodeProcess:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINCODE_", "CORE_"))}
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chaincode", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, message: str, timeout: float = 30) -> dict[str, object]:
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"process ended before logging {message!r}: {self.seen}")
            self.seen.append(line)
            entry = json.loads(line)
            if entry["msg"] == message:
                return dict(entry)

    def rest(self) -> list[str]:
        out = []
        while (line := self.lines.get(timeout=30)) is not None:
            out.append(line)
        self.seen.extend(out)
        return out


@pytest.fixture
def running() -> Iterator[ChaincodeProcess]:
    process = ChaincodeProcess(
        {
            "CHAINCODE_ID": "conformance_1.0:feed",
            "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0",
            "CORE_PEER_LOCALMSPID": "SGBankMSP",
        },
        "--contract",
        CONTRACT,
    )
    yield process
    if process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait()


def test_serves_logs_json_and_exits_zero_on_sigterm(running: ChaincodeProcess) -> None:
    listening = running.wait_for("chaincode server listening")
    port = listening["port"]
    assert isinstance(port, int) and port > 0
    with ScriptedPeer(f"127.0.0.1:{port}", "conformance_1.0:feed") as peer:
        info = json.loads(peer.invoke("TxInfo").payload)
        assert info["peer_msp_id"] == "SGBankMSP"
        crash = peer.invoke("Crash")
        assert crash.status == 500
        secret = peer.invoke("PutPrivate", "books-SGBankMSP", "acct-9", transient={"value": b"Jane Customer"})
        assert secret.status == 200
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=30) == 0
    lines = running.seen + running.rest()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    transactions = [e for e in entries if e["msg"] == "transaction"]
    assert {e["fn"] for e in transactions} == {"TxInfo", "Crash", "PutPrivate"}
    assert all(set(e) >= {"txid", "fn", "status", "duration_ms"} and len(e["txid"]) == 8 for e in transactions)
    text = "".join(lines)
    # Neither exception messages nor arguments nor transient values reach the log.
    assert "secret-customer-data" not in text
    assert "Jane Customer" not in text and "acct-9" not in text
    assert any(e["msg"] == "chaincode server stopped" for e in entries)


def test_missing_environment_exits_with_status_2() -> None:
    process = ChaincodeProcess({}, "--contract", CONTRACT)
    assert process.proc.wait(timeout=30) == 2
    (line,) = process.rest()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert "CHAINCODE_ID" in entry["error"] and "CHAINCODE_SERVER_ADDRESS" in entry["error"]


@pytest.mark.parametrize(
    ("contract", "complaint"),
    [
        ("chaincode.nowhere:Thing", "cannot import"),
        ("chaincode.conformance.contract:KV", "is not a Contract class"),
        ("no-colon", "must look like"),
    ],
)
def test_bad_contract_spec_exits_with_status_2(contract: str, complaint: str) -> None:
    process = ChaincodeProcess(
        {"CHAINCODE_ID": "x:1", "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0"}, "--contract", contract
    )
    assert process.proc.wait(timeout=30) == 2
    assert complaint in json.loads(process.rest()[-1])["error"]


def test_port_in_use_exits_with_status_2(running: ChaincodeProcess) -> None:
    port = running.wait_for("chaincode server listening")["port"]
    second = ChaincodeProcess(
        {"CHAINCODE_ID": "x:1", "CHAINCODE_SERVER_ADDRESS": f"127.0.0.1:{port}"}, "--contract", CONTRACT
    )
    assert second.proc.wait(timeout=30) == 2
    assert "cannot listen" in json.loads(second.rest()[-1])["error"]
