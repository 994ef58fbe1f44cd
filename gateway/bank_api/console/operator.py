"""Bank operator pages: accounts (open, find, freeze, limits, API keys), issue and redeem, the bank's
interbank payments, net positions and settlement cycles."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from gateway.bank_api.console.api import ApiRefused
from gateway.bank_api.console.pages import (
    RolePages,
    api,
    api_answer,
    checked_id,
    done,
    form_text,
    key_after,
    new_idempotency_key,
    page,
    requires_role,
)
from gateway.bank_api.representations import PAYMENT_STATUSES
from gateway.bank_api.validation import ACCOUNT_ID, CURRENCY, CYCLE_ID, OPAQUE_ID, PAYMENT_ID

ROLE = "operator"
bp = Blueprint("operator", __name__, url_prefix="/operator")
PAGES = RolePages(
    role=ROLE,
    title="Operator",
    home="console.operator.home",
    nav=(
        ("console.operator.home", "Overview"),
        ("console.operator.accounts", "Accounts"),
        ("console.operator.money", "Issue & redeem"),
        ("console.operator.payments", "Payments"),
        ("console.operator.positions", "Positions"),
        ("console.operator.cycles", "Settlement"),
    ),
)
PAYMENTS_PAGE = 25


def positions_chart(positions: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Chart data for net positions: one bar per bank, one series per currency.

    Values stay the API's decimal strings; the browser turns them into numbers for drawing only.
    """
    banks = sorted(positions)
    currencies = sorted({ccy for by_currency in positions.values() for ccy in by_currency})
    return {
        "type": "bar",
        "title": "Net position per bank (positive: to receive)",
        "labels": banks,
        "series": [{"label": ccy, "values": [positions[bank].get(ccy, "0") for bank in banks]} for ccy in currencies],
    }


def payments_chart(payments: list[dict[str, Any]]) -> dict[str, Any]:
    """Chart data for the payments shown: the amount paid per currency, split by status."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for item in payments:
        if isinstance(item.get("amount"), str) and isinstance(item.get("currency"), str):
            totals[str(item.get("status"))][item["currency"]] += Decimal(item["amount"])
    currencies = sorted({ccy for by_currency in totals.values() for ccy in by_currency})
    return {
        "type": "bar",
        "stacked": True,
        "title": "Amount per currency on this page, by status",
        "labels": currencies,
        "series": [
            {"label": status, "values": [str(totals[status].get(ccy, Decimal(0))) for ccy in currencies]}
            for status in PAYMENT_STATUSES
            if status in totals
        ],
    }


@bp.get("/")
@requires_role(ROLE)
def home() -> Response:
    positions = api("GET", "/v1/positions")
    return page(
        "console/operator/home.html",
        supply=api("GET", "/v1/supply")["token_classes"],
        positions=positions,
        chart=positions_chart(positions["positions"]),
        cycles=api("GET", "/v1/settlement-cycles")["cycles"][-5:][::-1],
        charts=bool(positions["positions"]),
    )


# --- accounts -------------------------------------------------------------------------------


def _accounts_page(status: int = 200, **context: Any) -> Response:
    context.setdefault("values", {})
    context["values"].setdefault("idempotency_key", new_idempotency_key())
    return page("console/operator/accounts.html", status, **context)


@bp.get("/accounts")
@requires_role(ROLE)
def accounts() -> Response:
    return _accounts_page()


@bp.get("/accounts/find")
@requires_role(ROLE)
def find_account() -> Response:
    account_id = request.args.get("account_id", "").strip()
    try:
        checked_id(account_id, ACCOUNT_ID, "account id")
        api("GET", f"/v1/accounts/{account_id}")
    except ApiRefused as refusal:
        return _accounts_page(refusal.status, find_error=refusal, find=account_id)
    return redirect(url_for("console.operator.account", account_id=account_id), code=303)


@bp.post("/accounts")
@requires_role(ROLE)
def open_account() -> Response:
    values = {name: form_text(name) for name in ("holder", "jurisdiction", "kyc_ref", "idempotency_key")}
    body = {name: values[name] for name in ("holder", "jurisdiction", "kyc_ref")}
    try:
        opened = api("POST", "/v1/accounts", body=body, idempotency_key=values["idempotency_key"] or None)
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, values["idempotency_key"])
        return _accounts_page(refusal.status, error=refusal, values=values)
    # The merchant's first API key is on this answer only; the account page never shows it again.
    return page("console/operator/opened.html", 201, opened=opened)


def _account_page(account_id: str, status: int = 200, **context: Any) -> Response:
    cursor = request.args.get("cursor", "")
    history = api("GET", f"/v1/accounts/{account_id}/history", query={"page_size": "10", "cursor": cursor})
    return page(
        "console/operator/account.html",
        status,
        account=api("GET", f"/v1/accounts/{account_id}"),
        keys=api("GET", f"/v1/accounts/{account_id}/api-keys")["api_keys"],
        entries=history["entries"],
        next_cursor=history["next_cursor"],
        first_page=not cursor,
        reference=api("GET", "/v1/reference-data"),
        **context,
    )


@bp.get("/accounts/<account_id>")
@requires_role(ROLE)
def account(account_id: str) -> Response:
    checked_id(account_id, ACCOUNT_ID, "account id")
    return _account_page(account_id)


def _account_action(account_id: str, action: str, method: str, path: str, body: Any, message: str) -> Response:
    checked_id(account_id, ACCOUNT_ID, "account id")
    try:
        api(method, path, body=body)
    except ApiRefused as refusal:
        return _account_page(account_id, refusal.status, error=refusal, failed=action)
    return done(message, "console.operator.account", account_id=account_id)


@bp.post("/accounts/<account_id>/freeze")
@requires_role(ROLE)
def freeze(account_id: str) -> Response:
    return _account_action(
        account_id, "freeze", "POST", f"/v1/accounts/{account_id}/freeze",
        {"reason": form_text("reason")}, "Account frozen: it can neither pay nor be paid.",
    )  # fmt: skip


@bp.post("/accounts/<account_id>/unfreeze")
@requires_role(ROLE)
def unfreeze(account_id: str) -> Response:
    return _account_action(
        account_id, "unfreeze", "POST", f"/v1/accounts/{account_id}/unfreeze", {}, "Account unfrozen."
    )


@bp.post("/accounts/<account_id>/limits")
@requires_role(ROLE)
def limits(account_id: str) -> Response:
    currency = form_text("currency")
    try:
        checked_id(currency, CURRENCY, "currency")
    except ApiRefused as refusal:
        checked_id(account_id, ACCOUNT_ID, "account id")
        return _account_page(account_id, refusal.status, error=refusal, failed="limits")
    # an empty field means no limit, which the API spells null
    body = {name: form_text(name) or None for name in ("per_transaction", "daily")}
    return _account_action(
        account_id, "limits", "PUT", f"/v1/accounts/{account_id}/limits/{currency}", body,
        f"Limits for {currency} set.",
    )  # fmt: skip


@bp.post("/accounts/<account_id>/api-keys")
@requires_role(ROLE)
def create_key(account_id: str) -> Response:
    checked_id(account_id, ACCOUNT_ID, "account id")
    body = {"label": form_text("label")} if form_text("label") else {}
    try:
        created = api("POST", f"/v1/accounts/{account_id}/api-keys", body=body)
    except ApiRefused as refusal:
        return _account_page(account_id, refusal.status, error=refusal, failed="api-key")
    # shown on this answer only, like the API's own answer
    return _account_page(account_id, 201, created_key=created)


@bp.post("/accounts/<account_id>/api-keys/<key_id>/revoke")
@requires_role(ROLE)
def revoke_key(account_id: str, key_id: str) -> Response:
    checked_id(key_id, OPAQUE_ID, "key id")
    return _account_action(
        account_id, "revoke", "DELETE", f"/v1/accounts/{account_id}/api-keys/{key_id}", None,
        f"API key {key_id} revoked: it stops working on its next request.",
    )  # fmt: skip


# --- issue and redeem -----------------------------------------------------------------------


def _money_page(status: int = 200, **context: Any) -> Response:
    account_id = request.args.get("account_id", "")
    values = context.pop("values", {"account_id": account_id})
    values.setdefault("idempotency_key", new_idempotency_key())
    return page(
        "console/operator/money.html", status, values=values, reference=api("GET", "/v1/reference-data"), **context
    )


@bp.get("/money")
@requires_role(ROLE)
def money() -> Response:
    return _money_page()


def _movement(kind: str, done_word: str, path: str, reference_field: str) -> Response:
    values = {name: form_text(name) for name in ("account_id", "currency", "amount", "reference", "idempotency_key")}
    body = {
        "account_id": values["account_id"],
        "currency": values["currency"],
        "amount": values["amount"],
        reference_field: values["reference"],
    }
    try:
        answer = api_answer("POST", path, body=body, idempotency_key=values["idempotency_key"] or None)
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, values["idempotency_key"])
        return _money_page(refusal.status, error=refusal, values=values, failed=kind)
    result = answer.body
    if answer.status == 200:
        message = f"Already done earlier under reference {values['reference']}: nothing {done_word.lower()} again."
    else:
        message = f"{done_word} {result['amount']} {result['currency']} for account {result['account_id']}."
    return done(message, "console.operator.account", account_id=result["account_id"])


@bp.post("/issue")
@requires_role(ROLE)
def issue() -> Response:
    return _movement("issue", "Issued", "/v1/issuances", "deposit_ref")


@bp.post("/redeem")
@requires_role(ROLE)
def redeem() -> Response:
    return _movement("redeem", "Redeemed", "/v1/redemptions", "withdrawal_ref")


# --- payments, positions, settlement --------------------------------------------------------


@bp.get("/payments")
@requires_role(ROLE)
def payments() -> Response:
    status = request.args.get("status", "")
    cursor = request.args.get("cursor", "")
    found = api("GET", "/v1/payments", query={"status": status, "cursor": cursor, "page_size": str(PAYMENTS_PAGE)})
    return page(
        "console/operator/payments.html",
        payments=found["payments"],
        next_cursor=found["next_cursor"],
        first_page=not cursor,
        status_filter=status,
        statuses=PAYMENT_STATUSES,
        chart=payments_chart(found["payments"]),
        charts=bool(found["payments"]),
    )


@bp.get("/payments/<payment_id>")
@requires_role(ROLE)
def payment(payment_id: str) -> Response:
    checked_id(payment_id, PAYMENT_ID, "payment id")
    return page("console/operator/payment.html", payment=api("GET", f"/v1/payments/{payment_id}"))


@bp.get("/positions")
@requires_role(ROLE)
def positions() -> Response:
    found = api("GET", "/v1/positions")
    return page(
        "console/operator/positions.html",
        positions=found,
        chart=positions_chart(found["positions"]),
        charts=bool(found["positions"]),
    )


def _cycles_page(status: int = 200, idempotency_key: str | None = None, **context: Any) -> Response:
    return page(
        "console/operator/cycles.html",
        status,
        cycles=api("GET", "/v1/settlement-cycles")["cycles"][::-1],
        # a refused open shows the same key again, so sending it again cannot open a second cycle
        idempotency_key=idempotency_key or new_idempotency_key(),
        **context,
    )


@bp.get("/settlement")
@requires_role(ROLE)
def cycles() -> Response:
    return _cycles_page()


@bp.post("/settlement")
@requires_role(ROLE)
def open_cycle() -> Response:
    key = form_text("idempotency_key") or None
    try:
        cycle = api("POST", "/v1/settlement-cycles", body={}, idempotency_key=key)
    except ApiRefused as refusal:
        return _cycles_page(refusal.status, key_after(refusal, key or ""), error=refusal)
    return done(
        f"Settlement cycle {cycle['cycle_id']} opened over {cycle['payments']} payment(s).",
        "console.operator.cycle",
        cycle_id=cycle["cycle_id"],
    )


def _cycle_page(cycle_id: str, status: int = 200, **context: Any) -> Response:
    cycle = api("GET", f"/v1/settlement-cycles/{cycle_id}")
    return page(
        "console/operator/cycle.html",
        status,
        cycle=cycle,
        chart=positions_chart(cycle["positions"]),
        charts=bool(cycle["positions"]),
        **context,
    )


@bp.get("/settlement/<cycle_id>")
@requires_role(ROLE)
def cycle(cycle_id: str) -> Response:
    checked_id(cycle_id, CYCLE_ID, "cycle id")
    return _cycle_page(cycle_id)


@bp.post("/settlement/<cycle_id>/confirm")
@requires_role(ROLE)
def confirm_cycle(cycle_id: str) -> Response:
    checked_id(cycle_id, CYCLE_ID, "cycle id")
    external_ref = form_text("external_ref")
    try:
        confirmed = api("POST", f"/v1/settlement-cycles/{cycle_id}/confirmation", body={"external_ref": external_ref})
    except ApiRefused as refusal:
        return _cycle_page(cycle_id, refusal.status, error=refusal, external_ref=external_ref)
    return done(
        f"Your bank's leg of cycle {cycle_id} is confirmed; the cycle is {confirmed['status']}.",
        "console.operator.cycle",
        cycle_id=cycle_id,
    )
