"""Disclosure on request, both sides (docs/decisions/0024-disclosure-on-request.md).

A bank's gateway shows the requests addressed to the bank, approves or refuses them on an
operator's word, or approves them on its own when the bank's standing policy says so
(``disclosure_standing_approval``): a small worker asks the ledger for the bank's pending
requests every ``disclosure_poll_seconds`` and approves each. Asking is enough, and cheaper than
a second event stream: a request that has not reached the bank's peer yet is simply found on a
later pass, and nothing needs a checkpoint.

The regulator's gateway files requests and checks every delivery against the salted hash in the
payment's public record, the hash the payer bank's contract made when it initiated the payment:
``verified`` when they match, ``mismatch`` when they do not (a bank lied), ``awaiting_data``
while the delivery has not reached the regulator's peer. The first result for each (request,
bank) is kept in the gateway's database with the time it was found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.exc import IntegrityError

from gateway.bank_api import representations
from gateway.bank_api.ledger import JSON, ContractRejected, LedgerError, OversightLedger
from gateway.bank_api.storage.models import DisclosureCheck, utcnow

if TYPE_CHECKING:
    from gateway.bank_api.app import Services

log = logging.getLogger(__name__)

REQUEST_ID = r"^[0-9a-f]{64}$"
ANSWERS = ("pending", "disclosed", "refused")
VERIFIED = "verified"
MISMATCH = "mismatch"
AWAITING_DATA = "awaiting_data"
LEGAL_BASIS_MAX = 500
REASON_MAX = 200


def details_hash(salt: str, details: JSON) -> str:
    """The contract's hash of a payment's details (``payments.details_hash``), computed here on its own.

    The regulator does not take the hash or the verdict from chaincode code: it recomputes it from
    what was delivered, with the same canonical JSON (sorted keys, no spaces, UTF-8).
    """
    encoded = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(bytes.fromhex(salt) + encoded).hexdigest()


def request_view(record: JSON) -> JSON:
    """A request and each bank's answer, as both sides show it (no details)."""
    answers = {}
    for bank, answer in sorted((record.get("answers") or {}).items()):
        answer = answer if isinstance(answer, dict) else {}
        answers[str(bank)] = {
            "status": answer.get("status"),
            "at": representations.timestamp(answer.get("at")),
            "tx_id": answer.get("tx_id"),
            "reason": answer.get("reason"),
        }
    return {
        "request_id": record.get("request_id"),
        "payment_id": record.get("payment_id"),
        "payer_bank": record.get("payer_bank"),
        "payee_bank": record.get("payee_bank"),
        "legal_basis": record.get("legal_basis"),
        "requested_by": record.get("requested_by"),
        "requested_at": representations.timestamp(record.get("requested_at")),
        "answers": answers,
    }


REQUEST_COLUMNS = ("request_id", "payment_id", "payer_bank", "payee_bank", "legal_basis", "requested_by",
                   "requested_at", "payer_answer", "payee_answer")  # fmt: skip


def request_row(view: JSON) -> list[Any]:
    answers = view["answers"]
    return [
        view["request_id"], view["payment_id"], view["payer_bank"], view["payee_bank"], view["legal_basis"],
        view["requested_by"], view["requested_at"], (answers.get(view["payer_bank"]) or {}).get("status"),
        (answers.get(view["payee_bank"]) or {}).get("status"),
    ]  # fmt: skip


# -- the regulator's side ------------------------------------------------------------------------


def verify(services: Services, request_id: str) -> JSON:
    """The request with what each bank delivered and its check against the payment's public hash."""
    ledger = cast(OversightLedger, services.ledger)
    record = ledger.get_disclosure(request_id, details=True)
    payment = ledger.get_payment(str(record.get("payment_id")))
    expected = payment.get("details_hash")
    view = request_view(record)
    deliveries: JSON = {}
    for bank, delivered in sorted((record.get("delivered") or {}).items()):
        if not isinstance(delivered, dict):
            deliveries[bank] = {"check": AWAITING_DATA, "details": None, "checked_at": None}
            continue
        raw = delivered.get("details")
        details: JSON = raw if isinstance(raw, dict) else {}
        try:
            received = details_hash(str(delivered.get("salt")), details)
        except ValueError:  # a salt that is not hex cannot be what the contract used
            received = ""
        check = VERIFIED if received == expected else MISMATCH
        checked_at = _record_check(services, request_id, bank, check, received)
        deliveries[bank] = {
            "check": check,
            "checked_at": representations.timestamp(checked_at),
            "details_hash": received,
            "details": {
                "payer_account": details.get("payer_account"),
                "payer_jurisdiction": details.get("payer_jurisdiction"),
                "payee_account": details.get("payee_account"),
                "remittance": details.get("remittance") or None,
            },
        }
    return {**view, "expected_details_hash": expected, "deliveries": deliveries}


def _record_check(services: Services, request_id: str, bank: str, check: str, received: str) -> datetime | None:
    """Keep the first check of a delivery (a delivery never changes, so neither does its check)."""
    with services.db.session(write=False) as session:
        row = session.get(DisclosureCheck, (request_id, bank))
        if row is not None:
            return row.checked_at
    try:
        with services.db.session() as session:
            row = DisclosureCheck(
                request_id=request_id, bank=bank, result=check, details_hash=received, checked_at=utcnow()
            )
            session.add(row)
            checked_at: datetime | None = row.checked_at
    except IntegrityError:  # checked at the same moment by another request
        with services.db.session(write=False) as session:
            existing = session.get(DisclosureCheck, (request_id, bank))
            checked_at = existing.checked_at if existing is not None else None
    if check == MISMATCH:
        log.warning("disclosure %s: %s delivered details that do not match the payment's hash", request_id, bank)
    return checked_at


# -- a bank's standing approval ------------------------------------------------------------------


class StandingApproval:
    """Approves this bank's pending disclosure requests on its own (the bank's standing policy)."""

    def __init__(self, services: Services, interval: float | None = None) -> None:
        self.services = services
        self.interval = services.config.disclosure_poll_seconds if interval is None else interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="disclosure-approval", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.approve_pending()
            except LedgerError as error:
                log.warning("disclosure approval pass interrupted: %s", type(error).__name__)
            except Exception:
                log.exception("disclosure approval pass failed")

    def approve_pending(self) -> list[str]:
        """One pass; the ids of the requests it approved."""
        ledger = self.services.ledger
        approved = []
        for record in ledger.list_disclosures(ledger.msp_id, "pending").get("requests") or []:
            request_id = str(record.get("request_id"))
            answer = (record.get("answers") or {}).get(ledger.msp_id) or {}
            if answer.get("status") != "pending":
                continue
            try:
                ledger.approve_disclosure(request_id)
            except ContractRejected as refusal:
                log.warning("disclosure %s not approved: %s", request_id, refusal.code)
                continue
            log.info("disclosure %s approved under the standing policy", request_id)
            approved.append(request_id)
        return approved
