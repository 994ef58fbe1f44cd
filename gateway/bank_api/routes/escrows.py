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

from flask import Blueprint, Response, request

from gateway.bank_api import escrows
from gateway.bank_api.app import services
from gateway.bank_api.auth import ATTESTOR, MERCHANT, OPERATOR, Principal, current_principal, requires
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import JSON, ContractRejected
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import ACCOUNT_ID, MSP_ID, Fields, bad_request, json_object, path_id

bp = Blueprint("escrows", __name__, url_prefix="/v1")

ESCROW_ID = r"^[0-9a-f]{64}$"
ATTESTOR_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
RELEASE_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
RELEASE_BY = ("buyer", "attestor", "both")
ON_EXPIRY = ("refund", "release")
REMITTANCE_MAX = 140
# The contract refuses terms longer than a year; a shorter bound here names the problem first.
MAX_EXPIRES_IN = 366 * 24 * 3600


def _ledger_key(principal: Principal, kind: str, idempotency_key: str) -> str:
    """The key the ledger sees: unique per account (or attestor), so two callers' keys never collide."""
    return hashlib.sha256(f"{kind}\n{principal.idempotency_scope}\n{idempotency_key}".encode()).hexdigest()


def _choice(fields: Fields, name: str, options: tuple[str, ...]) -> str:
    value = fields.required_text(name, max_length=16)
    if value not in options:
        raise bad_request(f"{name} must be one of {', '.join(options)}")
    return value


def _expires_at(fields: Fields) -> str:
    """``expires_at`` (RFC 3339) or ``expires_in_seconds``, as the contract's UTC timestamp."""
    body = fields.body
    if ("expires_at" in body) == ("expires_in_seconds" in body):
        raise bad_request("give exactly one of expires_at and expires_in_seconds")
    now = datetime.now(UTC)
    if "expires_in_seconds" in body:
        seconds = body["expires_in_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_EXPIRES_IN:
            raise bad_request(f"expires_in_seconds must be a whole number from 1 to {MAX_EXPIRES_IN}")
        moment = now + timedelta(seconds=seconds)
    else:
        text = fields.required_text("expires_at", max_length=40)
        try:
            moment = datetime.fromisoformat(text)
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
def lock_escrow() -> Response:
    principal = current_principal()
    assert principal.account_id is not None
    svc = services()
    currencies = svc.currencies()
    fields = Fields(
        json_object(),
        ("payee_bank", "payee_account", "currency", "amount", "release_by", "attestor", "expires_at",
         "expires_in_seconds", "on_expiry", "remittance"),
    )  # fmt: skip
    payee_bank = fields.required_text("payee_bank", pattern=MSP_ID, max_length=64, what="an MSP id")
    payee_account = fields.required_text("payee_account", pattern=ACCOUNT_ID, max_length=64)
    currency = fields.currency("currency", currencies)
    assert currency is not None
    amount = fields.amount("amount", currency, currencies)
    assert amount is not None
    release_by = _choice(fields, "release_by", RELEASE_BY)
    attestor = fields.text("attestor", pattern=ATTESTOR_ID, max_length=64, required=False, what="an attestor id")
    if release_by != "buyer" and not attestor:
        raise bad_request(f"attestor is required when release_by is {release_by}")
    if release_by == "buyer" and attestor:
        raise bad_request("attestor is only for release_by attestor or both")
    expires_at = _expires_at(fields)
    on_expiry = _choice(fields, "on_expiry", ON_EXPIRY)
    remittance = fields.text("remittance", max_length=REMITTANCE_MAX, required=False) or None
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


@bp.post("/escrows/<escrow_id>/release")
@requires(MERCHANT, ATTESTOR)
@idempotent(required=True)
def release_escrow(escrow_id: str) -> Response:
    principal = current_principal()
    svc = services()
    currencies = svc.currencies()
    fields = Fields(json_object(), ("amount", "release_ref"))
    release_ref = fields.text("release_ref", pattern=RELEASE_REF, max_length=64, required=False, what="a reference")
    if release_ref == "expiry":
        raise bad_request("release_ref 'expiry' is reserved for what the expiry releases")
    record = _visible(escrow_id)
    if principal.attestor_id is None and record.get("payer_account") != principal.merchant_account:
        raise ApiProblem(403, "forbidden", "only the buyer or the escrow's attestor releases it")
    currency = str(record.get("currency"))
    amount = fields.amount("amount", currency, currencies)
    assert amount is not None
    idempotency_key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    assert idempotency_key is not None
    # With release_by both, the buyer and the attestor name the same release_ref; otherwise the
    # Idempotency-Key is enough to tell one partial release from the next.
    release_id = release_ref or "r-" + _ledger_key(principal, "release", idempotency_key)[:40]
    release: JSON = {"escrow_id": escrow_id, "release_id": release_id, "amount": amount}
    if principal.attestor_id is not None:
        release.update({"by": "attestor", "attestor": principal.attestor_id})
    else:
        release["by"] = "buyer"
    result = svc.ledger.release_escrow(release)
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
            svc.db, updated, svc.msp_id, "escrow.approved", f"escrow.approved:{escrow_id}:{release_id}:{release['by']}",
            body,
        )  # fmt: skip
    return json_response(body, 200)


@bp.post("/attestors/<attestor_id>/api-keys")
@requires(OPERATOR)
def create_attestor_key(attestor_id: str) -> Response:
    """An API key for an attestor: it reads and releases the escrows that name it, nothing else."""
    path_id(attestor_id, ATTESTOR_ID, "attestor_id")
    fields = Fields(json_object(), ("label",))
    label = fields.text("label", max_length=128, required=False) or f"attestor key {secrets.token_hex(2)}"
    issued = services().keys.create(ATTESTOR, attestor_id, label=label)
    return json_response(
        {"attestor_id": attestor_id, "api_key": issued.api_key, "api_key_id": issued.key_id},
        201,
    )
