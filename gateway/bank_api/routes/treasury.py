"""Operator money routes: issue against deposits, redeem, supply, settlement cycles, positions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from gateway.bank_api import representations
from gateway.bank_api.app import services
from gateway.bank_api.auth import MERCHANT, OPERATOR, requires
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import ContractRejected
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import (
    ACCOUNT_ID,
    CYCLE_ID,
    REFERENCE,
    Fields,
    json_object,
    path_id,
)

bp = Blueprint("treasury", __name__, url_prefix="/v1")

MAX_POSITION_PAGES = 1000


def _money_movement(reference_field: str) -> tuple[str, str, int, str]:
    currencies = services().currencies()
    fields = Fields(json_object(), ("account_id", "currency", "amount", reference_field))
    account_id = fields.required_text("account_id", pattern=ACCOUNT_ID, max_length=64)
    currency = fields.currency("currency", currencies)
    assert currency is not None
    amount = fields.amount("amount", currency, currencies)
    assert amount is not None
    reference = fields.required_text(
        reference_field, pattern=REFERENCE, max_length=128, what="letters, digits and _ . : / -"
    )
    return account_id, currency, amount, reference


@bp.post("/issuances")
@requires(OPERATOR)
@idempotent(required=False)
def issue() -> Response:
    account_id, currency, amount, deposit_ref = _money_movement("deposit_ref")
    result = services().ledger.issue(account_id, currency, amount, deposit_ref)
    issued = bool(result.get("issued", True))
    body = {
        "issued": issued,
        "account_id": account_id,
        "currency": currency,
        "amount": services().currencies().format_amount(amount, currency),
        "deposit_ref": deposit_ref,
    }
    return json_response(body, 201 if issued else 200)


@bp.post("/redemptions")
@requires(OPERATOR)
@idempotent(required=False)
def redeem() -> Response:
    account_id, currency, amount, withdrawal_ref = _money_movement("withdrawal_ref")
    result = services().ledger.redeem(account_id, currency, amount, withdrawal_ref)
    redeemed = bool(result.get("redeemed", True))
    body = {
        "redeemed": redeemed,
        "account_id": account_id,
        "currency": currency,
        "amount": services().currencies().format_amount(amount, currency),
        "withdrawal_ref": withdrawal_ref,
    }
    return json_response(body, 201 if redeemed else 200)


@bp.get("/supply")
@requires(OPERATOR)
def supply() -> Response:
    data = services().ledger.get_supply()
    return json_response(representations.supply(data, services().currencies()))


@bp.get("/reference-data")
@requires(OPERATOR, MERCHANT)
def reference_data() -> Response:
    data = services().reference_data()
    banks = [
        {
            "msp_id": bank.get("msp_id"),
            "name": bank.get("name"),
            "jurisdiction": bank.get("jurisdiction"),
            "currencies": list(bank.get("currencies") or []),
            # A record from before suspensions existed has no status: that bank is active.
            "status": bank.get("status") or "active",
            "status_reason": bank.get("status_reason"),
        }
        for bank in data.get("banks") or []
        if isinstance(bank, dict)
    ]
    currencies = data.get("currencies") or {}
    return json_response(
        {
            "bank": services().msp_id,
            "currencies": {str(k): int(v) for k, v in currencies.items()},
            "banks": banks,
            "fx_rates": services().rates.pairs(),
        }
    )


@bp.post("/settlement-cycles")
@requires(OPERATOR)
@idempotent(required=False)
def open_cycle() -> Response:
    fields = Fields(json_object(), ("cycle_id",))
    cycle_id = fields.text("cycle_id", pattern=CYCLE_ID, max_length=64, required=False)
    if cycle_id is None:
        key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=False)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        # Under an Idempotency-Key a retry must name the same cycle; without one any fresh name does.
        suffix = hashlib.sha256(key.encode()).hexdigest()[:8] if key else secrets.token_hex(4)
        cycle_id = f"{services().msp_id}-{stamp}-{suffix}"
    ledger = services().ledger
    try:
        ledger.open_settlement_cycle(cycle_id)
    except ContractRejected as rejection:
        # A retry of an open whose answer was lost (a commit that outlasted our deadline): the
        # cycle is there, opened by us, so this request has what it asked for.
        if rejection.code != "duplicate_reference":
            raise
        existing = ledger.get_settlement_cycle(cycle_id)
        if existing.get("opened_by") != services().msp_id:
            raise
    cycle = ledger.get_settlement_cycle(cycle_id)
    return json_response(
        representations.settlement_cycle(cycle, services().currencies()),
        201,
        {"Location": f"/v1/settlement-cycles/{cycle_id}"},
    )


@bp.get("/settlement-cycles")
@requires(OPERATOR)
def list_cycles() -> Response:
    data = services().ledger.list_settlement_cycles()
    currencies = services().currencies()
    items = data.get("cycles") if isinstance(data, dict) else data
    cycles = [representations.settlement_cycle(item, currencies) for item in items or [] if isinstance(item, dict)]
    return json_response({"cycles": cycles})


@bp.get("/settlement-cycles/<cycle_id>")
@requires(OPERATOR)
def get_cycle(cycle_id: str) -> Response:
    path_id(cycle_id, CYCLE_ID, "cycle_id")
    cycle = services().ledger.get_settlement_cycle(cycle_id)
    return json_response(representations.settlement_cycle(cycle, services().currencies()))


@bp.post("/settlement-cycles/<cycle_id>/confirmation")
@requires(OPERATOR)
def confirm_cycle(cycle_id: str) -> Response:
    path_id(cycle_id, CYCLE_ID, "cycle_id")
    fields = Fields(json_object(), ("external_ref",))
    external_ref = fields.required_text(
        "external_ref", pattern=REFERENCE, max_length=128, what="letters, digits and _ . : / -"
    )
    ledger = services().ledger
    ledger.confirm_settlement(cycle_id, external_ref)
    cycle = ledger.get_settlement_cycle(cycle_id)
    return json_response(representations.settlement_cycle(cycle, services().currencies()))


@bp.get("/positions")
@requires(OPERATOR)
def positions() -> Response:
    """Net positions of every bank over the completed payments not yet in a settlement cycle.

    Each payment makes the payer bank owe the payee bank the amount the payee bank delivered,
    in the payee's currency; a positive position is money the bank is to receive.
    """
    svc = services()
    totals: dict[str, dict[str, int]] = {}
    bookmark = ""
    count = 0
    for _ in range(MAX_POSITION_PAGES):
        page = svc.ledger.list_payments(None, "completed", 100, bookmark)
        items = [p for p in page.get("payments") or [] if isinstance(p, dict)]
        for payment in items:
            if payment.get("cycle_id"):
                continue
            currency = str(payment.get("payee_currency") or payment.get("currency"))
            amount = payment.get("payee_amount")
            if amount is None:
                amount = payment.get("amount")
            if not isinstance(amount, int):
                continue
            payer, payee = str(payment.get("payer_bank")), str(payment.get("payee_bank"))
            totals.setdefault(payer, {}).setdefault(currency, 0)
            totals.setdefault(payee, {}).setdefault(currency, 0)
            totals[payer][currency] -= amount
            totals[payee][currency] += amount
            count += 1
        bookmark = page.get("bookmark") or ""
        if not bookmark or not items:
            break
    currencies = svc.currencies()
    return json_response(
        {
            "bank": svc.msp_id,
            "payments": count,
            "positions": representations.positions(totals, currencies),
        }
    )
