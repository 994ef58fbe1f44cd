"""Ledger keys, one function per kind of record, in the namespace where each lives.

Public state holds only what every org may read; a bank's books collection holds its
customers and its side of each payment, details included; a supply collection holds one
issuer's supply changes. Composite keys keep each kind in its own
range so a partial-key scan never mixes kinds.

The few kinds a query pages through (account history, the payment index) use simple
keys ``kind/part/part`` instead: Fabric's shims refuse composite keys as the bounds of a
plain range scan, and only a plain range scan can resume from a bookmark key on private
data. No part contains ``/`` (ids are validated), so a prefix never matches another kind.
"""

from __future__ import annotations

from chaincode.shim.api import MAX_UNICODE_RUNE, create_composite_key

# -- public state -----------------------------------------------------------
CONFIG = "dt.config"
BANK = "dt.bank"
CORRIDOR = "dt.corridor"
CORRIDOR_VERSION = "dt.corridor_version"
PAYMENT = "dt.payment"
PVP = "dt.pvp"
OPEN_PVP_INDEX = "open-pvp"
PAYMENT_INDEX = "payment-index"
OPEN_PAYMENT_INDEX = "open-payment"
ALL_BANKS = "*"
UNSETTLED = "dt.unsettled"
SETTLED = "dt.settled"
CYCLE = "dt.cycle"
CONFIRMATION = "dt.confirmation"
DISCLOSURE_ANSWER = "dt.disclosure_answer"

# -- a bank's books ---------------------------------------------------------
ACCOUNT = "account"
HEAD = "head"
CREDIT = "credit"
ENTRY = "entry"
DEPOSIT = "deposit"
WITHDRAWAL = "withdrawal"
TRANSFER = "transfer"
BOOKED_PAYMENT = "payment"
CORRIDOR_USAGE = "corridor_usage"
ESCROW = "escrow"
BOOKED_PVP = "pvp"
OPEN_ESCROW = "open-escrow"

# -- supply collections -----------------------------------------------------
SUPPLY_CHANGE = "supply"
PVP_LOCK = "pvp_lock"

# -- the regulator's records and the banks' disclosures -------------------------
DISCLOSURE = "disclosure"
DISCLOSED = "disclosed"


def key(object_type: str, *attributes: str) -> str:
    return create_composite_key(object_type, list(attributes))


def simple_key(*parts: str) -> str:
    if any(not part or "/" in part for part in parts):
        raise ValueError("a simple key part must be non-empty and hold no '/'")
    return "/".join(parts)


def simple_prefix_range(*parts: str) -> tuple[str, str]:
    """Start and end of every simple key under this prefix."""
    prefix = simple_key(*parts) + "/"
    return prefix, prefix + MAX_UNICODE_RUNE


def config() -> str:
    return key(CONFIG)


def bank(msp_id: str) -> str:
    return key(BANK, msp_id)


def corridor() -> str:
    return key(CORRIDOR)


def corridor_version(version: int, archived_by_tx: str) -> str:
    """An archived corridor policy version; the archiving transaction's id makes the name unguessable."""
    return key(CORRIDOR_VERSION, f"{version:010d}", archived_by_tx)


def payment(payment_id: str) -> str:
    return key(PAYMENT, payment_id)


def payment_index(msp_id: str, order: str, payment_id: str) -> str:
    """``msp_id`` is a bank, or ``ALL_BANKS`` for the index of every payment."""
    return simple_key(PAYMENT_INDEX, msp_id, order, payment_id)


def open_payment_index(msp_id: str, order: str, payment_id: str) -> str:
    """A payment still waiting for a bank (initiated or rejected), under each bank and ``ALL_BANKS``."""
    return simple_key(OPEN_PAYMENT_INDEX, msp_id, order, payment_id)


def unsettled(payment_id: str) -> str:
    return key(UNSETTLED, payment_id)


def settled(payment_id: str) -> str:
    return key(SETTLED, payment_id)


def cycle(cycle_id: str) -> str:
    return key(CYCLE, cycle_id)


def confirmation(cycle_id: str, msp_id: str) -> str:
    return key(CONFIRMATION, cycle_id, msp_id)


def account(account_id: str) -> str:
    return key(ACCOUNT, account_id)


def head(account_id: str) -> str:
    return key(HEAD, account_id)


def credit(account_id: str, credit_id: str) -> str:
    return key(CREDIT, account_id, credit_id)


def entry(account_id: str, order: str, entry_id: str) -> str:
    return simple_key(ENTRY, account_id, order, entry_id)


def deposit(deposit_ref: str) -> str:
    return key(DEPOSIT, deposit_ref)


def withdrawal(withdrawal_ref: str) -> str:
    return key(WITHDRAWAL, withdrawal_ref)


def transfer(transfer_id: str) -> str:
    return key(TRANSFER, transfer_id)


def booked_payment(payment_id: str) -> str:
    return key(BOOKED_PAYMENT, payment_id)


def pvp(pvp_id: str) -> str:
    """A PvP's public record (no account in it; see pvp.py)."""
    return key(PVP, pvp_id)


def open_pvp_index(msp_id: str, order: str, pvp_id: str) -> str:
    """A PvP still waiting for a step of this bank (proposed, locked or refused)."""
    return simple_key(OPEN_PVP_INDEX, msp_id, order, pvp_id)


def booked_pvp(pvp_id: str) -> str:
    """This bank's leg of a PvP (in its books)."""
    return key(BOOKED_PVP, pvp_id)


def pvp_lock(pvp_id: str) -> str:
    """A leg's lock marker, in its bank's supply collection: only that bank can have written it."""
    return key(PVP_LOCK, pvp_id)


def escrow(escrow_id: str) -> str:
    """An escrow and its terms (in the payer bank's books; see escrow.py)."""
    return key(ESCROW, escrow_id)


def corridor_usage(currency: str, source: str, target: str, day: str) -> str:
    """What the bank sent in a capped corridor on one UTC day (in its own books)."""
    return key(CORRIDOR_USAGE, currency, source, target, day)


def supply_change(currency: str, change_id: str) -> str:
    return key(SUPPLY_CHANGE, currency, change_id)


def disclosure(request_id: str) -> str:
    """A disclosure request, in the regulator's collection."""
    return key(DISCLOSURE, request_id)


def disclosure_answer(request_id: str, msp_id: str) -> str:
    """A bank's answer to a disclosure request, in public state."""
    return key(DISCLOSURE_ANSWER, request_id, msp_id)


def disclosed(request_id: str) -> str:
    """What a bank delivered for a request, in its disclosure collection."""
    return key(DISCLOSED, request_id)
