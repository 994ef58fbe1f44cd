"""The regulator's webhooks: each alert pushed, signed, to URLs its operators register.

The same subscriptions, signatures, retries and address checks as merchants' webhooks
(gateway/bank_api/webhooks.py); the subscriber is the regulator's seat, not an account.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from gateway.bank_api.alerts import ALERT_EVENT_TYPES, ALERT_SUBSCRIBER
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.routes.webhooks import delivery_body, subscription_body
from gateway.bank_api.validation import OPAQUE_ID, Fields, bad_request, json_object, page_size, path_id
from gateway.bank_api.webhooks import WebhookError, WebhookStore

bp = Blueprint("alert_webhooks", __name__, url_prefix="/v1")


def _store() -> WebhookStore:
    return WebhookStore(services().db, services().config.webhook_allowed_hosts, services().egress)


@bp.post("/webhooks")
@requires(OPERATOR)
def subscribe() -> Response:
    """Push every alert raised from now on to a URL; the answer carries the signing secret once."""
    fields = Fields(json_object(), ("url", "events"))
    url = fields.required_text("url", max_length=2048)
    events = fields.choices("events", ALERT_EVENT_TYPES, default=list(ALERT_EVENT_TYPES))
    try:
        created = _store().subscribe(ALERT_SUBSCRIBER, url, sorted(set(events)))
    except WebhookError as error:
        raise bad_request(str(error)) from error
    body = {**subscription_body(created.subscription), "secret": created.secret}
    return json_response(body, 201, {"Location": f"/v1/webhooks/{created.subscription.id}"})


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
    path_id(subscription_id, OPAQUE_ID, "webhook id")
    store = _store()
    if store.get(ALERT_SUBSCRIBER, subscription_id) is None:
        raise ApiProblem(404, "not_found", "the regulator has no webhook with that id")
    size = page_size()
    before = request.args.get("cursor") or None
    if before is not None:
        path_id(before, OPAQUE_ID, "cursor")
    rows = store.deliveries(subscription_id, size + 1, before)
    more = len(rows) > size
    rows = rows[:size]
    return json_response(
        {"deliveries": [delivery_body(row) for row in rows], "next_cursor": rows[-1].id if more and rows else None}
    )
