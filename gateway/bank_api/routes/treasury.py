"""Operator money routes: issue against deposits, redeem, supply, settlement cycles, positions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Annotated

from flask import Blueprint, Response, request
from pydantic import Field

from gateway.bank_api import representations
from gateway.bank_api.app import services
from gateway.bank_api.auth import MERCHANT, OPERATOR, requires
from gateway.bank_api.boundary import (
    BANK,
    Absent,
    AccountId,
    Amount,
    Body,
    Currency,
    Reference,
    Rule,
    accepts,
    body_of,
)
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import ContractRejected
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import CYCLE_ID, path_id

bp = Blueprint("treasury", __name__, url_prefix="/v1")

MAX_POSITION_PAGES = 1000


# A core-banking reference, as the refusal of a malformed one describes it.
CoreReference = Annotated[Reference, Rule(what="letters, digits and _ . : / -")]


class _MoneyMovement(Body):
    account_id: AccountId
    currency: Currency
    amount: Amount


class IssueRequest(_MoneyMovement):
    deposit_ref: Annotated[CoreReference, Field(description="Core-banking deposit reference; idempotent")]


class RedeemRequest(_MoneyMovement):
    withdrawal_ref: CoreReference


def _money_movement(body: _MoneyMovement) -> tuple[str, str, int]:
    """The account, the currency and the amount in minor units."""
    currencies = services().currencies()
    currency = currencies.known(body.currency, "currency")
    return body.account_id, currency, currencies.parse_amount(body.amount, currency, "amount")


@bp.post("/issuances")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(BANK, body=IssueRequest)
def issue() -> Response:
    body = body_of(IssueRequest)
    account_id, currency, amount = _money_movement(body)
    deposit_ref = body.deposit_ref
    result = services().ledger.issue(account_id, currency, amount, deposit_ref)
    issued = bool(result.get("issued", True))
    answer = {
        "issued": issued,
        "account_id": account_id,
        "currency": currency,
        "amount": services().currencies().format_amount(amount, currency),
        "deposit_ref": deposit_ref,
    }
    return json_response(answer, 201 if issued else 200)


@bp.post("/redemptions")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(BANK, body=RedeemRequest)
def redeem() -> Response:
    body = body_of(RedeemRequest)
    account_id, currency, amount = _money_movement(body)
    withdrawal_ref = body.withdrawal_ref
    result = services().ledger.redeem(account_id, currency, amount, withdrawal_ref)
    redeemed = bool(result.get("redeemed", True))
    answer = {
        "redeemed": redeemed,
        "account_id": account_id,
        "currency": currency,
        "amount": services().currencies().format_amount(amount, currency),
        "withdrawal_ref": withdrawal_ref,
    }
    return json_response(answer, 201 if redeemed else 200)


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


class OpenCycleRequest(Body):
    cycle_id: Annotated[str, Field(pattern=CYCLE_ID, min_length=1, max_length=64)] | Absent = None


@bp.post("/settlement-cycles")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(BANK, body=OpenCycleRequest, body_required=False)
def open_cycle() -> Response:
    cycle_id = body_of(OpenCycleRequest).cycle_id
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


class ConfirmRequest(Body):
    external_ref: Annotated[CoreReference, Field(description="Reference of the settlement outside the ledger")]


@bp.post("/settlement-cycles/<cycle_id>/confirmation")
@requires(OPERATOR)
@accepts(BANK, body=ConfirmRequest)
def confirm_cycle(cycle_id: str) -> Response:
    path_id(cycle_id, CYCLE_ID, "cycle_id")
    external_ref = body_of(ConfirmRequest).external_ref
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
