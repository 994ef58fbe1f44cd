"""Payments per second and latency through a bank's REST gateway (wrk) next to the Python client.

    .venv/bin/python bench/gateway_load.py --profile .state/gateway/profile.json [--connections 4]
        [--duration 30] [--gunicorn]

Both sides make the same interbank payments (US bank → a hot payee at the HK bank, 1.00 USD each)
from ``--connections`` payer accounts, one connection per payer, closed loop:

- **HTTP**: ``wrk`` (a C load generator) posts ``/v1/payments`` with a fresh Idempotency-Key per
  request; latency is the HTTP round trip, which returns after the InitiatePayment transaction
  committed (the gateway reads the payer's pending credits, submits, waits for the commit, reads the
  payment back, and stores the idempotent answer).
- **client**: the same ledger work straight through ``fabric_client`` from one Python process:
  ``GetAccount`` (pending credits) then ``InitiatePayment`` submitted and committed.

The gateway under test is the one in the profile (the network tool's ``serve``), or with ``--gunicorn``
a gunicorn instance this script starts on a free port (1 worker, gthread) and stops at the end.
Prints a table and writes ``bench/results/gateway_load-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fabric_client import submit_with_retry  # noqa: E402
from fabric_client.profile import connect_org  # noqa: E402

PAYER_BANK = "USBankMSP"
PAYEE_BANK = "HKBankMSP"
AMOUNT = "1.00"
AMOUNT_MINOR = 100

WRK_SCRIPT = r"""
local keys = {%(keys)s}
local accounts_body = '%(body)s'
local run = '%(run)s'
local next_index = 1
local threads = {}

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  failures = 0
end

function request()
  counter = counter + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. keys[index]
  headers["Idempotency-Key"] = run .. "-" .. index .. "-" .. counter
  return wrk.format("POST", "/v1/payments", headers, accounts_body)
end

function response(status, headers, body)
  if status ~= 201 then failures = failures + 1 end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("failures") end
  io.write(string.format("RESULT requests=%%d seconds=%%f p50=%%d p90=%%d p99=%%d max=%%d failed=%%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, failed))
end
"""


def _op(org: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": "Bearer " + Path(org["operator_key_file"]).read_text().strip()}


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = requests.post(url, json=body, headers=headers, timeout=120)
    if response.status_code not in (200, 201):
        raise SystemExit(f"POST {url} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


def open_payee(profile: dict[str, Any]) -> str:
    hk = profile["orgs"][PAYEE_BANK]
    payee = _post(hk["gateway_url"] + "/v1/accounts",
                  {"holder": "Bench Supplier", "jurisdiction": "HK", "kyc_ref": "bench"}, _op(hk))  # fmt: skip
    return str(payee["account"]["account_id"])


def open_payers(url: str, operator: dict[str, str], count: int, payments_each: int) -> list[dict[str, str]]:
    """``count`` funded payers at the US bank, opened through the gateway at ``url`` (keys live there)."""
    payers = []
    for _ in range(count):
        opened = _post(url + "/v1/accounts",
                       {"holder": "Bench Buyer", "jurisdiction": "US", "kyc_ref": "bench"}, operator)  # fmt: skip
        account_id = opened["account"]["account_id"]
        _post(
            url + "/v1/issuances",
            {"account_id": account_id, "currency": "USD", "amount": f"{payments_each * 2}.00",
             "deposit_ref": f"bench-{uuid.uuid4().hex[:12]}"},
            operator,
        )  # fmt: skip
        payers.append({"account_id": account_id, "api_key": opened["api_key"]})
    return payers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(profile_path: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BANK_API_PROFILE": str(profile_path),
        "BANK_API_MSP": PAYER_BANK,
        # Its own database and key, so it does not share state with the network tool's gateway.
        "BANK_API_DATABASE_URL": f"sqlite:///{workdir / 'bank_api.sqlite'}",
        "BANK_API_OPERATOR_KEY_FILE": str(workdir / "operator.key"),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [
        str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
        "--threads", "16", "--log-level", "warning", "gateway.bank_api.wsgi:app",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("gunicorn did not become ready")


def run_wrk(url: str, payers: list[dict[str, str]], payee: str, duration: int, workdir: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    body = json.dumps({"payee_bank": PAYEE_BANK, "payee_account": payee, "currency": "USD", "amount": AMOUNT})
    script = workdir / "payments.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "keys": ", ".join(f'"{p["api_key"]}"' for p in payers),
            "body": body,
            "run": uuid.uuid4().hex[:10],
        }
    )
    n = len(payers)
    command = ["wrk", "-t", str(n), "-c", str(n), "-d", f"{duration}s", "--timeout", "60s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 120).stdout
    match = re.search(
        r"RESULT requests=(\d+) seconds=([\d.]+) p50=(\d+) p90=(\d+) p99=(\d+) max=(\d+) failed=(\d+)", output
    )
    if match is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    requests_done, seconds = int(match[1]), float(match[2])
    return {
        "requests": requests_done,
        "failed": int(match[7]),
        "rps": requests_done / seconds,
        "p50_ms": int(match[3]) / 1000,
        "p90_ms": int(match[4]) / 1000,
        "p99_ms": int(match[5]) / 1000,
        "max_ms": int(match[6]) / 1000,
    }


def _initiated_to(hk: dict[str, Any]) -> int:
    count, cursor = 0, ""
    while True:
        url = f"{hk['gateway_url']}/v1/payments?status=initiated&page_size=100" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = requests.get(url, headers=_op(hk), timeout=60).json()
        count += sum(1 for p in page["payments"] if p["payee_bank"] == PAYEE_BANK)
        cursor = page["next_cursor"] or ""
        if not cursor:
            return count


def wait_completed(profile: dict[str, Any], payee: str, payments: int, timeout: float = 600) -> float | None:
    """Seconds after the load stopped until the payee bank's gateway completed every payment.

    wrk counts only the answers it read before stopping; requests it had in flight may still have
    made payments, so the payee holds at least ``payments`` and nothing to it is left initiated.
    """
    hk = profile["orgs"][PAYEE_BANK]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        response = requests.get(f"{hk['gateway_url']}/v1/accounts/{payee}", headers=_op(hk), timeout=60)
        received = Decimal(response.json()["balances"].get("USD", "0")) if response.ok else Decimal(0)
        if received >= payments and _initiated_to(hk) == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def run_client(profile_path: Path, payers: list[dict[str, str]], payee: str, duration: int) -> dict[str, Any]:
    gateway = connect_org(profile_path, PAYER_BANK)
    contract = gateway.get_network("tokens").get_contract("deposit_token")
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    run = uuid.uuid4().hex[:10]

    def payer_loop(index: int, payer: dict[str, str]) -> None:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            started = time.perf_counter()
            try:
                account = json.loads(
                    contract.evaluate_transaction(
                        "GetAccount",
                        transient={"request": json.dumps({"account_id": payer["account_id"]}).encode()},
                        endorsing_organizations=[PAYER_BANK],
                    )
                )
                request = {
                    "idempotency_key": f"client-{run}-{index}-{n}",
                    "payer_account": payer["account_id"], "payee_bank": PAYEE_BANK, "payee_account": payee,
                    "currency": "USD", "amount": AMOUNT_MINOR,
                    "pending_credits": account.get("pending_credits", [])[:1000],
                }  # fmt: skip
                submit_with_retry(
                    contract,
                    "InitiatePayment",
                    transient={"request": json.dumps(request).encode()},
                    endorsing_organizations=[PAYER_BANK],
                )
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
            except Exception:
                with lock:
                    failures[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=payer_loop, args=(i, p)) for i, p in enumerate(payers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    gateway.close()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000 if ordered else 0.0

    return {
        "requests": len(ordered),
        "failed": failures[0],
        "rps": len(ordered) / seconds,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": ordered[-1] * 1000 if ordered else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=Path, required=True, help="profile.json of a running network")
    parser.add_argument("--connections", type=int, default=4, help="concurrent payers (default %(default)s)")
    parser.add_argument("--duration", type=int, default=30, help="seconds per side (default %(default)s)")
    parser.add_argument("--gunicorn", action="store_true", help="measure a gunicorn gateway started here")
    args = parser.parse_args()
    profile = json.loads(args.profile.read_text())
    expected = max(50, args.duration * 20)
    us = profile["orgs"][PAYER_BANK]
    print(f"opening {args.connections} payers for each side and one payee ...", flush=True)
    payee = open_payee(profile)
    client_payers = open_payers(us["gateway_url"], _op(us), args.connections, expected)

    results: dict[str, Any] = {"connections": args.connections, "duration_s": args.duration}
    with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp:
        workdir = Path(tmp)
        process = None
        url, operator = us["gateway_url"], _op(us)
        if args.gunicorn:
            process, url = start_gunicorn(args.profile, workdir)
            operator = {"Authorization": "Bearer " + (workdir / "operator.key").read_text().strip()}
        try:
            http_payers = open_payers(url, operator, args.connections, expected)
            print(f"HTTP through {url} with wrk for {args.duration}s ...", flush=True)
            results["http"] = run_wrk(url, http_payers, payee, args.duration, workdir)
            ok = results["http"]["requests"] - results["http"]["failed"]
            results["http"]["completed_after_s"] = wait_completed(profile, payee, ok)
            results["http"]["server"] = "gunicorn gthread (1 worker, 16 threads)" if args.gunicorn else "serve"
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    print(f"Python client for {args.duration}s ...", flush=True)
    results["client"] = run_client(args.profile, client_payers, payee, args.duration)

    print(f"\n{'path':<8} {'payments':>9} {'failed':>7} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name in ("http", "client"):
        r = results[name]
        print(f"{name:<8} {r['requests']:>9} {r['failed']:>7} {r['rps']:>7.1f} {r['p50_ms']:>8.1f} "
              f"{r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f}")  # fmt: skip
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"gateway_load-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"HTTP payments all completed by the payee bank {results['http']['completed_after_s']} s after the load")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
