"""The regulator's side of disclosure on request: file a request, follow the banks' answers, and read
what was disclosed, checked against the payment's public hash."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response

from gateway.bank_api import disclosures, oversight
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.csv_export import csv_response, wants_csv
from gateway.bank_api.ledger import OversightLedger
from gateway.bank_api.routes.common import idempotent, json_response
from gateway.bank_api.validation import MSP_ID, Fields, json_object, path_id, query_choice, query_pattern

bp = Blueprint("disclosure_requests", __name__, url_prefix="/v1")


def ledger() -> OversightLedger:
    return cast(OversightLedger, services().ledger)


@bp.post("/disclosure-requests")
@requires(OPERATOR)
@idempotent(required=True)
def file_request() -> Response:
    """Ask the payment's banks for its details; the request (who, when, why, which payment) is public."""
    fields = Fields(json_object(), ("payment_id", "legal_basis"))
    payment_id = fields.required_text("payment_id", pattern=oversight.PAYMENT_ID, max_length=64,
                                      what="an interbank payment's id (64 lowercase hex digits)")  # fmt: skip
    legal_basis = fields.required_text("legal_basis", max_length=disclosures.LEGAL_BASIS_MAX)
    record = ledger().request_disclosure(payment_id, legal_basis)
    view = disclosures.request_view(record)
    return json_response(view, 201, {"Location": f"/v1/disclosure-requests/{view['request_id']}"})


@bp.get("/disclosure-requests")
@requires(OPERATOR)
def list_requests() -> Response:
    """Every request, oldest first, with each bank's answer; ``bank`` and ``status`` narrow it."""
    bank = query_pattern("bank", MSP_ID)
    status = query_choice("status", disclosures.ANSWERS)
    data = ledger().list_disclosures(bank, status)
    views = [disclosures.request_view(record) for record in data.get("requests") or []]
    if wants_csv():
        return csv_response("disclosure-requests.csv", disclosures.REQUEST_COLUMNS, map(disclosures.request_row, views))
    return json_response({"requests": views})


@bp.get("/disclosure-requests/<request_id>")
@requires(OPERATOR)
def get_request(request_id: str) -> Response:
    """The request, its answers, and each delivery with its check: verified, mismatch or awaiting_data."""
    path_id(request_id, disclosures.REQUEST_ID, "request_id")
    return json_response(disclosures.verify(services(), request_id))
