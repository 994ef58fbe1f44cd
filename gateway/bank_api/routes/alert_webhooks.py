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
from gateway.bank_api.boundary import (
    REGULATOR,
    Absent,
    Body,
    PageSize,
    Query,
    Rule,
    accepts,
    body_of,
    one_of,
    query_of,
    text,
    worded,
)
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.routes.webhooks import delivery_body, subscription_body
from gateway.bank_api.validation import DEFAULT_PAGE_SIZE, OPAQUE_ID, bad_request, path_id
from gateway.bank_api.webhooks import WebhookError, WebhookStore

bp = Blueprint("alert_webhooks", __name__, url_prefix="/v1")
NOT_FOUND = "the regulator has no webhook with that id"


def _store() -> WebhookStore:
    return WebhookStore(services().db, services().config.webhook_allowed_hosts, services().egress)


# Not WebhookRequest: a model's name is its schema's name, and a bank's webhooks take other events.
class AlertWebhookRequest(Body):
    url: Annotated[
        str, text(2048, example="https://supervisor.example/alerts"), Field(json_schema_extra={"format": "uri"})
    ]
    # Every alert event when left out; null is refused like any other value that is not a list.
    events: Annotated[
        list[Annotated[str, one_of(ALERT_EVENT_TYPES)]],
        Field(default_factory=lambda: list(ALERT_EVENT_TYPES), min_length=1),
        worded(f"must be a non-empty list drawn from {', '.join(ALERT_EVENT_TYPES)}"),
    ]


@bp.post("/webhooks")
@requires(OPERATOR)
@accepts(REGULATOR, body=AlertWebhookRequest)
def subscribe() -> Response:
    """Push every alert raised from now on to a URL; the answer carries the signing secret once."""
    body = body_of(AlertWebhookRequest)
    try:
        created = _store().subscribe(ALERT_SUBSCRIBER, body.url, sorted(set(body.events)))
    except WebhookError as error:
        raise bad_request(str(error)) from error
    answer = {**subscription_body(created.subscription), "secret": created.secret}
    return json_response(answer, 201, {"Location": f"/v1/webhooks/{created.subscription.id}"})


@bp.get("/webhooks")
@requires(OPERATOR)
def list_subscriptions() -> Response:
    return json_response({"webhooks": [subscription_body(row) for row in _store().active(ALERT_SUBSCRIBER)]})


@bp.delete("/webhooks/<webhook_id>")
@requires(OPERATOR)
def unsubscribe(webhook_id: str) -> Response:
    path_id(webhook_id, OPAQUE_ID, "webhook id")
    if not _store().unsubscribe(ALERT_SUBSCRIBER, webhook_id):
        raise ApiProblem(404, "not_found", NOT_FOUND)
    return Response(status=204)


class AlertDeliveryQuery(Query):
    """A page of deliveries: they are paged by delivery id, not by a ledger bookmark."""

    page_size: PageSize = DEFAULT_PAGE_SIZE
    # An empty cursor is malformed, not "the first page": a client that sends one has lost the
    # cursor it was given.
    cursor: Annotated[
        Annotated[str, Field(pattern=OPAQUE_ID, max_length=64, description="next_cursor of the previous page")]
        | Absent,
        Rule(what="pass next_cursor of the previous page as it is"),
    ] = None


@bp.get("/webhooks/<webhook_id>/deliveries")
@requires(OPERATOR)
@accepts(REGULATOR, query=AlertDeliveryQuery)
def list_deliveries(webhook_id: str) -> Response:
    """A page of the webhook's deliveries, newest first."""
    path_id(webhook_id, OPAQUE_ID, "webhook id")
    store = _store()
    if store.get(ALERT_SUBSCRIBER, webhook_id) is None:
        raise ApiProblem(404, "not_found", NOT_FOUND)
    query = query_of(AlertDeliveryQuery)
    rows = store.deliveries(webhook_id, query.page_size + 1, query.cursor)
    more = len(rows) > query.page_size
    rows = rows[: query.page_size]
    return json_response(
        {"deliveries": [delivery_body(row) for row in rows], "next_cursor": rows[-1].id if more and rows else None}
    )
