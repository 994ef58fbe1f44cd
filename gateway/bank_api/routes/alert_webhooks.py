"""The regulator's webhooks: each alert pushed, signed, to URLs its operators register.

The same subscriptions, signatures, retries and address checks as merchants' webhooks
(gateway/bank_api/webhooks.py); the subscriber is the regulator's seat, not an account.
"""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.bank_api.alerts import ALERT_EVENT_TYPES, ALERT_SUBSCRIBER
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.routes.webhooks import deliveries_page, subscription_body, subscription_created
from gateway.bank_api.validation import OPAQUE_ID, path_id
from gateway.bank_api.webhooks import WebhookStore

bp = Blueprint("alert_webhooks", __name__, url_prefix="/v1")


def _store() -> WebhookStore:
    return WebhookStore(services().db, services().config.webhook_allowed_hosts, services().egress)


@bp.post("/webhooks")
@requires(OPERATOR)
def subscribe() -> Response:
    """Push every alert raised from now on to a URL; the answer carries the signing secret once."""
    return subscription_created(_store(), ALERT_SUBSCRIBER, ALERT_EVENT_TYPES)


@bp.get("/webhooks")
@requires(OPERATOR)
def list_subscriptions() -> Response:
    return json_response({"webhooks": [subscription_body(row) for row in _store().active(ALERT_SUBSCRIBER)]})


@bp.delete("/webhooks/<subscription_id>")
@requires(OPERATOR)
def unsubscribe(subscription_id: str) -> Response:
    path_id(subscription_id, OPAQUE_ID, "webhook id")
    if not _store().unsubscribe(ALERT_SUBSCRIBER, subscription_id):
        raise ApiProblem(404, "not_found", "the regulator has no webhook with that id")
    return Response(status=204)


@bp.get("/webhooks/<subscription_id>/deliveries")
@requires(OPERATOR)
def list_deliveries(subscription_id: str) -> Response:
    return deliveries_page(_store(), ALERT_SUBSCRIBER, subscription_id, "the regulator has no webhook with that id")
