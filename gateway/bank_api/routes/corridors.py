"""The corridor policy (the regulator's gateway): the version in force, every earlier one, a new
version, and what each capped corridor has used today.

A new version is a regulator-endorsed transaction on the ledger (``SetCorridorPolicy``); the
contract enforces it on the next payment, keeps the version it replaces, and refuses it from
anyone but the regulator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from flask import Blueprint, Response

from gateway.bank_api import oversight
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.boundary import REGULATOR, accepts, body_of, query_of
from gateway.bank_api.csv_export import Listing, csv_response, wants_csv
from gateway.bank_api.ledger import OversightLedger
from gateway.bank_api.oversight import CorridorPolicyRequest, UsageQuery
from gateway.bank_api.routes.common import idempotent, json_response

bp = Blueprint("corridors", __name__, url_prefix="/v1")


def ledger() -> OversightLedger:
    return cast(OversightLedger, services().ledger)


@bp.get("/corridor-policy")
@requires(OPERATOR)
def get_policy() -> Response:
    return json_response(oversight.policy_view(ledger().get_corridor_policy(), services().currencies()))


@bp.get("/corridor-policy/history")
@requires(OPERATOR)
@accepts(REGULATOR, query=Listing)
def history() -> Response:
    """Every version, newest first: who set what, when, in which transaction."""
    currencies = services().currencies()
    data = ledger().get_corridor_policy_history()
    items = [item for item in data.get("versions") or [] if isinstance(item, dict)]
    versions = [oversight.policy_view(item, currencies) for item in items]
    if wants_csv(query_of(Listing)):
        rows = (row for view in versions for row in oversight.policy_rows(view))
        return csv_response("corridor-policy-history.csv", oversight.POLICY_COLUMNS, rows)
    return json_response({"versions": versions})


@bp.put("/corridor-policy")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(REGULATOR, body=CorridorPolicyRequest)
def set_policy() -> Response:
    """Make a new version the one in force: the whole policy (rules and caps), from ``base_version``."""
    svc = services()
    currencies = svc.currencies()
    policy = oversight.policy_request(body_of(CorridorPolicyRequest), currencies)
    in_force = ledger().set_corridor_policy(policy)
    return json_response(oversight.policy_view(in_force, currencies))


@bp.get("/corridor-usage")
@requires(OPERATOR)
@accepts(REGULATOR, query=UsageQuery)
def usage() -> Response:
    """Each cap in force with what each bank of its ``from`` jurisdiction sent that UTC day (default today)."""
    svc = services()
    query = query_of(UsageQuery)
    day = query.day or datetime.now(UTC).date()
    currencies = svc.currencies()
    banks = [bank for bank in svc.reference_data().get("banks") or [] if isinstance(bank, dict)]
    view = oversight.usage_view(oversight.corridor_usage(ledger(), day, banks), day, currencies)
    if wants_csv(query):
        return csv_response(
            f"corridor-usage-{day.isoformat()}.csv", oversight.USAGE_COLUMNS, oversight.usage_rows(view)
        )
    return json_response(view)
