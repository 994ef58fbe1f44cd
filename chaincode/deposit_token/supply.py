"""Supply per token class (issuer bank, currency).

Every change is a new key blind-written to the issuer's supply collection, so concurrent
issues and payments never collide on a counter. That collection is readable by every
org and its endorsement policy names the issuer alone, which Fabric enforces on new keys
too (a state-based policy cannot protect a key that does not exist yet): no other bank
can forge a supply change even with altered chaincode. The supply of a class is the sum
of its changes, read in queries.
"""

from __future__ import annotations

from chaincode.deposit_token import keys
from chaincode.deposit_token.collections import supply_collection
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.reference import Bank


def change_supply(ledger: Ledger, issuer: str, currency: str, delta: int) -> None:
    """Write the change, and report it in the transaction's event (which must come after)."""
    ledger.report_supply_change(issuer, currency, delta)
    ledger.put_private(supply_collection(issuer), keys.supply_change(currency, ledger.unique_id()), {"delta": delta})


def supply_of(ledger: Ledger, issuer: str, currency: str) -> int:
    """Only in queries (a private range scan)."""
    total = 0
    for _, record in ledger.scan_private(supply_collection(issuer), keys.SUPPLY_CHANGE, currency):
        if record is not None:
            total += int(record["delta"])
    return total


def token_classes(ledger: Ledger, banks: list[Bank]) -> list[Record]:
    return [
        {"issuer": bank.msp_id, "currency": currency, "supply": supply_of(ledger, bank.msp_id, currency)}
        for bank in sorted(banks, key=lambda b: b.msp_id)
        for currency in bank.currencies
    ]
