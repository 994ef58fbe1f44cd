"""The regulator's webhooks: each alert pushed, signed, to URLs its operators register.

The same subscriptions, signatures, retries and address checks as merchants' webhooks
(gateway/bank_api/webhooks.py); the subscriber is the regulator's seat, not an account.
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response
from pydantic import Field

from gateway.bank_api.alerts import ALERT_EVENT_TYPES, ALERT_SUBSCRIBER
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.boundary import REGULATOR, Absent, Body, accepts, body_of, query_of
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.routes.webhooks import (
    DeliveriesQuery,
    EventList,
    WebhookUrl,
    deliveries,
    subscribed,
    subscription_body,
)
from gateway.bank_api.validation import OPAQUE_ID, path_id
from gateway.bank_api.webhooks import WebhookStore

bp = Blueprint("alert_webhooks", __name__, url_prefix="/v1")
NOT_FOUND = "the regulator has no webhook with that id"


def _store() -> WebhookStore:
    return WebhookStore(services().db, services().config.webhook_allowed_hosts, services().egress)


# Not WebhookRequest, a bank's: a model's name is its schema's, and the two take other events.
class AlertWebhookRequest(Body):
    url: Annotated[WebhookUrl, Field(json_schema_extra={"example": "https://supervisor.example/alerts"})]
    events: Annotated[list[str], EventList(ALERT_EVENT_TYPES)] | Absent = None


@bp.post("/webhooks")
@requires(OPERATOR)
@accepts(REGULATOR, body=AlertWebhookRequest)
def subscribe() -> Response:
    """Push every alert raised from now on to a URL; the answer carries the signing secret once."""
    body = body_of(AlertWebhookRequest)
    return subscribed(_store(), ALERT_SUBSCRIBER, body.url, body.events or list(ALERT_EVENT_TYPES))


@bp.get("/webhooks")
@requires(OPERATOR)
def list_subscriptions() -> Response:
    return json_response({"webhooks": [subscription_body(row) for row in _store().active(ALERT_SUBSCRIBER)]})


# The id is named in the path as the document names it (webhook_id): a route's models are matched
# to the document's operation by its path.
@bp.delete("/webhooks/<webhook_id>")
@requires(OPERATOR)
def unsubscribe(webhook_id: str) -> Response:
    path_id(webhook_id, OPAQUE_ID, "webhook id")
    if not _store().unsubscribe(ALERT_SUBSCRIBER, webhook_id):
        raise ApiProblem(404, "not_found", NOT_FOUND)
    return Response(status=204)


@bp.get("/webhooks/<webhook_id>/deliveries")
@requires(OPERATOR)
@accepts(REGULATOR, query=DeliveriesQuery)
def list_deliveries(webhook_id: str) -> Response:
    return deliveries(_store(), ALERT_SUBSCRIBER, webhook_id, NOT_FOUND, query_of(DeliveriesQuery))
