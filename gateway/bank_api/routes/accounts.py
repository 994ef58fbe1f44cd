"""Accounts: opened, frozen and limited by operators; read by their merchant."""

from __future__ import annotations

import hashlib
import secrets

from flask import Blueprint, Response, g, request

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
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import ContractRejected
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import (
    ACCOUNT_ID,
    JURISDICTION,
    MAX_FREEZE_REASON,
    OPAQUE_ID,
    Fields,
    bad_request,
    cursor,
    json_object,
    page_size,
    path_id,
)

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


@bp.post("/accounts")
@requires(OPERATOR)
@idempotent(required=False)
def open_account() -> Response:
    fields = Fields(json_object(), ("holder", "jurisdiction", "kyc_ref", "account_id"))
    holder = fields.required_text("holder", max_length=200)
    jurisdiction = fields.required_text("jurisdiction", pattern=JURISDICTION, what="two to four capitals")
    kyc_ref = fields.required_text("kyc_ref", max_length=128)
    account_id = fields.text("account_id", pattern=ACCOUNT_ID, max_length=64, required=False)
    if holder.strip() == "":
        raise bad_request("holder must not be blank")
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
    body = {"account": account, "api_key": issued.api_key, "api_key_id": issued.key_id}
    # A replay must not hand the secret out again (it is shown once): store the answer without it.
    g.idempotent_stored_body = {**body, "api_key": None}
    return json_response(body, 201, {"Location": f"/v1/accounts/{account_id}"})


@bp.get("/accounts/<account_id>")
@requires(OPERATOR, MERCHANT)
def get_account(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    ensure_account_access(current_principal(), account_id)
    data = services().ledger.get_account(account_id)
    return json_response(representations.account(data, services().currencies()))


@bp.get("/accounts/<account_id>/history")
@requires(OPERATOR, MERCHANT)
def get_history(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    ensure_account_access(current_principal(), account_id)
    size, bookmark = page_size(), cursor()
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


@bp.post("/accounts/<account_id>/freeze")
@requires(OPERATOR)
def freeze(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    fields = Fields(json_object(), ("reason",))
    reason = fields.required_text("reason", max_length=MAX_FREEZE_REASON)
    services().ledger.freeze_account(account_id, reason)
    return _account_after(account_id)


@bp.post("/accounts/<account_id>/unfreeze")
@requires(OPERATOR)
def unfreeze(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    Fields(json_object(), ())
    services().ledger.unfreeze_account(account_id)
    return _account_after(account_id)


@bp.post("/accounts/<account_id>/close")
@requires(OPERATOR)
def close(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    Fields(json_object(), ())
    services().ledger.close_account(account_id)
    return _account_after(account_id)


@bp.put("/accounts/<account_id>/limits/<currency>")
@requires(OPERATOR)
def set_limits(account_id: str, currency: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    currencies = services().currencies()
    fields = Fields({"currency": currency, **json_object()}, ("currency", "per_transaction", "daily"))
    code = fields.currency("currency", currencies)
    assert code is not None
    body = fields.body
    for name in ("per_transaction", "daily"):
        if name not in body:
            raise bad_request(f"{name} is required (a decimal string, or null for no limit)")
    per_transaction = fields.amount("per_transaction", code, currencies, required=False)
    daily = fields.amount("daily", code, currencies, required=False)
    services().ledger.set_limits(account_id, code, per_transaction, daily)
    return _account_after(account_id)


@bp.post("/accounts/<account_id>/api-keys")
@requires(OPERATOR)
def create_api_key(account_id: str) -> Response:
    path_id(account_id, ACCOUNT_ID, "account_id")
    fields = Fields(json_object(), ("label",))
    label = fields.text("label", max_length=128, required=False)
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
