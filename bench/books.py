"""Preloading the banks' books: payer accounts with money on their balance head, payees, a merchant.

Every payer is opened, issued a large balance, then consolidated (its issued credit folded into the
balance head), so the workloads' debits need no ``pending_credits`` and measure the plain debit path.
The pending credit's id comes from ``GetAccount``; if that query fails, the id is derived the way the
contract makes it (the issuing transaction's id and its first unique-id counter) and the JSON report
says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fabric_client import GatewayError

from bench.load import Account, Client

log = logging.getLogger(__name__)

CURRENCY = "USD"  # issued by every bank of the topology
PAYER_BALANCE = 10**12  # minor units; the steps never run a payer dry
JURISDICTIONS = {"USBankMSP": "US", "HKBankMSP": "HK", "SGBankMSP": "SG"}


@dataclass
class Books:
    run_id: str
    payers: dict[str, list[Account]] = field(default_factory=dict)
    payees: dict[str, list[Account]] = field(default_factory=dict)
    merchant: Account | None = None
    pending_credit_source: str = "GetAccount"
    transactions: int = 0


def jurisdiction_of(bank: str, profile_orgs: Mapping[str, Any]) -> str:
    org = profile_orgs.get(bank, {})
    return str(org.get("jurisdiction") or JURISDICTIONS.get(bank, "US"))


class Preloader:
    def __init__(
        self,
        clients: Mapping[str, Client],
        profile_orgs: Mapping[str, Any],
        *,
        threads: int = 32,
        log_line: Callable[[str], None] = print,
    ) -> None:
        self.clients = clients
        self.profile_orgs = profile_orgs
        self.threads = threads
        self.log_line = log_line
        self.transactions = 0

    def _submit(self, bank: str, function: str, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        contract = self.clients[bank].contract("deposit_token")
        submitted = contract.submit_async(
            function,
            transient={"request": json.dumps(request, separators=(",", ":"))},
            endorsing_organizations=[bank],
        )
        result = submitted.wait(120)
        self.transactions += 1
        return submitted.transaction_id, json.loads(result) if result else {}

    def _evaluate(self, bank: str, function: str, request: Mapping[str, Any]) -> dict[str, Any]:
        contract = self.clients[bank].contract("deposit_token")
        raw = contract.evaluate_transaction(
            function, transient={"request": json.dumps(request)}, endorsing_organizations=[bank]
        )
        result: dict[str, Any] = json.loads(raw)
        return result

    def _parallel(self, jobs: list[Callable[[], Any]]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bench-preload") as pool:
            return list(pool.map(lambda job: job(), jobs))

    def open_accounts(self, accounts: list[Account]) -> None:
        def opener(account: Account) -> Callable[[], Any]:
            request = {
                "account_id": account.account_id,
                "holder": "Bench Customer",
                "jurisdiction": jurisdiction_of(account.bank, self.profile_orgs),
                "kyc_ref": f"kyc-{account.account_id}",
            }
            return lambda: self._submit(account.bank, "OpenAccount", request)

        self._parallel([opener(account) for account in accounts])

    def fund(self, payers: list[Account], books: Books) -> None:
        """Issue to every payer, then fold the issued credit into its balance head."""

        def issuer(account: Account) -> Callable[[], str]:
            request = {
                "account_id": account.account_id,
                "currency": CURRENCY,
                "amount": PAYER_BALANCE,
                "deposit_ref": f"dep-{account.account_id}",
            }
            return lambda: self._submit(account.bank, "Issue", request)[0]

        issue_ids = self._parallel([issuer(account) for account in payers])
        derive = False
        if payers:
            try:
                self._pending_credits(payers[0])
            except GatewayError as error:
                derive = True
                books.pending_credit_source = "derived from the Issue transaction id (GetAccount failed)"
                self.log_line(
                    f"    GetAccount failed ({error.reason_message or error.message}); deriving the pending credit ids"
                )

        def consolidator(account: Account, issue_id: str) -> Callable[[], Any]:
            def job() -> Any:
                pending = [f"{issue_id}.1"] if derive else self._pending_credits(account)
                request = {"account_id": account.account_id, "pending_credits": pending}
                return self._submit(account.bank, "ConsolidateAccount", request)

            return job

        self._parallel([consolidator(a, i) for a, i in zip(payers, issue_ids, strict=True)])

    def _pending_credits(self, account: Account) -> list[str]:
        result = self._evaluate(account.bank, "GetAccount", {"account_id": account.account_id})
        return [str(credit) for credit in result.get("pending_credits", [])]

    def preload(self, run_id: str, banks: list[str], payers_per_bank: int, payees_per_bank: int) -> Books:
        books = Books(run_id)
        for bank in banks:
            short = bank.removesuffix("MSP").lower()
            books.payers[bank] = [Account(bank, f"bench-{run_id}-{short}-payer{i}") for i in range(payers_per_bank)]
            books.payees[bank] = [Account(bank, f"bench-{run_id}-{short}-payee{i}") for i in range(payees_per_bank)]
        books.merchant = Account(banks[0], f"bench-{run_id}-merchant")
        payers = [a for bank in banks for a in books.payers[bank]]
        payees = [a for bank in banks for a in books.payees[bank]]
        self.open_accounts([*payers, *payees, books.merchant])
        self.fund(payers, books)
        books.transactions = self.transactions
        return books
