"""The OpenAPI 3.0 document of the regulator's gateway, written by hand next to its routes.

It shares the bank gateway's building blocks (problem documents, operations, timestamps,
money) so the two documents describe errors, keys and amounts the same way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from gateway.bank_api import alerts, disclosure_openapi, oversight, supply_watch
from gateway.bank_api import validation as v
from gateway.bank_api.csv_export import CSV_MEDIA_TYPE
from gateway.bank_api.openapi import (
    _IDEMPOTENCY_OPTIONAL,
    _REPLAYED,
    RESPONSES,
    Schema,
    _json,
    _op,
    _path_param,
    _ref,
    _string,
    webhook_paths,
    with_overload_responses,
)

# Request bodies and queries are described by their routes' models (boundary.py), which
# regulator_document() merges in; what is written here is the rest: answers, paths, path parameters.


def _listing(schema_name: str, description: str) -> Schema:
    """A 200 answer in JSON or, on request, CSV."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": _ref(schema_name)},
            CSV_MEDIA_TYPE: {"schema": _string(description="RFC 4180 CSV with a header row")},
        },
    }


def _paths() -> dict[str, Schema]:
    read = ("400", "401", "403", "502", "503")
    return {
        "/healthz": {
            "get": _op(
                "Liveness: the process is up",
                "operations",
                {"200": _json("Status", "Up")},
                problems=(),
                secured=False,
                rate_limited=False,
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: the database, the regulator's peer and the chaincode answer",
                "operations",
                {
                    "200": _json("Status", "Ready"),
                    "503": {
                        "description": "Not ready",
                        "content": {"application/problem+json": {"schema": _ref("Problem")}},
                    },
                },
                problems=(),
                secured=False,
                rate_limited=False,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                "operations",
                {"200": {"description": "Text exposition format", "content": {"text/plain": {"schema": _string()}}}},
                problems=("401", "403"),
                secured=False,
                description="Open to clients on this machine; others need an operator key.",
            )
        },
        "/v1/me": {
            "get": _op(
                "The caller's key and role (the console's login asks it)",
                "oversight",
                {"200": _json("Me", "The caller")},
                problems=("401",),
            )
        },
        "/v1/reference-data": {
            "get": _op(
                "Banks with their status, currencies, the payment timeout",
                "oversight",
                {"200": _json("ReferenceData", "Reference data")},
                problems=read,
            )
        },
        "/v1/supply": {
            "get": _op(
                "Supply of every token class (issuer bank, currency) now",
                "oversight",
                {"200": _listing("Supply", "Supply per token class")},
                problems=read,
            )
        },
        "/v1/supply/history": {
            "get": _op(
                "One token class's supply over time, per minute, hour or day",
                "oversight",
                {"200": _listing("SupplyHistory", "The buckets with changes, oldest first")},
                problems=("400", "401", "403"),
                description=(
                    "From the supply changes each transaction reported in its event (docs/contract-api.md), "
                    f"at most {supply_watch.MAX_POINTS} intervals from..to."
                ),
            )
        },
        "/v1/payments": {
            "get": _op(
                "Interbank payments, newest first, each with its timeline",
                "oversight",
                {"200": _listing("PaymentPage", "A page of payments (CSV: every matching payment)")},
                problems=read,
                description="Public records only: banks, currencies, amounts, status, timeline and the salted "
                "hash of the private details; never an account, a name or remittance text.",
            )
        },
        "/v1/payments/{payment_id}": {
            "get": _op(
                "One interbank payment with its timeline",
                "oversight",
                {"200": _json("Payment", "The public record")},
                params=[_path_param("payment_id", oversight.PAYMENT_ID, 64)],
                problems=(*read, "404"),
            )
        },
        "/v1/positions": {
            "get": _op(
                "Net positions over completed payments not yet in a settlement cycle",
                "oversight",
                {"200": _listing("NetPositions", "Positive: the bank is to receive")},
                problems=read,
            )
        },
        "/v1/settlement-cycles": {
            "get": _op(
                "Settlement cycles, oldest first, with the banks that have not confirmed",
                "oversight",
                {"200": _listing("CycleList", "Cycles")},
                problems=read,
            )
        },
        "/v1/settlement-cycles/{cycle_id}": {
            "get": _op(
                "One settlement cycle",
                "oversight",
                {"200": _json("SettlementCycle", "The cycle")},
                params=[_path_param("cycle_id", v.CYCLE_ID, 64)],
                problems=(*read, "404"),
            )
        },
        "/v1/corridor-policy": {
            "get": _op(
                "The corridor policy in force",
                "corridor policy",
                {"200": _json("CorridorPolicy", "The version in force")},
                problems=read,
            ),
            "put": _op(
                "Make a new version of the corridor policy the one in force",
                "corridor policy",
                {"200": _json("CorridorPolicy", "The new version, committed", _REPLAYED)},
                params=[_IDEMPOTENCY_OPTIONAL],
                problems=("400", "401", "403", "409", "413", "415", "502", "503"),
                description="A regulator-endorsed transaction: the contract applies it from the next payment "
                "on (payments already initiated complete under the version they started with), keeps the "
                "version it replaces in the history, and refuses it from any bank.",
            ),
        },
        "/v1/corridor-usage": {
            "get": _op(
                "Each cap in force, with what each sending bank used of it on a UTC day",
                "corridor policy",
                {"200": _listing("CorridorUsage", "Usage per cap and sending bank")},
                problems=read,
            )
        },
        "/v1/corridor-policy/history": {
            "get": _op(
                "Every version of the corridor policy, newest first",
                "corridor policy",
                {"200": _listing("CorridorPolicyHistory", "Versions (CSV: one row per rule and cap)")},
                problems=read,
            )
        },
        "/v1/alerts": {
            "get": _op(
                "Alerts, newest first, with their evidence",
                "alerts",
                {"200": _listing("AlertList", "Alerts")},
                problems=("400", "401", "403"),
            )
        },
        "/v1/alerts/{alert_id}": {
            "get": _op(
                "One alert",
                "alerts",
                {"200": _json("Alert", "The alert")},
                params=[_path_param("alert_id", v.OPAQUE_ID, 64)],
                problems=("400", "401", "403", "404"),
            )
        },
        "/v1/alerts/{alert_id}/acknowledgement": {
            "post": _op(
                "Acknowledge an alert, with a note",
                "alerts",
                {"200": _json("Alert", "Acknowledged (the same acknowledgement again is answered alike)")},
                params=[_path_param("alert_id", v.OPAQUE_ID, 64)],
                problems=("400", "401", "403", "404", "409", "413", "415"),
            )
        },
        "/v1/alert-rules": {
            "get": _op(
                "The alert rules' settings",
                "alerts",
                {"200": _json("AlertRules", "Every rule")},
                problems=("401", "403"),
            )
        },
        "/v1/alert-rules/{rule}": {
            "put": _op(
                "Replace one rule's settings; they apply to what is seen from now on",
                "alerts",
                {"200": _json("AlertRules", "Every rule, after the change")},
                params=[
                    {
                        "name": "rule",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(alerts.RULES)},
                    }
                ],
                problems=("400", "401", "403", "404", "413", "415"),
            )
        },
        **webhook_paths(
            "alerts",
            "an alert webhook",
            "Push every alert raised from now on to a URL",
            "The regulator's alert webhooks",
            "Deliveries are POSTs of {id, type: alert.raised, created_at, data: the alert} signed with header "
            "Bank-Api-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>; retried with backoff "
            "until the receiver answers 2xx.",
        ),
    }


@lru_cache(maxsize=1)
def regulator_document() -> dict[str, Any]:
    from gateway.bank_api.answers import common, components, regulator
    from gateway.bank_api.boundary import REGULATOR, with_request_parts
    from gateway.bank_api.config import REGULATOR as REGULATOR_ROLE

    document = _document()
    document["components"]["schemas"].update(components(regulator.PUBLISHED + common.PUBLISHED))
    return with_request_parts(document, REGULATOR, REGULATOR_ROLE)


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Deposit-token regulator API",
            "version": "1.0.0",
            "description": (
                "The regulator's gateway to the deposit-token ledger: supply, interbank payments, net "
                "positions, settlement cycles, the corridor policy and alerts, all from public records (no "
                "customer data), and disclosure of a payment's details on request, checked against its public "
                'hash. Amounts are decimal strings in the currency\'s exponent ("12.34" USD); lists answer '
                "CSV with ?format=csv. Errors are application/problem+json with a stable `code`. Send the "
                "regulator's operator key as `Authorization: Bearer <key>`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in ("oversight", "corridor policy", "alerts", "disclosure", "operations")],
        "paths": with_overload_responses({**_paths(), **disclosure_openapi.regulator_paths()}),
        "components": {
            # Generated from the answer and request models (regulator_document).
            "schemas": {},
            "responses": RESPONSES,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
