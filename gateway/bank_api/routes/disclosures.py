"""A bank's side of disclosure on request: the regulator's requests about the bank's payments,
approved (the details go to the regulator only) or refused by an operator."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response

from gateway.bank_api import disclosures
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.boundary import BANK, Absent, Body, EmptyRequest, Query, accepts, body_of, one_of, query_of, text
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.validation import path_id

bp = Blueprint("disclosures", __name__, url_prefix="/v1")


class DisclosureListQuery(Query):
    status: Annotated[str, one_of(disclosures.ANSWERS)] | Absent = None


@bp.get("/disclosure-requests")
@requires(OPERATOR)
@accepts(BANK, query=DisclosureListQuery)
def list_requests() -> Response:
    """The regulator's requests about this bank's payments, oldest first; ``status`` of this bank's answer."""
    status = query_of(DisclosureListQuery).status
    ledger = services().ledger
    data = ledger.list_disclosures(ledger.msp_id, status)
    return json_response({"requests": [disclosures.request_view(r) for r in data.get("requests") or []]})


@bp.get("/disclosure-requests/<request_id>")
@requires(OPERATOR)
def get_request(request_id: str) -> Response:
    path_id(request_id, disclosures.REQUEST_ID, "request_id")
    return json_response(disclosures.request_view(services().ledger.get_disclosure(request_id)))


@bp.post("/disclosure-requests/<request_id>/approval")
@requires(OPERATOR)
@accepts(BANK, body=EmptyRequest, body_required=False)
def approve(request_id: str) -> Response:
    """Deliver the payment's details and their salt to the regulator only; recorded on the ledger."""
    path_id(request_id, disclosures.REQUEST_ID, "request_id")
    ledger = services().ledger
    ledger.approve_disclosure(request_id)
    return json_response(disclosures.request_view(ledger.get_disclosure(request_id)))


class RefusalRequest(Body):
    reason: Annotated[str, text(disclosures.REASON_MAX, description="Public: no customer data")]


@bp.post("/disclosure-requests/<request_id>/refusal")
@requires(OPERATOR)
@accepts(BANK, body=RefusalRequest)
def refuse(request_id: str) -> Response:
    """Refuse with a reason, which is public (no customer data in it)."""
    path_id(request_id, disclosures.REQUEST_ID, "request_id")
    reason = body_of(RefusalRequest).reason
    ledger = services().ledger
    ledger.refuse_disclosure(request_id, reason)
    return json_response(disclosures.request_view(ledger.get_disclosure(request_id)))
