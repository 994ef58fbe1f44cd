"""An in-memory channel with the deposit-token contract, three banks and a regulator."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from chaincode.deposit_token.collections import books_collection, supply_collection
from chaincode.deposit_token.contract import DepositTokenContract
from chaincode.deposit_token.testing import MemoryChannel, Simulation

US, HK, SG, REG = "USBankMSP", "HKBankMSP", "SGBankMSP", "RegulatorMSP"
BANKS = (US, HK, SG)
REFERENCE_DATA = {
    "regulator": REG,
    "currencies": {"USD": 2, "EUR": 2, "JPY": 0, "CNH": 2, "HKD": 2, "SGD": 2},
    "banks": [
        {"msp_id": US, "name": "USBank", "jurisdiction": "US", "currencies": ["USD"]},
        {"msp_id": HK, "name": "HKBank", "jurisdiction": "HK", "currencies": ["HKD", "CNH", "USD"]},
        {"msp_id": SG, "name": "SGBank", "jurisdiction": "SG", "currencies": ["SGD", "EUR", "USD"]},
    ],
}


class Refused(AssertionError):
    pass


@dataclass
class Ledger:
    """Test-side helpers over a MemoryChannel: submit as an org, query, check balances."""

    channel: MemoryChannel

    def with_counterparty_details(self, org: str, function: str, request: Mapping[str, Any] | None) -> Any:
        """``request`` with what the counterparty bank's peer gives, as the gateway adds it.

        ``CompletePayment`` and ``AcceptPvp`` need the details the other bank holds in its books
        (docs/decisions/0036). The gateway (``FabricLedger.complete_payment``/``accept_pvp``) asks the
        other bank's peer for them when this bank is the one to act; so does this helper, unless
        the test passes its own ``details``. Otherwise the request is left as it is and the
        contract gives its own refusal.
        """
        if request is None or "details" in request or function not in ("CompletePayment", "AcceptPvp"):
            return request
        if function == "CompletePayment":
            found = self.channel.query(org, "GetPayment", [str(request.get("payment_id"))])
            if not found.ok or found.json()["payee_bank"] != org or found.json()["status"] != "initiated":
                return request
            holder, query, object_id = found.json()["payer_bank"], "GetPaymentDetails", request["payment_id"]
        else:
            found = self.channel.query(org, "GetPvp", [str(request.get("pvp_id"))])
            if not found.ok or found.json()["legs"]["a"]["bank"] != org:
                return request
            holder, query, object_id = found.json()["legs"]["p"]["bank"], "GetPvpDetails", request["pvp_id"]
        given = self.channel.query(holder, query, [object_id], creator=org)
        assert given.ok, given.message
        return {**request, "details": given.json()["details"], "salt": given.json()["salt"]}

    def submit(
        self,
        org: str,
        function: str,
        request: Mapping[str, Any] | None = None,
        args: Sequence[str] = (),
        creator: str | None = None,
    ) -> Any:
        """Endorse and commit; returns the JSON result or raises Refused with the chaincode message."""
        request = self.with_counterparty_details(creator or org, function, request)
        simulation = self.channel.invoke(
            org, function, args, {"request": request} if request is not None else None, creator
        )
        if not simulation.ok:
            raise Refused(simulation.message)
        assert self.channel.validation_codes[simulation.tx_id] == "VALID", self.channel.validation_codes[
            simulation.tx_id
        ]
        return simulation.json()

    def refused(
        self,
        org: str,
        function: str,
        request: Mapping[str, Any] | None = None,
        args: Sequence[str] = (),
        creator: str | None = None,
    ) -> str:
        """Endorse a transaction that must be refused; returns the message, asserts nothing changed."""
        request = self.with_counterparty_details(creator or org, function, request)
        before = self.snapshot()
        simulation = self.channel.invoke(
            org, function, args, {"request": request} if request is not None else None, creator
        )
        assert not simulation.ok, f"{function} was accepted: {simulation.payload!r}"
        assert self.snapshot() == before
        return simulation.message

    def simulate(self, org: str, function: str, request: Mapping[str, Any] | None = None) -> Simulation:
        request = self.with_counterparty_details(org, function, request)
        return self.channel.simulate(org, function, (), {"request": request} if request is not None else None)

    def query(
        self,
        org: str,
        function: str,
        request: Mapping[str, Any] | None = None,
        args: Sequence[str] = (),
        creator: str | None = None,
    ) -> Any:
        simulation = self.channel.query(
            org, function, args, {"request": request} if request is not None else None, creator
        )
        if not simulation.ok:
            raise Refused(simulation.message)
        return simulation.json()

    def snapshot(self) -> Any:
        return {name: dict(space) for name, space in self.channel.state.items()}

    # -- domain helpers ---------------------------------------------------------
    def open(
        self, bank: str, account_id: str, jurisdiction: str = "US", holder: str = "Acme Trading Ltd"
    ) -> None:
        self.submit(
            bank,
            "OpenAccount",
            {
                "account_id": account_id,
                "holder": holder,
                "jurisdiction": jurisdiction,
                "kyc_ref": f"KYC-{account_id}",
            },
        )

    def issue(
        self, bank: str, account_id: str, amount: int, currency: str = "USD", ref: str | None = None
    ) -> Any:
        return self.submit(
            bank,
            "Issue",
            {
                "account_id": account_id,
                "currency": currency,
                "amount": amount,
                "deposit_ref": ref or f"dep-{self.channel._tx_counter}",
            },
        )

    def account(self, bank: str, account_id: str) -> Any:
        return self.query(bank, "GetAccount", {"account_id": account_id})

    def balance(self, bank: str, account_id: str, currency: str = "USD") -> int:
        return int(self.account(bank, account_id)["balances"].get(currency, 0))

    def pending(self, bank: str, account_id: str) -> list[str]:
        return list(self.account(bank, account_id)["pending_credits"])

    def transfer(
        self, bank: str, source: str, target: str, amount: int, transfer_id: str, currency: str = "USD"
    ) -> Any:
        return self.submit(
            bank,
            "Transfer",
            {
                "from_account": source,
                "to_account": target,
                "currency": currency,
                "amount": amount,
                "transfer_id": transfer_id,
                "pending_credits": self.pending(bank, source),
            },
        )

    def supply(self, org: str = REG) -> dict[tuple[str, str], int]:
        classes = self.query(org, "GetSupply")["token_classes"]
        return {(c["issuer"], c["currency"]): c["supply"] for c in classes}

    def total_balances(self) -> dict[str, int]:
        """Sum of every account's balance per currency, each bank reading its own books."""
        totals: dict[str, int] = {}
        for bank in BANKS:
            collection = self.channel.state[books_collection(bank)]
            accounts = {key.split("\x00")[2] for key in collection if key.startswith("\x00account\x00")}
            for account_id in accounts:
                for currency, amount in self.account(bank, account_id)["balances"].items():
                    totals[currency] = totals.get(currency, 0) + amount
        return totals

    def assert_conserved(self) -> None:
        supplies: dict[str, int] = {}
        for (_, currency), amount in self.supply().items():
            supplies[currency] = supplies.get(currency, 0) + amount
        balances = self.total_balances()
        for currency in set(supplies) | set(balances):
            assert supplies.get(currency, 0) == balances.get(currency, 0), (currency, supplies, balances)
        # Per token class too: a bank's books hold only its own tokens.
        supply = self.supply()
        for bank in BANKS:
            totals = self.query(bank, "GetBookTotals")["balances"]
            for (issuer, currency), amount in supply.items():
                if issuer == bank:
                    assert totals.get(currency, 0) == amount, (bank, currency, totals, amount)


def new_ledger() -> Ledger:
    channel = MemoryChannel.for_deposit_tokens(DepositTokenContract(), BANKS, [REG])
    ledger = Ledger(channel)
    ledger.submit(REG, "InitReferenceData", args=[json.dumps(REFERENCE_DATA)])
    return ledger


@pytest.fixture
def ledger() -> Ledger:
    return new_ledger()


__all__ = ["BANKS", "HK", "REG", "SG", "US", "Ledger", "Refused", "books_collection", "supply_collection"]
