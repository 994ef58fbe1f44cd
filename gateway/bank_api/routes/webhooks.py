"""Webhook subscriptions of merchants (their account) and group treasurers (their group), and their deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from flask import Blueprint, Response
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from gateway.bank_api import representations
from gateway.bank_api import validation as v
from gateway.bank_api.app import services
from gateway.bank_api.auth import MERCHANT, TREASURER, current_principal, requires
from gateway.bank_api.boundary import (
    BANK,
    Absent,
    Body,
    PageSize,
    Query,
    Rule,
    accepts,
    body_of,
    query_of,
    text,
)
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import json_response
from gateway.bank_api.storage.models import WebhookDelivery, WebhookSubscription
from gateway.bank_api.validation import OPAQUE_ID, bad_request, path_id
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


# The fields of a subscription, for the merchants' webhooks here and the regulator's alert webhooks,
# which differ only in the events they offer.
WebhookUrl = Annotated[
    str, text(2048, example="https://merchant.example/hooks"), Field(json_schema_extra={"format": "uri"})
]


@dataclass(frozen=True)
class EventList(GroupedMetadata):
    """``Annotated[list[str], EventList(types)]``: a non-empty list drawn from ``types``.

    Checked as a whole, so the refusal lists the choices; duplicates are harmless (subscribed once).
    """

    event_types: tuple[str, ...]

    def __iter__(self) -> Iterator[Any]:
        yield Field(
            description="Default: every event",
            json_schema_extra={"minItems": 1, "items": {"type": "string", "enum": list(self.event_types)}},
        )
        yield AfterValidator(self._check)

    def _check(self, value: list[str]) -> list[str]:
        if not value or any(item not in self.event_types for item in value):
            raise PydanticCustomError(
                "event_list", "must be a non-empty list drawn from {options}", {"options": ", ".join(self.event_types)}
            )
        return value


class WebhookRequest(Body):
    url: WebhookUrl
    events: Annotated[list[str], EventList(EVENT_TYPES)] | Absent = None


@bp.post("/webhooks")
@requires(MERCHANT, TREASURER)
@accepts(BANK, body=WebhookRequest)
def subscribe() -> Response:
    body = body_of(WebhookRequest)
    return subscribed(_store(), _account(), body.url, body.events or list(EVENT_TYPES))


def subscribed(store: WebhookStore, owner: str, url: str, events: list[str]) -> Response:
    """Register ``url`` for ``owner``; the answer shows the signing secret, once."""
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


# The id is named in the path as the document names it (webhook_id): a route's models are matched
# to the document's operation by its path.
@bp.delete("/webhooks/<webhook_id>")
@requires(MERCHANT, TREASURER)
def unsubscribe(webhook_id: str) -> Response:
    path_id(webhook_id, OPAQUE_ID, "webhook id")
    if not _store().unsubscribe(_account(), webhook_id):
        raise ApiProblem(404, "not_found", "this account has no webhook with that id")
    return Response(status=204)


class DeliveriesQuery(Query):
    """A page of deliveries: paged by delivery id, not by a ledger bookmark."""

    page_size: PageSize = v.DEFAULT_PAGE_SIZE
    # An empty cursor is malformed, not "the first page": a client that sends one has lost the
    # cursor it was given.
    cursor: Annotated[
        str,
        Field(pattern=OPAQUE_ID, max_length=64, description="next_cursor of the previous page"),
        Rule(what="pass next_cursor of the previous page as it is"),
    ] | Absent = None


@bp.get("/webhooks/<webhook_id>/deliveries")
@requires(MERCHANT, TREASURER)
@accepts(BANK, query=DeliveriesQuery)
def list_deliveries(webhook_id: str) -> Response:
    return deliveries(
        _store(), _account(), webhook_id, "this account has no webhook with that id", query_of(DeliveriesQuery)
    )


def deliveries(
    store: WebhookStore, owner: str, subscription_id: str, not_found: str, page: DeliveriesQuery
) -> Response:
    """A page of one subscription's deliveries, newest first, if ``owner`` has that subscription."""
    path_id(subscription_id, OPAQUE_ID, "webhook id")
    if store.get(owner, subscription_id) is None:
        raise ApiProblem(404, "not_found", not_found)
    size, before = page.page_size, page.cursor
    rows = store.deliveries(subscription_id, size + 1, before)
    more = len(rows) > size
    rows = rows[:size]
    return json_response(
        {
            "deliveries": [delivery_body(row) for row in rows],
            "next_cursor": rows[-1].id if more and rows else None,
        }
    )
