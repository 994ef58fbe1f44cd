"""The gateway's own tables (the ledger holds the money; these hold the gateway's state).

Changes to these classes need a migration in ``storage/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}  # noqa: RUF012


class ApiKey(Base):
    """A bearer key. Only a hash of the secret is kept; the key is shown once when made."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # "operator" or "merchant"
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class IdempotencyRecord(Base):
    """One idempotent request: claimed while in flight, then its response, replayed on retries."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "idempotency_key", name="uq_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(96), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)  # "in_flight:<token>" or "done"
    lease_until: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_content_type: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class EventCheckpoint(Base):
    """Where an event follower has got to: the next block to read and the last tx handled in it."""

    __tablename__ = "event_checkpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    transaction_id: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class WebhookSubscription(Base):
    """A merchant's URL to be told about its payments. The secret signs every delivery."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    # HMAC needs the secret itself, so it is kept as is; the database must be protected like a key store.
    secret: Mapped[str] = mapped_column(String(128), nullable=False)
    event_types: Mapped[str] = mapped_column(String(256), nullable=False)  # comma-separated
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebhookDelivery(Base):
    """One event to one subscription; retried with backoff until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id", name="uq_delivery_subscription_event"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_id: Mapped[str] = mapped_column(String(160), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class InternalTransfer(Base):
    """A merchant's payment to another account of this bank (one ledger ``Transfer``).

    The ledger keeps the money and the history entries; this row lets the payer (and the
    payee) look the payment up by id like an interbank one. It lives only in the bank's own
    database, next to the books it describes.
    """

    __tablename__ = "internal_transfers"

    transfer_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    payer_account: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    payee_account: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    remittance: Mapped[str | None] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class PaymentTask(Base):
    """One thing the gateway must do for a payment (complete, refund, notify), until it is done.

    The follower writes the row in the same transaction as the checkpoint that passes the event,
    so the event is neither lost (the row outlives a crash) nor acted on twice (``task_key`` is
    unique). Workers take due rows one by one, each on its own, so a stuck payment holds up
    nobody else. ``claimed_until`` is a lease: a worker that died leaves the row to be taken over.
    """

    __tablename__ = "payment_tasks"
    __table_args__ = (
        UniqueConstraint("task_key", name="uq_payment_tasks_task_key"),
        # The dispatcher's question, several times a second: which pending tasks are due? Done
        # tasks are kept for days, so an index on the time alone would walk all of them.
        Index("ix_payment_tasks_state_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "<action>:<payment id>", or "notify:<event name>:<payment id>" for webhooks
    task_key: Mapped[str] = mapped_column(String(160), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # complete, refund, notify
    payment_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_name: Mapped[str | None] = mapped_column(String(32))
    # The other bank, as the event named it: for ``complete``, the payer bank whose peer holds the
    # details (decision 0036), so the worker need not look the payment up first.
    counterparty: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # pending, done, failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(256))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class AlertRule(Base):
    """The settings of one of the regulator's alert rules (its gateway only), as JSON in minor units."""

    __tablename__ = "alert_rules"

    rule: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class Alert(Base):
    """An alert the regulator's monitor raised, with its evidence; ``dedup_key`` makes it one of a kind.

    Raising is an insert that the unique key turns into a no-op the second time, so an event
    handled again after a restart never raises the same alert twice.
    """

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    dedup_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    subject: Mapped[str] = mapped_column(String(256), nullable=False)
    evidence: Mapped[str] = mapped_column(Text, nullable=False)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    acknowledgement_note: Mapped[str | None] = mapped_column(String(200))


class ObservedPayment(Base):
    """An interbank payment's public figures as the regulator's monitor saw them (for velocity rules)."""

    __tablename__ = "observed_payments"
    __table_args__ = (Index("ix_observed_payments_pair_time", "payer_bank", "payee_bank", "created_at"),)

    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payer_bank: Mapped[str] = mapped_column(String(64), nullable=False)
    payee_bank: Mapped[str] = mapped_column(String(64), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class SupplyMovement(Base):
    """One supply change as its transaction's event reported it (the regulator's monitor keeps them).

    The history of every token class's supply is the running sum of these; the supply the ledger
    holds is checked against the same sum (the ``supply_drift`` rule).
    """

    __tablename__ = "supply_movements"
    __table_args__ = (Index("ix_supply_movements_class_time", "issuer", "currency", "at"),)

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(64), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    delta: Mapped[int] = mapped_column(BigInteger, nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DisclosureCheck(Base):
    """The regulator's check of what a bank disclosed: verified or mismatch, first found when."""

    __tablename__ = "disclosure_checks"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bank: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[str] = mapped_column(String(16), nullable=False)
    details_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class CorporateGroup(Base):
    """A corporate group: entities' accounts (here and at other banks) under one id and one treasurer."""

    __tablename__ = "corporate_groups"

    group_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class GroupAccount(Base):
    """One account of a group. Accounts at other banks are named, not checked: only their bank could."""

    __tablename__ = "group_accounts"
    __table_args__ = (UniqueConstraint("group_id", "bank", "account_id", name="uq_group_accounts_member"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(
        String(48), ForeignKey("corporate_groups.group_id", ondelete="CASCADE"), nullable=False, index=True
    )
    bank: Mapped[str] = mapped_column(String(64), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class StandingOrder(Base):
    """A scheduled payment or a sweep of a group's account, run by the gateway's sweeper.

    ``next_due_at`` moves on in the same transaction that claims a run (a ``StandingOrderRun``
    row), so a run is claimed once whatever happens to the payment it makes.
    """

    __tablename__ = "standing_orders"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        String(48), ForeignKey("corporate_groups.group_id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # payment, sweep
    # payment: from -> to. sweep: ``from_account`` is the swept account, ``to_*`` the header account.
    from_account: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    to_bank: Mapped[str] = mapped_column(String(64), nullable=False)
    to_account: Mapped[str] = mapped_column(String(64), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount: Mapped[int | None] = mapped_column(BigInteger)  # payment
    target_balance: Mapped[int | None] = mapped_column(BigInteger)  # sweep
    top_up: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # sweep: 1 = also fill from header
    on_credit: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # sweep: also when paid
    every: Mapped[str | None] = mapped_column(String(8))  # None (once), day, week, month
    start_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    next_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    runs_claimed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # active, cancelled, finished
    remittance: Mapped[str | None] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class StandingOrderRun(Base):
    """One run of a standing order: claimed (``pending``) before any money moves, then paid or failed.

    ``run_id`` derives from (order, due time) or (order, incoming payment), and the payment's
    idempotency key from ``run_id``: a run resumed after a restart repeats the same ledger call,
    which the ledger answers with the first call's payment.
    """

    __tablename__ = "standing_order_runs"
    __table_args__ = (Index("ix_standing_order_runs_order_due", "order_id", "due_at"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("standing_orders.order_id", ondelete="CASCADE"), nullable=False
    )
    due_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # schedule, credit
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # pending, paid, failed, nothing_due
    reason: Mapped[str | None] = mapped_column(String(64))
    # Fixed before the ledger is called, so that a resumed run makes the same payment.
    amount: Mapped[int | None] = mapped_column(BigInteger)
    payer_account: Mapped[str | None] = mapped_column(String(64))
    payee_bank: Mapped[str | None] = mapped_column(String(64))
    payee_account: Mapped[str | None] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(80))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
