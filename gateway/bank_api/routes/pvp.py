"""Payment versus payment: a merchant offers an exchange, the counterparty accepts at its own bank.

``POST /v1/pvp`` (the proposer's merchant key at its bank) names the counterparty, the rate, the
expiry and the two settlement accounts, and locks the proposer's leg. ``POST /v1/pvp/<id>/accept``
(the counterparty's merchant key at the other bank) locks its leg and delivers it; the proposer's
bank delivers the other leg when it hears of the lock. ``POST /v1/pvp/<id>/refuse`` declines.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from flask import Blueprint, Response, request
from pydantic import Field

from gateway.bank_api import pvp
from gateway.bank_api.app import services
from gateway.bank_api.auth import MERCHANT, OPERATOR, current_principal, requires
from gateway.bank_api.boundary import (
    BANK,
    AccountId,
    Amount,
    Body,
    Currency,
    EmptyRequest,
    MspId,
    Rule,
    accepts,
    body_of,
)
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import JSON, ContractRejected
from gateway.bank_api.money import convert
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.validation import bad_request, path_id

bp = Blueprint("pvp", __name__, url_prefix="/v1")

PVP_ID = r"^[0-9a-f]{64}$"
RATE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")
MAX_EXPIRES_IN = 7 * 24 * 3600


class PvpRequest(Body):
    counterparty_bank: Annotated[MspId, Field(description="The counterparty's bank (not this one)")]
    counterparty_account: Annotated[AccountId, Field(description="The counterparty's account there, paying")]
    counterparty_receives_at: Annotated[
        AccountId, Field(description="The counterparty's account at this bank, receiving currency")
    ]
    receive_account: Annotated[
        AccountId, Field(description="The proposer's account at the counterparty's bank, receiving")
    ]
    currency: Currency
    amount: Amount
    counter_currency: Currency
    # The shape is checked in the view, whose refusal (invalid_rate) says what a rate looks like, as
    # an amount's is; the pattern here is what the document publishes of it.
    rate: Annotated[
        str,
        Field(
            min_length=1,
            max_length=25,
            description="counter_amount = amount x rate",
            json_schema_extra={"pattern": RATE.pattern},
        ),
    ]
    expires_in_seconds: Annotated[
        int, Field(ge=1, le=MAX_EXPIRES_IN), Rule(what=f"1 to {MAX_EXPIRES_IN} seconds")
    ]


@bp.post("/pvp")
@requires(MERCHANT)
@idempotent(required=True)
@accepts(BANK, body=PvpRequest)
def propose() -> Response:
    principal = current_principal()
    assert principal.account_id is not None
    svc = services()
    currencies = svc.currencies()
    terms = body_of(PvpRequest)
    counter_bank, counter_payer = terms.counterparty_bank, terms.counterparty_account
    counter_receives, receive_account = terms.counterparty_receives_at, terms.receive_account
    currency = currencies.known(terms.currency, "currency")
    counter_currency = currencies.known(terms.counter_currency, "counter_currency")
    amount = currencies.parse_amount(terms.amount, currency, "amount")
    rate_text = terms.rate
    if not RATE.fullmatch(rate_text) or Decimal(rate_text) <= 0:
        raise bad_request("rate must be a positive decimal string such as 7.8125", "invalid_rate")
    seconds = terms.expires_in_seconds
    if counter_bank == svc.msp_id:
        raise bad_request("counterparty_bank is this bank: a PvP is between two banks")
    if counter_currency == currency:
        raise bad_request("a PvP exchanges two different currencies")
    counter_amount = convert(amount, currencies.exponent(currency), currencies.exponent(counter_currency),
                             Decimal(rate_text))  # fmt: skip
    if counter_amount <= 0:
        raise bad_request(f"amount is too small to convert into {counter_currency}", "invalid_amount")
    idempotency_key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    assert idempotency_key is not None
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    offer: JSON = {
        "idempotency_key": hashlib.sha256(f"pvp\n{principal.account_id}\n{idempotency_key}".encode()).hexdigest(),
        "payer_account": principal.account_id,
        "payee_account": counter_receives,
        "currency": currency,
        "amount": amount,
        "counter_bank": counter_bank,
        "counter_payer_account": counter_payer,
        "counter_payee_account": receive_account,
        "counter_currency": counter_currency,
        "counter_amount": counter_amount,
        "rate": rate_text,
        "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    result = svc.ledger.propose_pvp(offer)
    pvp_id = str(result["pvp_id"])
    details = {
        "payer_account": principal.account_id, "payee_account": counter_receives,
        "counter_payer_account": counter_payer, "counter_payee_account": receive_account,
    }  # fmt: skip
    record = {**(result.get("pvp") or svc.ledger.get_pvp(pvp_id)), "details": details}
    body = pvp.representation(record, currencies)
    if result.get("created"):
        pvp.notify(svc.db, [principal.account_id], "pvp.proposed", f"pvp.proposed:{pvp_id}", body)
    return json_response(body, 201, {"Location": f"/v1/pvp/{pvp_id}"})


def _not_found() -> ApiProblem:
    return ApiProblem(404, "pvp_not_found", "no PvP with this id is visible to this API key")


def _visible(pvp_id: str) -> JSON:
    path_id(pvp_id, PVP_ID, "pvp_id")
    svc = services()
    principal = current_principal()
    try:
        record = svc.ledger.get_pvp(pvp_id, details=True)
    except ContractRejected as rejection:
        if rejection.code == "pvp_not_found" or not principal.is_operator:
            raise _not_found() from rejection
        if rejection.code != "not_authorized":
            raise
        record = svc.ledger.get_pvp(pvp_id)  # a trade between two other banks: the public record
    if not pvp.visible_to(principal, record, svc.msp_id):
        raise _not_found()
    return record


@bp.get("/pvp/<pvp_id>")
@requires(OPERATOR, MERCHANT)
def get(pvp_id: str) -> Response:
    return json_response(pvp.representation(_visible(pvp_id), services().currencies()))


def _counterparty(pvp_id: str) -> JSON:
    """The trade, when the caller is the account named to pay the acceptor's leg here."""
    record = _visible(pvp_id)
    details = record.get("details") if isinstance(record.get("details"), dict) else None
    svc = services()
    if (
        pvp.side(record, svc.msp_id) != "a"
        or details is None
        or details.get("counter_payer_account") != current_principal().merchant_account
    ):
        raise ApiProblem(403, "forbidden", "only the counterparty named in the offer answers it, at its own bank")
    return record


@bp.post("/pvp/<pvp_id>/accept")
@requires(MERCHANT)
@idempotent(required=True)
@accepts(BANK, body=EmptyRequest, body_required=False)
def accept(pvp_id: str) -> Response:
    record = _counterparty(pvp_id)
    svc = services()
    account = current_principal().merchant_account
    assert account is not None
    result = svc.ledger.accept_pvp(pvp_id, account)
    if result.get("accepted"):
        body = pvp.representation({**record, **(result.get("pvp") or {})}, svc.currencies())
        pvp.notify(svc.db, [account], "pvp.locked", f"pvp.locked:{pvp_id}", body)
    # Our leg at once (both are locked now); the proposer's bank delivers its own on the event.
    pvp.deliver(svc.ledger, svc.db, svc.currencies(), pvp_id)
    return json_response(pvp.representation(svc.ledger.get_pvp(pvp_id, details=True), svc.currencies()))


@bp.post("/pvp/<pvp_id>/refuse")
@requires(MERCHANT)
@idempotent(required=True)
@accepts(BANK, body=EmptyRequest, body_required=False)
def refuse(pvp_id: str) -> Response:
    _counterparty(pvp_id)
    svc = services()
    svc.ledger.refuse_pvp(pvp_id, "declined")
    return json_response(pvp.representation(svc.ledger.get_pvp(pvp_id, details=True), svc.currencies()))
