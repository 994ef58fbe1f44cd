"""Escrows: a buyer locks money for a payee; the buyer, an attestor or both release it.

``POST /v1/escrows`` (the buyer's merchant key) locks; ``POST /v1/escrows/<id>/release`` (the
buyer's key or the attestor's, as the terms say) releases part or all of it; the sweeper
settles what is left at expiry. ``POST /v1/attestors/<id>/api-keys`` (operator) gives an
attestor its key. Every write is idempotent by its Idempotency-Key.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from flask import Blueprint, Response, request
from pydantic import Field

from gateway.bank_api import escrows
from gateway.bank_api.app import services
from gateway.bank_api.auth import ATTESTOR, MERCHANT, OPERATOR, Principal, current_principal, requires
from gateway.bank_api.boundary import (
    BANK,
    Absent,
    AccountId,
    Amount,
    ApiKeyCreateRequest,
    Body,
    Currency,
    MspId,
    Remittance,
    Rule,
    accepts,
    body_of,
    one_of,
)
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import JSON, ContractRejected
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import bad_request, path_id

bp = Blueprint("escrows", __name__, url_prefix="/v1")

ESCROW_ID = r"^[0-9a-f]{64}$"
ATTESTOR_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
RELEASE_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
RELEASE_BY = ("buyer", "attestor", "both")
ON_EXPIRY = ("refund", "release")
# The contract refuses terms longer than a year; a shorter bound here names the problem first.
MAX_EXPIRES_IN = 366 * 24 * 3600


def _ledger_key(principal: Principal, kind: str, idempotency_key: str) -> str:
    """The key the ledger sees: unique per account (or attestor), so two callers' keys never collide."""
    return hashlib.sha256(f"{kind}\n{principal.idempotency_scope}\n{idempotency_key}".encode()).hexdigest()


AttestorId = Annotated[
    str, Field(pattern=ATTESTOR_ID, min_length=1, max_length=64), Rule(what="an attestor id")
]


class EscrowRequest(Body):
    payee_bank: Annotated[MspId, Field(description="MSP id of the payee's bank (this bank or another)")]
    payee_account: AccountId
    currency: Currency
    amount: Amount
    release_by: Annotated[str, one_of(RELEASE_BY)]
    attestor: Annotated[AttestorId, Field(description="Required unless release_by is buyer")] | Absent = None
    # Either field, not both: the view says so, as the document cannot without a oneOf.
    expires_at: Annotated[
        str,
        Field(min_length=1, max_length=40, description="RFC 3339 time; or give expires_in_seconds"),
        Rule(what="an RFC 3339 time such as 2026-01-06T09:00:00Z"),
    ] | Absent = None
    expires_in_seconds: Annotated[
        int, Field(ge=1, le=MAX_EXPIRES_IN), Rule(what=f"1 to {MAX_EXPIRES_IN} seconds")
    ] | Absent = None
    on_expiry: Annotated[str, one_of(ON_EXPIRY)]
    remittance: Remittance | Absent = None


def _expires_at(body: EscrowRequest) -> str:
    """``expires_at`` (RFC 3339) or ``expires_in_seconds``, as the contract's UTC timestamp."""
    if (body.expires_at is None) == (body.expires_in_seconds is None):
        raise bad_request("give exactly one of expires_at and expires_in_seconds")
    now = datetime.now(UTC)
    if body.expires_in_seconds is not None:
        moment = now + timedelta(seconds=body.expires_in_seconds)
    else:
        assert body.expires_at is not None
        try:
            moment = datetime.fromisoformat(body.expires_at)
        except ValueError:
            raise bad_request("expires_at must be an RFC 3339 time such as 2026-01-06T09:00:00Z") from None
        if moment.tzinfo is None:
            raise bad_request("expires_at needs a time zone (Z or an offset)")
        if moment <= now:
            raise bad_request("expires_at is not in the future")
        if moment > now + timedelta(seconds=MAX_EXPIRES_IN):
            raise bad_request("expires_at is more than 366 days ahead")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@bp.post("/escrows")
@requires(MERCHANT)
@idempotent(required=True)
@accepts(BANK, body=EscrowRequest)
def lock_escrow() -> Response:
    principal = current_principal()
    assert principal.account_id is not None
    svc = services()
    currencies = svc.currencies()
    terms = body_of(EscrowRequest)
    payee_bank, payee_account = terms.payee_bank, terms.payee_account
    currency = currencies.known(terms.currency, "currency")
    amount = currencies.parse_amount(terms.amount, currency, "amount")
    release_by, attestor = terms.release_by, terms.attestor
    if release_by != "buyer" and not attestor:
        raise bad_request(f"attestor is required when release_by is {release_by}")
    if release_by == "buyer" and attestor:
        raise bad_request("attestor is only for release_by attestor or both")
    expires_at = _expires_at(terms)
    on_expiry = terms.on_expiry
    remittance = terms.remittance or None
    if payee_bank == svc.msp_id and payee_account == principal.account_id:
        raise bad_request("payee_account is the buyer's own account")
    idempotency_key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    assert idempotency_key is not None
    lock: JSON = {
        "idempotency_key": _ledger_key(principal, "escrow", idempotency_key),
        "payer_account": principal.account_id,
        "payee_bank": payee_bank,
        "payee_account": payee_account,
        "currency": currency,
        "amount": amount,
        "release_by": release_by,
        "expires_at": expires_at,
        "on_expiry": on_expiry,
    }
    if attestor:
        lock["attestor"] = attestor
    if remittance:
        lock["remittance"] = remittance
    result = svc.ledger.lock_escrow(lock)
    escrow_id = str(result["escrow_id"])
    # The transaction's answer names no account (it travels in the block): read the escrow back.
    record = svc.ledger.get_escrow(escrow_id)
    body = escrows.representation(record, currencies)
    if result.get("created"):
        escrows.notify(svc.db, record, svc.msp_id, "escrow.locked", f"escrow.locked:{escrow_id}", body)
    return json_response(body, 201, {"Location": f"/v1/escrows/{escrow_id}"})


def _not_found() -> ApiProblem:
    return ApiProblem(404, "escrow_not_found", "no escrow with this id is visible to this API key")


def _visible(escrow_id: str) -> JSON:
    path_id(escrow_id, ESCROW_ID, "escrow_id")
    svc = services()
    try:
        record = svc.ledger.get_escrow(escrow_id)
    except ContractRejected as rejection:
        if rejection.code == "escrow_not_found":
            raise _not_found() from rejection
        raise
    if not escrows.visible_to(current_principal(), record, svc.msp_id):
        raise _not_found()
    return record


@bp.get("/escrows/<escrow_id>")
@requires(OPERATOR, MERCHANT, ATTESTOR)
def get_escrow(escrow_id: str) -> Response:
    return json_response(escrows.representation(_visible(escrow_id), services().currencies()))


class EscrowReleaseRequest(Body):
    amount: Amount
    release_ref: Annotated[
        str,
        Field(
            pattern=RELEASE_REF,
            min_length=1,
            max_length=64,
            description="Names the release; with release_by both, buyer and attestor give the same one",
        ),
        Rule(what="a reference"),
    ] | Absent = None


@bp.post("/escrows/<escrow_id>/release")
@requires(MERCHANT, ATTESTOR)
@idempotent(required=True)
@accepts(BANK, body=EscrowReleaseRequest)
def release_escrow(escrow_id: str) -> Response:
    principal = current_principal()
    svc = services()
    currencies = svc.currencies()
    release = body_of(EscrowReleaseRequest)
    release_ref = release.release_ref
    if release_ref == "expiry":
        raise bad_request("release_ref 'expiry' is reserved for what the expiry releases")
    record = _visible(escrow_id)
    if principal.attestor_id is None and record.get("payer_account") != principal.merchant_account:
        raise ApiProblem(403, "forbidden", "only the buyer or the escrow's attestor releases it")
    # The escrow's currency says how many decimals the amount may have.
    amount = currencies.parse_amount(release.amount, str(record.get("currency")), "amount")
    idempotency_key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    assert idempotency_key is not None
    # With release_by both, the buyer and the attestor name the same release_ref; otherwise the
    # Idempotency-Key is enough to tell one partial release from the next.
    release_id = release_ref or "r-" + _ledger_key(principal, "release", idempotency_key)[:40]
    order: JSON = {"escrow_id": escrow_id, "release_id": release_id, "amount": amount}
    if principal.attestor_id is not None:
        order.update({"by": "attestor", "attestor": principal.attestor_id})
    else:
        order["by"] = "buyer"
    result = svc.ledger.release_escrow(order)
    updated = svc.ledger.get_escrow(escrow_id)
    body = escrows.representation(updated, currencies)
    body["payment_id"] = result.get("payment_id")
    body["awaiting"] = result.get("awaiting")
    if result.get("released"):
        escrows.notify(
            svc.db, updated, svc.msp_id, "escrow.released", f"escrow.released:{escrow_id}:{release_id}", body
        )
    elif result.get("awaiting"):
        escrows.notify(
            svc.db, updated, svc.msp_id, "escrow.approved", f"escrow.approved:{escrow_id}:{release_id}:{order['by']}",
            body,
        )  # fmt: skip
    return json_response(body, 200)


@bp.post("/attestors/<attestor_id>/api-keys")
@requires(OPERATOR)
@accepts(BANK, body=ApiKeyCreateRequest, body_required=False)
def create_attestor_key(attestor_id: str) -> Response:
    """An API key for an attestor: it reads and releases the escrows that name it, nothing else."""
    path_id(attestor_id, ATTESTOR_ID, "attestor_id")
    label = body_of(ApiKeyCreateRequest).label or f"attestor key {secrets.token_hex(2)}"
    issued = services().keys.create(ATTESTOR, attestor_id, label=label)
    return json_response(
        {"attestor_id": attestor_id, "api_key": issued.api_key, "api_key_id": issued.key_id},
        201,
    )
