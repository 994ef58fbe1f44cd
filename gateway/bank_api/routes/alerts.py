"""The regulator's alerts and the rules that raise them (decision 0023)."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response

from gateway.bank_api import alerts
from gateway.bank_api.alerts import AlertRuleSettings
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, current_principal, requires
from gateway.bank_api.boundary import REGULATOR, Absent, Body, accepts, body_of, one_of, query_of, text
from gateway.bank_api.csv_export import Listing, csv_response, wants_csv
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.validation import OPAQUE_ID, path_id

bp = Blueprint("alerts", __name__, url_prefix="/v1")

ALERT_STATES = ("open", "acknowledged")
NOTE_MAX = 200


class AlertSearch(Listing):
    state: Annotated[str, one_of(ALERT_STATES)] | Absent = None
    rule: Annotated[str, one_of(alerts.RULES)] | Absent = None


@bp.get("/alerts")
@requires(OPERATOR)
@accepts(REGULATOR, query=AlertSearch)
def list_alerts() -> Response:
    """Alerts, newest first; ``state`` open or acknowledged, ``rule`` one rule."""
    query = query_of(AlertSearch)
    views = [alerts.alert_view(alert) for alert in alerts.AlertStore(services()).list(query.state, query.rule)]
    if wants_csv(query):
        return csv_response("alerts.csv", alerts.ALERT_COLUMNS, (alerts.alert_row(view) for view in views))
    return json_response({"alerts": views})


@bp.get("/alerts/<alert_id>")
@requires(OPERATOR)
def get_alert(alert_id: str) -> Response:
    path_id(alert_id, OPAQUE_ID, "alert_id")
    alert = alerts.AlertStore(services()).get(alert_id)
    if alert is None:
        raise ApiProblem(404, "alert_not_found", f"no alert {alert_id}")
    return json_response(alerts.alert_view(alert))


class AcknowledgementRequest(Body):
    note: Annotated[str, text(NOTE_MAX, blank=True, description="Why it is settled, for the record")] | Absent = None


@bp.post("/alerts/<alert_id>/acknowledgement")
@requires(OPERATOR)
@accepts(REGULATOR, body=AcknowledgementRequest, body_required=False)
def acknowledge(alert_id: str) -> Response:
    """Mark an alert as seen, with a note; the same acknowledgement again is answered alike."""
    path_id(alert_id, OPAQUE_ID, "alert_id")
    note = body_of(AcknowledgementRequest).note
    alert = alerts.AlertStore(services()).acknowledge(alert_id, current_principal().key_id, note)
    return json_response(alerts.alert_view(alert))


@bp.get("/alert-rules")
@requires(OPERATOR)
def get_rules() -> Response:
    svc = services()
    return json_response({"rules": alerts.settings_view(alerts.RuleBook(svc).load(), svc.currencies())})


@bp.put("/alert-rules/<rule>")
@requires(OPERATOR)
@accepts(REGULATOR, body=AlertRuleSettings)
def set_rule(rule: str) -> Response:
    """Replace one rule's settings (every field given); it applies to what is seen from now on."""
    if rule not in alerts.RULES:
        raise ApiProblem(404, "unknown_rule", f"no alert rule {rule[:64]!r}; the rules are {', '.join(alerts.RULES)}")
    svc = services()
    settings = alerts.parse_settings(rule, body_of(AlertRuleSettings), svc.currencies())
    book = alerts.RuleBook(svc)
    book.save(rule, settings)
    return json_response({"rules": alerts.settings_view(book.load(), svc.currencies())})
