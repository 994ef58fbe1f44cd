"""Payment versus payment: two customers of two banks exchange two currencies, both legs or neither.

Each leg settles on the books of the bank that issues its currency: leg ``p`` moves the
proposer bank's currency from its customer (A) to the counterparty's account at the proposer
bank; leg ``a`` moves the acceptor bank's currency from its customer (B) to A's account at the
acceptor bank. The trade confirmation names both settlement accounts, as FX settlement
instructions do, so each bank checks its own payee before anything is irrevocable. No interbank
obligation arises, so there is nothing to settle later and no settlement risk.

The public record (banks, currencies, amounts, rate, expiry, status; never an account) moves:

``proposed`` (proposer bank)
    A's leg is debited and burned, and a lock marker is written to the proposer's supply
    collection.
``locked`` (acceptor bank, before the expiry)
    B's leg is debited and burned, with its own lock marker. This is the point of no return.
``settled`` (each bank delivers its own leg: credit and mint; the second delivery settles)
``refused`` (acceptor bank) then ``refunded`` (proposer bank), or ``refunded`` by the proposer
    bank once the offer has expired unaccepted.

What keeps the two legs together is Fabric's validation, not only this code:

- A lock marker lives in the leg bank's supply collection, which every org reads and only that
  bank can write (a collection-level endorsement policy, checked on new keys too). Its hash is in
  every peer's committed state with the block, so each bank reads the other's marker without
  waiting for gossip. A bank **delivers** its leg only when both markers are there, with the
  expected content: a bank with altered chaincode that marks the record ``locked`` without locking
  its own leg gets nothing delivered to its customer.
- The proposer bank **refunds** only when the acceptor's marker is absent (and the offer was refused
  or has expired): once both legs are locked, no refund exists. The acceptor's lock and the refund
  both read the record and the marker, so Fabric commits at most one of them.
- The record carries a state-based endorsement policy per status: proposed and locked = proposer OR
  acceptor; refused = proposer; settled and refunded = both (final). A third bank cannot touch it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Any

from chaincode.deposit_token import corridor, keys
from chaincode.deposit_token.accounts import Books
from chaincode.deposit_token.collections import supply_collection
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record, encode, iso, newest_first, parse_iso
from chaincode.deposit_token.money import convert, parse_rate
from chaincode.deposit_token.payments import booked_details, details_hash, hand_over, parse_details
from chaincode.deposit_token.reference import MSP_ID, Bank, Config, require_active, require_bank
from chaincode.deposit_token.requests import Request
from chaincode.deposit_token.supply import change_supply

PROPOSED = "proposed"
LOCKED = "locked"
SETTLED = "settled"
REFUSED = "refused"
REFUNDED = "refunded"
STATUSES = (PROPOSED, LOCKED, SETTLED, REFUSED, REFUNDED)
OPEN_STATUSES = (PROPOSED, LOCKED, REFUSED)

PVP_ID = re.compile(r"^[0-9a-f]{64}$")
REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# An offer is for minutes or hours, not a forward contract.
MAX_OFFER = dt.timedelta(days=7)

PROPOSE_FIELDS = (
    "idempotency_key", "payer_account", "payee_account", "currency", "amount", "counter_bank",
    "counter_payer_account", "counter_payee_account", "counter_currency", "counter_amount", "rate",
    "expires_at", "pending_credits",
)  # fmt: skip
ACCEPT_FIELDS = ("pvp_id", "payer_account", "pending_credits", "details", "salt")


def pvp_id_for(proposer: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"deposit-token/pvp\x00{proposer}\x00{idempotency_key}".encode()).hexdigest()


def parse_pvp_id(value: object) -> str:
    if not isinstance(value, str) or not PVP_ID.fullmatch(value):
        raise refusal("invalid_request", "'pvp_id' must be a PvP id (64 lowercase hex digits)")
    return value


def endorsers_for(status: str, proposer: str, acceptor: str) -> tuple[list[str], int | None]:
    if status in (PROPOSED, LOCKED):
        return [proposer, acceptor], 1
    if status == REFUSED:
        return [proposer], None
    return [proposer, acceptor], None


def lock_marker(pvp_id: str, bank: str, currency: str, amount: int) -> Record:
    """What a leg's lock marker holds: enough for the other bank to check it by its hash alone."""
    return {"pvp_id": pvp_id, "bank": bank, "currency": currency, "amount": amount}


def _leg_locked(ledger: Ledger, record: Record, side: str) -> bool:
    """Whether the bank of ``side`` committed the lock of its leg, as the record describes it."""
    leg = record["legs"][side]
    expected = hashlib.sha256(encode(lock_marker(record["pvp_id"], leg["bank"], leg["currency"], leg["amount"])))
    found = ledger.stub.get_private_data_hash(supply_collection(leg["bank"]), keys.pvp_lock(record["pvp_id"]))
    return bool(found) and found == expected.digest()


def _lock_leg(ledger: Ledger, books: Books, record: Record, side: str, account_id: str, pending: list[str]) -> None:
    leg = record["legs"][side]
    account = books.require_account(account_id, "payer_account")
    books.debit(
        account_id, account, leg["currency"], leg["amount"],
        kind="pvp_out", reference=record["pvp_id"], pending_credits=pending, apply_limits=True,
    )  # fmt: skip
    change_supply(ledger, leg["bank"], leg["currency"], -leg["amount"])
    ledger.put_private(
        supply_collection(leg["bank"]),
        keys.pvp_lock(record["pvp_id"]),
        lock_marker(record["pvp_id"], leg["bank"], leg["currency"], leg["amount"]),
    )


def _save(ledger: Ledger, record: Record, status: str) -> None:
    record["status"] = status
    record["timeline"] = [*record["timeline"], {"status": status, "at": ledger.now_iso, "tx_id": ledger.tx_id}]
    key = keys.pvp(record["pvp_id"])
    ledger.put(key, record)
    proposer, acceptor = record["legs"]["p"]["bank"], record["legs"]["a"]["bank"]
    signers, n = endorsers_for(status, proposer, acceptor)
    ledger.require_endorsers(key, signers, n)
    order = newest_first(parse_iso(record["created_at"]))
    for bank in (proposer, acceptor):
        index_key = keys.open_pvp_index(bank, order, record["pvp_id"])
        if status in OPEN_STATUSES:
            ledger.put_marker(index_key)
        else:
            ledger.delete(index_key)


def _event(record: Record) -> Record:
    return {
        "pvp_id": record["pvp_id"],
        "proposer_bank": record["legs"]["p"]["bank"],
        "acceptor_bank": record["legs"]["a"]["bank"],
    }


def _require(ledger: Ledger, pvp_id: str) -> Record:
    record = ledger.get(keys.pvp(pvp_id))
    if record is None:
        raise refusal("pvp_not_found", f"no PvP {pvp_id}")
    return record


def _side_of(record: Record, bank: Bank) -> str:
    for side in ("p", "a"):
        if record["legs"][side]["bank"] == bank.msp_id:
            return side
    raise refusal("not_authorized", "only the two banks of a PvP act on it")


# -- propose (proposer bank) ---------------------------------------------------------


def propose(ledger: Ledger, config: Config, bank: Bank, request: Request) -> Record:
    idempotency_key = request.text("idempotency_key", max_length=128)
    pvp_id = pvp_id_for(bank.msp_id, idempotency_key)
    payer_account = request.account_id("payer_account")
    payee_account = request.account_id("payee_account")
    counter_msp = request.raw("counter_bank")
    if not isinstance(counter_msp, str) or not MSP_ID.fullmatch(counter_msp):
        raise refusal("invalid_request", "'counter_bank' must be an MSP id")
    if counter_msp == bank.msp_id:
        raise refusal("invalid_request", "'counter_bank' is the proposer's own bank: a PvP is between two banks")
    counter_bank = require_bank(ledger, counter_msp, "counter_bank")
    counter_payer = request.account_id("counter_payer_account")
    counter_payee = request.account_id("counter_payee_account")
    currency = request.currency(config.currencies)
    amount = request.amount()
    counter_currency = request.currency(config.currencies, "counter_currency")
    counter_amount = request.amount("counter_amount")
    if counter_currency == currency:
        raise refusal("invalid_request", "a PvP exchanges two different currencies")
    rate_text = request.raw("rate")
    rate = parse_rate(rate_text, "rate")
    expected = convert(amount, rate, config.currencies[currency], config.currencies[counter_currency])
    if counter_amount != expected:
        raise refusal(
            "invalid_request",
            f"'counter_amount' {counter_amount} is not amount x rate = {expected} {counter_currency} (half-even)",
        )
    expires_text = request.text("expires_at", max_length=40)
    try:
        expires_at = parse_iso(expires_text)
    except ValueError:
        raise refusal("invalid_request", "'expires_at' must be a time like 2025-01-06T09:00:00.000000Z") from None
    if not ledger.now < expires_at <= ledger.now + MAX_OFFER:
        raise refusal("invalid_request", f"'expires_at' must be in the future and at most {MAX_OFFER.days} days ahead")
    pending = request.pending_credits()
    if not bank.issues(currency):
        raise refusal("currency_not_issued", f"{bank.msp_id} does not issue {currency} tokens")
    if not counter_bank.issues(counter_currency):
        raise refusal("currency_not_issued", f"{counter_bank.msp_id} does not issue {counter_currency} tokens")

    details: Record = {
        "payer_account": payer_account, "payee_account": payee_account,
        "counter_payer_account": counter_payer, "counter_payee_account": counter_payee,
    }  # fmt: skip
    fingerprint = hashlib.sha256(
        encode({**details, "counter_bank": counter_bank.msp_id, "currency": currency, "amount": amount,
                "counter_currency": counter_currency, "counter_amount": counter_amount, "rate": str(rate_text),
                "expires_at": iso(expires_at)})
    ).hexdigest()  # fmt: skip
    books = Books(ledger, bank)
    booked = ledger.get_private(books.collection, keys.booked_pvp(pvp_id))
    if booked is not None:
        if booked["fingerprint"] != fingerprint:
            raise refusal("duplicate_reference", "'idempotency_key' was already used for a different PvP")
        current = _require(ledger, pvp_id)
        return {"pvp_id": pvp_id, "status": current["status"], "created": False, "pvp": current}
    if ledger.get(keys.pvp(pvp_id)) is not None:
        raise refusal("invalid_state", f"a PvP record {pvp_id} exists that this bank's books do not hold")
    for involved in (bank, counter_bank):
        require_active(involved, "no new PvP with it is accepted")
    # The counterparty's settlement account here must be payable now: once the acceptor locks its
    # leg, this leg must be deliverable.
    books.prefetch_balance(payer_account, pending, with_account=True)
    payer = books.require_account(payer_account, "payer_account")
    payee = books.require_account(payee_account, "payee_account")
    payee.require_can_be_paid()
    corridor.check_corridor(ledger, currency, payer.jurisdiction, payee.jurisdiction)

    record: Record = {
        "pvp_id": pvp_id,
        "legs": {
            "p": {"bank": bank.msp_id, "currency": currency, "amount": amount, "delivered": False},
            "a": {"bank": counter_bank.msp_id, "currency": counter_currency, "amount": counter_amount,
                  "delivered": False},
        },
        "rate": str(rate_text),
        "expires_at": iso(expires_at),
        "status": PROPOSED,
        "reason": None,
        "created_at": ledger.now_iso,
        "timeline": [],
    }  # fmt: skip
    # The four accounts stay in the proposer's books; the acceptor's gateway fetches them from the
    # proposer's peer (``counterparty_details``) and ``accept`` checks them against this salted hash
    # (docs/decisions/0036). One endorser runs this, so a random salt is safe.
    salt = secrets.token_hex(16)
    record["details_hash"] = details_hash(salt, details)
    _lock_leg(ledger, books, record, "p", payer_account, pending)
    ledger.put_private(
        books.collection,
        keys.booked_pvp(pvp_id),
        {"side": "p", "payer_account": payer_account, "payee_account": payee_account, "status": LOCKED,
         "fingerprint": fingerprint, "details": details, "salt": salt},
    )  # fmt: skip
    _save(ledger, record, PROPOSED)
    ledger.emit("PvpProposed", _event(record))
    return {"pvp_id": pvp_id, "status": PROPOSED, "created": True, "pvp": record}


# -- accept / refuse (acceptor bank) -------------------------------------------------


def accept(ledger: Ledger, bank: Bank, request: Request) -> Record:
    pvp_id = parse_pvp_id(request.raw("pvp_id"))
    payer_account = request.account_id("payer_account")
    pending = request.pending_credits()
    record = _require(ledger, pvp_id)
    if _side_of(record, bank) != "a":
        raise refusal("not_authorized", "only the counterparty's bank accepts a PvP")
    books = Books(ledger, bank)
    booked = ledger.get_private(books.collection, keys.booked_pvp(pvp_id))
    if booked is not None:
        return {"pvp_id": pvp_id, "status": record["status"], "accepted": False, "pvp": record}
    if record["status"] != PROPOSED:
        raise refusal("invalid_state", f"the PvP is {record['status']}, not proposed")
    if ledger.now >= parse_iso(record["expires_at"]):
        raise refusal("invalid_state", "the offer has expired")
    details, salt = parse_details(request, record["details_hash"], f"PvP {pvp_id}")
    if details["counter_payer_account"] != payer_account:
        raise refusal("not_authorized", "the PvP names another account to pay this leg")
    if not _leg_locked(ledger, record, "p"):
        raise refusal("invalid_state", "the proposer's leg is not locked")
    books.prefetch_balance(payer_account, pending, with_account=True)
    payee = books.require_account(details["counter_payee_account"], "counter_payee_account")
    payee.require_can_be_paid()
    payer = books.require_account(payer_account, "payer_account")
    corridor.check_corridor(ledger, record["legs"]["a"]["currency"], payer.jurisdiction, payee.jurisdiction)
    _lock_leg(ledger, books, record, "a", payer_account, pending)
    ledger.put_private(
        books.collection,
        keys.booked_pvp(pvp_id),
        {"side": "a", "payer_account": payer_account, "payee_account": details["counter_payee_account"],
         "status": LOCKED, "details": details, "salt": salt},
    )  # fmt: skip
    _save(ledger, record, LOCKED)
    ledger.emit("PvpLocked", _event(record))
    return {"pvp_id": pvp_id, "status": LOCKED, "accepted": True, "pvp": record}


def refuse(ledger: Ledger, bank: Bank, pvp_id: str, reason: str) -> Record:
    if not REASON.fullmatch(reason):
        raise refusal("invalid_request", "'reason' must be a code of lowercase letters, digits and _ (it is public)")
    record = _require(ledger, pvp_id)
    if _side_of(record, bank) != "a":
        raise refusal("not_authorized", "only the counterparty's bank refuses a PvP")
    if record["status"] == REFUSED:
        return {"pvp_id": pvp_id, "status": REFUSED, "refused": False, "pvp": record}
    if record["status"] != PROPOSED:
        raise refusal("invalid_state", f"the PvP is {record['status']}, not proposed")
    record["reason"] = reason
    _save(ledger, record, REFUSED)
    ledger.emit("PvpRefused", {**_event(record), "reason": reason})
    return {"pvp_id": pvp_id, "status": REFUSED, "refused": True, "pvp": record}


# -- deliver (each bank, its own leg) ----------------------------------------------------


def deliver(ledger: Ledger, bank: Bank, pvp_id: str) -> Record:
    """Credit this bank's leg to its payee, once both legs are locked."""
    record = _require(ledger, pvp_id)
    side = _side_of(record, bank)
    books = Books(ledger, bank)
    booked = ledger.get_private(books.collection, keys.booked_pvp(pvp_id))
    if booked is None:
        raise refusal("invalid_state", f"PvP {pvp_id} is not in this bank's books")
    if booked["status"] == "delivered":
        return {"pvp_id": pvp_id, "status": record["status"], "delivered": False, "pvp": record}
    if booked["status"] != LOCKED:
        raise refusal("invalid_state", f"this bank's leg of PvP {pvp_id} is {booked['status']}")
    other = "a" if side == "p" else "p"
    # Both markers, not the record's status: a record moved on by the other bank's altered
    # chaincode proves nothing, a marker in its supply collection proves its lock committed.
    if not (_leg_locked(ledger, record, side) and _leg_locked(ledger, record, other)):
        raise refusal("invalid_state", f"both legs of PvP {pvp_id} must be locked before either is delivered")
    leg = record["legs"][side]
    payee = books.require_account(booked["payee_account"], "payee_account")
    payee.require_can_be_paid()
    books.credit(booked["payee_account"], leg["currency"], leg["amount"], "pvp_in", pvp_id)
    change_supply(ledger, bank.msp_id, leg["currency"], leg["amount"])
    booked["status"] = "delivered"
    ledger.put_private(books.collection, keys.booked_pvp(pvp_id), booked)
    if record["status"] == LOCKED:
        record["legs"][side]["delivered"] = True
        done = all(record["legs"][s]["delivered"] for s in ("p", "a"))
        _save(ledger, record, SETTLED if done else LOCKED)
    ledger.emit("PvpDelivered", {**_event(record), "bank": bank.msp_id})
    return {"pvp_id": pvp_id, "status": record["status"], "delivered": True, "pvp": record}


# -- refund (proposer bank) ----------------------------------------------------------------


def refund(ledger: Ledger, bank: Bank, pvp_id: str) -> Record:
    """Return the proposer's leg: the offer was refused, or expired without the counterparty's lock."""
    record = _require(ledger, pvp_id)
    if _side_of(record, bank) != "p":
        raise refusal("not_authorized", "only the proposer's bank refunds a PvP")
    books = Books(ledger, bank)
    booked = ledger.get_private(books.collection, keys.booked_pvp(pvp_id))
    if booked is None:
        raise refusal("invalid_state", f"PvP {pvp_id} is not in this bank's books")
    if booked["status"] == REFUNDED:
        return {"pvp_id": pvp_id, "status": record["status"], "refunded": False, "pvp": record}
    if booked["status"] != LOCKED:
        raise refusal("invalid_state", f"this bank's leg of PvP {pvp_id} is {booked['status']}")
    # Once the counterparty's leg is locked there is no way back, whatever the record says.
    if _leg_locked(ledger, record, "a"):
        raise refusal("invalid_state", f"both legs of PvP {pvp_id} are locked: it can only be delivered")
    expired = ledger.now >= parse_iso(record["expires_at"])
    if record["status"] != REFUSED and not expired:
        raise refusal("not_expired", f"the offer stands until {record['expires_at']}")
    leg = record["legs"]["p"]
    books.credit(booked["payer_account"], leg["currency"], leg["amount"], "pvp_refund", pvp_id)
    change_supply(ledger, bank.msp_id, leg["currency"], leg["amount"])
    booked["status"] = REFUNDED
    ledger.put_private(books.collection, keys.booked_pvp(pvp_id), booked)
    if record["status"] in (PROPOSED, REFUSED, LOCKED):
        if record["status"] != REFUSED:
            record["reason"] = "expired" if record["status"] == PROPOSED else "counterparty_not_locked"
        _save(ledger, record, REFUNDED)
    ledger.emit("PvpRefunded", _event(record))
    return {"pvp_id": pvp_id, "status": record["status"], "refunded": True, "pvp": record}


# -- queries ---------------------------------------------------------------------------------


def get(ledger: Ledger, pvp_id: str, caller: Bank | None, with_details: bool) -> Record:
    """The public record; with the four accounts from the caller's own books (the acceptor bank
    has them once it accepted, ``None`` before)."""
    record = _require(ledger, pvp_id)
    result: dict[str, Any] = dict(record)
    if with_details:
        banks = (record["legs"]["p"]["bank"], record["legs"]["a"]["bank"])
        if caller is None or caller.msp_id not in banks:
            raise refusal("not_authorized", "only the two banks of a PvP may read its details")
        stored = booked_details(ledger, caller, keys.booked_pvp(pvp_id))
        result["details"] = stored[0] if stored else None
    return result


def counterparty_details(ledger: Ledger, holder: Bank, caller: str, pvp_id: str) -> Record:
    """The four accounts and their salt from ``holder``'s books, for a client of either bank of the
    PvP: the acceptor bank's gateway asks the proposer bank's peer before ``accept``."""
    record = _require(ledger, pvp_id)
    if caller not in (record["legs"]["p"]["bank"], record["legs"]["a"]["bank"]):
        raise refusal("not_authorized", "only the two banks of a PvP may read its details")
    return {"pvp_id": pvp_id, **hand_over(ledger, holder, keys.booked_pvp(pvp_id), f"PvP {pvp_id}")}


def list_open(ledger: Ledger, bank: str, limit: int) -> Record:
    """The bank's PvPs that still need a step (proposed, locked, refused), newest first."""
    start, end = keys.simple_prefix_range(keys.OPEN_PVP_INDEX, bank)
    found: list[Record] = []
    for key, _ in ledger.scan_range(start, end):
        if len(found) == limit:
            break
        record = ledger.get(keys.pvp(key.rsplit("/", 1)[1]))
        if record is not None:
            found.append(record)
    return {"pvps": found}
