"""The disclosure routes in the OpenAPI documents: a bank's side and the regulator's side."""

from __future__ import annotations

from gateway.bank_api import disclosures
from gateway.bank_api.openapi import (
    _IDEMPOTENCY_REQUIRED,
    Schema,
    _json,
    _op,
    _path_param,
    _ref,
    _string,
)

TAG = "disclosure"
REQUEST_ID = _path_param("request_id", disclosures.REQUEST_ID, 64)
_WRITE = ("400", "401", "403", "404", "409", "413", "415", "502", "503")
_READ = ("400", "401", "403", "404", "502", "503")




def bank_paths() -> dict[str, Schema]:
    return {
        "/v1/disclosure-requests": {
            "get": _op(
                "The regulator's disclosure requests about this bank's payments (operator)",
                TAG,
                {"200": _json("DisclosureRequestList", "Requests, oldest first")},
                problems=("400", "401", "403", "502", "503"),
            )
        },
        "/v1/disclosure-requests/{request_id}": {
            "get": _op(
                "One disclosure request with each bank's answer (operator)",
                TAG,
                {"200": _json("DisclosureRequest", "The request")},
                params=[REQUEST_ID],
                problems=_READ,
            )
        },
        "/v1/disclosure-requests/{request_id}/approval": {
            "post": _op(
                "Disclose the payment's details and their salt to the regulator only (operator)",
                TAG,
                {"200": _json("DisclosureRequest", "Disclosed; the answer is on the ledger")},
                params=[REQUEST_ID],
                problems=_WRITE,
            )
        },
        "/v1/disclosure-requests/{request_id}/refusal": {
            "post": _op(
                "Refuse a disclosure request, with a public reason (operator)",
                TAG,
                {"200": _json("DisclosureRequest", "Refused; the answer is on the ledger")},
                params=[REQUEST_ID],
                problems=_WRITE,
            )
        },
    }


def regulator_paths() -> dict[str, Schema]:
    return {
        "/v1/disclosure-requests": {
            "post": _op(
                "Ask a payment's banks for its private details, on a legal basis",
                TAG,
                {"201": _json("DisclosureRequest", "Filed on the ledger")},
                params=[_IDEMPOTENCY_REQUIRED],
                problems=_WRITE,
            ),
            "get": _op(
                "Every disclosure request, oldest first, with each bank's answer",
                TAG,
                {
                    "200": {
                        "description": "Requests",
                        "content": {
                            "application/json": {"schema": _ref("DisclosureRequestList")},
                            "text/csv": {"schema": _string()},
                        },
                    }
                },
                problems=("400", "401", "403", "502", "503"),
            ),
        },
        "/v1/disclosure-requests/{request_id}": {
            "get": _op(
                "A request with what each bank disclosed, checked against the payment's public hash",
                TAG,
                {"200": _json("CheckedDisclosure", "verified, mismatch or awaiting_data per bank")},
                params=[REQUEST_ID],
                problems=_READ,
                description="The one view that shows customer data: what a bank disclosed on this request.",
            )
        },
    }
