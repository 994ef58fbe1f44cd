"""Messages, round trips and chaincode-process CPU per transaction, with and without v3 batching.

Starts ``python -m chaincode`` with the conformance contract in a child process (as the
network tool does), drives it with the scripted peer from this process, and reports:

- for a transaction with 3 reads and 3 writes (``BumpCounters``): the shim's requests,
  the messages on the stream and the request/reply round trips, batching on and off;
- the chaincode process's CPU time per transaction (user + system, read from
  ``/proc/<pid>/stat`` before and after a run of sequential transactions), which is what
  the shim, gRPC, protobuf and the (trivial) contract cost together.

Usage: ``.venv/bin/python bench/shim_roundtrips.py [--transactions 2000] [--log-level INFO] [--json]``
Linux only (``/proc``). The numbers depend on the machine; run it on an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaincode.shim.scripted_peer import Ledger, ScriptedPeer  # noqa: E402

CHAINCODE_ID = "conformance_bench:0"
CONTRACT = "chaincode.conformance.contract:ConformanceContract"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, whole line).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(log_level: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "CHAINCODE_ID": CHAINCODE_ID,
            "CHAINCODE_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "CORE_PEER_LOCALMSPID": "USBankMSP",
            "CHAINCODE_LOG_LEVEL": log_level,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaincode", "--contract", CONTRACT],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the chaincode server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the chaincode server did not start listening")


def shape(port: int, batching: bool) -> dict[str, object]:
    with ScriptedPeer(
        f"127.0.0.1:{port}",
        CHAINCODE_ID,
        ledger=Ledger(),
        use_write_batch=batching,
        use_get_multiple_keys=batching,
    ) as peer:
        result = peer.invoke("BumpCounters", "a,b,c")
        if result.status != 200:
            raise SystemExit(f"BumpCounters failed: {result.message or result.error}")
        return {
            "requests": result.requests,
            "messages": result.messages,
            "round_trips": result.round_trips,
        }


def cpu_per_transaction(pid: int, port: int, batching: bool, function: str, args: list[str], count: int) -> float:
    with ScriptedPeer(
        f"127.0.0.1:{port}",
        CHAINCODE_ID,
        ledger=Ledger(),
        use_write_batch=batching,
        use_get_multiple_keys=batching,
    ) as peer:
        for _ in range(50):  # warm-up: imports, caches, thread pool
            peer.invoke(function, *args)
        time.sleep(0.2)
        before = cpu_seconds(pid)
        for index in range(count):
            result = peer.invoke(function, *[a.replace("#", str(index % 100)) for a in args])
            if result.status != 200:
                raise SystemExit(f"{function} failed: {result.message or result.error}")
        after = cpu_seconds(pid)
    return (after - before) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--log-level", default="INFO", help="chaincode log level (INFO logs one line per tx)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    options = parser.parse_args()

    proc, port = start_server(options.log_level)
    try:
        report: dict[str, object] = {
            "transaction": "BumpCounters: 3 reads (one GetStateMultiple call) + 3 writes",
            "batching": shape(port, True),
            "no_batching": shape(port, False),
            "transactions_measured": options.transactions,
            "log_level": options.log_level,
            "cpu_us_per_tx": {
                "3r3w_batching": cpu_per_transaction(
                    proc.pid, port, True, "BumpCounters", ["a#,b#,c#"], options.transactions
                ),
                "3r3w_no_batching": cpu_per_transaction(
                    proc.pid, port, False, "BumpCounters", ["a#,b#,c#"], options.transactions
                ),
                "no_ledger_call": cpu_per_transaction(proc.pid, port, True, "Add", ["1", "2"], options.transactions),
            },
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    if options.json:
        print(json.dumps(report, indent=2))
        return
    print(f"Transaction: {report['transaction']}")
    for mode in ("batching", "no_batching"):
        data = report[mode]
        assert isinstance(data, dict)
        print(
            f"  {mode:<12} round trips {data['round_trips']:>2}   messages {data['messages']:>2}   "
            f"requests {', '.join(data['requests'])}"
        )
    cpu = report["cpu_us_per_tx"]
    assert isinstance(cpu, dict)
    print(
        f"Chaincode process CPU per transaction ({options.transactions} sequential txs, log level {options.log_level}):"
    )
    for name, value in cpu.items():
        print(f"  {name:<18} {value:8.0f} µs")


if __name__ == "__main__":
    main()
