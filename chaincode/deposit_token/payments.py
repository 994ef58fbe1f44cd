"""Interbank payments: a short state machine driven by the two banks' gateways.

One Fabric transaction cannot touch two banks' books (no peer holds both), so a payment
between banks takes two transactions:

``initiated`` (payer bank)
    debit the payer (the payer bank's token is burned: its supply goes down), write the
    public record and the private details, emit ``PaymentInitiated``.
``completed`` (payee bank, reacting to that event)
    credit the payee with the payee bank's own token (its supply goes up). From now on
    the payer bank owes the payee bank the amount the payee bank delivered.
``rejected`` (payee bank) then ``refunded`` (payer bank)
    the payee cannot be paid (unknown, frozen, corridor), so the payer is credited back.
    An ``initiated`` payment older than the timeout may be refunded by the payer bank too,
    so no payment stays in flight forever.

A suspended bank (``reference.require_active``) can neither initiate a payment nor be
named as payee of a new one, but it still completes, rejects and refunds the payments
already in flight, so their money always reaches the payee or returns to the payer.

Where things live: the public record (banks, currencies, amounts, status, timeline,
salted hash of the details) in public state; each bank's own view of the payment in its
books, which is what it reconciles settlement against. The details (payer and payee account,
their jurisdictions, remittance text) are in the payer bank's books with that view. No
collection is shared by the two banks (docs/decisions/0036): the payee bank's gateway asks the
payer bank's peer for them (``payment_details``, which answers only the two banks) and hands
them to ``complete``, which checks them against the salted hash in the public record before
crediting anyone; the payee bank then keeps its own copy in its books.

Who may move the record on is enforced by Fabric, not just by this code: every state
carries a state-based endorsement policy.

==========  ====================  =======================================
status      record endorsed by    why
==========  ====================  =======================================
initiated   payer OR payee        payee completes/rejects; payer refunds
                                  after the timeout
rejected    payer                 only the payer refunds
completed   payer AND payee       final
refunded    payer AND payee       final
==========  ====================  =======================================

A third bank cannot touch the record at all. If a payee bank ran altered chaincode and
marked an initiated payment ``refunded`` without the payer's refund, the payer bank's
books still show the payment unrefunded and ``RefundPayment`` credits the payer anyway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chaincode.deposit_token import corridor, keys
from chaincode.deposit_token.accounts import Books, resume_from
from chaincode.deposit_token.errors import refusal, refusal_parts
from chaincode.deposit_token.ledger import Ledger, Record, encode, newest_first, parse_iso
from chaincode.deposit_token.money import convert, parse_rate
from chaincode.deposit_token.reference import MSP_ID, Bank, Config, load_bank, require_active, require_bank
from chaincode.deposit_token.requests import Request
from chaincode.deposit_token.supply import change_supply
from chaincode.shim.api import MAX_UNICODE_RUNE
from chaincode.shim.contract import ContractError

INITIATED = "initiated"
COMPLETED = "completed"
REJECTED = "rejected"
REFUNDED = "refunded"
STATUSES = (INITIATED, COMPLETED, REJECTED, REFUNDED)
# Statuses in which a bank still has to act; such payments are also in the open-payment index,
# so a sweep over them costs what is open, not every payment ever made.
OPEN_STATUSES = (INITIATED, REJECTED)

PAYMENT_ID = re.compile(r"^[0-9a-f]{64}$")
REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Whole bytes (an odd number of hex digits is no salt: bytes.fromhex refuses it), 16 to 64 of them.
SALT = re.compile(r"^(?:[0-9a-f]{2}){16,64}$")

INITIATE_FIELDS = (
    "idempotency_key", "payer_account", "payee_bank", "payee_account", "currency", "amount",
    "payee_currency", "payee_amount", "rate", "remittance", "salt", "pending_credits",
)  # fmt: skip
COMPLETE_FIELDS = ("payment_id", "details", "salt")
# Initiations one InitiatePayments transaction takes (docs/decisions/0038): the same bound.
MAX_INITIATION_GROUP = 50
# Completions one CompletePayments transaction takes: enough for a busy payee bank's backlog of a
# block or two, few enough that one proposal stays small and quick to simulate.
MAX_COMPLETION_GROUP = 50


def payment_id_for(payer_bank: str, idempotency_key: str) -> str:
    """Deterministic from the payer bank and the client's idempotency key."""
    return hashlib.sha256(f"deposit-token/payment\x00{payer_bank}\x00{idempotency_key}".encode()).hexdigest()


def details_hash(salt: str, details: Record) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + encode(details)).hexdigest()


def parse_details(request: Request, expected_hash: str, what: str) -> tuple[Record, str]:
    """The details and salt a counterparty bank's peer handed over, checked against the public hash.

    They come from the other bank (through this bank's gateway), so nothing in them is trusted
    until the salted hash matches the one the other bank's endorsement put in the public record:
    a different account, amount of text or salt fails here and changes nothing.
    """
    raw = request.raw("details")
    salt = request.raw("salt")
    if not isinstance(raw, dict) or not isinstance(salt, str) or not SALT.fullmatch(salt):
        raise refusal(
            "invalid_request",
            f"'details' (an object) and 'salt' (hex) are required: the details of {what} "
            "as the other bank's peer gives them",
        )
    if details_hash(salt, raw) != expected_hash:
        raise refusal("invalid_request", f"'details' and 'salt' do not match the public hash of {what}")
    return raw, salt


def booked_details(ledger: Ledger, bank: Bank, booked_key: str) -> tuple[Record, str] | None:
    """This bank's copy of the details of a payment or PvP, kept in its booking of it: the payer's
    (proposer's) from the start, the payee's (acceptor's) once it completed (accepted)."""
    booked = ledger.get_private(Books(ledger, bank).collection, booked_key)
    if booked is None or "details" not in booked:
        return None
    return booked["details"], booked["salt"]


def hand_over(ledger: Ledger, holder: Bank, booked_key: str, what: str) -> Record:
    """The details and salt ``holder``'s books keep under ``booked_key``, for the other bank to act
    on (the caller checked that the asker is one of the two banks)."""
    stored = booked_details(ledger, holder, booked_key)
    if stored is None:
        raise refusal("details_not_here", f"{holder.msp_id}'s books do not hold the details of {what}")
    return {"details": stored[0], "salt": stored[1]}


def endorsers_for(status: str, payer: str, payee: str) -> tuple[list[str], int | None]:
    if status == INITIATED:
        return [payer, payee], 1
    if status == REJECTED:
        return [payer], None
    return [payer, payee], None


def parse_payment_id(value: object, field: str = "payment_id") -> str:
    if not isinstance(value, str) or not PAYMENT_ID.fullmatch(value):
        raise refusal("invalid_request", f"'{field}' must be a payment id (64 lowercase hex digits)")
    return value


def _save_record(ledger: Ledger, record: Record, status: str) -> None:
    """Write the record in its new status with that status's endorsement policy.

    Fabric checks a policy change against the policy in force before it, so only the
    bank responsible for the current status can hand the record on.
    """
    record["status"] = status
    record["timeline"] = [
        *record.get("timeline", []),
        {"status": status, "at": ledger.now_iso, "tx_id": ledger.tx_id},
    ]
    key = keys.payment(record["payment_id"])
    ledger.put(key, record)
    signers, n = endorsers_for(status, record["payer_bank"], record["payee_bank"])
    ledger.require_endorsers(key, signers, n)
    order = newest_first(parse_iso(record["created_at"]))
    for indexed_under in (record["payer_bank"], record["payee_bank"], keys.ALL_BANKS):
        index_key = keys.open_payment_index(indexed_under, order, record["payment_id"])
        # Blind writes and deletes: index entries never join the read set, so they add no conflicts.
        if status in OPEN_STATUSES:
            ledger.put_marker(index_key)
        else:
            ledger.delete(index_key)


def _require_record(ledger: Ledger, payment_id: str) -> Record:
    record = ledger.get(keys.payment(payment_id))
    if record is None:
        raise refusal("payment_not_found", f"no payment {payment_id}")
    return record


def _event(record: Record) -> Record:
    return {
        "payment_id": record["payment_id"],
        "payer_bank": record["payer_bank"],
        "payee_bank": record["payee_bank"],
    }


# -- initiate (payer bank) -----------------------------------------------------


def initiate(ledger: Ledger, config: Config, payer_bank: Bank, request: Request) -> Record:
    """Debit the payer and open the payment (``InitiatePayment``); a repeat gets the first answer."""
    record, answer = _debit_payer(ledger, config, payer_bank, request)
    if record is not None:
        change_supply(ledger, payer_bank.msp_id, record["currency"], -record["amount"])
        ledger.emit("PaymentInitiated", _event(record))
    return answer


def initiate_many(ledger: Ledger, config: Config, payer_bank: Bank, items: list[Any]) -> Record:
    """Initiate several payments of the payer bank in one transaction (``InitiatePayments``).

    Each item is ``InitiatePayment``'s request and is judged as if the items before it had
    committed one by one (``Ledger.grouped``): a payer named twice is debited twice, against the
    balance the first debit left; a corridor's daily cap counts every item before it; an
    idempotency key used twice gets the first one's answer. One supply change per currency (the
    sum) and one ``PaymentsInitiated`` event serve the whole group (docs/decisions/0038).

    All or nothing: when any item is refused, the transaction is refused (``group_refused``,
    listing every refused item by position with its code and message, each judged without the
    refused ones before it) and nothing reaches the ledger. A committed group's answer travels in
    the block, readable by every bank, and refusals of debits are the payer bank's business (an
    ``insufficient_funds`` message names a balance): the caller takes the refused items out and
    submits the rest again.
    """
    results: list[Record] = []
    refused: list[Record] = []
    burned: dict[str, int] = {}
    initiated: list[Record] = []
    _prefetch_initiations(ledger, payer_bank, items)
    with ledger.grouped():
        for position, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise refusal("invalid_request", f"'payments[{position}]' must be an object")
                with ledger.group_item():
                    record, answer = _debit_payer(ledger, config, payer_bank, Request(item, INITIATE_FIELDS))
            except ContractError as error:
                refused.append({"position": position, **refusal_parts(error)})
                continue
            results.append(answer)
            if record is not None:
                burned[record["currency"]] = burned.get(record["currency"], 0) + record["amount"]
                initiated.append(_event(record))
        if refused:
            raise refusal("group_refused", encode({"refused": refused}).decode("utf-8"))
        for currency, amount in sorted(burned.items()):
            change_supply(ledger, payer_bank.msp_id, currency, -amount)
    if initiated:
        ledger.emit("PaymentsInitiated", {"payer_bank": payer_bank.msp_id, "payments": initiated})
    return {"results": results, "initiated": len(initiated)}


def _prefetch_initiations(ledger: Ledger, payer_bank: Bank, items: list[Any]) -> None:
    """Read what every well-formed item of a group reads first, in two requests instead of about three
    per item: the payee banks and payment records, then the bookings, payer accounts, heads and
    listed credits. Each item reads these keys anyway (a key read joins the read set)."""
    public: list[str] = []
    private: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            request = Request(item, INITIATE_FIELDS)
            payment_id = payment_id_for(payer_bank.msp_id, request.text("idempotency_key", max_length=128))
            account_id = request.account_id("payer_account")
            credits = request.pending_credits()
        except ContractError:
            continue  # refused when its turn comes
        payee = item.get("payee_bank")
        if isinstance(payee, str) and MSP_ID.fullmatch(payee):
            public.append(keys.bank(payee))
        public.append(keys.payment(payment_id))
        private.extend([keys.booked_payment(payment_id), keys.account(account_id), keys.head(account_id)])
        private.extend(keys.credit(account_id, credit_id) for credit_id in credits)
    ledger.prefetch(public)
    ledger.prefetch_private(Books(ledger, payer_bank).collection, private)


def _debit_payer(ledger: Ledger, config: Config, payer_bank: Bank, request: Request) -> tuple[Record | None, Record]:
    """Every check of an initiation, the debit and the payment's records, but the supply change and
    the event. Returns the new public record (``None`` for a repeat) and the answer."""
    idempotency_key = request.text("idempotency_key", max_length=128)
    payer_account = request.account_id("payer_account")
    payment_id = payment_id_for(payer_bank.msp_id, idempotency_key)
    payee_msp = request.raw("payee_bank")
    if isinstance(payee_msp, str) and MSP_ID.fullmatch(payee_msp):
        # Both are read below on every path that gets that far: one request for the two.
        ledger.prefetch([keys.bank(payee_msp), keys.payment(payment_id)])
    payee_bank = require_bank(ledger, payee_msp, "payee_bank")
    if payee_bank.msp_id == payer_bank.msp_id:
        raise refusal("invalid_request", "'payee_bank' is the payer's own bank: use Transfer")
    payee_account = request.account_id("payee_account")
    currency = request.currency(config.currencies)
    amount = request.amount()
    remittance = request.optional_text("remittance", max_length=500) or ""
    salt = request.optional_text("salt", max_length=128, pattern=SALT)
    pending_credits = request.pending_credits()
    if not payer_bank.issues(currency):
        raise refusal("currency_not_issued", f"{payer_bank.msp_id} does not issue {currency} tokens")

    payee_currency, payee_amount, rate = _payee_side(request, config, currency, amount)
    if not payee_bank.issues(payee_currency):
        raise refusal("currency_not_issued", f"{payee_bank.msp_id} does not issue {payee_currency} tokens")

    fingerprint = hashlib.sha256(
        encode(
            {
                "payer_account": payer_account,
                "payee_bank": payee_bank.msp_id,
                "payee_account": payee_account,
                "currency": currency,
                "amount": amount,
                "payee_currency": payee_currency,
                "payee_amount": payee_amount,
                "rate": rate,
                "remittance": remittance,
            }
        )
    ).hexdigest()
    books = Books(ledger, payer_bank)
    booked = ledger.get_private(books.collection, keys.booked_payment(payment_id))
    if booked is not None:
        if booked.get("fingerprint") != fingerprint:
            raise refusal("duplicate_reference", "'idempotency_key' was already used for a different payment")
        current = ledger.get(keys.payment(payment_id))
        return None, {
            "payment_id": payment_id,
            "status": current["status"] if current else INITIATED,
            "created": False,
        }
    if ledger.get(keys.payment(payment_id)) is not None:
        raise refusal("invalid_state", f"a payment record {payment_id} exists that this bank's books do not hold")
    # Only now, so that a retry of a payment made before a suspension still gets its answer
    # above. Both bank records are in the read set: a suspension committed between this
    # simulation and its commit fails it with a read conflict, and its retry is refused here.
    for bank in (payer_bank, payee_bank):
        require_active(bank, "no new payment to or from it is accepted")

    # The account, its head and the listed credits are all read by the debit: one request.
    books.prefetch_balance(payer_account, pending_credits, with_account=True)
    payer = books.require_account(payer_account, "payer_account")
    # The policy in force is in the read set: a change committed before this payment fails it
    # with a read conflict, and its retry is judged by the new version.
    policy = corridor.load_policy(ledger)
    for leg_currency in dict.fromkeys((currency, payee_currency)):
        corridor.check_payer_side(policy, leg_currency, payer.jurisdiction)
    corridor.apply_caps(ledger, policy, payer_bank, payee_bank, books.collection, currency, amount)
    books.debit(
        payer_account, payer, currency, amount,
        kind="payment_out", reference=payment_id, pending_credits=pending_credits, apply_limits=True,
        payment_id=payment_id,
    )  # fmt: skip
    record = open_payment(
        ledger, payer_bank, payee_bank, payment_id,
        payer_account=payer_account, payer_jurisdiction=payer.jurisdiction, payee_account=payee_account,
        currency=currency, amount=amount, payee_currency=payee_currency, payee_amount=payee_amount, rate=rate,
        remittance=remittance, salt=salt, fingerprint=fingerprint, corridor_version=policy["version"],
        announce=False,
    )  # fmt: skip
    # The public record (never the details: a response travels in the block) spares the caller
    # a read-back; a repeated request gets only the id and status above.
    return record, {
        "payment_id": payment_id, "status": INITIATED, "created": True, "payment": {**record, "cycle_id": None},
    }  # fmt: skip


def open_payment(
    ledger: Ledger,
    payer_bank: Bank,
    payee_bank: Bank,
    payment_id: str,
    *,
    payer_account: str,
    payer_jurisdiction: str,
    payee_account: str,
    currency: str,
    amount: int,
    payee_currency: str,
    payee_amount: int,
    rate: str | None,
    remittance: str,
    salt: str | None,
    fingerprint: str,
    corridor_version: int,
    announce: bool = True,
) -> Record:
    """Book an initiated payment whose money the payer bank has already taken out of circulation.

    The caller debited the payer (``initiate``) or holds the money already (an escrow release,
    ``escrow.py``) and burned it; this writes the payer bank's booking (a refund credits
    ``payer_account``) with the details, the public record with its endorsement policy and
    the indexes, and emits ``PaymentInitiated`` for the payee bank unless ``announce`` is off
    (the caller emits, after its supply change).
    """
    details: Record = {
        "payer_account": payer_account,
        "payer_jurisdiction": payer_jurisdiction,
        "payee_account": payee_account,
        "remittance": remittance,
    }
    # The salt keeps the public hash from confirming guesses of account ids. The chaincode
    # runs on the payer bank's peer alone, so a fresh random salt is safe here; a caller
    # may pass its own.
    salt = salt or secrets.token_hex(16)
    # The details ride in the booking (one private key, not two): every private key a
    # transaction writes costs each validating peer a deserialization of the definition.
    ledger.put_private(
        Books(ledger, payer_bank).collection,
        keys.booked_payment(payment_id),
        {
            "direction": "out", "account_id": payer_account, "counterparty": payee_bank.msp_id,
            "currency": currency, "amount": amount,
            "payee_currency": payee_currency, "payee_amount": payee_amount,
            "status": INITIATED, "fingerprint": fingerprint, "settled_in": None,
            "details": details, "salt": salt,
        },
    )  # fmt: skip
    record: Record = {
        "payment_id": payment_id,
        "payer_bank": payer_bank.msp_id,
        "payee_bank": payee_bank.msp_id,
        "currency": currency,
        "amount": amount,
        "payee_currency": payee_currency,
        "payee_amount": payee_amount,
        "rate": rate,
        "status": INITIATED,
        "reason": None,
        "created_at": ledger.now_iso,
        "timeline": [],
        "details_hash": details_hash(salt, details),
        # The payee bank completes the payment under this version of the corridor policy.
        "corridor_version": corridor_version,
    }
    _save_record(ledger, record, INITIATED)
    order = newest_first(ledger.now)
    for indexed_under in (payer_bank.msp_id, payee_bank.msp_id, keys.ALL_BANKS):
        ledger.put_marker(keys.payment_index(indexed_under, order, payment_id))
    if announce:
        ledger.emit("PaymentInitiated", _event(record))
    return record


def _payee_side(request: Request, config: Config, currency: str, amount: int) -> tuple[str, int, str | None]:
    """The payee's currency and amount, and the locked rate for a cross-currency payment."""
    if not request.has("payee_currency") or request.raw("payee_currency") == currency:
        if request.has("payee_amount") and request.raw("payee_amount") != amount:
            raise refusal("invalid_request", "'payee_amount' must equal 'amount' in a single-currency payment")
        if request.has("rate") and parse_rate(request.raw("rate"), "rate") != Decimal(1):
            raise refusal("invalid_request", "'rate' must be 1 (or absent) in a single-currency payment")
        return currency, amount, None
    payee_currency = request.currency(config.currencies, "payee_currency")
    payee_amount = request.amount("payee_amount")
    if not request.has("rate"):
        raise refusal("invalid_request", "'rate' is required for a cross-currency payment")
    rate_text = request.raw("rate")
    rate = parse_rate(rate_text, "rate")
    expected = convert(amount, rate, config.currencies[currency], config.currencies[payee_currency])
    if payee_amount != expected:
        raise refusal(
            "invalid_request",
            f"'payee_amount' {payee_amount} is not amount x rate = {expected} {payee_currency} (half-even)",
        )
    return payee_currency, payee_amount, str(rate_text)


# -- complete / reject (payee bank) ----------------------------------------------


def complete(ledger: Ledger, payee_bank: Bank, payment_id: str, request: Request) -> Record:
    """Credit the payee, with the details the payer bank's peer gave (``payment_details``) in ``request``."""
    record, outcome = _credit_payee(ledger, payee_bank, payment_id, request)
    if outcome["completed"]:
        change_supply(ledger, payee_bank.msp_id, record["payee_currency"], record["payee_amount"])
        ledger.emit("PaymentCompleted", _event(record))
    return outcome


def complete_many(ledger: Ledger, payee_bank: Bank, items: list[Any]) -> Record:
    """Credit the payees of several incoming payments in one transaction (``CompletePayments``).

    Each item is ``CompletePayment``'s request and is judged on its own: a refused item (its
    payee frozen, its details tampered with) writes nothing and gets its refusal in ``results``,
    the others complete. That is safe because ``_credit_payee`` refuses before its first write.
    The transaction's overhead (signatures, policy checks, ordering) and its supply change (one
    per currency, the sum) are shared by the group, so a busy payee bank pays them once for many
    payments (docs/decisions/0037). A payment named twice is refused the second time: a
    transaction reads committed state, not its own writes, so it would be credited twice.
    """
    results: list[Record] = []
    minted: dict[str, int] = {}
    completed: list[Record] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        payment_id: str | None = None
        try:
            if not isinstance(item, dict):
                raise refusal("invalid_request", f"'payments[{position}]' must be an object")
            item_request = Request(item, COMPLETE_FIELDS)
            payment_id = parse_payment_id(item_request.raw("payment_id"), f"payments[{position}].payment_id")
            if payment_id in seen:
                raise refusal("invalid_request", f"payment {payment_id} is named twice in the group")
            seen.add(payment_id)
            record, outcome = _credit_payee(ledger, payee_bank, payment_id, item_request)
        except ContractError as error:
            results.append({"payment_id": payment_id, "error": refusal_parts(error)})
            continue
        results.append(outcome)
        if outcome["completed"]:
            currency = record["payee_currency"]
            minted[currency] = minted.get(currency, 0) + record["payee_amount"]
            completed.append(_event(record))
    for currency, amount in sorted(minted.items()):
        change_supply(ledger, payee_bank.msp_id, currency, amount)
    if completed:
        ledger.emit("PaymentsCompleted", {"payee_bank": payee_bank.msp_id, "payments": completed})
    return {"results": results, "completed": len(completed)}


def _credit_payee(ledger: Ledger, payee_bank: Bank, payment_id: str, request: Request) -> tuple[Record, Record]:
    """Every check of a completion, then its writes but the supply change and the event.

    Returns the payment record and the answer. Every refusal comes before the first write, so a
    refused completion leaves nothing behind even inside a group (``complete_many``).
    """
    record = _require_record(ledger, payment_id)
    if record["payee_bank"] != payee_bank.msp_id:
        raise refusal("not_authorized", "only the payee bank completes a payment")
    if record["status"] == COMPLETED:
        return record, {"payment_id": payment_id, "status": COMPLETED, "completed": False}
    if record["status"] != INITIATED:
        raise refusal("invalid_state", f"payment {payment_id} is {record['status']}, not initiated")
    details, salt = parse_details(request, record["details_hash"], f"payment {payment_id}")
    if not all(isinstance(details.get(field), str) for field in ("payee_account", "payer_jurisdiction")):
        # Only a payer bank running altered chaincode could book such details under a matching hash.
        raise refusal("invalid_request", f"the details of payment {payment_id} name no payee account or jurisdiction")
    books = Books(ledger, payee_bank)
    # A booked payment is refused, so the payee's account is read on every path that commits.
    ledger.prefetch_private(books.collection, [keys.booked_payment(payment_id), keys.account(details["payee_account"])])
    if ledger.get_private(books.collection, keys.booked_payment(payment_id)) is not None:
        raise refusal("invalid_state", f"payment {payment_id} is already in this bank's books")
    payee_account = details["payee_account"]
    payee = books.require_account(payee_account, "payee_account")
    payee.require_can_be_paid()
    if not payee_bank.issues(record["payee_currency"]):
        raise refusal("currency_not_issued", f"{payee_bank.msp_id} does not issue {record['payee_currency']} tokens")
    _check_corridor_at_completion(ledger, record, payee_bank, details["payer_jurisdiction"], payee.jurisdiction)

    # Nothing below refuses.
    books.credit(payee_account, record["payee_currency"], record["payee_amount"], "payment_in", payment_id, payment_id)
    ledger.put_private(
        books.collection,
        keys.booked_payment(payment_id),
        {
            "direction": "in", "account_id": payee_account, "counterparty": record["payer_bank"],
            "currency": record["payee_currency"], "amount": record["payee_amount"], "status": COMPLETED,
            "settled_in": None, "details": details, "salt": salt,
        },
    )  # fmt: skip
    _save_record(ledger, record, COMPLETED)
    ledger.put_marker(keys.unsettled(payment_id))
    return record, {"payment_id": payment_id, "status": COMPLETED, "completed": True}


def _check_corridor_at_completion(
    ledger: Ledger, record: Record, payee_bank: Bank, payer_jurisdiction: str, payee_jurisdiction: str
) -> None:
    """The corridor rules of the version the payment was initiated under (the one in force for
    records made before versions existed), and that version's per-payment cap again.

    The cap was checked at initiation by the payer bank's peer; checking it here too means a
    payer bank running altered chaincode cannot push a larger payment through the corridor.
    A breach is refused as ``corridor_forbidden``, which makes the payee bank reject the payment.
    """
    policy = corridor.policy_version(ledger, record.get("corridor_version"))
    for currency in dict.fromkeys((record["currency"], record["payee_currency"])):
        corridor.check_rules(policy, currency, payer_jurisdiction, payee_jurisdiction)
    if any(cap["currency"] == record["currency"] for cap in policy["caps"]):
        payer_bank = load_bank(ledger, record["payer_bank"])
        if payer_bank is not None:
            corridor.check_per_payment_cap(
                policy, record["currency"], payer_bank.jurisdiction, payee_bank.jurisdiction, record["amount"],
                code="corridor_forbidden",
            )  # fmt: skip


def reject(ledger: Ledger, payee_bank: Bank, payment_id: str, reason: str) -> Record:
    if not REASON.fullmatch(reason):
        raise refusal(
            "invalid_request",
            "'reason' must be a code of lowercase letters, digits and _ (it is public: never customer data)",
        )
    record = _require_record(ledger, payment_id)
    if record["payee_bank"] != payee_bank.msp_id:
        raise refusal("not_authorized", "only the payee bank rejects a payment")
    if record["status"] == REJECTED:
        return {"payment_id": payment_id, "status": REJECTED, "rejected": False}
    if record["status"] != INITIATED:
        raise refusal("invalid_state", f"payment {payment_id} is {record['status']}, not initiated")
    record["reason"] = reason
    _save_record(ledger, record, REJECTED)
    ledger.emit("PaymentRejected", {**_event(record), "reason": reason})
    return {"payment_id": payment_id, "status": REJECTED, "rejected": True}


# -- refund (payer bank) -----------------------------------------------------------


def refund(ledger: Ledger, config: Config, payer_bank: Bank, payment_id: str) -> Record:
    record = _require_record(ledger, payment_id)
    if record["payer_bank"] != payer_bank.msp_id:
        raise refusal("not_authorized", "only the payer bank refunds a payment")
    books = Books(ledger, payer_bank)
    booked = ledger.get_private(books.collection, keys.booked_payment(payment_id))
    if booked is None or booked.get("direction") != "out":
        raise refusal("invalid_state", f"payment {payment_id} is not in this bank's books")
    if booked["status"] == REFUNDED:
        return {"payment_id": payment_id, "status": REFUNDED, "refunded": False}
    status = record["status"]
    if status == COMPLETED:
        raise refusal("invalid_state", f"payment {payment_id} is completed and cannot be refunded")
    if status == INITIATED:
        age = (ledger.now - parse_iso(record["created_at"])).total_seconds()
        if age < config.payment_timeout_seconds:
            raise refusal(
                "not_expired",
                f"payment {payment_id} is still initiated; the payer bank may refund it "
                f"{config.payment_timeout_seconds} s after creation ({int(age)} s so far)",
            )
    booked["status"] = REFUNDED
    ledger.put_private(books.collection, keys.booked_payment(payment_id), booked)
    books.credit(booked["account_id"], booked["currency"], booked["amount"], "payment_refund", payment_id, payment_id)
    change_supply(ledger, payer_bank.msp_id, booked["currency"], booked["amount"])
    if status != REFUNDED:
        # A record already marked refunded (by the payee bank's altered chaincode) is final:
        # the payer's books decided the refund above.
        if status == INITIATED:
            record["reason"] = "expired"
        _save_record(ledger, record, REFUNDED)
    ledger.emit("PaymentRefunded", _event(record))
    return {"payment_id": payment_id, "status": REFUNDED, "refunded": True}


# -- queries ---------------------------------------------------------------------


def public_view(ledger: Ledger, record: Record) -> Record:
    marker = ledger.get(keys.settled(record["payment_id"]))
    return {**record, "cycle_id": marker["cycle_id"] if marker else None}


def get_payment(ledger: Ledger, payment_id: str, caller: Bank | None, with_details: bool) -> Record:
    """The public record; with the details from the caller's own books (the payee bank has them
    once it completed the payment, ``None`` before)."""
    record = public_view(ledger, _require_record(ledger, payment_id))
    if with_details:
        if caller is None or caller.msp_id not in (record["payer_bank"], record["payee_bank"]):
            raise refusal("not_authorized", "only the payer and payee banks may read a payment's details")
        stored = booked_details(ledger, caller, keys.booked_payment(payment_id))
        record["details"] = stored[0] if stored else None
    return record


def payment_details(ledger: Ledger, holder: Bank, caller: str, payment_id: str) -> Record:
    """The details and salt of a payment, from ``holder``'s books, for the payer or payee bank.

    Runs on the holder bank's peer for a client of either bank: this is how the payee bank gets
    what it needs to complete a payment without a collection shared by the two banks. A third
    bank's client is refused here; the payee checks what it gets against the public hash.
    """
    record = _require_record(ledger, payment_id)
    if caller not in (record["payer_bank"], record["payee_bank"]):
        raise refusal("not_authorized", "only the payer and payee banks may read a payment's details")
    given = hand_over(ledger, holder, keys.booked_payment(payment_id), f"payment {payment_id}")
    return {"payment_id": payment_id, **given}


def record_keys(ids: list[Any]) -> list[str]:
    """The public record keys of the well-formed payment ids among ``ids`` (to prefetch; the rest
    are refused one by one where they are judged)."""
    return [keys.payment(pid) for pid in ids if isinstance(pid, str) and PAYMENT_ID.fullmatch(pid)]


def payments_details(ledger: Ledger, holder: Bank, caller: str, ids: list[Any]) -> list[Record]:
    """``payment_details`` of each id, or its refusal as ``{payment_id, error}``: one bad id, or a
    payment of other banks, is refused on its own."""
    # The bookings of the caller's own payments are read below: one request for all of them. Only
    # those: the books are not read for a client of another bank (records are public, checked first).
    records = (ledger.get(key) for key in record_keys(ids))
    mine = [
        keys.booked_payment(record["payment_id"])
        for record in records
        if record is not None and caller in (record["payer_bank"], record["payee_bank"])
    ]
    ledger.prefetch_private(Books(ledger, holder).collection, mine)
    answers: list[Record] = []
    for position, pid in enumerate(ids):
        try:
            payment_id = parse_payment_id(pid, f"payment_ids[{position}]")
            answers.append(payment_details(ledger, holder, caller, payment_id))
        except ContractError as error:
            answers.append({"payment_id": pid if isinstance(pid, str) else None, "error": refusal_parts(error)})
    return answers


def list_payments(ledger: Ledger, where: PaymentFilter, page_size: int, bookmark: str) -> Record:
    """Records matching ``where``, newest first, a page at a time.

    The bookmark is the index key of the first record not returned, so a page that stops at
    ``page_size`` (or after ``scan_limit`` index entries, when the filter sets one) resumes
    exactly there.
    """
    index = keys.OPEN_PAYMENT_INDEX if where.status in OPEN_STATUSES else keys.PAYMENT_INDEX
    start, end = keys.simple_prefix_range(index, where.index_bank)
    # The index sorts newest first, so a time range is a key range (see ledger.newest_first).
    if where.until is not None:
        start = max(start, keys.simple_key(index, where.index_bank, newest_first(where.until)))
    if where.since is not None:
        end = min(end, keys.simple_key(index, where.index_bank, newest_first(where.since)) + "/" + MAX_UNICODE_RUNE)
    payments: list[Record] = []
    if start >= end:
        return {"payments": payments, "bookmark": ""}
    scanned = 0
    for key, _ in ledger.scan_range(resume_from(start, end, bookmark), end):
        if len(payments) == page_size or (where.scan_limit is not None and scanned == where.scan_limit):
            return {"payments": payments, "bookmark": key.encode("utf-8").hex()}
        scanned += 1
        record = ledger.get(keys.payment(key.rsplit("/", 1)[1]))
        if record is None or not where.matches(record):
            continue
        payments.append(public_view(ledger, record))
    return {"payments": payments, "bookmark": ""}


def unsettled_payments(ledger: Ledger) -> Iterator[tuple[str, Record | None]]:
    """Completed payments not yet in a settlement cycle (index key, record)."""
    for key, _ in ledger.scan(keys.UNSETTLED):
        payment_id = ledger.stub.split_composite_key(key)[1][0]
        yield key, ledger.get(keys.payment(payment_id))


LIST_FIELDS = (
    "bank", "payer_bank", "payee_bank", "status", "currency", "min_amount", "max_amount", "since", "until",
    "page_size", "bookmark", "scan_limit",
)  # fmt: skip
MAX_SCAN_LIMIT = 10_000


@dataclass(frozen=True)
class PaymentFilter:
    """Which payment records a list returns (every field optional; all given must hold).

    ``bank`` is either side, ``payer_bank`` and ``payee_bank`` one side each. ``currency``
    matches either leg, and ``min_amount``/``max_amount`` (minor units, inclusive) compare the
    amount of the leg in that currency. ``since``/``until`` bound the creation time, inclusive.
    """

    bank: str | None = None
    payer_bank: str | None = None
    payee_bank: str | None = None
    status: str | None = None
    currency: str | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    scan_limit: int | None = None

    @property
    def index_bank(self) -> str:
        return self.payer_bank or self.payee_bank or self.bank or keys.ALL_BANKS

    def matches(self, record: Record) -> bool:
        if self.status is not None and record["status"] != self.status:
            return False
        banks = (record["payer_bank"], record["payee_bank"])
        if self.bank is not None and self.bank not in banks:
            return False
        if self.payer_bank not in (None, banks[0]) or self.payee_bank not in (None, banks[1]):
            return False
        if self.currency is not None:
            legs = {record["currency"]: record["amount"], record["payee_currency"]: record["payee_amount"]}
            amount = legs.get(self.currency)
            if amount is None:
                return False
            if self.min_amount is not None and amount < self.min_amount:
                return False
            if self.max_amount is not None and amount > self.max_amount:
                return False
        return True


def parse_list_filter(data: dict[str, Any], currencies: dict[str, int]) -> PaymentFilter:
    request = Request(data, LIST_FIELDS)
    banks: dict[str, str | None] = {}
    for name in ("bank", "payer_bank", "payee_bank"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not MSP_ID.fullmatch(value)):
            raise refusal("invalid_request", f"'{name}' must be an MSP id")
        banks[name] = value
    status = data.get("status")
    if status is not None and status not in STATUSES:
        raise refusal("invalid_request", f"'status' must be one of {', '.join(STATUSES)}")
    currency = request.currency(currencies) if request.has("currency") else None
    amounts: dict[str, int | None] = {}
    for name in ("min_amount", "max_amount"):
        amounts[name] = request.amount(name) if request.has(name) else None
        if amounts[name] is not None and currency is None:
            raise refusal("invalid_request", f"'{name}' needs 'currency': an amount is in minor units of one currency")
    low, high = amounts["min_amount"], amounts["max_amount"]
    if low is not None and high is not None and low > high:
        raise refusal("invalid_request", "'min_amount' is above 'max_amount'")
    times: dict[str, dt.datetime | None] = {}
    for name in ("since", "until"):
        value = data.get(name)
        if value is None:
            times[name] = None
            continue
        try:
            times[name] = parse_iso(value) if isinstance(value, str) else None
        except ValueError:
            times[name] = None
        if times[name] is None:
            raise refusal("invalid_request", f"'{name}' must be a time like 2025-01-06T09:00:00.000000Z")
    scan_limit = data.get("scan_limit")
    if scan_limit is not None and (
        isinstance(scan_limit, bool) or not isinstance(scan_limit, int) or not 1 <= scan_limit <= MAX_SCAN_LIMIT
    ):
        raise refusal("invalid_request", f"'scan_limit' must be an integer from 1 to {MAX_SCAN_LIMIT}")
    return PaymentFilter(
        bank=banks["bank"], payer_bank=banks["payer_bank"], payee_bank=banks["payee_bank"], status=status,
        currency=currency, min_amount=amounts["min_amount"], max_amount=amounts["max_amount"],
        since=times["since"], until=times["until"], scan_limit=scan_limit,
    )  # fmt: skip
