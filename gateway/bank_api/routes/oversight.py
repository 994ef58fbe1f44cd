"""The regulator's read-only views: reference data, supply, interbank payments, positions, settlement.

Each list answers JSON, or CSV with ``?format=csv`` (``Accept: text/csv`` works too). A CSV
export holds every matching row, not one page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, cast

from flask import Blueprint, Response
from pydantic import Field

from gateway.bank_api import oversight, representations, supply_watch
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, current_principal, requires
from gateway.bank_api.boundary import REGULATOR, Absent, MspId, accepts, one_of, query_of
from gateway.bank_api.csv_export import Listing, csv_response, wants_csv
from gateway.bank_api.ledger import OversightLedger
from gateway.bank_api.oversight import Moment, NetworkCurrency, PaymentSearch
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.validation import CYCLE_ID, bad_request, path_id

bp = Blueprint("oversight", __name__, url_prefix="/v1")


def ledger() -> OversightLedger:
    return cast(OversightLedger, services().ledger)


@bp.get("/me")
@requires(OPERATOR)
def whoami() -> Response:
    """Who the key is, as a bank's gateway answers it: the console's login asks this."""
    principal = current_principal()
    return json_response(
        {"role": principal.role, "key_id": principal.key_id, "account_id": None, "bank": services().msp_id}
    )


@bp.get("/reference-data")
@requires(OPERATOR)
def reference_data() -> Response:
    data = services().reference_data()
    banks = [
        {
            "msp_id": bank.get("msp_id"),
            "name": bank.get("name"),
            "jurisdiction": bank.get("jurisdiction"),
            "currencies": list(bank.get("currencies") or []),
            "status": bank.get("status") or "active",
            "status_reason": bank.get("status_reason"),
            "status_since": representations.timestamp(bank.get("status_since")),
        }
        for bank in data.get("banks") or []
        if isinstance(bank, dict)
    ]
    timeout = data.get("payment_timeout_seconds")
    return json_response(
        {
            "regulator": data.get("regulator"),
            "currencies": {str(k): int(v) for k, v in (data.get("currencies") or {}).items()},
            "banks": banks,
            "payment_timeout_seconds": timeout if isinstance(timeout, int) else None,
        }
    )


@bp.get("/supply")
@requires(OPERATOR)
@accepts(REGULATOR, query=Listing)
def supply() -> Response:
    """The supply of every token class (issuer bank, currency) now."""
    body = representations.supply(ledger().get_supply(), services().currencies())
    if wants_csv(query_of(Listing)):
        rows = ([item["issuer"], item["currency"], item["supply"]] for item in body["token_classes"])
        return csv_response("supply.csv", ("issuer", "currency", "supply"), rows)
    return json_response(body)


# How far back a history goes when ``from`` is not given.
DEFAULT_SPAN = {"minute": timedelta(days=1), "hour": timedelta(days=7), "day": timedelta(days=365)}
HISTORY_COLUMNS = ("at", "supply", "increase", "decrease", "changes")


class SupplyHistoryQuery(Listing):
    issuer: MspId
    currency: NetworkCurrency
    interval: Annotated[str, one_of(tuple(supply_watch.INTERVALS))] = "hour"
    since: Annotated[
        Moment | Absent, Field(alias="from", description="Start (RFC 3339); by default a span before to")
    ] = None
    until: Annotated[Moment | Absent, Field(alias="to", description="End (RFC 3339); by default now")] = None


@bp.get("/supply/history")
@requires(OPERATOR)
@accepts(REGULATOR, query=SupplyHistoryQuery)
def supply_history() -> Response:
    """One token class's supply over time, from the changes its transactions reported, per bucket."""
    svc = services()
    query = query_of(SupplyHistoryQuery)
    issuer, interval = query.issuer, query.interval
    currency = svc.currencies().known(query.currency, "currency")
    seconds = supply_watch.INTERVALS[interval]
    until = query.until or datetime.now(UTC)
    since = query.since or until - DEFAULT_SPAN[interval]
    if since > until:
        raise bad_request("from is after to")
    if (until - since).total_seconds() / seconds > supply_watch.MAX_POINTS:
        raise bad_request(
            f"from..to spans more than {supply_watch.MAX_POINTS} {interval}s: narrow it or take a longer interval"
        )
    found = supply_watch.history(svc.db, (issuer, currency), since, until, seconds)
    money = svc.currencies()
    points = [
        {
            "at": representations.timestamp(point.at),
            "supply": money.format_amount(point.supply, currency),
            "increase": money.format_amount(point.increase, currency),
            "decrease": money.format_amount(point.decrease, currency),
            "changes": point.changes,
        }
        for point in found.points
    ]
    if wants_csv(query):
        rows = ([point[column] for column in HISTORY_COLUMNS] for point in points)
        return csv_response(f"supply-{issuer}-{currency}.csv", HISTORY_COLUMNS, rows)
    return json_response(
        {
            "issuer": issuer,
            "currency": currency,
            "interval": interval,
            "from": representations.timestamp(since),
            "to": representations.timestamp(until),
            "opening_supply": money.format_amount(found.opening, currency),
            "points": points,
        }
    )


@bp.get("/payments")
@requires(OPERATOR)
@accepts(REGULATOR, query=PaymentSearch)
def list_payments() -> Response:
    """Interbank payments, newest first, filtered by banks, currency, status, amount and time."""
    currencies = services().currencies()
    query = query_of(PaymentSearch)
    filters = oversight.payment_filters(query, currencies)
    if wants_csv(query):
        views = (oversight.payment_view(record, currencies) for record in oversight.every_payment(ledger(), filters))
        return csv_response("payments.csv", oversight.PAYMENT_COLUMNS, (oversight.payment_row(view) for view in views))
    records, next_cursor = oversight.payments_page(ledger(), filters, query.page_size, query.cursor)
    return json_response(
        {"payments": [oversight.payment_view(record, currencies) for record in records], "next_cursor": next_cursor}
    )


@bp.get("/payments/<payment_id>")
@requires(OPERATOR)
def get_payment(payment_id: str) -> Response:
    record = ledger().get_payment(oversight.payment_id_in_path(payment_id))
    return json_response(oversight.payment_view(record, services().currencies()))


@bp.get("/positions")
@requires(OPERATOR)
@accepts(REGULATOR, query=Listing)
def positions() -> Response:
    """Net positions over the completed payments that no settlement cycle has taken yet."""
    currencies = services().currencies()
    count, totals = oversight.net_positions(ledger())
    by_bank = representations.positions(totals, currencies)
    if wants_csv(query_of(Listing)):
        rows = ([bank, currency, amount] for bank, amounts in by_bank.items() for currency, amount in amounts.items())
        return csv_response("positions.csv", ("bank", "currency", "position"), rows)
    return json_response({"payments": count, "positions": by_bank})


class CycleSearch(Listing):
    status: Annotated[str, one_of(oversight.CYCLE_STATUSES)] | Absent = None
    pending_bank: Annotated[MspId, Field(description="Only cycles this bank has not confirmed")] | Absent = None


@bp.get("/settlement-cycles")
@requires(OPERATOR)
@accepts(REGULATOR, query=CycleSearch)
def list_cycles() -> Response:
    """Settlement cycles, oldest first, each with the banks that have not confirmed their leg."""
    query = query_of(CycleSearch)
    status, pending_bank = query.status, query.pending_bank
    currencies = services().currencies()
    data = ledger().list_settlement_cycles()
    views = [oversight.cycle_view(item, currencies) for item in data.get("cycles") or [] if isinstance(item, dict)]
    if status is not None:
        views = [view for view in views if view["status"] == status]
    if pending_bank is not None:
        views = [view for view in views if pending_bank in view["pending_banks"]]
    if wants_csv(query):
        columns = ("cycle_id", "status", "opened_by", "opened_at", "settled_at", "banks", "pending_banks", "payments")
        return csv_response("settlement-cycles.csv", columns, (oversight.cycle_row(view) for view in views))
    return json_response({"cycles": views})


@bp.get("/settlement-cycles/<cycle_id>")
@requires(OPERATOR)
def get_cycle(cycle_id: str) -> Response:
    path_id(cycle_id, CYCLE_ID, "cycle_id")
    cycle = ledger().get_settlement_cycle(cycle_id)
    return json_response(oversight.cycle_view(cycle, services().currencies()))
