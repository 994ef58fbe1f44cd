"""Concurrency on the real network: the overdraft race, a hot payee, a mixed random workload.

No timing is asserted; only outcomes: which transactions committed, validation codes, balances
and conservation.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar

import pytest

from tests.integration.deposit_token_support import (
    BANKS,
    HK,
    SG,
    US,
    Consortium,
    Org,
    Outcome,
    Refused,
)

pytestmark = pytest.mark.network


def _parallel(jobs: Sequence[Callable[[], Any]], workers: int = 20) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


def _settle(org: Org, function: str, request: Callable[[], dict[str, Any]]) -> tuple[str, Outcome | None]:
    """Re-run after MVCC conflicts until the request commits or the chaincode refuses it."""
    try:
        outcome = org.submit_outcome(function, request, retries=50)
    except Refused as refusal:
        return refusal.reason or "refused", None
    return outcome.code, outcome


def test_overdraft_race_commits_exactly_the_debits_that_fit(banks: Consortium) -> None:
    us = banks[US]
    alice, bob = banks.id("race-alice"), banks.id("race-bob")
    us.open(alice, "US")
    us.open(bob, "US")
    us.issue(alice, 500)
    jobs = [
        partial(_settle, us, "Transfer", us.transfer_request(alice, bob, 100, banks.id(f"race-{i}"))) for i in range(20)
    ]
    results = _parallel(jobs)
    outcomes = Counter(code for code, _ in results)
    assert outcomes == {"VALID": 5, "insufficient_funds": 15}, outcomes
    assert (us.balance(alice), us.balance(bob)) == (0, 500)
    history = us.evaluate("GetAccountHistory", {"account_id": alice, "page_size": 100})["entries"]
    assert sorted(entry["amount"] for entry in history) == [-100] * 5 + [500]
    conflicts = sum(outcome.attempts - 1 for _, outcome in results if outcome is not None)
    print(f"\noverdraft race: 5 committed, 15 refused, {conflicts} MVCC retries along the way")


def test_hot_payee_200_payers_one_merchant_no_conflicts(banks: Consortium) -> None:
    us, hk = banks[US], banks[HK]
    payers = [banks.id(f"hot-payer-{i}") for i in range(200)]
    merchant, foreign_merchant = banks.id("hot-merchant"), banks.id("hot-merchant-hk")
    us.open(merchant, "US")
    hk.open(foreign_merchant, "HK")
    _parallel([partial(us.open, payer, "US") for payer in payers], workers=16)
    _parallel([partial(us.issue, payer, 10_000) for payer in payers], workers=16)

    # 200 intra-bank transfers into one account at once: credits are blind writes.
    def transfer(index: int) -> Outcome:
        return us.attempt(
            "Transfer", us.transfer_request(payers[index], merchant, 100 + index, banks.id(f"hot-{index}"))()
        )

    codes = Counter(outcome.code for outcome in _parallel([partial(transfer, i) for i in range(200)]))
    print(f"\nhot payee (intra-bank): {dict(codes)} of 200")
    assert codes == {"VALID": 200}
    assert us.balance(merchant) == sum(100 + i for i in range(200))

    # 200 interbank payments to one merchant at another bank: initiations, then completions.
    def initiate(index: int) -> Outcome:
        request = us.payment_request(banks.id(f"hotx-{index}"), payers[index], HK, foreign_merchant, 7 + index)
        return us.attempt("InitiatePayment", request())

    started = _parallel([partial(initiate, i) for i in range(200)])
    assert Counter(outcome.code for outcome in started) == {"VALID": 200}
    banks.wait_everywhere(max(outcome.block for outcome in started))
    completions = [
        partial(hk.attempt, "CompletePayment", {"payment_id": outcome.result["payment_id"]}) for outcome in started
    ]
    codes = Counter(outcome.code for outcome in _parallel(completions))
    print(f"hot payee (interbank completions): {dict(codes)} of 200")
    assert codes == {"VALID": 200}
    assert hk.balance(foreign_merchant) == sum(7 + i for i in range(200))


class Workload:
    """Random issues, redemptions, transfers and interbank payments from many threads at once."""

    CURRENCIES: ClassVar[dict[str, list[str]]] = {US: ["USD"], HK: ["USD", "HKD"], SG: ["USD", "SGD"]}

    def __init__(self, banks: Consortium, target: int) -> None:
        self.banks = banks
        self.target = target
        self.accounts = {bank: [banks.id(f"mix-{bank}-{i}") for i in range(8)] for bank in BANKS}
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def open_accounts(self) -> None:
        for bank, names in self.accounts.items():
            org = self.banks[bank]
            _parallel([partial(org.open, name, bank[:2]) for name in names], workers=8)
            _parallel([partial(org.issue, name, 10_000, c) for name in names for c in self.CURRENCIES[bank]])

    def record(self, kind: str, code: str = "VALID") -> None:
        with self.lock:
            self.counts[kind if code == "VALID" else f"refused:{code}"] += 1

    def committed(self) -> int:
        with self.lock:
            return sum(n for kind, n in self.counts.items() if not kind.startswith("refused"))

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        while self.committed() < self.target:
            bank = rng.choice(BANKS)
            org = self.banks[bank]
            account = rng.choice(self.accounts[bank])
            currency = rng.choice(self.CURRENCIES[bank])
            amount = rng.randint(1, 3000)
            ref = self.banks.id(f"mix-{seed}-{rng.getrandbits(48):x}")
            roll = rng.random()
            if roll < 0.2:
                issue = {"account_id": account, "currency": currency, "amount": amount, "deposit_ref": ref}
                self.record("issue", _settle(org, "Issue", partial(dict, issue))[0])
            elif roll < 0.3:
                redeem = partial(self.redeem_request, org, account, currency, amount, ref)
                self.record("redeem", _settle(org, "Redeem", redeem)[0])
            elif roll < 0.65:
                other = rng.choice([a for a in self.accounts[bank] if a != account])
                request = org.transfer_request(account, other, amount, ref, currency)
                self.record("transfer", _settle(org, "Transfer", request)[0])
            else:
                self.pay(rng, org, account, amount, ref)

    @staticmethod
    def redeem_request(org: Org, account: str, currency: str, amount: int, ref: str) -> dict[str, Any]:
        return {
            "account_id": account,
            "currency": currency,
            "amount": amount,
            "withdrawal_ref": ref,
            "pending_credits": org.pending(account),
        }

    def pay(self, rng: random.Random, org: Org, account: str, amount: int, ref: str) -> None:
        payee_bank = rng.choice([b for b in BANKS if b != org.msp_id])
        payee_org = self.banks[payee_bank]
        payee = rng.choice(self.accounts[payee_bank])
        code, started = _settle(org, "InitiatePayment", org.payment_request(ref, account, payee_bank, payee, amount))
        self.record("payment", code)
        if started is None:
            return
        self.banks.wait_everywhere(started.block)
        payment = {"payment_id": started.result["payment_id"]}
        if rng.random() < 0.85:
            self.record("complete", _settle(payee_org, "CompletePayment", partial(dict, payment))[0])
            return
        code, rejected = _settle(payee_org, "RejectPayment", partial(dict, payment, reason="workload"))
        self.record("reject", code)
        if rejected is not None:
            self.banks.wait_everywhere(rejected.block)
            self.record("refund", _settle(org, "RefundPayment", partial(dict, payment))[0])


def test_mixed_random_workload_of_1000_operations(banks: Consortium) -> None:
    workload = Workload(banks, target=1000)
    workload.open_accounts()
    seeds = random.Random(20250106)
    _parallel([partial(workload.run, seeds.getrandbits(32)) for _ in range(12)], workers=12)
    print(f"\nmixed workload: {dict(workload.counts)}")
    assert workload.committed() >= 1000
    for kind in ("issue", "redeem", "transfer", "payment", "complete", "reject", "refund"):
        assert workload.counts[kind] > 0, kind
    totals = banks.assert_conserved()
    assert all(amount >= 0 for amount in totals.values())
    for bank, names in workload.accounts.items():
        for name in names:
            assert all(value >= 0 for value in banks[bank].account(name)["balances"].values())
