"""The regulator's pages, on the regulator's gateway: supply now and over time, interbank flows between
banks, payments with the API's filters and their timelines, alerts with their evidence (acknowledged
with a note), and disclosure requests with each bank's delivery and its check."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Blueprint, request
from werkzeug.wrappers import Response

from gateway.bank_api.alerts import RULES
from gateway.bank_api.config import REGULATOR
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
from gateway.bank_api.disclosures import ANSWERS, LEGAL_BASIS_MAX
from gateway.bank_api.disclosures import REQUEST_ID as DISCLOSURE_ID
from gateway.bank_api.oversight import PAYMENT_ID
from gateway.bank_api.representations import PAYMENT_STATUSES
from gateway.bank_api.routes.alerts import ALERT_STATES, NOTE_MAX
from gateway.bank_api.supply_watch import INTERVALS
from gateway.bank_api.validation import OPAQUE_ID

ROLE = REGULATOR
bp = Blueprint("regulator", __name__, url_prefix="/regulator")
PAGES = RolePages(
    role=ROLE,
    title="Regulator",
    home="console.regulator.home",
    nav=(
        ("console.regulator.home", "Overview"),
        ("console.regulator.supply", "Supply"),
        ("console.regulator.flows", "Flows"),
        ("console.regulator.payments", "Payments"),
        ("console.regulator.alerts", "Alerts"),
        ("console.regulator.disclosures", "Disclosures"),
    ),
)
PAYMENTS_PAGE = 25
PAYMENT_FILTERS = ("bank", "payer_bank", "payee_bank", "status", "currency", "min_amount", "max_amount", "from", "to")
# The flows chart reads at most this many pages of the API's largest page: a bounded cost per view,
# and the page says when the range held more payments than that.
FLOW_PAGE_SIZE = 100
FLOW_PAGES = 20
FLOW_RANGES = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7),
               "month": timedelta(days=30)}  # fmt: skip
# What a datetime-local input sends (no zone): the form says its times are UTC.
_LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$")


def rfc3339(value: str) -> str:
    """A form's time as the API wants it: a datetime-local value is read as UTC; anything else goes as
    typed, for the API to accept or refuse in its own words."""
    if _LOCAL_TIME.match(value):
        return value + ("Z" if value.count(":") == 2 else ":00Z")
    return value


@bp.app_template_filter("local_input")
def local_input(value: str) -> str:
    """A UTC time the API takes, as a datetime-local input shows it (no zone; the form says UTC)."""
    found = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?)(Z|\+00:00)?$", value or "")
    return found.group(1) if found else value


def _short_time(value: str) -> str:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def supply_chart(history: dict[str, Any]) -> dict[str, Any]:
    """A line of one token class's supply: the opening supply at ``from``, each bucket with changes,
    and the last supply again at ``to``, so the line spans the whole range asked for.

    Values stay the API's decimal strings; the browser turns them into numbers for drawing only.
    """
    points = history["points"]
    labels = [_short_time(history["from"])] + [_short_time(point["at"]) for point in points]
    values = [history["opening_supply"]] + [point["supply"] for point in points]
    labels.append(_short_time(history["to"]))
    values.append(values[-1])
    return {
        "type": "line",
        "stepped": True,
        "title": f"Supply of {history['currency']} issued by {history['issuer']}, per {history['interval']}",
        "labels": labels,
        "series": [{"label": f"{history['issuer']} {history['currency']}", "values": values}],
    }


@dataclass
class Flow:
    payer_bank: str
    payee_bank: str
    currency: str
    payments: int = 0
    total: Decimal = Decimal(0)


def flow_totals(payments: list[dict[str, Any]]) -> list[Flow]:
    """Totals per payer bank → payee bank per currency paid, in the order of pair then currency.

    Summed as decimals from the API's strings (exact, never floats); one currency's amounts have one exponent.
    """
    found: dict[tuple[str, str, str], Flow] = {}
    for item in payments:
        amount, currency = item.get("amount"), item.get("currency")
        if not isinstance(amount, str) or not isinstance(currency, str):
            continue
        key = (str(item.get("payer_bank")), str(item.get("payee_bank")), currency)
        flow = found.setdefault(key, Flow(*key))
        flow.payments += 1
        flow.total += Decimal(amount)
    return [found[key] for key in sorted(found)]


def flows_chart(found: list[Flow]) -> dict[str, Any]:
    """One bar per payer → payee pair, one series per currency."""
    pairs = sorted({(flow.payer_bank, flow.payee_bank) for flow in found})
    currencies = sorted({flow.currency for flow in found})
    totals: dict[str, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    for flow in found:
        totals[flow.currency][(flow.payer_bank, flow.payee_bank)] = flow.total
    return {
        "type": "bar",
        "title": "Amount paid from one bank to another, per currency paid",
        "labels": [f"{payer} → {payee}" for payer, payee in pairs],
        "series": [
            {"label": ccy, "values": [str(totals[ccy].get(pair, Decimal(0))) for pair in pairs]} for ccy in currencies
        ],
    }


def _reference() -> dict[str, Any]:
    reference: dict[str, Any] = api("GET", "/v1/reference-data")
    return reference


@bp.get("/")
@requires_role(ROLE)
def home() -> Response:
    return page(
        "console/regulator/home.html",
        supply=api("GET", "/v1/supply")["token_classes"],
        open_alerts=api("GET", "/v1/alerts", query={"state": "open"})["alerts"],
        open_cycles=api("GET", "/v1/settlement-cycles", query={"status": "open"})["cycles"][::-1],
        reference=_reference(),
    )


# --- supply over time ---------------------------------------------------------------------------


@bp.get("/supply")
@requires_role(ROLE)
def supply() -> Response:
    classes = api("GET", "/v1/supply")["token_classes"]
    chosen = request.args.get("token_class", "")
    interval = request.args.get("interval", "hour")
    if chosen:
        wanted = [item for item in classes if f"{item['issuer']}/{item['currency']}" == chosen]
    else:
        # every class with a supply now (each is one chart and one API call); the form picks any other
        wanted = [item for item in classes if Decimal(item["supply"]) != 0]
    if chosen and "/" not in chosen:
        raise ApiRefused(400, "invalid_request", "token_class is an issuer and a currency: USBankMSP/USD")
    if chosen and not wanted:
        # a class with no supply now still has a history: ask the API, which checks it
        issuer, _, currency = chosen.partition("/")
        wanted = [{"issuer": issuer, "currency": currency}]
    span = {name: request.args.get(name, "").strip() for name in ("from", "to")}
    histories, error = [], None
    for item in wanted:
        query = {"issuer": item["issuer"], "currency": item["currency"], "interval": interval}
        query.update({name: rfc3339(value) for name, value in span.items() if value})
        try:
            history = api("GET", "/v1/supply/history", query=query)
        except ApiRefused as refusal:
            error = refusal
            break
        histories.append({"history": history, "chart": supply_chart(history)})
    return page(
        "console/regulator/supply.html",
        error.status if error else 200,
        error=error,
        classes=classes,
        chosen=chosen,
        interval=interval,
        intervals=tuple(INTERVALS),
        span=span,
        histories=histories,
        charts=bool(histories),
    )


# --- interbank flows ----------------------------------------------------------------------------


@bp.get("/flows")
@requires_role(ROLE)
def flows() -> Response:
    span = request.args.get("range", "day")
    status = request.args.get("status", "completed")
    # an explicit from/to (UTC) wins over the range, which ends now
    moments = {name: request.args.get(name, "").strip() for name in ("from", "to")}
    until = datetime.now(UTC)
    since = until - FLOW_RANGES.get(span, FLOW_RANGES["day"])
    query = {
        "status": status,
        "from": rfc3339(moments["from"]) if moments["from"] else since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": rfc3339(moments["to"]) if moments["to"] or moments["from"] else until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "page_size": str(FLOW_PAGE_SIZE),
    }
    if not query["to"]:
        del query["to"]
    payments: list[dict[str, Any]] = []
    truncated, error = False, None
    cursor = ""
    try:
        for _ in range(FLOW_PAGES):
            found = api("GET", "/v1/payments", query={**query, "cursor": cursor})
            payments += found["payments"]
            cursor = found["next_cursor"] or ""
            if not cursor:
                break
        else:
            truncated = bool(cursor)
    except ApiRefused as refusal:
        error = refusal
    found_flows = flow_totals(payments)
    return page(
        "console/regulator/flows.html",
        error.status if error else 200,
        error=error,
        flows=found_flows,
        chart=flows_chart(found_flows),
        charts=bool(found_flows),
        span=span,
        spans=tuple(FLOW_RANGES),
        status_filter=status,
        statuses=PAYMENT_STATUSES,
        since=query["from"],
        until=query.get("to"),
        moments=moments,
        counted=len(payments),
        truncated=truncated,
    )


# --- payments -----------------------------------------------------------------------------------


@bp.get("/payments")
@requires_role(ROLE)
def payments() -> Response:
    filters = {name: request.args.get(name, "").strip() for name in PAYMENT_FILTERS}
    query = {name: rfc3339(value) if name in ("from", "to") else value for name, value in filters.items() if value}
    cursor = request.args.get("cursor", "")
    found: dict[str, Any] = {"payments": [], "next_cursor": None}
    error = None
    try:
        found = api("GET", "/v1/payments", query={**query, "cursor": cursor, "page_size": str(PAYMENTS_PAGE)})
    except ApiRefused as refusal:
        error = refusal
    return page(
        "console/regulator/payments.html",
        error.status if error else 200,
        error=error,
        payments=found["payments"],
        next_cursor=found["next_cursor"],
        first_page=not cursor,
        filters=filters,
        active={name: value for name, value in filters.items() if value},
        statuses=PAYMENT_STATUSES,
        reference=_reference(),
    )


@bp.get("/payments/<payment_id>")
@requires_role(ROLE)
def payment(payment_id: str) -> Response:
    checked_id(payment_id, PAYMENT_ID, "payment id")
    return page("console/regulator/payment.html", payment=api("GET", f"/v1/payments/{payment_id}"))


# --- alerts -------------------------------------------------------------------------------------


@bp.get("/alerts")
@requires_role(ROLE)
def alerts() -> Response:
    state = request.args.get("state", "open")
    rule = request.args.get("rule", "")
    found, error = [], None
    try:
        found = api("GET", "/v1/alerts", query={"state": state, "rule": rule})["alerts"]
    except ApiRefused as refusal:
        error = refusal
    return page(
        "console/regulator/alerts.html",
        error.status if error else 200,
        error=error,
        alerts=found,
        state=state,
        rule=rule,
        states=ALERT_STATES,
        rules=RULES,
    )


def _alert_page(alert_id: str, status: int = 200, **context: Any) -> Response:
    return page(
        "console/regulator/alert.html",
        status,
        alert=api("GET", f"/v1/alerts/{alert_id}"),
        note_max=NOTE_MAX,
        **context,
    )


@bp.get("/alerts/<alert_id>")
@requires_role(ROLE)
def alert(alert_id: str) -> Response:
    checked_id(alert_id, OPAQUE_ID, "alert id")
    return _alert_page(alert_id)


@bp.post("/alerts/<alert_id>/acknowledge")
@requires_role(ROLE)
def acknowledge(alert_id: str) -> Response:
    checked_id(alert_id, OPAQUE_ID, "alert id")
    note = form_text("note")
    try:
        # the API answers the same acknowledgement again alike, so a double click needs no key
        api("POST", f"/v1/alerts/{alert_id}/acknowledgement", body={"note": note} if note else {})
    except ApiRefused as refusal:
        return _alert_page(alert_id, refusal.status, error=refusal, note=note)
    return done("Alert acknowledged.", "console.regulator.alert", alert_id=alert_id)


# --- disclosure requests ------------------------------------------------------------------------


def _disclosures_page(status: int = 200, **context: Any) -> Response:
    bank = request.args.get("bank", "")
    answer = request.args.get("status", "")
    values = context.pop("values", {"payment_id": request.args.get("payment_id", ""), "legal_basis": ""})
    values.setdefault("idempotency_key", new_idempotency_key())
    requests_, list_error = [], None
    try:
        requests_ = api("GET", "/v1/disclosure-requests", query={"bank": bank, "status": answer})["requests"]
    except ApiRefused as refusal:
        list_error = refusal
    return page(
        "console/regulator/disclosures.html",
        list_error.status if list_error and status == 200 else status,
        requests=requests_[::-1],  # newest first, as the other lists
        list_error=list_error,
        bank_filter=bank,
        status_filter=answer,
        answers=ANSWERS,
        values=values,
        legal_basis_max=LEGAL_BASIS_MAX,
        reference=_reference(),
        **context,
    )


@bp.get("/disclosures")
@requires_role(ROLE)
def disclosures() -> Response:
    return _disclosures_page()


@bp.post("/disclosures")
@requires_role(ROLE)
def file_disclosure() -> Response:
    values = {name: form_text(name) for name in ("payment_id", "legal_basis", "idempotency_key")}
    body = {"payment_id": values["payment_id"], "legal_basis": values["legal_basis"]}
    try:
        answer = api_answer("POST", "/v1/disclosure-requests", body=body,
                            idempotency_key=values["idempotency_key"] or new_idempotency_key())  # fmt: skip
    except ApiRefused as refusal:
        values["idempotency_key"] = key_after(refusal, values["idempotency_key"])
        return _disclosures_page(refusal.status, error=refusal, values=values)
    filed = answer.body
    if answer.headers.get("Idempotent-Replayed") == "true":
        message = "This form was sent before: the request filed then is shown, nothing was filed again."
    else:
        message = f"Disclosure request filed; {filed['payer_bank']} and {filed['payee_bank']} are asked to answer."
    return done(message, "console.regulator.disclosure", request_id=filed["request_id"])


@bp.get("/disclosures/<request_id>")
@requires_role(ROLE)
def disclosure(request_id: str) -> Response:
    checked_id(request_id, DISCLOSURE_ID, "request id")
    return page("console/regulator/disclosure.html", req=api("GET", f"/v1/disclosure-requests/{request_id}"))
