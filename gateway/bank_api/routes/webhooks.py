"""Webhook subscriptions of merchants (their account) and group treasurers (their group), and their deliveries."""

from __future__ import annotations

from flask import Blueprint, Response, request

from gateway.bank_api import representations
from gateway.bank_api.app import services
from gateway.bank_api.auth import MERCHANT, TREASURER, current_principal, requires
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.storage.models import WebhookDelivery, WebhookSubscription
from gateway.bank_api.validation import OPAQUE_ID, Fields, bad_request, json_object, matches, page_size, path_id
from gateway.bank_api.webhooks import EVENT_TYPES, WebhookError, WebhookStore

bp = Blueprint("webhooks", __name__, url_prefix="/v1")


def _store() -> WebhookStore:
    return WebhookStore(services().db, services().config.webhook_allowed_hosts, services().egress)


def _account() -> str:
    owner = current_principal().webhook_owner
    assert owner is not None
    return owner


def subscription_body(row: WebhookSubscription) -> dict[str, object]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.event_types.split(","),
        "created_at": representations.timestamp(row.created_at),
    }


def delivery_body(row: WebhookDelivery) -> dict[str, object]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": representations.timestamp(row.next_attempt_at) if row.state == "pending" else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": representations.timestamp(row.created_at),
        "delivered_at": representations.timestamp(row.delivered_at),
    }


@bp.post("/webhooks")
@requires(MERCHANT, TREASURER)
def subscribe() -> Response:
    return subscription_created(_store(), _account(), EVENT_TYPES)


def subscription_created(store: WebhookStore, owner: str, event_types: tuple[str, ...]) -> Response:
    """Register the body's URL for ``owner``; the answer shows the signing secret, once."""
    fields = Fields(json_object(), ("url", "events"))
    url = fields.required_text("url", max_length=2048)
    events = fields.choices("events", event_types, default=list(event_types))
    try:
        created = store.subscribe(owner, url, sorted(set(events)))
    except WebhookError as error:
        raise bad_request(str(error)) from error
    body = {**subscription_body(created.subscription), "secret": created.secret}
    return json_response(body, 201, {"Location": f"/v1/webhooks/{created.subscription.id}"})


@bp.get("/webhooks")
@requires(MERCHANT, TREASURER)
def list_subscriptions() -> Response:
    return json_response({"webhooks": [subscription_body(row) for row in _store().active(_account())]})


@bp.delete("/webhooks/<subscription_id>")
@requires(MERCHANT, TREASURER)
def unsubscribe(subscription_id: str) -> Response:
    path_id(subscription_id, OPAQUE_ID, "webhook id")
    if not _store().unsubscribe(_account(), subscription_id):
        raise ApiProblem(404, "not_found", "this account has no webhook with that id")
    return Response(status=204)


@bp.get("/webhooks/<subscription_id>/deliveries")
@requires(MERCHANT, TREASURER)
def list_deliveries(subscription_id: str) -> Response:
    return deliveries_page(_store(), _account(), subscription_id, "this account has no webhook with that id")


def deliveries_page(store: WebhookStore, owner: str, subscription_id: str, not_found: str) -> Response:
    """A page of one subscription's deliveries, newest first, if ``owner`` has that subscription."""
    path_id(subscription_id, OPAQUE_ID, "webhook id")
    if store.get(owner, subscription_id) is None:
        raise ApiProblem(404, "not_found", not_found)
    size = page_size()
    # An empty cursor is malformed, not "the first page": the schema says so, and a client that
    # sends one has lost the cursor it was given.
    before = request.args.get("cursor")
    if before is not None and not matches(OPAQUE_ID, before):
        raise bad_request("cursor is malformed: pass next_cursor of the previous page as it is")
    rows = store.deliveries(subscription_id, size + 1, before)
    more = len(rows) > size
    rows = rows[:size]
    return json_response(
        {
            "deliveries": [delivery_body(row) for row in rows],
            "next_cursor": rows[-1].id if more and rows else None,
        }
    )
