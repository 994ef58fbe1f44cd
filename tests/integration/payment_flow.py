"""REST payments kept flowing while the consortium changes, and the books checked afterwards.

A ``PaymentFlow`` sends interbank payments through the banks' gateways from a background
thread, each with its own Idempotency-Key, retrying a 503 (or a 409 "in progress") with the
same key as a client would. Every payer account starts with a known amount and every payee
account is used by one flow only, so afterwards each balance can be checked against the
payments that completed: nothing lost, nothing paid twice, nothing left in flight.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from tests.integration.bank_api_support import BankGateway, Merchant, unique, wait_for

# what a bank's merchants pay in, and what its payees are paid in
HOME_CURRENCY = {"USBankMSP": "USD", "HKBankMSP": "HKD", "SGBankMSP": "SGD", "EUBankMSP": "EUR", "JPBankMSP": "JPY"}
FUNDING = {"JPY": "10000000"}  # in the currency's own units; others get the default
AMOUNT = {"JPY": "100"}


def funding(currency: str) -> str:
    return FUNDING.get(currency, "100000.00")


def amount(currency: str) -> str:
    return AMOUNT.get(currency, "1.00")
TERMINAL = {"completed", "rejected", "refunded"}


@dataclass
class Sent:
    payer_bank: str
    payee_bank: str
    payment_id: str
    payer: Merchant
    payee: Merchant
    amount: str
    payee_amount: str
    attempts: int


@dataclass
class PaymentFlow:
    """Payments between every pair of ``banks`` (more may be added while it runs)."""

    gateways: dict[str, BankGateway]
    interval: float = 0.25
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    retried: int = 0
    payers: dict[str, Merchant] = field(default_factory=dict)
    payees: dict[str, Merchant] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _banks: list[str] = field(default_factory=list)

    def add_bank(self, msp_id: str, gateway: BankGateway) -> None:
        """Open and fund a payer, and open a payee, at ``msp_id``; from now on it pays and is paid."""
        jurisdiction = msp_id.removesuffix("BankMSP")
        payer = gateway.open_account(f"Flow payer {jurisdiction}", jurisdiction)
        gateway.issue(payer.account_id, HOME_CURRENCY[msp_id], funding(HOME_CURRENCY[msp_id]))
        payee = gateway.open_account(f"Flow payee {jurisdiction}", jurisdiction)
        with self._lock:
            self.gateways[msp_id] = gateway
            self.payers[msp_id] = payer
            self.payees[msp_id] = payee
            self._banks.append(msp_id)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="payment-flow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=180)

    def count(self) -> int:
        with self._lock:
            return len(self.sent)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            with self._lock:
                banks = list(self._banks)
            pairs = [(a, b) for a in banks for b in banks if a != b]
            if pairs:
                payer_bank, payee_bank = pairs[turn % len(pairs)]
                turn += 1
                self._pay(payer_bank, payee_bank)
            self._stop.wait(self.interval)

    def _pay(self, payer_bank: str, payee_bank: str) -> None:
        gateway, payer, payee = self.gateways[payer_bank], self.payers[payer_bank], self.payees[payee_bank]
        key = unique("flow")
        body = {"payee_bank": payee_bank, "payee_account": payee.account_id, "currency": HOME_CURRENCY[payer_bank],
                "amount": amount(HOME_CURRENCY[payer_bank]), "payee_currency": HOME_CURRENCY[payee_bank]}  # fmt: skip
        attempts = 0
        deadline = time.monotonic() + 120
        while True:
            attempts += 1
            try:
                response = gateway.post("/v1/payments", body, {**payer.headers, "Idempotency-Key": key})
                status = response.status_code
            except requests.RequestException:
                status = 0  # the gateway went away: retry with the same key, as a client would
            if status in (0, 503) or (status == 409 and "in_progress" in response.text):
                if time.monotonic() > deadline:
                    self.refused.append((status, "no answer within 120 s"))
                    return
                time.sleep(0.5)
                continue
            break
        if attempts > 1:
            with self._lock:
                self.retried += 1
        if status != 201:
            with self._lock:
                self.refused.append((status, response.text[:300]))
            return
        payment = response.json()
        with self._lock:
            self.sent.append(Sent(payer_bank, payee_bank, payment["payment_id"], payer, payee, payment["amount"],
                                  payment["payee_amount"], attempts))  # fmt: skip

    def wait_completed_since(self, count: int, bank: str, timeout: float = 120) -> Sent:
        """The first payment sent after the ``count``-th that involves ``bank``, once it completed."""

        def done() -> Sent | None:
            with self._lock:
                later = [s for s in self.sent[count:] if bank in (s.payer_bank, s.payee_bank)]
            for item in later:
                if self.status(item) == "completed":
                    return item
            return None

        found = wait_for(done, timeout=timeout, interval=0.5)
        assert found, f"no payment involving {bank} completed within {timeout:.0f}s"
        return found

    def status(self, item: Sent) -> str:
        response = self.gateways[item.payer_bank].get(f"/v1/payments/{item.payment_id}", item.payer.headers)
        return str(response.json().get("status")) if response.status_code == 200 else f"http {response.status_code}"

    def settle_and_check(self, timeout: float = 240, resume: bool = True) -> dict[str, Any]:
        """Every sent payment reaches a final state; every flow account's balance matches them.

        The flow pauses for the check (balances move otherwise) and, with ``resume``, goes on after.
        """
        self.stop()
        try:
            return self._check(timeout)
        finally:
            if resume:
                self.start()

    def _check(self, timeout: float) -> dict[str, Any]:
        pending = {item.payment_id: item for item in self.sent}
        deadline = time.monotonic() + timeout
        statuses: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for payment_id, item in list(pending.items()):
                status = self.status(item)
                if status in TERMINAL:
                    statuses[payment_id] = status
                    del pending[payment_id]
            if pending:
                time.sleep(1)
        stuck = [(p, self.status(i)) for p, i in pending.items()][:5]
        assert not pending, f"{len(pending)} payments still in flight: {stuck}"
        assert not [r for r in self.refused if r[0] >= 500], f"server errors: {self.refused[:5]}"
        completed = [item for item in self.sent if statuses[item.payment_id] == "completed"]
        for bank, payer in self.payers.items():
            out = sum(Decimal(s.amount) for s in completed if s.payer_bank == bank)
            balance = self.gateways[bank].balances(payer).get(HOME_CURRENCY[bank], "0")
            assert Decimal(balance) == Decimal(funding(HOME_CURRENCY[bank])) - out, (bank, balance, out)
        for bank, payee in self.payees.items():
            incoming = sum(Decimal(s.payee_amount) for s in completed if s.payee_bank == bank)
            balance = self.gateways[bank].balances(payee).get(HOME_CURRENCY[bank], "0")
            assert Decimal(balance) == incoming, (bank, balance, incoming)
        return {
            "sent": len(self.sent),
            "completed": len(completed),
            "not_completed": len(self.sent) - len(completed),
            "retried": self.retried,
            "refused": len(self.refused),
        }
