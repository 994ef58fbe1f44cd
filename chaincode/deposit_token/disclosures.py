"""Disclosure on request: the regulator asks for an interbank payment's private details, a bank delivers them.

``RequestDisclosure`` (regulator) records the request: who asked (the regulator's MSP), when, on
what legal basis, for which payment. The record lives in the regulator's collection, which every
org reads and only the regulator's peer can write, new keys included: in public state any bank's
altered chaincode could create a request the regulator never made, since the chaincode's own
policy lets any one org endorse a new key. The request id is the requesting transaction's id. The
same transaction creates one public answer key per bank of the payment (payer and payee), each
with a state-based policy naming that bank, so each bank answers for itself and for no other (the
pattern of a settlement cycle's confirmations); nobody can create them first, because nobody knows
the transaction id in advance.

``ApproveDisclosure`` (payer or payee bank) copies the payment's details and their salt from the
bank's own copy into the bank's disclosure collection (``disclosure-<bank>``, held by that bank and
the regulator alone and written only with that bank's endorsement) and marks its answer
``disclosed``. ``RefuseDisclosure`` marks it ``refused`` with a public reason. Both are public
records: who answered what, when, in which transaction. The details never reach public state.

The regulator's gateway checks what was delivered against the salted hash in the public payment
record (``payments.details_hash``): an honest contract copies the details the hash was made of, so
only a bank running altered chaincode can deliver something else, and the check shows it.
"""

from __future__ import annotations

import re

from chaincode.deposit_token import keys
from chaincode.deposit_token.collections import disclosure_collection, regulator_collection
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.payments import booked_details, details_hash, parse_payment_id
from chaincode.deposit_token.reference import Bank, Config, caller_org, load_config
from chaincode.deposit_token.requests import Request
from chaincode.shim.contract import Context

PENDING = "pending"
DISCLOSED = "disclosed"
REFUSED = "refused"
ANSWERS = (PENDING, DISCLOSED, REFUSED)
REQUEST_ID = re.compile(r"^[0-9a-f]{64}$")
MAX_LEGAL_BASIS = 500
MAX_REASON = 200


def parse_request_id(value: object) -> str:
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise refusal("invalid_request", "'request_id' must be a disclosure request id (64 lowercase hex digits)")
    return value


def _text(name: str, value: object, max_length: int) -> str:
    # Public text: one line, like a suspension reason; it must not carry customer data.
    return Request({name: value}, [name]).text(name, max_length=max_length)


def request(ledger: Ledger, config: Config, payment_id: str, legal_basis: str) -> Record:
    payment = ledger.get(keys.payment(parse_payment_id(payment_id)))
    if payment is None:
        raise refusal("payment_not_found", f"no payment {payment_id}")
    basis = _text("legal_basis", legal_basis, MAX_LEGAL_BASIS)
    request_id = ledger.tx_id
    banks = [payment["payer_bank"], payment["payee_bank"]]
    record: Record = {
        "request_id": request_id,
        "payment_id": payment_id,
        "payer_bank": banks[0],
        "payee_bank": banks[1],
        "legal_basis": basis,
        "requested_by": config.regulator,
        "requested_at": ledger.now_iso,
    }
    ledger.put_private(regulator_collection(config.regulator), keys.disclosure(request_id), record)
    for bank in banks:
        answer_key = keys.disclosure_answer(request_id, bank)
        ledger.put(answer_key, {"bank": bank, "status": PENDING, "at": None, "tx_id": None, "reason": None})
        ledger.require_endorsers(answer_key, [bank])
    ledger.emit(
        "DisclosureRequested",
        {"request_id": request_id, "payment_id": payment_id, "payer_bank": banks[0], "payee_bank": banks[1]},
    )
    return view(ledger, record)


def _require(ledger: Ledger, request_id: str) -> Record:
    collection = regulator_collection(load_config(ledger).regulator)
    record = ledger.get_private(collection, keys.disclosure(parse_request_id(request_id)))
    if record is None:
        raise refusal(
            "disclosure_not_found",
            f"no disclosure request {request_id} on this peer (a new one may still be on its way to it)",
        )
    return record


def _answer_of(ledger: Ledger, record: Record, bank: Bank) -> tuple[str, Record]:
    if bank.msp_id not in (record["payer_bank"], record["payee_bank"]):
        raise refusal("not_authorized", f"{bank.msp_id} is not a party to payment {record['payment_id']}")
    key = keys.disclosure_answer(record["request_id"], bank.msp_id)
    return key, ledger.get(key) or {"bank": bank.msp_id, "status": PENDING}


def approve(ledger: Ledger, bank: Bank, request_id: str) -> Record:
    record = _require(ledger, request_id)
    key, answer = _answer_of(ledger, record, bank)
    if answer["status"] == DISCLOSED:
        return {"request_id": request_id, "status": DISCLOSED, "disclosed": False}
    if answer["status"] != PENDING:
        raise refusal(
            "invalid_state", f"{bank.msp_id} already answered disclosure request {request_id}: {answer['status']}"
        )
    payment_id = record["payment_id"]
    payment = ledger.get(keys.payment(payment_id))
    stored = booked_details(ledger, bank, keys.booked_payment(payment_id))
    if payment is None or stored is None:
        raise refusal("invalid_state", f"the details of payment {payment_id} are not in this bank's books")
    details, salt = stored
    if details_hash(salt, details) != payment["details_hash"]:
        raise refusal("invalid_state", f"this bank's copy of payment {payment_id}'s details does not match its hash")
    disclose(ledger, bank.msp_id, record, details, salt, key)
    return {"request_id": request_id, "status": DISCLOSED, "disclosed": True}


def disclose(ledger: Ledger, bank: str, record: Record, details: Record, salt: str, answer_key: str) -> None:
    """Deliver to the regulator (the bank's disclosure collection) and record the answer."""
    ledger.put_private(
        disclosure_collection(bank),
        keys.disclosed(record["request_id"]),
        {"payment_id": record["payment_id"], "details": details, "salt": salt},
    )
    ledger.put(
        answer_key, {"bank": bank, "status": DISCLOSED, "at": ledger.now_iso, "tx_id": ledger.tx_id, "reason": None}
    )
    ledger.emit(
        "DisclosureAnswered",
        {"request_id": record["request_id"], "payment_id": record["payment_id"], "bank": bank, "status": DISCLOSED},
    )


def refuse(ledger: Ledger, bank: Bank, request_id: str, reason: str) -> Record:
    record = _require(ledger, request_id)
    key, answer = _answer_of(ledger, record, bank)
    reason = _text("reason", reason, MAX_REASON)
    if answer["status"] == REFUSED and answer.get("reason") == reason:
        return {"request_id": request_id, "status": REFUSED, "refused": False}
    if answer["status"] != PENDING:
        raise refusal(
            "invalid_state", f"{bank.msp_id} already answered disclosure request {request_id}: {answer['status']}"
        )
    ledger.put(
        key, {"bank": bank.msp_id, "status": REFUSED, "at": ledger.now_iso, "tx_id": ledger.tx_id, "reason": reason}
    )
    ledger.emit(
        "DisclosureAnswered",
        {"request_id": request_id, "payment_id": record["payment_id"], "bank": bank.msp_id, "status": REFUSED},
    )
    return {"request_id": request_id, "status": REFUSED, "refused": True}


def view(ledger: Ledger, record: Record) -> Record:
    """The public request with each bank's answer."""
    answers = {}
    for bank in (record["payer_bank"], record["payee_bank"]):
        answers[bank] = ledger.get(keys.disclosure_answer(record["request_id"], bank)) or {
            "bank": bank,
            "status": PENDING,
        }
    return {**record, "answers": answers}


def get(ctx: Context, ledger: Ledger, request_id: str, with_details: bool) -> Record:
    """A request; ``with_details`` adds what was delivered, for the regulator (or a bank, its own)."""
    record = view(ledger, _require(ledger, request_id))
    if not with_details:
        return record
    caller = caller_org(ctx)
    regulator = load_config(ledger).regulator
    if caller not in (regulator, record["payer_bank"], record["payee_bank"]):
        raise refusal("not_authorized", "only the regulator and the payment's banks may read a disclosure")
    delivered: dict[str, Record | None] = {}
    for bank, answer in record["answers"].items():
        if caller in (regulator, bank) and answer["status"] == DISCLOSED:
            # None while the delivery has not reached this peer yet (private data travels by gossip).
            delivered[bank] = ledger.get_private(disclosure_collection(bank), keys.disclosed(request_id))
    return {**record, "delivered": delivered}


def list_requests(ledger: Ledger, bank: str | None, status: str | None) -> Record:
    """Every request (oldest first), or a bank's, or those where a bank's answer has ``status``."""
    if status is not None and status not in ANSWERS:
        raise refusal("invalid_request", f"'status' must be one of {', '.join(ANSWERS)}")
    found = []
    collection = regulator_collection(load_config(ledger).regulator)
    for _, record in ledger.scan_private(collection, keys.DISCLOSURE):
        if record is None or (bank is not None and bank not in (record["payer_bank"], record["payee_bank"])):
            continue
        full = view(ledger, record)
        if status is not None:
            wanted = [full["answers"][bank]] if bank is not None else list(full["answers"].values())
            if not any(answer["status"] == status for answer in wanted):
                continue
        found.append(full)
    return {"requests": sorted(found, key=lambda r: r["requested_at"])}
