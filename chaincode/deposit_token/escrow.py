"""Escrow: money locked for a named payee, released on the stated terms or settled at expiry.

An escrow lives entirely in the payer bank's books (its own private collection, which only its
peer may endorse a write to), so every step is one transaction on one bank's peer:

``open`` (lock)
    debit the buyer and take the money out of circulation (the payer bank's token is burned, as
    for an initiated interbank payment), so it leaves the available balance at once and the head
    serialises it against every other debit of the account: it cannot be spent twice.
``release`` (by the buyer, the attestor, or both, as the terms say; partial releases allowed
    up to the locked amount)
    the released amount moves to the payee: credited (and minted again) at once when the payee
    banks here, or booked as an initiated interbank payment otherwise, which the payee bank
    completes like any other (and which refunds the buyer if the payee bank rejects it).
``expire`` (the payer bank's gateway, once ``expires_at`` has passed)
    what is still locked is refunded to the buyer or released to the payee, as the terms say.

An escrow is ``open`` until nothing is left locked, then ``released`` (everything went to the
payee) or ``refunded`` (a remainder returned to the buyer at expiry). Supply and books move
together at every step, so each issuer's supply still equals its book totals.

The attestor (an inspection or logistics company) is not an org on the channel: it holds an
API key at the payer bank's gateway, which names it in the release; the contract checks that
the name is the escrow's attestor. Nothing of an escrow reaches public state: events carry the
escrow id (a hash) and the bank only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from chaincode.deposit_token import corridor, keys, payments
from chaincode.deposit_token.accounts import Books
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record, encode, iso, micros, parse_iso
from chaincode.deposit_token.reference import MSP_ID, Bank, Config, require_active, require_bank
from chaincode.deposit_token.requests import Request
from chaincode.deposit_token.supply import change_supply

OPEN = "open"
RELEASED = "released"
REFUNDED = "refunded"
STATUSES = (OPEN, RELEASED, REFUNDED)

BUYER = "buyer"
ATTESTOR = "attestor"
BOTH = "both"
RELEASERS = (BUYER, ATTESTOR, BOTH)
ON_EXPIRY = ("refund", "release")

ESCROW_ID = re.compile(r"^[0-9a-f]{64}$")
ATTESTOR_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# The release id of what the expiry releases (a caller's release may not use it: the interbank
# payment id derives from it).
EXPIRY_RELEASE = "expiry"
# An escrow longer than this is a deposit product, not a conditional payment.
MAX_TERM = dt.timedelta(days=366)
# Every release is one entry of the escrow record; the cap keeps the record small.
MAX_RELEASES = 100

LOCK_FIELDS = (
    "idempotency_key", "payer_account", "payee_bank", "payee_account", "currency", "amount",
    "release_by", "attestor", "expires_at", "on_expiry", "remittance", "pending_credits",
)  # fmt: skip
RELEASE_FIELDS = ("escrow_id", "release_id", "amount", "by", "attestor")


def escrow_id_for(payer_bank: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"deposit-token/escrow\x00{payer_bank}\x00{idempotency_key}".encode()).hexdigest()


def parse_escrow_id(value: object) -> str:
    if not isinstance(value, str) or not ESCROW_ID.fullmatch(value):
        raise refusal("invalid_request", "'escrow_id' must be an escrow id (64 lowercase hex digits)")
    return value


def _open_index(record: Record) -> str:
    # Soonest expiry first, so the sweeper's scan stops at the first escrow not yet due.
    return keys.simple_key(keys.OPEN_ESCROW, f"{micros(parse_iso(record['expires_at'])):020d}", record["escrow_id"])


def _event(bank: Bank, escrow_id: str) -> Record:
    return {"escrow_id": escrow_id, "bank": bank.msp_id}


# -- lock ------------------------------------------------------------------------


def lock(ledger: Ledger, config: Config, bank: Bank, request: Request) -> Record:
    idempotency_key = request.text("idempotency_key", max_length=128)
    payer_account = request.account_id("payer_account")
    escrow_id = escrow_id_for(bank.msp_id, idempotency_key)
    payee_msp = request.raw("payee_bank")
    if not isinstance(payee_msp, str) or not MSP_ID.fullmatch(payee_msp):
        raise refusal("invalid_request", "'payee_bank' must be an MSP id")
    payee_bank = bank if payee_msp == bank.msp_id else require_bank(ledger, payee_msp, "payee_bank")
    payee_account = request.account_id("payee_account")
    if payee_bank.msp_id == bank.msp_id and payee_account == payer_account:
        raise refusal("invalid_request", "'payee_account' is the buyer's own account")
    currency = request.currency(config.currencies)
    amount = request.amount()
    release_by = request.text("release_by", max_length=10)
    if release_by not in RELEASERS:
        raise refusal("invalid_request", f"'release_by' must be one of {', '.join(RELEASERS)}")
    attestor = request.optional_text("attestor", max_length=64, pattern=ATTESTOR_ID)
    if release_by != BUYER and attestor is None:
        raise refusal("invalid_request", f"'attestor' is required when 'release_by' is {release_by}")
    if release_by == BUYER and attestor is not None:
        raise refusal("invalid_request", "'attestor' is only for 'release_by' attestor or both")
    expires_text = request.text("expires_at", max_length=40)
    try:
        expires_at = parse_iso(expires_text)
    except ValueError:
        raise refusal("invalid_request", "'expires_at' must be a time like 2025-01-06T09:00:00.000000Z") from None
    if expires_at <= ledger.now:
        raise refusal("invalid_request", "'expires_at' is not in the future")
    if expires_at - ledger.now > MAX_TERM:
        raise refusal("invalid_request", f"'expires_at' is more than {MAX_TERM.days} days ahead")
    on_expiry = request.text("on_expiry", max_length=10)
    if on_expiry not in ON_EXPIRY:
        raise refusal("invalid_request", f"'on_expiry' must be one of {', '.join(ON_EXPIRY)}")
    remittance = request.optional_text("remittance", max_length=500) or ""
    pending_credits = request.pending_credits()
    for issuer in dict.fromkeys((bank, payee_bank)):
        if not issuer.issues(currency):
            raise refusal("currency_not_issued", f"{issuer.msp_id} does not issue {currency} tokens")

    terms: Record = {
        "payer_account": payer_account, "payee_bank": payee_bank.msp_id, "payee_account": payee_account,
        "currency": currency, "amount": amount, "release_by": release_by, "attestor": attestor,
        "expires_at": iso(expires_at), "on_expiry": on_expiry, "remittance": remittance,
    }  # fmt: skip
    fingerprint = hashlib.sha256(encode(terms)).hexdigest()
    books = Books(ledger, bank)
    existing = ledger.get_private(books.collection, keys.escrow(escrow_id))
    if existing is not None:
        if existing["fingerprint"] != fingerprint:
            raise refusal("duplicate_reference", "'idempotency_key' was already used for a different escrow")
        return {"escrow_id": escrow_id, "created": False, "escrow": _summary(existing)}
    for involved in dict.fromkeys((bank, payee_bank)):
        require_active(involved, "no new escrow to or from it is accepted")

    books.prefetch_balance(payer_account, pending_credits, with_account=True)
    payer = books.require_account(payer_account, "payer_account")
    if payee_bank.msp_id == bank.msp_id:
        # The payee is known here, so it is checked now rather than only when money reaches it.
        payee = books.require_account(payee_account, "payee_account")
        payee.require_can_be_paid()
        corridor.check_corridor(ledger, currency, payer.jurisdiction, payee.jurisdiction)
    else:
        corridor.check_payer_side(corridor.load_policy(ledger), currency, payer.jurisdiction)
    books.debit(
        payer_account, payer, currency, amount,
        kind="escrow_lock", reference=escrow_id, pending_credits=pending_credits, apply_limits=True,
    )  # fmt: skip
    change_supply(ledger, bank.msp_id, currency, -amount)
    record: Record = {
        **terms,
        "escrow_id": escrow_id,
        "payer_bank": bank.msp_id,
        "payer_jurisdiction": payer.jurisdiction,
        "status": OPEN,
        "locked": amount,
        "released": 0,
        "refunded": 0,
        "releases": [],
        "approvals": {},
        "created_at": ledger.now_iso,
        "closed_at": None,
        "fingerprint": fingerprint,
    }
    ledger.put_private(books.collection, keys.escrow(escrow_id), record)
    ledger.put_private(books.collection, _open_index(record), {"escrow_id": escrow_id})
    ledger.emit("EscrowLocked", _event(bank, escrow_id))
    return {"escrow_id": escrow_id, "created": True, "escrow": _summary(record)}


# -- release -------------------------------------------------------------------------


def release(ledger: Ledger, config: Config, bank: Bank, request: Request) -> Record:
    escrow_id = parse_escrow_id(request.raw("escrow_id"))
    release_id = request.text("release_id", max_length=128, pattern=RELEASE_ID)
    if release_id == EXPIRY_RELEASE:
        raise refusal("invalid_request", f"'release_id' {EXPIRY_RELEASE} is the one the expiry uses")
    amount = request.amount()
    by = request.text("by", max_length=10)
    if by not in (BUYER, ATTESTOR):
        raise refusal("invalid_request", "'by' must be buyer or attestor")
    attestor = request.optional_text("attestor", max_length=64, pattern=ATTESTOR_ID)
    if by == ATTESTOR and attestor is None:
        raise refusal("invalid_request", "'attestor' names the attestor releasing")
    books = Books(ledger, bank)
    record = _require(ledger, books, escrow_id)
    done = next((item for item in record["releases"] if item["release_id"] == release_id), None)
    if done is not None:
        if done["amount"] != amount:
            raise refusal("duplicate_reference", "'release_id' was already used for a different amount")
        return {"escrow_id": escrow_id, "released": False, "escrow": _summary(record)}
    if record["status"] != OPEN:
        raise refusal("invalid_state", f"the escrow is {record['status']}: nothing is left to release")
    if ledger.now >= parse_iso(record["expires_at"]):
        raise refusal("invalid_state", "the escrow has expired: it is settled as its terms say at expiry")
    allowed = record["release_by"]
    if by == ATTESTOR and attestor != record["attestor"]:
        raise refusal("not_authorized", "only the escrow's attestor may release as attestor")
    if allowed != BOTH and by != allowed:
        raise refusal("not_authorized", f"this escrow is released by the {allowed} only")
    left = record["locked"] - record["released"] - record["refunded"]
    if amount > left:
        raise refusal("insufficient_funds", f"the release {amount} is above the {left} still locked")
    if len(record["releases"]) >= MAX_RELEASES:
        raise refusal("invalid_request", f"an escrow takes at most {MAX_RELEASES} releases")
    if allowed == BOTH:
        # Both must ask for the same release (id and amount); the second approval moves the money.
        approval = record["approvals"].get(release_id)
        if approval is not None and approval["amount"] != amount:
            raise refusal("duplicate_reference", "'release_id' was approved for a different amount")
        if approval is not None and by in approval["by"]:
            # The same party asking again (a retry): nothing changes, nothing is emitted.
            return {"escrow_id": escrow_id, "released": False, "awaiting": _other(by), "escrow": _summary(record)}
        approvers = sorted({*(approval["by"] if approval else []), by})
        if approvers != [ATTESTOR, BUYER]:
            record["approvals"][release_id] = {"amount": amount, "by": approvers}
            ledger.put_private(books.collection, keys.escrow(escrow_id), record)
            ledger.emit("EscrowApproved", _event(bank, escrow_id))
            return {"escrow_id": escrow_id, "released": False, "awaiting": _other(by), "escrow": _summary(record)}
        record["approvals"].pop(release_id, None)
    payment_id = _pay_out(ledger, bank, books, record, release_id, amount)
    record["released"] += amount
    record["releases"].append(
        {"release_id": release_id, "amount": amount, "by": by if allowed != BOTH else BOTH,
         "at": ledger.now_iso, "payment_id": payment_id},
    )  # fmt: skip
    _close_if_done(ledger, books, record)
    _released_event(ledger, bank, escrow_id, payment_id)
    return {"escrow_id": escrow_id, "released": True, "payment_id": payment_id, "escrow": _summary(record)}


def _released_event(ledger: Ledger, bank: Bank, escrow_id: str, payment_id: str | None) -> None:
    # Fabric keeps one event per transaction: a release to another bank carries the payment's
    # ``PaymentInitiated``, which the payee bank's gateway must hear to complete it.
    if payment_id is None:
        ledger.emit("EscrowReleased", _event(bank, escrow_id))


def _other(by: str) -> str:
    return BUYER if by == ATTESTOR else ATTESTOR


def _pay_out(ledger: Ledger, bank: Bank, books: Books, record: Record, release_id: str, amount: int) -> str | None:
    """Move ``amount`` of the locked money to the payee; the interbank payment's id, if one was made."""
    currency = record["currency"]
    if record["payee_bank"] == bank.msp_id:
        payee = books.require_account(record["payee_account"], "payee_account")
        payee.require_can_be_paid()
        books.credit(record["payee_account"], currency, amount, "escrow_release", record["escrow_id"])
        change_supply(ledger, bank.msp_id, currency, amount)
        return None
    payee_bank = require_bank(ledger, record["payee_bank"], "payee_bank")
    # The money left circulation at the lock; what moves now is the obligation, so the corridor's
    # caps count it now, when it becomes an interbank payment.
    policy = corridor.load_policy(ledger)
    corridor.apply_caps(ledger, policy, bank, payee_bank, books.collection, currency, amount)
    payment_id = payments.payment_id_for(bank.msp_id, f"escrow/{record['escrow_id']}/{release_id}")
    payments.open_payment(
        ledger, bank, payee_bank, payment_id,
        payer_account=record["payer_account"], payer_jurisdiction=record["payer_jurisdiction"],
        payee_account=record["payee_account"], currency=currency, amount=amount, payee_currency=currency,
        payee_amount=amount, rate=None, remittance=record["remittance"], salt=None,
        fingerprint=hashlib.sha256(encode({"escrow_id": record["escrow_id"], "release_id": release_id})).hexdigest(),
        corridor_version=policy["version"],
    )  # fmt: skip
    return payment_id


def _close_if_done(ledger: Ledger, books: Books, record: Record) -> None:
    """Save the record; once nothing is left locked it is final and leaves the sweeper's index."""
    if record["locked"] == record["released"] + record["refunded"]:
        record["status"] = RELEASED if record["refunded"] == 0 else REFUNDED
        record["closed_at"] = ledger.now_iso
        record["approvals"] = {}
        ledger.delete_private(books.collection, _open_index(record))
    ledger.put_private(books.collection, keys.escrow(record["escrow_id"]), record)


# -- expire (the payer bank's gateway, after expires_at) --------------------------------


def expire(ledger: Ledger, bank: Bank, escrow_id: str) -> Record:
    books = Books(ledger, bank)
    record = _require(ledger, books, escrow_id)
    if record["status"] != OPEN:
        return {"escrow_id": escrow_id, "expired": False, "escrow": _summary(record)}
    if ledger.now < parse_iso(record["expires_at"]):
        raise refusal("not_expired", f"the escrow expires at {record['expires_at']}")
    left = record["locked"] - record["released"] - record["refunded"]
    payment_id = None
    outcome = record["on_expiry"]
    if outcome == "release" and record["payee_bank"] == bank.msp_id:
        payee = books.account(record["payee_account"])
        if payee is None or payee.status != "active":
            # The payee can no longer be paid here: like a rejected interbank payment, the
            # money goes back to the buyer rather than staying locked for ever.
            outcome = "refund"
    if outcome == "release":
        payment_id = _pay_out(ledger, bank, books, record, EXPIRY_RELEASE, left)
        record["released"] += left
        record["releases"].append(
            {
                "release_id": EXPIRY_RELEASE,
                "amount": left,
                "by": "expiry",
                "at": ledger.now_iso,
                "payment_id": payment_id,
            }
        )
        _close_if_done(ledger, books, record)
        _released_event(ledger, bank, escrow_id, payment_id)
    else:
        books.credit(record["payer_account"], record["currency"], left, "escrow_refund", escrow_id)
        change_supply(ledger, bank.msp_id, record["currency"], left)
        record["refunded"] += left
        _close_if_done(ledger, books, record)
        ledger.emit("EscrowRefunded", _event(bank, escrow_id))
    return {"escrow_id": escrow_id, "expired": True, "outcome": outcome, "payment_id": payment_id,
            "escrow": _summary(record)}  # fmt: skip


# -- queries -----------------------------------------------------------------------------


def _require(ledger: Ledger, books: Books, escrow_id: str) -> Record:
    record = ledger.get_private(books.collection, keys.escrow(escrow_id))
    if record is None:
        raise refusal("escrow_not_found", f"no escrow {escrow_id} at {books.bank.msp_id}")
    return record


def _summary(record: Record) -> Record:
    """What a transaction answers: no account, attestor or remittance, because a transaction's
    response travels in the block, which every org on the channel receives. The parties read the
    whole escrow with ``GetEscrow``, a query answered by the bank's own peer."""
    return {
        "escrow_id": record["escrow_id"],
        "status": record["status"],
        "currency": record["currency"],
        "locked": record["locked"],
        "released": record["released"],
        "refunded": record["refunded"],
        "available": record["locked"] - record["released"] - record["refunded"],
    }


def _view(record: Record) -> Record:
    view = {name: value for name, value in record.items() if name != "fingerprint"}
    view["available"] = record["locked"] - record["released"] - record["refunded"]
    return view


def get(ledger: Ledger, bank: Bank, escrow_id: str) -> Record:
    return _view(_require(ledger, Books(ledger, bank), escrow_id))


def due(ledger: Ledger, bank: Bank, limit: int) -> Record:
    """Open escrows whose expiry has passed, soonest first (what the sweeper settles)."""
    collection = Books(ledger, bank).collection
    start, end = keys.simple_prefix_range(keys.OPEN_ESCROW)
    now = micros(ledger.now)
    found: list[str] = []
    for key, _ in ledger.scan_private_range(collection, start, end):
        _, expires, escrow_id = key.split("/")
        if int(expires) > now or len(found) == limit:
            break
        found.append(escrow_id)
    return {"escrow_ids": found}
