"""The corridor policy: the version in force and every earlier one (the regulator's gateway)."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response

from gateway.bank_api import oversight
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.csv_export import csv_response, wants_csv
from gateway.bank_api.ledger import OversightLedger
from gateway.bank_api.routes.common import json_response

bp = Blueprint("corridors", __name__, url_prefix="/v1")


def ledger() -> OversightLedger:
    return cast(OversightLedger, services().ledger)


@bp.get("/corridor-policy")
@requires(OPERATOR)
def get_policy() -> Response:
    return json_response(oversight.policy_view(ledger().get_corridor_policy(), services().currencies()))


@bp.get("/corridor-policy/history")
@requires(OPERATOR)
def history() -> Response:
    """Every version, newest first: who set what, when, in which transaction."""
    currencies = services().currencies()
    data = ledger().get_corridor_policy_history()
    items = [item for item in data.get("versions") or [] if isinstance(item, dict)]
    versions = [oversight.policy_view(item, currencies) for item in items]
    if wants_csv():
        rows = (row for view in versions for row in oversight.policy_rows(view))
        return csv_response("corridor-policy-history.csv", oversight.POLICY_COLUMNS, rows)
    return json_response({"versions": versions})
