"""Merchant pages: balances, history, paying (with the quoted rate first), a payment's timeline, webhooks;
escrow and PvP pages join this blueprint from merchant_escrow.py.

A merchant's pages name no account in their URLs: every call is for the account of the key the
merchant logged in with, and the API refuses any other (403), so there is nothing to try.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from werkzeug.wrappers import Response

from gateway.bank_api.console.api import ApiRefused
from gateway.bank_api.console.pages import (
    RolePages,
    api,
    checked_id,
    current_login,
    done,
    form_text,
    key_after,
    new_idempotency_key,
    page,
    requires_role,
)
from gateway.bank_api.validation import OPAQUE_ID, PAYMENT_ID
from gateway.bank_api.webhooks import EVENT_TYPES

ROLE = "merchant"
bp = Blueprint("merchant", __name__, url_prefix="/merchant")
PAGES = RolePages(
    role=ROLE,
    title="Merchant",
    home="console.merchant.home",
    nav=(
        ("console.merchant.home", "Balances"),
        ("console.merchant.history", "History"),
        ("console.merchant.pay", "Pay"),
        ("console.merchant.escrows", "Escrow"),
        ("console.merchant.trades", "PvP trades"),
        ("console.merchant.webhooks", "Webhooks"),
    ),
)
HISTORY_PAGE = 20
PAYMENT_FIELDS = ("payee_bank", "payee_account", "currency", "amount", "payee_currency", "remittance")


def current_account_id() -> str:
    """The logged-in merchant's account: the only one its key reads or pays from."""
    login = current_login()
    assert login is not None and login.account_id is not None
    return login.account_id


def _account() -> Any:
    return api("GET", f"/v1/accounts/{current_account_id()}")


def _history(cursor: str, size: int) -> Any:
    return api("GET", f"/v1/accounts/{current_account_id()}/history", query={"page_size": str(size), "cursor": cursor})


@bp.get("/")
@requires_role(ROLE)
def home() -> Response:
    return page("console/merchant/home.html", account=_account(), recent=_history("", 5)["entries"])


@bp.get("/history")
@requires_role(ROLE)
def history() -> Response:
    cursor = request.args.get("cursor", "")
    found = _history(cursor, HISTORY_PAGE)
    return page(
        "console/merchant/history.html",
        entries=found["entries"],
        next_cursor=found["next_cursor"],
        first_page=not cursor,
    )


def _pay_form(status: int = 200, error: ApiRefused | None = None, values: dict[str, str] | None = None) -> Response:
    values = dict(values or {})
    values.setdefault("idempotency_key", new_idempotency_key())
    return page(
        "console/merchant/pay.html",
        status,
        error=error,
        values=values,
        account=_account(),
        reference=api("GET", "/v1/reference-data"),
    )


def _payment_fields() -> dict[str, str]:
    values = {name: form_text(name) for name in PAYMENT_FIELDS}
    values["idempotency_key"] = form_text("idempotency_key")
    return values


def _quote(values: dict[str, str]) -> Any:
    """The API's quote when the payee gets another currency; None for a one-currency payment."""
    payee_currency = values.get("payee_currency") or values.get("currency")
    if not payee_currency or payee_currency == values.get("currency"):
        return None
    return api(
        "GET",
        "/v1/fx-quote",
        query={"currency": values["currency"], "amount": values["amount"], "payee_currency": payee_currency},
    )


@bp.get("/pay")
@requires_role(ROLE)
def pay() -> Response:
    preset = {name: request.args.get(name, "") for name in ("payee_bank", "payee_account", "currency")}
    return _pay_form(values={k: v for k, v in preset.items() if v})


@bp.post("/pay/review")
@requires_role(ROLE)
def review() -> Response:
    values = _payment_fields()
    missing = [name for name in ("payee_bank", "payee_account", "currency", "amount") if not values[name]]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        error = ApiRefused(400, "invalid_request", f"{', '.join(missing)} {verb} required")
        return _pay_form(400, error, values)
    try:
        quote = _quote(values)
    except ApiRefused as refusal:
        return _pay_form(refusal.status, refusal, values)
    return page("console/merchant/review.html", values=values, quote=quote)


@bp.post("/pay")
@requires_role(ROLE)
def confirm() -> Response:
    values = _payment_fields()
    try:
        quote = _quote(values)
    except ApiRefused as refusal:
        return _pay_form(refusal.status, refusal, values)
    agreed = form_text("quoted_rate")
    if quote is not None and quote["rate"] != agreed:
        # The bank's rate moved since the review page: the payer must see the new one before paying.
        error = ApiRefused(
            409, "rate_changed", f"the rate changed from {agreed or 'none'} to {quote['rate']}; review the new amounts"
        )
        return page("console/merchant/review.html", 409, values=values, quote=quote, error=error)
    body: dict[str, str] = {name: values[name] for name in PAYMENT_FIELDS if values[name]}
    if body.get("payee_currency") == body.get("currency"):
        body.pop("payee_currency")
    try:
        payment = api("POST", "/v1/payments", body=body, idempotency_key=values["idempotency_key"] or None)
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, values["idempotency_key"])
        return page("console/merchant/review.html", refusal.status, values=values, quote=quote, error=refusal)
    return done(
        f"Payment {payment['payment_id']} accepted: {payment['status']}.",
        "console.merchant.payment",
        payment_id=payment["payment_id"],
    )


@bp.get("/payments/<payment_id>")
@requires_role(ROLE)
def payment(payment_id: str) -> Response:
    checked_id(payment_id, PAYMENT_ID, "payment id")
    return page("console/merchant/payment.html", payment=api("GET", f"/v1/payments/{payment_id}"))


@bp.get("/webhooks")
@requires_role(ROLE)
def webhooks() -> Response:
    return _webhooks_page()


def _webhooks_page(status: int = 200, **context: Any) -> Response:
    return page(
        "console/merchant/webhooks.html",
        status,
        webhooks=api("GET", "/v1/webhooks")["webhooks"],
        event_types=EVENT_TYPES,
        **context,
    )


@bp.post("/webhooks")
@requires_role(ROLE)
def subscribe() -> Response:
    url = form_text("url")
    events = [event for event in request.form.getlist("events") if event]
    body: dict[str, Any] = {"url": url}
    if events:
        body["events"] = events
    try:
        created = api("POST", "/v1/webhooks", body=body)
    except ApiRefused as refusal:
        return _webhooks_page(refusal.status, error=refusal, values={"url": url, "events": events})
    # The signing secret is shown on this answer only (as the API shows it once), never again.
    return _webhooks_page(201, created=created)


@bp.post("/webhooks/<webhook_id>/delete")
@requires_role(ROLE)
def unsubscribe(webhook_id: str) -> Response:
    checked_id(webhook_id, OPAQUE_ID, "webhook id")
    try:
        api("DELETE", f"/v1/webhooks/{webhook_id}")
    except ApiRefused as refusal:
        return _webhooks_page(refusal.status, error=refusal)
    return done("Webhook removed.", "console.merchant.webhooks")


@bp.get("/webhooks/<webhook_id>")
@requires_role(ROLE)
def deliveries(webhook_id: str) -> Response:
    checked_id(webhook_id, OPAQUE_ID, "webhook id")
    cursor = request.args.get("cursor", "")
    found = api("GET", f"/v1/webhooks/{webhook_id}/deliveries", query={"cursor": cursor})
    return page(
        "console/merchant/deliveries.html",
        webhook_id=webhook_id,
        deliveries=found["deliveries"],
        next_cursor=found["next_cursor"],
        first_page=not cursor,
    )
