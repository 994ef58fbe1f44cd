"""Merchant pages for escrow and payment versus payment (decisions 0027, 0028).

The routes join the merchant blueprint (``console.merchant.*``), so they share its role check and
navigation. As on every console page, each action is the REST call a program would make, with the
merchant's key: ``POST /v1/escrows``, ``POST /v1/escrows/<id>/release``, ``POST /v1/pvp``,
``POST /v1/pvp/<id>/accept`` and ``/refuse``; the API decides, the page shows its answer.

The API lists neither escrows nor trades. The account's history does: locking money in escrow
(``escrow_lock``), a release to this account (``escrow_release``), a refund (``escrow_refund``)
and the PvP legs (``pvp_out``, ``pvp_in``, ``pvp_refund``) are entries whose reference is the
escrow's or the trade's id. The list pages read the latest entries for those ids; an id known
another way (a counterparty's message) opens by the form on the same page.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from gateway.bank_api.console.api import ApiRefused
from gateway.bank_api.console.merchant import ROLE, bp, current_account_id
from gateway.bank_api.console.pages import (
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
from gateway.bank_api.routes.escrows import ESCROW_ID, ON_EXPIRY, RELEASE_BY, RELEASE_REF
from gateway.bank_api.routes.pvp import PVP_ID
from gateway.bank_api.validation import MAX_PAGE_SIZE, ascii_int

ESCROW_KINDS = frozenset({"escrow_lock", "escrow_release", "escrow_refund"})
PVP_KINDS = frozenset({"pvp_out", "pvp_in", "pvp_refund"})
# How far back the list pages look: enough history pages for a merchant's recent escrows and trades,
# few enough that a busy account's list page stays quick. Older ones open by their id.
SCAN_PAGES = 5
LISTED = 20
EXPIRY_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
ESCROW_FIELDS = ("payee_bank", "payee_account", "currency", "amount", "release_by", "attestor", "expires_in",
                 "expires_unit", "on_expiry", "remittance")  # fmt: skip
PVP_FIELDS = ("counterparty_bank", "counterparty_account", "counterparty_receives_at", "receive_account", "currency",
              "amount", "counter_currency", "rate", "expires_in", "expires_unit")  # fmt: skip


def _referenced(kinds: frozenset[str]) -> list[str]:
    """The ids the account's latest history entries of ``kinds`` refer to, newest seen first, once each."""
    found: dict[str, None] = {}
    cursor = ""
    for _ in range(SCAN_PAGES):
        answer = api(
            "GET",
            f"/v1/accounts/{current_account_id()}/history",
            query={"page_size": str(MAX_PAGE_SIZE), "cursor": cursor},
        )
        for entry in answer["entries"]:
            reference = entry.get("reference")
            if entry.get("kind") in kinds and isinstance(reference, str):
                found[reference] = None
        cursor = answer.get("next_cursor") or ""
        if not cursor:
            break
    return list(found)


def _each(ids: list[str], path: str) -> list[dict[str, Any]]:
    """The records behind ``ids`` the API shows this key; one it refuses (gone, not ours) is left out."""
    shown: list[dict[str, Any]] = []
    for item_id in list(reversed(ids))[:LISTED]:
        try:
            shown.append(api("GET", f"{path}/{item_id}"))
        except ApiRefused as refusal:
            if refusal.unavailable:
                raise
    return shown


def _seconds(values: dict[str, str]) -> int:
    """The form's expiry (a whole number of minutes, hours or days) as the API's ``expires_in_seconds``."""
    count = ascii_int(values.get("expires_in", ""))
    unit = EXPIRY_UNITS.get(values.get("expires_unit", ""))
    if count is None or count < 1 or unit is None:
        raise ApiRefused(400, "invalid_request", "expires in must be a whole number of minutes, hours or days")
    return count * unit


def _missing(values: dict[str, str], names: tuple[str, ...]) -> ApiRefused | None:
    missing = [name.replace("_", " ") for name in names if not values.get(name)]
    if not missing:
        return None
    verb = "is" if len(missing) == 1 else "are"
    return ApiRefused(400, "invalid_request", f"{', '.join(missing)} {verb} required")


# --- escrow -------------------------------------------------------------------------------------


def _escrows_page(status: int = 200, error: ApiRefused | None = None, values: dict[str, str] | None = None) -> Response:
    values = dict(values or {})
    values.setdefault("idempotency_key", new_idempotency_key())
    values.setdefault("expires_in", "7")
    values.setdefault("expires_unit", "days")
    return page(
        "console/merchant/escrows.html",
        status,
        error=error,
        values=values,
        escrows=_each(_referenced(ESCROW_KINDS), "/v1/escrows"),
        account=api("GET", f"/v1/accounts/{current_account_id()}"),
        reference=api("GET", "/v1/reference-data"),
        release_by=RELEASE_BY,
        on_expiry=ON_EXPIRY,
        units=tuple(EXPIRY_UNITS),
    )


@bp.get("/escrows")
@requires_role(ROLE)
def escrows() -> Response:
    wanted = request.args.get("escrow_id", "").strip().lower()
    if wanted:
        return redirect(url_for("console.merchant.escrow", escrow_id=wanted), code=303)
    return _escrows_page()


@bp.post("/escrows")
@requires_role(ROLE)
def lock_escrow() -> Response:
    values = {name: form_text(name) for name in ESCROW_FIELDS}
    key = form_text("idempotency_key")
    values["idempotency_key"] = key
    try:
        missing = _missing(values, ("payee_bank", "payee_account", "currency", "amount", "release_by", "on_expiry"))
        if missing is not None:
            raise missing
        body: dict[str, Any] = {
            name: values[name] for name in ("payee_bank", "payee_account", "currency", "amount", "release_by",
                                            "on_expiry")
        }  # fmt: skip
        body["expires_in_seconds"] = _seconds(values)
        # The attestor field stays on the form whatever is chosen; only the terms that name one send it.
        if values["release_by"] != "buyer" and values["attestor"]:
            body["attestor"] = values["attestor"]
        if values["remittance"]:
            body["remittance"] = values["remittance"]
        locked = api("POST", "/v1/escrows", body=body, idempotency_key=key or None)
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, key)
        return _escrows_page(refusal.status, refusal, values)
    return done(
        f"{locked['amount']} {locked['currency']} locked in escrow for {locked['payee_account']}.",
        "console.merchant.escrow",
        escrow_id=locked["escrow_id"],
    )


def _escrow_page(
    escrow_id: str, status: int = 200, error: ApiRefused | None = None, values: dict[str, str] | None = None
) -> Response:
    record = api("GET", f"/v1/escrows/{escrow_id}")
    values = dict(values or {})
    values.setdefault("idempotency_key", new_idempotency_key())
    login = current_login()
    is_buyer = (
        login is not None and login.bank == record.get("payer_bank") and login.account_id == record.get("payer_account")
    )
    return page("console/merchant/escrow.html", status, escrow=record, is_buyer=is_buyer, error=error, values=values)


@bp.get("/escrows/<escrow_id>")
@requires_role(ROLE)
def escrow(escrow_id: str) -> Response:
    return _escrow_page(checked_id(escrow_id, ESCROW_ID, "escrow id"))


@bp.post("/escrows/<escrow_id>/release")
@requires_role(ROLE)
def release_escrow(escrow_id: str) -> Response:
    checked_id(escrow_id, ESCROW_ID, "escrow id")
    key = form_text("idempotency_key")
    values = {"amount": form_text("amount"), "release_ref": form_text("release_ref"), "idempotency_key": key}
    body = {"amount": values["amount"]}
    try:
        if not values["amount"]:
            raise ApiRefused(400, "invalid_request", "amount is required")
        if values["release_ref"]:
            checked_id(values["release_ref"], RELEASE_REF, "release reference")
            body["release_ref"] = values["release_ref"]
        answer = api("POST", f"/v1/escrows/{escrow_id}/release", body=body, idempotency_key=key or None)
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, key)
        return _escrow_page(escrow_id, refusal.status, refusal, values)
    if answer.get("awaiting"):
        message = (
            f"Your approval of {values['amount']} {answer['currency']} is recorded; "
            f"the {answer['awaiting']} must approve too."
        )
    else:
        message = f"{values['amount']} {answer['currency']} released to {answer['payee_account']}."
    return done(message, "console.merchant.escrow", escrow_id=escrow_id)


# --- payment versus payment ---------------------------------------------------------------------


def _trades_page(status: int = 200, error: ApiRefused | None = None, values: dict[str, str] | None = None) -> Response:
    values = dict(values or {})
    values.setdefault("idempotency_key", new_idempotency_key())
    values.setdefault("receive_account", current_account_id())
    values.setdefault("expires_in", "60")
    values.setdefault("expires_unit", "minutes")
    return page(
        "console/merchant/trades.html",
        status,
        error=error,
        values=values,
        trades=_each(_referenced(PVP_KINDS), "/v1/pvp"),
        account=api("GET", f"/v1/accounts/{current_account_id()}"),
        reference=api("GET", "/v1/reference-data"),
        units=tuple(EXPIRY_UNITS),
    )


@bp.get("/trades")
@requires_role(ROLE)
def trades() -> Response:
    wanted = request.args.get("pvp_id", "").strip().lower()
    if wanted:
        return redirect(url_for("console.merchant.trade", pvp_id=wanted), code=303)
    return _trades_page()


@bp.post("/trades")
@requires_role(ROLE)
def propose_trade() -> Response:
    values = {name: form_text(name) for name in PVP_FIELDS}
    key = form_text("idempotency_key")
    values["idempotency_key"] = key
    try:
        missing = _missing(values, ("counterparty_bank", "counterparty_account", "counterparty_receives_at",
                                    "receive_account", "currency", "amount", "counter_currency", "rate"))  # fmt: skip
        if missing is not None:
            raise missing
        body: dict[str, Any] = {name: values[name] for name in PVP_FIELDS if name not in ("expires_in", "expires_unit")}
        body["expires_in_seconds"] = _seconds(values)
        proposed = api("POST", "/v1/pvp", body=body, idempotency_key=key or None)
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, key)
        return _trades_page(refusal.status, refusal, values)
    return done(
        f"Offer made: {proposed['amount']} {proposed['currency']} for {proposed['counter_amount']} "
        f"{proposed['counter_currency']}; your leg is locked until the counterparty answers.",
        "console.merchant.trade",
        pvp_id=proposed["pvp_id"],
    )


def _trade_page(pvp_id: str, status: int = 200, error: ApiRefused | None = None, key: str = "") -> Response:
    record = api("GET", f"/v1/pvp/{pvp_id}")
    login = current_login()
    # Only the account named to pay the counter leg answers, at its own bank (the API checks it again).
    answerable = (
        login is not None
        and record.get("status") == "proposed"
        and record.get("acceptor_bank") == login.bank
        and record.get("counter_payer_account") == login.account_id
    )
    return page(
        "console/merchant/trade.html",
        status,
        trade=record,
        answerable=answerable,
        error=error,
        idempotency_key=key or new_idempotency_key(),
    )


@bp.get("/trades/<pvp_id>")
@requires_role(ROLE)
def trade(pvp_id: str) -> Response:
    return _trade_page(checked_id(pvp_id, PVP_ID, "trade id"))


@bp.post("/trades/<pvp_id>/<answer>")
@requires_role(ROLE)
def answer_trade(pvp_id: str, answer: str) -> Response:
    checked_id(pvp_id, PVP_ID, "trade id")
    if answer not in ("accept", "refuse"):
        raise ApiRefused(404, "not_found", "a trade is answered with accept or refuse")
    key = form_text("idempotency_key")
    try:
        api("POST", f"/v1/pvp/{pvp_id}/{answer}", body={}, idempotency_key=key or None)
    except ApiRefused as refusal:
        return _trade_page(pvp_id, refusal.status, refusal, key_after(refusal, key))
    message = "Offer accepted: your leg is locked and delivered." if answer == "accept" else "Offer refused."
    return done(message, "console.merchant.trade", pvp_id=pvp_id)
