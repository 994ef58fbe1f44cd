"""The disclosure routes in the OpenAPI documents: a bank's side and the regulator's side."""

from __future__ import annotations

from gateway.bank_api import disclosures
from gateway.bank_api.openapi import (
    _IDEMPOTENCY_REQUIRED,
    TIMESTAMP,
    Schema,
    _json,
    _nullable,
    _object,
    _op,
    _path_param,
    _ref,
    _string,
)

TAG = "disclosure"
REQUEST_ID = _path_param("request_id", disclosures.REQUEST_ID, 64)
_WRITE = ("400", "401", "403", "404", "409", "413", "415", "502", "503")
_READ = ("400", "401", "403", "404", "502", "503")

SCHEMAS: dict[str, Schema] = {
    "DisclosureAnswer": _object(
        {
            "status": _nullable(_string(enum=list(disclosures.ANSWERS))),
            "at": TIMESTAMP,
            "tx_id": _nullable(_string(description="The bank's transaction that answered")),
            "reason": _nullable(_string(description="Why the bank refused (public)")),
        },
        ["status", "at", "tx_id", "reason"],
    ),
    "DisclosureRequest": _object(
        {
            "request_id": _nullable(_string()),
            "payment_id": _nullable(_string()),
            "payer_bank": _nullable(_string()),
            "payee_bank": _nullable(_string()),
            "legal_basis": _nullable(_string()),
            "requested_by": _nullable(_string()),
            "requested_at": TIMESTAMP,
            "answers": {"type": "object", "additionalProperties": _ref("DisclosureAnswer")},
        },
        ["request_id", "payment_id", "payer_bank", "payee_bank", "legal_basis", "requested_by", "answers"],
    ),
    "DisclosureRequestList": _object(
        {"requests": {"type": "array", "items": _ref("DisclosureRequest")}},
        ["requests"],
    ),
}

# The regulator's request bodies and queries are its routes' models (routes/disclosure_requests.py).
REGULATOR_SCHEMAS: dict[str, Schema] = {
    **SCHEMAS,
    "CheckedDisclosure": {
        "allOf": [
            _ref("DisclosureRequest"),
            _object(
                {
                    "expected_details_hash": _nullable(_string(description="From the payment's public record")),
                    "deliveries": {
                        "type": "object",
                        "description": "Per bank that disclosed: its details and the check against the hash",
                        "additionalProperties": _object(
                            {
                                "check": _string(
                                    enum=[disclosures.VERIFIED, disclosures.MISMATCH, disclosures.AWAITING_DATA]
                                ),
                                "checked_at": TIMESTAMP,
                                "details_hash": _nullable(_string()),
                                "details": _nullable(
                                    _object(
                                        {
                                            "payer_account": _nullable(_string()),
                                            "payer_jurisdiction": _nullable(_string()),
                                            "payee_account": _nullable(_string()),
                                            "remittance": _nullable(_string()),
                                        }
                                    )
                                ),
                            },
                            ["check", "checked_at", "details"],
                        ),
                    },
                },
                ["expected_details_hash", "deliveries"],
            ),
        ]
    },
}


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
