"""Accounts: opened, frozen and limited by operators; read by their merchant."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from flask import Blueprint, Response, g, request
from pydantic import ConfigDict, Field

from gateway.bank_api import representations
from gateway.bank_api.app import services
from gateway.bank_api.auth import (
    ATTESTOR,
    MERCHANT,
    OPERATOR,
    TREASURER,
    current_principal,
    ensure_account_access,
    requires,
)
from gateway.bank_api.boundary import (
    BANK,
    Absent,
    AccountId,
    Amount,
    ApiKeyCreateRequest,
    Body,
    EmptyRequest,
    Jurisdiction,
    Page,
    accepts,
    body_of,
    query_of,
    text,
)
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import ContractRejected
from gateway.bank_api.money import Currencies
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import ACCOUNT_ID, MAX_FREEZE_REASON, OPAQUE_ID, bad_request, path_id

bp = Blueprint("accounts", __name__, url_prefix="/v1")


@bp.get("/me")
@requires(OPERATOR, MERCHANT, ATTESTOR, TREASURER)
def whoami() -> Response:
    """Who the key is: every key may ask (the console's login does), whatever else it may do."""
    principal = current_principal()
    # A treasurer's or attestor's scope is named in a field of its own (only for those keys, so the
    # answer to operators and merchants is as it always was); account_id stays the merchant's account.
    scope = {"group_id": principal.group_id, "attestor_id": principal.attestor_id}
    return json_response(
        {
            "role": principal.role,
            "key_id": principal.key_id,
            "account_id": principal.merchant_account,
            "bank": services().msp_id,
            **{name: value for name, value in scope.items() if value is not None},
        }
    )


class OpenAccountRequest(Body):
    holder: Annotated[str, text(200)]
    jurisdiction: Jurisdiction
    kyc_ref: Annotated[str, text(128)]
    account_id: Annotated[AccountId, Field(description="Optional; generated when left out")] | Absent = None


@bp.post("/accounts")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(BANK, body=OpenAccountRequest)
def open_account() -> Response:
    body = body_of(OpenAccountRequest)
    holder, jurisdiction, kyc_ref, account_id = body.holder, body.jurisdiction, body.kyc_ref, body.account_id
    idempotency_key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=False)
    derived = False
    if account_id is None:
        if idempotency_key is not None:
            # A retry of the same request must open the same account, not a second one.
            digest = hashlib.sha256(f"open-account\n{idempotency_key}".encode()).hexdigest()
            account_id = "acc_" + digest[:24]
            derived = True
        else:
            account_id = "acc_" + secrets.token_hex(12)
    ledger = services().ledger
    try:
        ledger.open_account(account_id, holder, jurisdiction, kyc_ref)
    except ContractRejected as rejection:
        # An earlier attempt under this key committed but died before answering: carry on.
        if not (derived and rejection.code == "account_exists"):
            raise
    account = representations.account(ledger.get_account(account_id), services().currencies())
    issued = services().keys.create(MERCHANT, account_id, label="issued when the account was opened")
    answer = {"account": account, "api_key": issued.api_key, "api_key_id": issued.key_id}
    # A replay must not hand the secret out again (it is shown once): store the answer without it.
    g.idempotent_stored_body = {**answer, "api_key": None}
    return json_response(answer, 201, {"Location": f"/v1/accounts/{account_id}"})


@bp.get("/accounts/<account_id>")
@requires(OPERATOR, MERCHANT)
def get_account(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    ensure_account_access(current_principal(), account_id)
    data = services().ledger.get_account(account_id)
    return json_response(representations.account(data, services().currencies()))


@bp.get("/accounts/<account_id>/history")
@requires(OPERATOR, MERCHANT)
@accepts(BANK, query=Page)
def get_history(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    ensure_account_access(current_principal(), account_id)
    page = query_of(Page)
    size, bookmark = page.page_size, page.cursor
    data = services().ledger.get_account_history(account_id, size, bookmark)
    currencies = services().currencies()
    entries = [
        representations.history_entry(entry, currencies)
        for entry in data.get("entries") or []
        if isinstance(entry, dict)
    ]
    next_cursor = data.get("bookmark") or None
    if not entries:
        next_cursor = None
    return json_response({"entries": entries, "next_cursor": next_cursor})


def _account_after(account_id: str) -> Response:
    data = services().ledger.get_account(account_id)
    return json_response(representations.account(data, services().currencies()))


class FreezeRequest(Body):
    reason: Annotated[str, text(MAX_FREEZE_REASON)]


@bp.post("/accounts/<account_id>/freeze")
@requires(OPERATOR)
@accepts(BANK, body=FreezeRequest)
def freeze(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    services().ledger.freeze_account(account_id, body_of(FreezeRequest).reason)
    return _account_after(account_id)


@bp.post("/accounts/<account_id>/unfreeze")
@requires(OPERATOR)
@accepts(BANK, body=EmptyRequest, body_required=False)
def unfreeze(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    services().ledger.unfreeze_account(account_id)
    return _account_after(account_id)


@bp.post("/accounts/<account_id>/close")
@requires(OPERATOR)
@accepts(BANK, body=EmptyRequest, body_required=False)
def close(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    services().ledger.close_account(account_id)
    return _account_after(account_id)


LIMITS = ("per_transaction", "daily")


class LimitsRequest(Body):
    # Each is a decimal string, or null for no limit, and both must be given: the model reads a
    # null as a field left out, so the view checks that they are there and the schema lists them
    # as required.
    model_config = ConfigDict(json_schema_extra={"required": list(LIMITS)})

    per_transaction: Amount | Absent = None
    daily: Amount | Absent = None


@bp.put("/accounts/<account_id>/limits/<currency>")
@requires(OPERATOR)
@accepts(BANK, body=LimitsRequest)
def set_limits(account_id: str, currency: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    currencies = services().currencies()
    code = currencies.known(currency, "currency")
    body = body_of(LimitsRequest)
    for name in LIMITS:
        if name not in body.model_fields_set:
            raise bad_request(f"{name} is required (a decimal string, or null for no limit)")
    per_transaction = _limit(currencies, body.per_transaction, code, "per_transaction")
    daily = _limit(currencies, body.daily, code, "daily")
    services().ledger.set_limits(account_id, code, per_transaction, daily)
    return _account_after(account_id)


def _limit(currencies: Currencies, value: str | None, currency: str, name: str) -> int | None:
    """A limit in minor units, or None for no limit."""
    return None if value is None else currencies.parse_amount(value, currency, name)


@bp.post("/accounts/<account_id>/api-keys")
@requires(OPERATOR)
@accepts(BANK, body=ApiKeyCreateRequest, body_required=False)
def create_api_key(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    label = body_of(ApiKeyCreateRequest).label
    services().ledger.get_account(account_id)  # 404 unknown_account before a key exists for it
    issued = services().keys.create(MERCHANT, account_id, label=label)
    return json_response({"api_key": issued.api_key, "api_key_id": issued.key_id, "account_id": account_id}, 201)


@bp.get("/accounts/<account_id>/api-keys")
@requires(OPERATOR)
def list_api_keys(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    rows = services().keys.list_for_account(account_id)
    return json_response(
        {
            "api_keys": [
                {
                    "api_key_id": row.key_id,
                    "label": row.label,
                    "created_at": representations.timestamp(row.created_at),
                    "revoked_at": representations.timestamp(row.revoked_at),
                }
                for row in rows
            ]
        }
    )


@bp.delete("/accounts/<account_id>/api-keys/<key_id>")
@requires(OPERATOR)
def revoke_api_key(account_id: str, key_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    path_id(key_id, OPAQUE_ID, "key_id")
    if not services().keys.revoke(key_id, account_id=account_id):
        raise ApiProblem(404, "not_found", "this account has no API key with that id")
    return Response(status=204)
