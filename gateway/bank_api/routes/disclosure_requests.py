"""The regulator's side of disclosure on request: file a request, follow the banks' answers, and read
what was disclosed, checked against the payment's public hash."""

from __future__ import annotations

from typing import Annotated, cast

from flask import Blueprint, Response
from pydantic import Field

from gateway.bank_api import disclosures, oversight
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.boundary import REGULATOR, Absent, Body, MspId, Rule, accepts, body_of, one_of, query_of, text
from gateway.bank_api.csv_export import Listing, csv_response, wants_csv
from gateway.bank_api.ledger import OversightLedger
from gateway.bank_api.routes.common import idempotent, json_response
from gateway.bank_api.validation import path_id

bp = Blueprint("disclosure_requests", __name__, url_prefix="/v1")


def ledger() -> OversightLedger:
    return cast(OversightLedger, services().ledger)


class NewDisclosureRequest(Body):
    payment_id: Annotated[
        str,
        Field(pattern=oversight.PAYMENT_ID, min_length=1, max_length=64),
        Rule(what="an interbank payment's id (64 lowercase hex digits)"),
    ]
    legal_basis: Annotated[str, text(disclosures.LEGAL_BASIS_MAX, description="Public: the law and the case")]


@bp.post("/disclosure-requests")
@requires(OPERATOR)
@idempotent(required=True)
@accepts(REGULATOR, body=NewDisclosureRequest)
def file_request() -> Response:
    """Ask the payment's banks for its details; the request (who, when, why, which payment) is public."""
    body = body_of(NewDisclosureRequest)
    record = ledger().request_disclosure(body.payment_id, body.legal_basis)
    view = disclosures.request_view(record)
    return json_response(view, 201, {"Location": f"/v1/disclosure-requests/{view['request_id']}"})


class DisclosureSearch(Listing):
    bank: MspId | Absent = None
    status: Annotated[str, one_of(disclosures.ANSWERS)] | Absent = None


@bp.get("/disclosure-requests")
@requires(OPERATOR)
@accepts(REGULATOR, query=DisclosureSearch)
def list_requests() -> Response:
    """Every request, oldest first, with each bank's answer; ``bank`` and ``status`` narrow it."""
    query = query_of(DisclosureSearch)
    data = ledger().list_disclosures(query.bank, query.status)
    views = [disclosures.request_view(record) for record in data.get("requests") or []]
    if wants_csv(query):
        return csv_response("disclosure-requests.csv", disclosures.REQUEST_COLUMNS, map(disclosures.request_row, views))
    return json_response({"requests": views})


@bp.get("/disclosure-requests/<request_id>")
@requires(OPERATOR)
def get_request(request_id: str) -> Response:
    """The request, its answers, and each delivery with its check: verified, mismatch or awaiting_data."""
    path_id(request_id, disclosures.REQUEST_ID, "request_id")
    return json_response(disclosures.verify(services(), request_id))
