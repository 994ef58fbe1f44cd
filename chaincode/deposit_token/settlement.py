"""Deferred net settlement of interbank obligations.

A cycle takes every completed payment not yet settled and nets them per currency into
one position per bank (what the bank receives, positive, or pays, negative; each
currency's positions sum to zero). The money moves outside the ledger (central-bank or
correspondent accounts); each bank in the cycle confirms its leg with the external
reference, and the cycle is settled when all of them have.

A bank confirms only after reconciling the cycle against its own books: every payment
of the cycle it is party to must be in its books with the same banks, currency and
amount, and not settled before. A bogus payment record, forged by another bank's
altered chaincode, fails that check and the confirmation is refused.

Concurrency: opening a cycle scans the public ``unsettled`` index (a public key scan,
which Fabric re-checks at commit) and deletes what it takes, so two cycles can never
take one payment. Confirmation keys are created with the cycle, each with a state-based
policy naming its bank, so no bank can confirm for another. A confirmation reads every
other bank's confirmation, so the last two confirmations cannot both miss each other:
one of them fails validation and its retry settles the cycle.
"""

from __future__ import annotations

import re

from chaincode.deposit_token import keys
from chaincode.deposit_token.accounts import Books
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.payments import COMPLETED, REFUNDED, unsettled_payments
from chaincode.deposit_token.reference import Bank

CYCLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EXTERNAL_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$")
OPEN = "open"
SETTLED = "settled"


def parse_cycle_id(value: str) -> str:
    if not CYCLE_ID.fullmatch(value):
        raise refusal(
            "invalid_request",
            "'cycle_id' must be 1 to 64 letters, digits or . _ - (starting with a letter or digit)",
        )
    return value


def open_cycle(ledger: Ledger, opened_by: str, cycle_id: str) -> Record:
    cycle_id = parse_cycle_id(cycle_id)
    if ledger.get(keys.cycle(cycle_id)) is not None:
        raise refusal("duplicate_reference", f"settlement cycle {cycle_id} exists already")
    payments: list[Record] = []
    positions: dict[str, dict[str, int]] = {}
    for index_key, record in list(unsettled_payments(ledger)):
        ledger.delete(index_key)
        if record is None or record["status"] != COMPLETED:
            continue
        if ledger.get(keys.settled(record["payment_id"])) is not None:
            continue
        payments.append(record)
        currency, amount = record["payee_currency"], int(record["payee_amount"])
        payer = positions.setdefault(record["payer_bank"], {})
        payee = positions.setdefault(record["payee_bank"], {})
        payer[currency] = payer.get(currency, 0) - amount
        payee[currency] = payee.get(currency, 0) + amount
    if not payments:
        raise refusal("nothing_to_settle", "no completed payment is waiting for settlement")
    banks = sorted(positions)
    cycle: Record = {
        "cycle_id": cycle_id,
        "status": OPEN,
        "opened_by": opened_by,
        "opened_at": ledger.now_iso,
        "settled_at": None,
        "banks": banks,
        "payments": [record["payment_id"] for record in payments],
        "positions": {bank: dict(sorted(positions[bank].items())) for bank in banks},
    }
    ledger.put(keys.cycle(cycle_id), cycle)
    ledger.require_endorsers(keys.cycle(cycle_id), banks, n=1)
    for bank in banks:
        confirmation_key = keys.confirmation(cycle_id, bank)
        ledger.put(confirmation_key, {"bank": bank, "confirmed": False, "external_ref": None, "at": None})
        ledger.require_endorsers(confirmation_key, [bank])
    for record in payments:
        marker = keys.settled(record["payment_id"])
        ledger.put(marker, {"cycle_id": cycle_id})
        ledger.require_endorsers(marker, [record["payer_bank"], record["payee_bank"]])
    ledger.emit("SettlementCycleOpened", {"cycle_id": cycle_id, "banks": banks, "payments": len(payments)})
    return {"cycle_id": cycle_id, "positions": cycle["positions"], "payments": len(payments)}


def _require_cycle(ledger: Ledger, cycle_id: str) -> Record:
    cycle = ledger.get(keys.cycle(parse_cycle_id(cycle_id)))
    if cycle is None:
        raise refusal("cycle_not_found", f"no settlement cycle {cycle_id}")
    return cycle


def confirm(ledger: Ledger, bank: Bank, cycle_id: str, external_ref: str) -> Record:
    if not EXTERNAL_REF.fullmatch(external_ref):
        raise refusal(
            "invalid_request", "'external_ref' must be 1 to 128 letters, digits or . _ : / # - (it is public)"
        )
    cycle = _require_cycle(ledger, cycle_id)
    if bank.msp_id not in cycle["banks"]:
        raise refusal("not_authorized", f"{bank.msp_id} has no leg in settlement cycle {cycle_id}")
    confirmation_key = keys.confirmation(cycle_id, bank.msp_id)
    confirmation = ledger.get(confirmation_key) or {"bank": bank.msp_id, "confirmed": False}
    if confirmation["confirmed"]:
        if confirmation["external_ref"] == external_ref:
            return {"cycle_id": cycle_id, "status": cycle["status"], "confirmed": False}
        raise refusal("already_confirmed", f"{bank.msp_id} confirmed cycle {cycle_id} with another reference")
    _reconcile(ledger, bank, cycle)
    ledger.put(
        confirmation_key,
        {"bank": bank.msp_id, "confirmed": True, "external_ref": external_ref, "at": ledger.now_iso},
    )
    others = [ledger.get(keys.confirmation(cycle_id, other)) for other in cycle["banks"] if other != bank.msp_id]
    if all(other is not None and other["confirmed"] for other in others):
        cycle["status"] = SETTLED
        cycle["settled_at"] = ledger.now_iso
        ledger.put(keys.cycle(cycle_id), cycle)
        ledger.emit("SettlementCycleSettled", {"cycle_id": cycle_id, "banks": cycle["banks"]})
    else:
        ledger.emit("SettlementConfirmed", {"cycle_id": cycle_id, "bank": bank.msp_id})
    return {"cycle_id": cycle_id, "status": cycle["status"], "confirmed": True}


def _reconcile(ledger: Ledger, bank: Bank, cycle: Record) -> None:
    books = Books(ledger, bank)
    for payment_id in cycle["payments"]:
        record = ledger.get(keys.payment(payment_id))
        if record is None:
            raise refusal("invalid_state", f"payment {payment_id} of the cycle has no public record")
        if bank.msp_id == record["payer_bank"]:
            direction, counterparty = "out", record["payee_bank"]
        elif bank.msp_id == record["payee_bank"]:
            direction, counterparty = "in", record["payer_bank"]
        else:
            continue
        booked_key = keys.booked_payment(payment_id)
        booked = ledger.get_private(books.collection, booked_key)
        owed = (record["payee_currency"], record["payee_amount"])
        if direction == "in":
            booked_owed = (booked or {}).get("currency"), (booked or {}).get("amount")
        else:
            booked_owed = (booked or {}).get("payee_currency"), (booked or {}).get("payee_amount")
        if (
            booked is None
            or booked.get("direction") != direction
            or booked.get("counterparty") != counterparty
            or booked.get("status") == REFUNDED
            or booked.get("settled_in") is not None
            or booked_owed != owed
        ):
            raise refusal(
                "invalid_state",
                f"payment {payment_id} of cycle {cycle['cycle_id']} does not match "
                f"{bank.msp_id}'s books; not confirming",
            )
        booked["settled_in"] = cycle["cycle_id"]
        ledger.put_private(books.collection, booked_key, booked)


def cycle_view(ledger: Ledger, cycle: Record) -> Record:
    confirmations = {bank: ledger.get(keys.confirmation(cycle["cycle_id"], bank)) for bank in cycle["banks"]}
    settled = all(item is not None and item["confirmed"] for item in confirmations.values())
    return {**cycle, "status": SETTLED if settled else OPEN, "confirmations": confirmations}


def get_cycle(ledger: Ledger, cycle_id: str) -> Record:
    return cycle_view(ledger, _require_cycle(ledger, cycle_id))


def list_cycles(ledger: Ledger) -> Record:
    cycles = [cycle_view(ledger, cycle) for _, cycle in ledger.scan_records(keys.CYCLE) if cycle is not None]
    return {"cycles": sorted(cycles, key=lambda c: c["opened_at"])}
