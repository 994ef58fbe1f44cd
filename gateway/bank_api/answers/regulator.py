"""The regulator gateway's answers (the regulator document, regulator_openapi.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.bank_api import alerts, disclosures, supply_watch

# The settings are answered as they are sent: the request's model describes both.
from gateway.bank_api.alerts import AlertRuleSettings
from gateway.bank_api.answers import Answer, Money, Timestamp, common, one_of
from gateway.bank_api.answers.common import DisclosureRequest, Positions

# A field an answer may leave out is written as in a request.


class Me(Answer):
    role: Literal["operator"]
    key_id: str
    account_id: str | None
    bank: str


class Payment(common.PaymentRecord):
    """The public record, with what the regulator checks a disclosure and a corridor cap against."""

    model_config = ConfigDict(extra="forbid")

    corridor_version: (
        Annotated[int, Field(description="The corridor policy version the payment was initiated under")] | None
    ) = None
    details_hash: (
        Annotated[str, Field(description="Salted SHA-256 of the private details, which only the two banks hold")] | None
    ) = None


class PaymentPage(Answer):
    payments: list[Payment]
    next_cursor: str | None


class SettlementCycle(common.SettlementCycle):
    """A settlement cycle, with the banks that have not confirmed their leg yet."""

    pending_banks: Annotated[list[str], Field(description="Banks of the cycle that have not confirmed their leg yet")]


class CycleList(Answer):
    cycles: list[SettlementCycle]


class NetPositions(Answer):
    payments: Annotated[int, Field(ge=0)]
    positions: Positions


class BankReference(Answer):
    msp_id: str | None
    name: str | None = None
    jurisdiction: str | None = None
    currencies: list[str]
    status: Literal["active", "suspended"]
    status_reason: str | None = None
    status_since: Timestamp | None = None


class ReferenceData(Answer):
    regulator: str | None
    currencies: dict[str, int]
    banks: list[BankReference]
    payment_timeout_seconds: int | None = None


class CorridorRule(Answer):
    currency: str | None
    cross_border_only: bool
    allowed: (
        Annotated[
            list[Annotated[list[str], Field(min_length=2, max_length=2)]],
            Field(description="Pairs of jurisdictions between which the currency may move (either way)"),
        ]
        | None
    )


class CorridorCap(Answer):
    currency: str | None
    # "from" is a Python keyword: the field is named from_ and answered as "from".
    from_: Annotated[str, Field(description="Jurisdiction of the payer bank")] | None = Field(alias="from")
    to: Annotated[str, Field(description="Jurisdiction of the payee bank")] | None
    per_payment: Money | None
    daily: Money | None


class CorridorPolicy(Answer):
    version: int | None
    rules: list[CorridorRule]
    caps: list[CorridorCap]
    note: str | None
    changed_at: Timestamp | None
    tx_id: Annotated[str, Field(description="The regulator-endorsed transaction that set this version")] | None


class CorridorBankUse(Answer):
    bank: str
    sent: Money
    payments: Annotated[int, Field(ge=0)]
    remaining: Money | None


class CorridorUse(Answer):
    currency: str | None
    from_: str | None = Field(alias="from")
    to: str | None
    per_payment: Money | None
    daily: Money | None
    banks: list[CorridorBankUse]


class CorridorUsage(Answer):
    day: Annotated[str, Field(description="UTC day")]
    corridors: list[CorridorUse]


class Alert(Answer):
    alert_id: str
    rule: Annotated[str, one_of(alerts.RULES)]
    subject: str
    state: Literal["open", "acknowledged"]
    raised_at: Timestamp | None
    evidence: Annotated[
        dict[str, Any], Field(description="What the rule saw: payment ids, banks, figures, the limit it crossed")
    ]
    acknowledged_at: Timestamp | None
    acknowledged_by: Annotated[str, Field(description="Key id of the operator who acknowledged it")] | None
    note: str | None


class AlertList(Answer):
    alerts: list[Alert]


class AlertRules(Answer):
    rules: dict[str, AlertRuleSettings]


class SupplyPoint(Answer):
    "One bucket with changes: its start, the supply at its end, what went up and down"

    at: Timestamp | None
    supply: Money
    increase: Money
    decrease: Money
    changes: Annotated[int, Field(ge=1)]


class SupplyHistory(Answer):
    issuer: str
    currency: str
    interval: Annotated[str, one_of(supply_watch.INTERVALS)]
    from_: Timestamp | None = Field(alias="from")
    to: Timestamp | None
    opening_supply: Money
    points: list[SupplyPoint]


class CorridorPolicyHistory(Answer):
    versions: list[CorridorPolicy]


class DisclosedDetails(Answer):
    payer_account: str | None = None
    payer_jurisdiction: str | None = None
    payee_account: str | None = None
    remittance: str | None = None


class DisclosureDelivery(Answer):
    check: Annotated[str, one_of((disclosures.VERIFIED, disclosures.MISMATCH, disclosures.AWAITING_DATA))]
    checked_at: Timestamp | None
    details_hash: str | None = None
    details: DisclosedDetails | None


class CheckedDisclosure(DisclosureRequest):
    expected_details_hash: Annotated[str, Field(description="From the payment's public record")] | None
    deliveries: Annotated[
        dict[str, DisclosureDelivery],
        Field(description="Per bank that disclosed: its details and the check against the hash"),
    ]


PUBLISHED: tuple[type[BaseModel], ...] = (
    Me,
    Payment,
    PaymentPage,
    SettlementCycle,
    CycleList,
    NetPositions,
    ReferenceData,
    CorridorRule,
    CorridorCap,
    CorridorPolicy,
    CorridorUsage,
    Alert,
    AlertList,
    AlertRules,
    SupplyPoint,
    SupplyHistory,
    CorridorPolicyHistory,
    CheckedDisclosure,
)
