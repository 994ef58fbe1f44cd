"""Payments: merchants pay any account of any bank; operators inspect interbank payments."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated

from flask import Blueprint, Response, request
from pydantic import Field
from sqlalchemy import select

from gateway.bank_api import outgoing, representations
from gateway.bank_api.app import services
from gateway.bank_api.auth import MERCHANT, OPERATOR, TREASURER, Principal, current_principal, requires
from gateway.bank_api.boundary import (
    BANK,
    Absent,
    AccountId,
    Amount,
    Body,
    Currency,
    MspId,
    Page,
    Query,
    Remittance,
    accepts,
    body_of,
    one_of,
    query_of,
)
from gateway.bank_api.fx import rate_text
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.ledger import JSON, ContractRejected
from gateway.bank_api.money import Currencies, convert
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.storage.models import GroupAccount, InternalTransfer
from gateway.bank_api.validation import (
    INTERBANK_PAYMENT_ID,
    PAYMENT_ID,
    bad_request,
    matches,
    path_id,
)

bp = Blueprint("payments", __name__, url_prefix="/v1")



def _request_key(principal: Principal, idempotency_key: str) -> str:
    """The key the ledger sees: unique per account, so two merchants' keys never collide."""
    return hashlib.sha256(f"payment\n{principal.account_id}\n{idempotency_key}".encode()).hexdigest()


class PaymentRequest(Body):
    payee_bank: Annotated[
        MspId, Field(description="MSP id of the payee's bank", json_schema_extra={"example": "HKBankMSP"})
    ]
    payee_account: AccountId
    currency: Currency
    amount: Amount
    payee_currency: Annotated[
        Currency, Field(description="Currency the payee receives (default: currency); the rate is this bank's")
    ] | Absent = None
    remittance: Remittance | Absent = None


@bp.post("/payments")
@requires(MERCHANT)
@idempotent(required=True)
@accepts(BANK, body=PaymentRequest)
def create_payment() -> Response:
    principal = current_principal()
    assert principal.account_id is not None
    svc = services()
    currencies = svc.currencies()
    body = body_of(PaymentRequest)
    payee_bank, payee_account = body.payee_bank, body.payee_account
    currency = currencies.known(body.currency, "currency")
    amount = currencies.parse_amount(body.amount, currency, "amount")
    payee_currency = currencies.known(body.payee_currency, "payee_currency") if body.payee_currency else currency
    remittance = body.remittance or None
    idempotency_key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    assert idempotency_key is not None
    request_key = _request_key(principal, idempotency_key)

    if payee_bank == svc.msp_id:
        if payee_currency != currency:
            raise bad_request(
                "payments between two accounts of this bank are in one currency; leave out payee_currency",
                "unsupported_currency_pair",
            )
        if payee_account == principal.account_id:
            raise bad_request("payee_account is the paying account itself")
        return pay_here(principal.account_id, payee_account, currency, amount, remittance, request_key)
    conversion: JSON | None = None
    if payee_currency != currency:
        payee_amount, rate = _converted(amount, currency, payee_currency, currencies)
        conversion = {"payee_currency": payee_currency, "payee_amount": payee_amount, "rate": rate_text(rate)}
    return pay_elsewhere(principal.account_id, payee_bank, payee_account, currency, amount, remittance, request_key,
                         conversion)  # fmt: skip


def pay_here(payer: str, payee: str, currency: str, amount: int, remittance: str | None, request_key: str) -> Response:
    """The answer to a payment between two accounts of this bank (a transfer, completed at once)."""
    svc = services()
    transfer_id = outgoing.transfer(svc.ledger, svc.db, payer, payee, currency, amount, remittance, request_key)
    with svc.db.session(write=False) as session:
        row = session.get(InternalTransfer, transfer_id)
        assert row is not None
        body = _transfer_body(row)
    return json_response(body, 201, {"Location": f"/v1/payments/{transfer_id}"})


def pay_elsewhere(
    payer: str, payee_bank: str, payee: str, currency: str, amount: int, remittance: str | None,
    request_key: str, conversion: JSON | None = None,
) -> Response:  # fmt: skip
    """The answer to a payment to another bank: initiated now, completed by the payee bank."""
    svc = services()
    initiated = outgoing.initiate(
        svc.ledger, payer, payee_bank, payee, currency, amount, remittance, request_key, conversion
    )
    payment_id = str(initiated["payment_id"])
    created = initiated.get("payment")
    if isinstance(created, dict) and created.get("payment_id") == payment_id:
        # A new payment: the contract returned its public record and the details are this request's.
        record = {**created, "details": {"payer_account": payer, "payee_account": payee, "remittance": remittance}}
    else:  # a repeated request: the payment may have moved on since
        record = svc.ledger.get_payment(payment_id, details=True)
    body = representations.payment(record, svc.currencies())
    return json_response(body, 201, {"Location": f"/v1/payments/{payment_id}"})


def _converted(amount: int, currency: str, payee_currency: str, currencies: Currencies) -> tuple[int, Decimal]:
    """The payee's amount and the rate: what a payment locks at initiation, and what a quote shows."""
    rate = services().rates.rate(currency, payee_currency)
    payee_amount = convert(amount, currencies.exponent(currency), currencies.exponent(payee_currency), rate)
    if payee_amount <= 0:
        raise bad_request(f"amount is too small to convert into {payee_currency}", "invalid_amount")
    return payee_amount, rate


class QuoteQuery(Query):
    currency: Currency
    payee_currency: Currency
    amount: Amount


@bp.get("/fx-quote")
@requires(OPERATOR, MERCHANT)
@accepts(BANK, query=QuoteQuery)
def fx_quote() -> Response:
    """What paying ``amount`` in ``currency`` delivers in ``payee_currency`` at this bank's rate now.

    The same computation as a cross-currency payment (the rate a payment made now would lock), so
    a payer can see the rate and the payee's amount before confirming.
    """
    currencies = services().currencies()
    query = query_of(QuoteQuery)
    currency = currencies.known(query.currency, "currency")
    amount = currencies.parse_amount(query.amount, currency, "amount")
    # an unknown payee currency is a 400 before any rate is looked up
    payee_currency = currencies.known(query.payee_currency, "payee_currency")
    if payee_currency == currency:
        payee_amount, rate = amount, Decimal(1)
    else:
        payee_amount, rate = _converted(amount, currency, payee_currency, currencies)
    return json_response(
        {
            "currency": currency,
            "amount": currencies.format_amount(amount, currency),
            "payee_currency": payee_currency,
            "payee_amount": currencies.format_amount(payee_amount, payee_currency),
            "rate": rate_text(rate),
        }
    )


def _transfer_body(row: InternalTransfer) -> JSON:
    svc = services()
    currencies = svc.currencies()
    amount = currencies.format_amount(row.amount, row.currency)
    at = representations.timestamp(row.created_at)
    return {
        "payment_id": row.transfer_id,
        "status": "completed",
        "payer_bank": svc.msp_id,
        "payee_bank": svc.msp_id,
        "currency": row.currency,
        "amount": amount,
        "payee_currency": row.currency,
        "payee_amount": amount,
        "rate": None,
        "reason": None,
        "created_at": at,
        "cycle_id": None,
        "timeline": [{"status": "completed", "at": at, "tx_id": None}],
        "payer_account": row.payer_account,
        "payee_account": row.payee_account,
        "remittance": row.remittance,
    }


def _not_found() -> ApiProblem:
    return ApiProblem(404, "payment_not_found", "no payment with this id is visible to this API key")


def _own_accounts(principal: Principal) -> frozenset[str]:
    """The accounts of this bank whose payments a non-operator key may read: its own, or its group's."""
    if principal.merchant_account is not None:
        return frozenset({principal.merchant_account})
    if principal.group_id is not None:
        with services().db.session(write=False) as session:
            rows = session.scalars(
                select(GroupAccount.account_id).where(
                    GroupAccount.group_id == principal.group_id, GroupAccount.bank == services().msp_id
                )
            ).all()
        return frozenset(rows)
    return frozenset()


@bp.get("/payments/<payment_id>")
@requires(OPERATOR, MERCHANT, TREASURER)
def get_payment(payment_id: str) -> Response:
    path_id(payment_id, PAYMENT_ID, "payment_id")
    principal = current_principal()
    svc = services()
    if payment_id.startswith(outgoing.TRANSFER_PREFIX):
        with svc.db.session(write=False) as session:
            row = session.get(InternalTransfer, payment_id)
            if row is None or not (
                principal.is_operator or _own_accounts(principal) & {row.payer_account, row.payee_account}
            ):
                raise _not_found()
            return json_response(_transfer_body(row))
    if not matches(INTERBANK_PAYMENT_ID, payment_id):
        raise _not_found()
    try:
        record = svc.ledger.get_payment(payment_id, details=True)
    except ContractRejected as rejection:
        if rejection.code == "payment_not_found" or not principal.is_operator:
            raise _not_found() from rejection
        if rejection.code != "not_authorized":
            raise
        # A payment between two other banks: the public record, without the private details.
        record = svc.ledger.get_payment(payment_id, details=False)
    if not principal.is_operator and not _merchant_party(principal, record, svc.msp_id):
        raise _not_found()
    return json_response(representations.payment(record, svc.currencies()))


def _merchant_party(principal: Principal, record: JSON, own_bank: str) -> bool:
    """A merchant paying or paid here, or a treasurer of a group with such an account."""
    details = record.get("details")
    if not isinstance(details, dict):
        return False
    accounts = _own_accounts(principal)
    if record.get("payer_bank") == own_bank and details.get("payer_account") in accounts:
        return True
    return record.get("payee_bank") == own_bank and details.get("payee_account") in accounts


class PaymentListQuery(Page):
    status: Annotated[str, one_of(representations.PAYMENT_STATUSES)] | Absent = None


@bp.get("/payments")
@requires(OPERATOR)
@accepts(BANK, query=PaymentListQuery)
def list_payments() -> Response:
    query = query_of(PaymentListQuery)
    status, size, bookmark = query.status, query.page_size, query.cursor
    svc = services()
    data = svc.ledger.list_payments(svc.msp_id, status, size, bookmark)
    currencies = svc.currencies()
    payments = [
        representations.payment(item, currencies) for item in data.get("payments") or [] if isinstance(item, dict)
    ]
    next_cursor = (data.get("bookmark") or None) if payments else None
    return json_response({"payments": payments, "next_cursor": next_cursor})
