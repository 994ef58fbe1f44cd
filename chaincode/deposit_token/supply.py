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


MAX_FOLD = 1000
"""At most this many supply changes are folded by one transaction (they are point reads)."""


def change_ids(ledger: Ledger, issuer: str, currency: str, limit: int) -> list[str]:
    """Ids of up to ``limit`` of the class's supply changes, for a fold. Only in queries (a scan)."""
    found: list[str] = []
    for change_key, _ in ledger.scan_private(supply_collection(issuer), keys.SUPPLY_CHANGE, currency):
        if len(found) == limit:
            break
        found.append(ledger.stub.split_composite_key(change_key)[1][1])
    return found


def fold(ledger: Ledger, issuer: str, currency: str, ids: list[str]) -> tuple[int, int]:
    """Replace the listed changes of the class by one holding their sum: the supply is unchanged, and
    reading it costs one key instead of many. Returns (changes folded, their sum).

    Each listed change is read, so a concurrent fold of the same changes fails validation instead of
    counting them twice; ids already folded (or never written) read as absent and are skipped. The
    sum is no supply change, so nothing is reported in the event. Only the issuer's peer can endorse
    it, as for every write of this collection.
    """
    collection = supply_collection(issuer)
    change_keys = [keys.supply_change(currency, change_id) for change_id in ids]
    total, folded = 0, 0
    for change_key, record in zip(change_keys, ledger.get_private_many(collection, change_keys), strict=True):
        if record is None:
            continue
        total += int(record["delta"])
        folded += 1
        ledger.delete_private(collection, change_key)
    if folded and total:
        ledger.put_private(collection, keys.supply_change(currency, ledger.unique_id()), {"delta": total})
    return folded, total
