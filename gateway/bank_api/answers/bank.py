"""A bank gateway's answers (the bank document, openapi.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from gateway.bank_api import standing_orders as so
from gateway.bank_api.answers import Answer, Money, Timestamp, one_of
from gateway.bank_api.answers.common import PaymentRecord, Positions, Problem, SettlementCycle, TimelineStep

# A field an answer may leave out is written as in a request.
from gateway.bank_api.boundary import Absent
from gateway.bank_api.readiness import READINESS_CODES


class NotReady(Problem):
    code: Annotated[str, one_of(READINESS_CODES)]
    banks: (
        Annotated[list[str], Field(description="counterparty_unreachable: the banks the peer does not see")] | Absent
    ) = None
    checks: (
        Annotated[
            dict[str, str],
            Field(description="Each check and what it found (database, peer, chaincode, channel, ledger)"),
        ]
        | Absent
    ) = None


class Me(Answer):
    role: Literal["operator", "merchant", "attestor", "treasurer"]
    key_id: str
    account_id: Annotated[str, Field(description="The merchant's account (merchant keys)")] | None
    group_id: Annotated[str, Field(description="The treasurer's group (treasurer keys only)")] | Absent = None
    attestor_id: Annotated[str, Field(description="The attestor (attestor keys only)")] | Absent = None
    bank: str


class Limits(Answer):
    per_transaction: Money | None
    daily: Money | None


class Account(Answer):
    account_id: str
    holder: str | None = None
    jurisdiction: str | None = None
    kyc_ref: str | None = None
    status: Annotated[str, Field(description="active, frozen or closed")] | None
    balances: dict[str, Money]
    limits: dict[str, Limits]


class AccountOpened(Answer):
    account: Account
    api_key: (
        Annotated[str, Field(description="The merchant's API key, shown once (null on an idempotent replay)")] | None
    )
    api_key_id: str


class HistoryEntry(Answer):
    tx_id: str | None
    timestamp: Timestamp | None = None
    kind: str | None
    currency: str | None
    amount: Money | None
    reference: str | None = None
    payment_id: str | None = None


class HistoryPage(Answer):
    entries: list[HistoryEntry]
    next_cursor: str | None


class ApiKeyCreated(Answer):
    api_key: str
    api_key_id: str
    account_id: str


class ApiKeySummary(Answer):
    api_key_id: str
    label: str | None = None
    created_at: Timestamp | None
    revoked_at: Timestamp | None


class ApiKeyList(Answer):
    api_keys: list[ApiKeySummary]


class Payment(PaymentRecord):
    """The public record, with the private details for the two banks' own keys."""

    payer_account: Annotated[str, Field(description="Only for the two banks' own keys")] | None = None
    payee_account: str | None = None
    remittance: str | None = None


class PaymentPage(Answer):
    payments: list[Payment]
    next_cursor: str | None


class IssueResult(Answer):
    issued: Annotated[bool, Field(description="false when this deposit_ref was already issued")]
    account_id: str
    currency: str
    amount: Money
    deposit_ref: str


class RedeemResult(Answer):
    redeemed: bool
    account_id: str
    currency: str
    amount: Money
    withdrawal_ref: str


class BankReference(Answer):
    msp_id: str | None
    name: str | None = None
    jurisdiction: str | None = None
    currencies: list[str]
    status: Annotated[
        Literal["active", "suspended"],
        Field(description="active, or suspended by the regulator (no new payment to or from it)"),
    ]
    status_reason: Annotated[str, Field(description="The regulator's reason while suspended")] | None = None


class ReferenceData(Answer):
    bank: str
    currencies: dict[str, int]
    banks: list[BankReference]
    fx_rates: dict[str, str]


class FxQuote(Answer):
    currency: Annotated[
        str,
        Field(
            description="ISO 4217 code",
            pattern="^[A-Z]{3}$",
            max_length=3,
            min_length=3,
            json_schema_extra={"example": "USD"},
        ),
    ]
    amount: Money
    payee_currency: Annotated[
        str,
        Field(
            description="ISO 4217 code",
            pattern="^[A-Z]{3}$",
            max_length=3,
            min_length=3,
            json_schema_extra={"example": "USD"},
        ),
    ]
    payee_amount: Money
    rate: Annotated[
        str,
        Field(description="Units of payee_currency one unit of currency buys", json_schema_extra={"example": "7.8"}),
    ]


class CycleList(Answer):
    cycles: list[SettlementCycle]


class CurrentPositions(Answer):
    bank: str
    payments: Annotated[int, Field(ge=0)]
    positions: Positions


class EscrowRelease(Answer):
    release_ref: str | None = None
    amount: Money | None = None
    by: Annotated[str, Field(description="buyer, attestor, both or expiry")] | None = None
    at: Timestamp | None = None
    payment_id: Annotated[str, Field(description="The interbank payment, when the payee banks elsewhere")] | None = None


class Escrow(Answer):
    escrow_id: str
    status: Annotated[str, Field(description="open, released or refunded")] | None
    payer_bank: str | None = None
    payer_account: str | None = None
    payee_bank: str | None = None
    payee_account: str | None = None
    currency: str | None
    amount: Money | None
    released: Money | None = None
    refunded: Money | None = None
    available: Money | None
    release_by: str | None = None
    attestor: str | None = None
    expires_at: Timestamp | None = None
    on_expiry: str | None = None
    remittance: str | None = None
    releases: list[EscrowRelease]
    pending_approvals: list[dict[str, Any]] | Absent = None
    created_at: Timestamp | None = None
    closed_at: Timestamp | None = None
    payment_id: Annotated[str, Field(description="On a release: the interbank payment it started")] | None = None
    awaiting: Annotated[str, Field(description="On a release needing both: who has still to approve")] | None = None


class AttestorKeyCreated(Answer):
    attestor_id: str
    api_key: str
    api_key_id: str


class Pvp(Answer):
    pvp_id: str
    status: Annotated[str, Field(description="proposed, locked, settled, refused or refunded")] | None
    reason: str | None = None
    proposer_bank: str | None = None
    acceptor_bank: str | None = None
    currency: str | None
    amount: Money | None
    counter_currency: str | None
    counter_amount: Money | None
    rate: str | None = None
    expires_at: Timestamp | None = None
    proposer_leg_delivered: bool | Absent = None
    acceptor_leg_delivered: bool | Absent = None
    created_at: Timestamp | None = None
    timeline: list[TimelineStep]
    payer_account: Annotated[str, Field(description="Only for the two banks' own keys")] | None = None
    payee_account: str | None = None
    counter_payer_account: str | None = None
    counter_payee_account: str | None = None


class GroupAccount(Answer):
    bank: str
    account_id: str


class Group(Answer):
    group_id: str
    name: str
    accounts: list[GroupAccount]
    created_at: Timestamp | None = None


class TreasurerKeyCreated(Answer):
    group_id: str
    api_key: str
    api_key_id: str


class GroupAccountBalances(Answer):
    account_id: str
    status: str | None = None
    balances: dict[str, Money]


class GroupBalances(Answer):
    group_id: str
    bank: str
    accounts: list[GroupAccountBalances]
    totals: dict[str, Money]
    elsewhere: list[GroupAccount]


class StandingOrder(Answer):
    order_id: str
    group_id: str
    kind: Annotated[str, one_of(so.KINDS)]
    status: Annotated[str, one_of(so.ORDER_STATUSES)]
    from_account: str | Absent = None
    to_bank: str | Absent = None
    to_account: str | Absent = None
    currency: str
    amount: Money | None = None
    target_balance: Money | None = None
    top_up: bool | None = None
    on_credit: bool | None = None
    every: str | None
    start_at: Timestamp | None = None
    next_due_at: Timestamp | None
    remittance: str | None = None
    created_at: Timestamp | None = None


class StandingOrderList(Answer):
    standing_orders: list[StandingOrder]


class StandingOrderRun(Answer):
    run_id: str
    order_id: str
    due_at: Timestamp | None
    trigger: Literal["schedule", "credit"]
    status: Annotated[str, one_of(so.RUN_STATUSES)]
    reason: Annotated[str, Field(description="Why a failed run was refused: the contract's code")] | None
    amount: Money | None
    currency: str | Absent = None
    payer_account: str | None = None
    payee_bank: str | None = None
    payee_account: str | None = None
    payment_id: Annotated[str, Field(description="The payment the run made (/v1/payments/{id})")] | None
    attempts: int | Absent = None
    last_error: Annotated[str, Field(description="Why a pending run has not been paid yet")] | None = None
    updated_at: Timestamp | None = None


class StandingOrderRuns(Answer):
    order_id: str
    runs: list[StandingOrderRun]


PUBLISHED: tuple[type[BaseModel], ...] = (
    NotReady,
    Me,
    Limits,
    Account,
    AccountOpened,
    HistoryEntry,
    HistoryPage,
    ApiKeyCreated,
    ApiKeyList,
    Payment,
    PaymentPage,
    IssueResult,
    RedeemResult,
    ReferenceData,
    FxQuote,
    SettlementCycle,
    CycleList,
    CurrentPositions,
    EscrowRelease,
    Escrow,
    AttestorKeyCreated,
    Pvp,
    GroupAccount,
    Group,
    TreasurerKeyCreated,
    GroupBalances,
    StandingOrder,
    StandingOrderList,
    StandingOrderRun,
    StandingOrderRuns,
)
