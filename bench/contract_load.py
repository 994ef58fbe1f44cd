"""A simple closed-loop load on the deposit-token contract of a running network.

    .venv/bin/python -m bench.contract_load --state-dir .state/contract [--workers 24]

Three measurements, each through the real gateways and peers, each bank on its own peer:

- **intra-bank transfers**: ``--workers`` clients, each moving money between its own two accounts
  at USBank, back to back; transfers committed per second;
- **interbank payments**: each client pays from its own USBank account to its own HKBank account,
  both steps (``InitiatePayment`` on USBank, then ``CompletePayment`` on HKBank once HKBank's peer
  has the record); complete payments per second;
- **hot payee**: ``--hot-payers`` payers each pay one merchant at once, intra-bank and interbank;
  the share of transactions that fail with an MVCC or phantom conflict.

Accounts get a per-run prefix, so the script can run repeatedly on one network. The network's REST
gateways are paused during the run (their followers would complete the payments too, racing the
script); ``--keep-gateways`` leaves them alone. It prints the figures and writes them as JSON
(``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fabric_client import Gateway, GatewayError
from fabric_client.profile import connect_org

from network import processes

US, HK = "USBankMSP", "HKBankMSP"
CONFLICTS = {"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"}


@dataclass
class Result:
    payload: Any
    code: str
    block: int


class Bank:
    def __init__(self, profile: Path, msp_id: str) -> None:
        self.msp_id = msp_id
        self.gateway: Gateway = connect_org(profile, msp_id)
        self.contract = self.gateway.get_network("tokens").get_contract("deposit_token")

    def submit(self, function: str, request: dict[str, Any] | None = None, *args: str) -> Result:
        transient = None if request is None else {"request": json.dumps(request).encode()}
        submitted = self.contract.submit_async(
            function, *args, transient=transient, endorsing_organizations=[self.msp_id]
        )
        status = submitted.status(120)
        payload = json.loads(submitted.result) if submitted.result else None
        return Result(payload, "VALID" if status.successful else status.code_name, status.block_number)

    def evaluate(self, function: str, request: dict[str, Any] | None = None, *args: str, on: str | None = None) -> Any:
        transient = None if request is None else {"request": json.dumps(request).encode()}
        raw = self.contract.evaluate_transaction(
            function, *args, transient=transient, endorsing_organizations=[on or self.msp_id]
        )
        return json.loads(raw) if raw else None

    def complete(self, payment_id: str, payer_bank: str) -> Result:
        """Complete a payment to this bank with the details from the payer bank's peer (decision 0036)."""
        given = self.evaluate("GetPaymentDetails", None, payment_id, on=payer_bank)
        return self.submit(
            "CompletePayment", {"payment_id": payment_id, "details": given["details"], "salt": given["salt"]}
        )

    def open_funded(self, account_id: str, amount: int) -> None:
        """Open an account and put ``amount`` on its balance head (so debits need no credit list)."""
        self.submit(
            "OpenAccount",
            {
                "account_id": account_id,
                "holder": f"Load {account_id}",
                "jurisdiction": self.msp_id[:2],
                "kyc_ref": "LOAD",
            },
        )
        if amount:
            self.submit(
                "Issue",
                {
                    "account_id": account_id,
                    "currency": "USD",
                    "amount": amount,
                    "deposit_ref": f"load-{uuid.uuid4().hex}",
                },
            )
            pending = self.evaluate("GetAccount", {"account_id": account_id})["pending_credits"]
            self.submit("ConsolidateAccount", {"account_id": account_id, "pending_credits": pending})


def parallel(jobs: Sequence[Callable[[], Any]], workers: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


def intra_bank_transfers(us: Bank, run: str, workers: int, per_worker: int) -> dict[str, Any]:
    pairs = [(f"{run}-ta-{i}", f"{run}-tb-{i}") for i in range(workers)]
    parallel([partial(us.open_funded, a, 10**9) for a, _ in pairs], workers)
    parallel([partial(us.open_funded, b, 0) for _, b in pairs], workers)
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(index: int) -> None:
        source, target = pairs[index]
        for n in range(per_worker):
            result = us.submit(
                "Transfer",
                {
                    "from_account": source,
                    "to_account": target,
                    "currency": "USD",
                    "amount": 1,
                    "transfer_id": f"{run}-t-{index}-{n}",
                },
            )
            with lock:
                codes[result.code] += 1

    started = time.monotonic()
    parallel([partial(client, i) for i in range(workers)], workers)
    elapsed = time.monotonic() - started
    return {
        "transfers": sum(codes.values()),
        "codes": dict(codes),
        "seconds": round(elapsed, 2),
        "tps": round(codes["VALID"] / elapsed, 1),
    }


def interbank_payments(us: Bank, hk: Bank, run: str, workers: int, per_worker: int) -> dict[str, Any]:
    payers = [f"{run}-pa-{i}" for i in range(workers)]
    payees = [f"{run}-pb-{i}" for i in range(workers)]
    parallel([partial(us.open_funded, a, 10**9) for a in payers], workers)
    parallel([partial(hk.open_funded, b, 0) for b in payees], workers)
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def complete(payment_id: str) -> Result:
        while True:
            try:
                return hk.complete(payment_id, us.msp_id)
            except GatewayError as error:
                # HKBank's peer may not have committed the payer's block yet, as when reacting to an event.
                if "payment_not_found" not in str(error):
                    raise
                time.sleep(0.02)

    def client(index: int) -> None:
        for n in range(per_worker):
            started = us.submit(
                "InitiatePayment",
                {
                    "idempotency_key": f"{run}-p-{index}-{n}",
                    "payer_account": payers[index],
                    "payee_bank": HK,
                    "payee_account": payees[index],
                    "currency": "USD",
                    "amount": 1,
                },
            )
            done = complete(started.payload["payment_id"]) if started.code == "VALID" else started
            with lock:
                codes[done.code] += 1

    started = time.monotonic()
    parallel([partial(client, i) for i in range(workers)], workers)
    elapsed = time.monotonic() - started
    return {
        "payments": sum(codes.values()),
        "codes": dict(codes),
        "seconds": round(elapsed, 2),
        "payments_per_second": round(codes["VALID"] / elapsed, 1),
        "transactions_per_second": round(2 * codes["VALID"] / elapsed, 1),
    }


def wait_for_block(bank: Bank, block: int) -> None:
    """Return once ``bank``'s peer has committed ``block`` (as an event-driven gateway would see it)."""
    network = bank.gateway.get_network("tokens")
    while True:
        try:
            with network.get_block_events(start_block=block, filtered=True, timeout=120) as stream:
                next(iter(stream))
            return
        except GatewayError as error:
            if "NOT_FOUND" not in str(error):  # further behind than one block
                raise
            time.sleep(0.05)


def hot_payee(us: Bank, hk: Bank, run: str, payers_count: int, workers: int) -> dict[str, Any]:
    payers = [f"{run}-hp-{i}" for i in range(payers_count)]
    merchant, foreign = f"{run}-merchant", f"{run}-merchant-hk"
    us.open_funded(merchant, 0)
    hk.open_funded(foreign, 0)
    parallel([partial(us.open_funded, payer, 1_000_000) for payer in payers], workers)

    def transfer(index: int) -> Result:
        return us.submit(
            "Transfer",
            {
                "from_account": payers[index],
                "to_account": merchant,
                "currency": "USD",
                "amount": 1 + index,
                "transfer_id": f"{run}-h-{index}",
            },
        )

    def initiate(index: int) -> Result:
        return us.submit(
            "InitiatePayment",
            {
                "idempotency_key": f"{run}-hx-{index}",
                "payer_account": payers[index],
                "payee_bank": HK,
                "payee_account": foreign,
                "currency": "USD",
                "amount": 1 + index,
            },
        )

    def complete(result: Result) -> Result:
        return hk.complete(result.payload["payment_id"], us.msp_id)

    transfers = parallel([partial(transfer, i) for i in range(payers_count)], workers)
    initiations = parallel([partial(initiate, i) for i in range(payers_count)], workers)
    wait_for_block(hk, max(result.block for result in initiations))
    completions = parallel([partial(complete, result) for result in initiations], workers)
    expected = sum(1 + i for i in range(payers_count))

    def summary(results: list[Result], bank: Bank, account: str) -> dict[str, Any]:
        codes = Counter(result.code for result in results)
        balance = bank.evaluate("GetAccount", {"account_id": account})["balances"].get("USD", 0)
        return {
            "codes": dict(codes),
            "conflict_rate": sum(codes[c] for c in CONFLICTS) / len(results),
            "merchant_balance_exact": balance == expected,
        }

    return {
        "payers": payers_count,
        "intra_bank": summary(transfers, us, merchant),
        "interbank_completions": summary(completions, hk, foreign),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contract_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", default=".state/contract", help="state dir of a running network")
    parser.add_argument("--workers", type=int, default=24, help="concurrent clients")
    parser.add_argument("--transfers", type=int, default=20, help="transfers per client")
    parser.add_argument("--payments", type=int, default=10, help="interbank payments per client")
    parser.add_argument("--hot-payers", type=int, default=200, help="payers of the one merchant")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep-gateways", action="store_true", help="do not pause the REST gateways")
    args = parser.parse_args(argv)
    profile = Path(args.state_dir) / "profile.json"
    if not profile.exists():
        print(f"no network profile at {profile}: start the network first (python -m network up)", file=sys.stderr)
        return 2
    us, hk = Bank(profile, US), Bank(profile, HK)
    run = uuid.uuid4().hex[:6]
    homes = [Path(org["home"]) for org in json.loads(profile.read_text())["orgs"].values()]
    gateways = [] if args.keep_gateways else [
        (home, s) for home in homes for s in processes.load_specs(home) if s.kind == "gateway"
    ]
    paused = [(home, spec) for home, spec in gateways if processes.stop(home, spec.name)]
    try:
        figures = {
            "workers": args.workers,
            "intra_bank_transfers": intra_bank_transfers(us, run, args.workers, args.transfers),
            "interbank_payments": interbank_payments(us, hk, run, args.workers, args.payments),
            "hot_payee": hot_payee(us, hk, run, args.hot_payers, args.workers),
        }
    finally:
        for home, spec in paused:
            processes.start(home, spec)
        for home, spec in paused:
            processes.wait_healthy(home, [spec], timeout=60)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
