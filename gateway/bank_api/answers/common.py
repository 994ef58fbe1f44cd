"""Answers both gateways give alike: problems, supply, webhooks and their deliveries, disclosures."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from gateway.bank_api import disclosures
from gateway.bank_api.answers import Answer, Money, Timestamp, one_of

# A field an answer may leave out is written as in a request.
from gateway.bank_api.boundary import Absent
from gateway.bank_api.ledger import UNAVAILABLE_REASONS
from gateway.bank_api.representations import PAYMENT_STATUSES


class Problem(Answer):
    type: str
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    code: Annotated[str, Field(description="Stable machine-readable code, e.g. insufficient_funds")]
    request_id: (
        Annotated[str, Field(description="On 500 answers: the id under which the gateway logged the failure")] | Absent
    ) = None


class Unavailable(Problem):
    code: Annotated[str, one_of(reason.code for reason in UNAVAILABLE_REASONS)]
    counterparty: Annotated[str, Field(description="counterparty_unreachable: the other bank's MSP id")] | Absent = None


class TimelineStep(Answer):
    status: str | None
    at: Timestamp | None
    tx_id: str | None = None


class PaymentRecord(Answer):
    """An interbank payment's public record, as every bank's peer holds it."""

    payment_id: str
    status: Annotated[str, Field(description=", ".join(PAYMENT_STATUSES))] | None
    payer_bank: str | None
    payee_bank: str | None
    currency: str | None
    amount: Money | None
    payee_currency: str | None = None
    payee_amount: Money | None = None
    rate: str | None = None
    reason: Annotated[str, Field(description="The payee bank's public reason code when rejected")] | None = None
    created_at: Timestamp | None = None
    cycle_id: str | None = None
    timeline: list[TimelineStep]


class TokenClassSupply(Answer):
    issuer: str | None
    currency: str | None
    supply: Money | None


class Supply(Answer):
    token_classes: list[TokenClassSupply]


class Positions(RootModel[dict[str, dict[str, Money]]]):
    """Net position per bank and currency; positive means the bank is to receive"""

    model_config = ConfigDict(json_schema_extra={"description": __doc__})


class Webhook(Answer):
    id: str
    url: str
    events: list[str]
    created_at: Timestamp | None


class WebhookCreated(Webhook):
    secret: Annotated[str, Field(description="HMAC-SHA256 key for Bank-Api-Signature; shown once")]


class WebhookList(Answer):
    webhooks: list[Webhook]


class Delivery(Answer):
    id: str
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: Annotated[int, Field(ge=0)]
    next_attempt_at: Timestamp | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: Timestamp | None = None
    delivered_at: Timestamp | None = None


class DeliveryPage(Answer):
    deliveries: list[Delivery]
    next_cursor: str | None


class Status(Answer):
    status: str
    bank: str | Absent = None
    checks: Annotated[dict[str, str], Field(description="What each check found")] | Absent = None


class DisclosureAnswer(Answer):
    status: Annotated[str, one_of(disclosures.ANSWERS)] | None
    at: Timestamp | None
    tx_id: Annotated[str, Field(description="The bank's transaction that answered")] | None
    reason: Annotated[str, Field(description="Why the bank refused (public)")] | None


class DisclosureRequest(Answer):
    request_id: str | None
    payment_id: str | None
    payer_bank: str | None
    payee_bank: str | None
    legal_basis: str | None
    requested_by: str | None
    requested_at: Timestamp | None = None
    answers: dict[str, DisclosureAnswer]


class DisclosureRequestList(Answer):
    requests: list[DisclosureRequest]


class CycleConfirmation(Answer):
    confirmed: bool
    external_ref: str | None
    at: Timestamp | None


class SettlementCycle(Answer):
    cycle_id: str | None
    status: str | None
    opened_by: str | None = None
    opened_at: Timestamp | None = None
    settled_at: Timestamp | None = None
    banks: list[str]
    positions: Positions
    payments: Annotated[int, Field(ge=0)]
    confirmations: Annotated[dict[str, CycleConfirmation], Field(description="Each bank's leg of the cycle")]


# Published in both documents.
PUBLISHED: tuple[type[BaseModel], ...] = (
    Problem,
    Unavailable,
    TimelineStep,
    Supply,
    Positions,
    Webhook,
    WebhookCreated,
    WebhookList,
    Delivery,
    DeliveryPage,
    Status,
    DisclosureAnswer,
    DisclosureRequest,
    DisclosureRequestList,
)
