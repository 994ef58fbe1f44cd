"""The regulator's read-only views: reference data, supply, interbank payments, positions, settlement.

Each list answers JSON, or CSV with ``?format=csv`` (``Accept: text/csv`` works too). A CSV
export holds every matching row, not one page.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response

from gateway.bank_api import oversight, representations
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.csv_export import csv_response, wants_csv
from gateway.bank_api.ledger import OversightLedger
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.validation import CYCLE_ID, MSP_ID, page_size, path_id, query_choice, query_pattern

bp = Blueprint("oversight", __name__, url_prefix="/v1")


def ledger() -> OversightLedger:
    return cast(OversightLedger, services().ledger)


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
def supply() -> Response:
    """The supply of every token class (issuer bank, currency) now."""
    body = representations.supply(ledger().get_supply(), services().currencies())
    if wants_csv():
        rows = ([item["issuer"], item["currency"], item["supply"]] for item in body["token_classes"])
        return csv_response("supply.csv", ("issuer", "currency", "supply"), rows)
    return json_response(body)


@bp.get("/payments")
@requires(OPERATOR)
def list_payments() -> Response:
    """Interbank payments, newest first, filtered by banks, currency, status, amount and time."""
    currencies = services().currencies()
    filters = oversight.payment_filters(currencies)
    if wants_csv():
        views = (oversight.payment_view(record, currencies) for record in oversight.every_payment(ledger(), filters))
        return csv_response("payments.csv", oversight.PAYMENT_COLUMNS, (oversight.payment_row(view) for view in views))
    records, next_cursor = oversight.payments_page(ledger(), filters, page_size(), oversight.cursor())
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
def positions() -> Response:
    """Net positions over the completed payments that no settlement cycle has taken yet."""
    currencies = services().currencies()
    count, totals = oversight.net_positions(ledger())
    by_bank = representations.positions(totals, currencies)
    if wants_csv():
        rows = ([bank, currency, amount] for bank, amounts in by_bank.items() for currency, amount in amounts.items())
        return csv_response("positions.csv", ("bank", "currency", "position"), rows)
    return json_response({"payments": count, "positions": by_bank})


@bp.get("/settlement-cycles")
@requires(OPERATOR)
def list_cycles() -> Response:
    """Settlement cycles, oldest first, each with the banks that have not confirmed their leg."""
    status = query_choice("status", oversight.CYCLE_STATUSES)
    pending_bank = query_pattern("pending_bank", MSP_ID)
    currencies = services().currencies()
    data = ledger().list_settlement_cycles()
    views = [oversight.cycle_view(item, currencies) for item in data.get("cycles") or [] if isinstance(item, dict)]
    if status is not None:
        views = [view for view in views if view["status"] == status]
    if pending_bank is not None:
        views = [view for view in views if pending_bank in view["pending_banks"]]
    if wants_csv():
        columns = ("cycle_id", "status", "opened_by", "opened_at", "settled_at", "banks", "pending_banks", "payments")
        return csv_response("settlement-cycles.csv", columns, (oversight.cycle_row(view) for view in views))
    return json_response({"cycles": views})


@bp.get("/settlement-cycles/<cycle_id>")
@requires(OPERATOR)
def get_cycle(cycle_id: str) -> Response:
    path_id(cycle_id, CYCLE_ID, "cycle_id")
    cycle = ledger().get_settlement_cycle(cycle_id)
    return json_response(oversight.cycle_view(cycle, services().currencies()))
