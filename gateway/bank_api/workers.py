"""Background work of a gateway: the incoming-payment follower, the sweeper, the webhook sender.

The follower reads the chaincode's events from a checkpoint kept in the gateway database:

- ``PaymentInitiated`` to this bank: complete it (credit the payee), or reject it with the
  contract's reason code when the payee cannot be credited (unknown, frozen or closed
  account, limits, corridor), so that the payer's bank refunds its customer;
- ``PaymentRejected`` of a payment this bank sent: refund the payer;
- completions and refunds: queue webhooks for the merchants concerned.

Every action is idempotent at the contract (a payment moves on from ``initiated`` once),
so the rule is simple: handle the event, then checkpoint. A crash in between repeats the
handling, which the contract turns into a no-op; nothing is missed because the checkpoint
never runs ahead of the handling. The checkpoint is written at most once per
``CHECKPOINT_INTERVAL`` (and when the stream ends): a crash repeats at most that much
handling, and the gateway no longer pays a database commit for every event on the channel.
Events this bank has nothing to do for (another bank's transfers, payments between two other
banks) are passed over on the stream's thread, without a hand-off to the pool. Webhook rows
are unique per subscription and event, so merchants hear of each payment once even when an
event is handled twice.

The sweeper is the safety net for what events alone cannot do: it refunds this bank's
payments that the payee bank never answered (after the timeout), retries incoming ones a
failed event handling left behind, and refreshes the pending-incoming gauge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.bank_api import representations
from gateway.bank_api.ledger import (
    JSON,
    ContractRejected,
    LedgerError,
    LedgerEvent,
    LedgerFailure,
    LedgerUnavailable,
)
from gateway.bank_api.storage.models import EventCheckpoint, WebhookSubscription, utcnow
from gateway.bank_api.webhooks import WebhookSender, enqueue

if TYPE_CHECKING:
    from gateway.bank_api.app import Services

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "deposit_token"

# Contract refusals of CompletePayment that mean "this payee cannot be credited": reject with the code.
REJECTION_CODES = frozenset(
    {
        "unknown_account",
        "account_frozen",
        "account_closed",
        "limit_exceeded",
        "corridor_forbidden",
        "currency_not_issued",
        "unknown_currency",
        "invalid_amount",
    }
)
# Refusals meaning someone (an earlier run of this handler, another worker) already moved it on.
ALREADY_DONE_CODES = frozenset({"invalid_state", "already_confirmed"})

MAX_ATTEMPTS_PER_EVENT = 5

# Seconds between checkpoint writes while events keep coming (see the module docstring).
CHECKPOINT_INTERVAL = 1.0

_ANY_ACTIVE_SUBSCRIPTION = (
    select(WebhookSubscription.id).where(WebhookSubscription.disabled_at.is_(None)).limit(1)
)

PAYMENT_EVENTS = frozenset({"PaymentInitiated", "PaymentRejected", "PaymentCompleted", "PaymentRefunded"})


class Checkpoints:
    """The follower's position, as a row of ``event_checkpoints``."""

    def __init__(self, services: Services, name: str = CHECKPOINT_NAME) -> None:
        self.db = services.db
        self.name = name

    def load(self) -> tuple[int, str | None]:
        with self.db.session(write=False) as session:
            row = session.get(EventCheckpoint, self.name)
            if row is None:
                return 0, None
            return row.block_number, row.transaction_id


class IncomingPayments:
    """What the gateway does about one payment; shared by the follower and the sweeper."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.ledger = services.ledger
        self.msp_id = services.msp_id

    def settle_incoming(self, payment_id: str) -> str:
        """Complete an incoming payment, or reject it with the reason the payee cannot be paid.

        Returns what happened: completed, rejected, already (someone else did it) or skipped.
        """
        try:
            result = self.ledger.complete_payment(payment_id)
        except ContractRejected as refusal:
            if refusal.code in ALREADY_DONE_CODES:
                if self.ledger.get_payment(payment_id).get("status") == "initiated":
                    # Still initiated: typically the private details have not reached our peer by
                    # gossip yet. Fail this attempt so that it is tried again.
                    raise LedgerFailure(f"payment {payment_id} cannot be completed yet") from refusal
                return "already"
            if refusal.code not in REJECTION_CODES:
                log.warning("incoming payment %s left initiated: completion refused with %s", payment_id, refusal.code)
                return "skipped"
            try:
                self.ledger.reject_payment(payment_id, refusal.code)
            except ContractRejected as second:
                if second.code in ALREADY_DONE_CODES:
                    return "already"
                raise
            self.services.metrics.incoming_handled.labels("rejected").inc()
            log.info("incoming payment %s rejected: %s", payment_id, refusal.code)
            return "rejected"
        status = str(result.get("status", "completed"))
        self.services.metrics.incoming_handled.labels(status).inc()
        log.info("incoming payment %s %s", payment_id, status)
        return status

    def refund(self, payment_id: str) -> str:
        try:
            self.ledger.refund_payment(payment_id)
        except ContractRejected as refusal:
            if refusal.code in ALREADY_DONE_CODES or refusal.code == "not_expired":
                return refusal.code
            raise
        log.info("payment %s refunded to the payer", payment_id)
        return "refunded"


class PaymentFollower:
    """Thread that follows chaincode events from the checkpoint and acts on them.

    Events are handled by a small pool, so one slow completion (a commit takes a block) does not
    hold up the others: a burst of incoming payments is completed in parallel. The checkpoint
    only ever moves to the newest event whose predecessors are all handled, so a restart
    resumes before anything unfinished. Webhook rows are written by the handling itself
    (unique per subscription and event), not with the checkpoint.
    """

    def __init__(self, services: Services, retry_seconds: float = 2.0, concurrency: int | None = None) -> None:
        self.services = services
        self.ledger = services.ledger
        self.msp_id = services.msp_id
        self.payments = IncomingPayments(services)
        self.checkpoints = Checkpoints(services)
        self.retry_seconds = retry_seconds
        self.concurrency = max(1, concurrency or services.config.follower_concurrency)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._pending: deque[tuple[LedgerEvent, Future[None]]] = deque()
        self._pending_lock = threading.Lock()
        self._unsaved: LedgerEvent | None = None  # handled, but not yet in the checkpoint
        self._saved_at = 0.0
        self._flush_timer: threading.Timer | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="payment-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        timer = self._flush_timer
        if timer is not None:
            timer.cancel()  # the run loop flushed on its way out

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="payment-follower") as pool:
            while not self._stop.is_set():
                block, tx_id = self.checkpoints.load()
                try:
                    self._stream = self.ledger.events(block, tx_id)
                    for event in self._stream:
                        if self._stop.is_set():
                            break
                        self._submit(pool, event)
                except LedgerError as error:
                    log.warning("event stream interrupted (%s); resuming from the checkpoint", type(error).__name__)
                except Exception:
                    log.exception("event follower failed; resuming from the checkpoint")
                finally:
                    stream, self._stream = self._stream, None
                    if stream is not None and hasattr(stream, "close"):
                        stream.close()
                    self._wait_for_pending()
                self._stop.wait(self.retry_seconds)

    def concerns_us(self, event: LedgerEvent) -> bool:
        """Whether ``handle`` could do anything for this event (cheap: the stream's thread asks)."""
        if event.name not in PAYMENT_EVENTS:
            return False
        payload = event.payload
        return self.msp_id in (payload.get("payer_bank"), payload.get("payee_bank"))

    def _submit(self, pool: ThreadPoolExecutor, event: LedgerEvent) -> None:
        if not self.concerns_us(event):
            self.handle(event)  # counts it and does nothing else: no hand-off to the pool
            done: Future[None] = Future()
            done.set_result(None)
            with self._pending_lock:
                self._pending.append((event, done))
            self._advance()
            return
        while True:
            with self._pending_lock:
                oldest = self._pending[0][1] if len(self._pending) >= self.concurrency else None
            if oldest is None:
                break
            wait([oldest])  # room in the window once the oldest is done
            self._advance()
        future = pool.submit(self.process, event)
        with self._pending_lock:
            self._pending.append((event, future))
        future.add_done_callback(lambda _: self._advance())

    def _advance(self, *, flush: bool = False) -> None:
        """Checkpoint the newest event whose predecessors are all handled (at most once per interval)."""
        with self._pending_lock:
            while self._pending and self._pending[0][1].done():
                self._unsaved = self._pending.popleft()[0]
            if self._unsaved is None:
                return
            now = time.monotonic()
            if flush or now - self._saved_at >= CHECKPOINT_INTERVAL:
                self.checkpoint(self._unsaved)
                self._unsaved, self._saved_at = None, now
            elif self._flush_timer is None or not self._flush_timer.is_alive():
                # The stream may go quiet now: write what is handled once the interval is up.
                self._flush_timer = threading.Timer(CHECKPOINT_INTERVAL, self._advance, kwargs={"flush": True})
                self._flush_timer.daemon = True
                self._flush_timer.start()

    def _wait_for_pending(self) -> None:
        with self._pending_lock:
            futures = [future for _, future in self._pending]
        wait(futures)
        self._advance(flush=True)

    def handle_with_retries(self, event: LedgerEvent) -> None:
        """Handle one event, then checkpoint it (the sequential form of what ``run`` does)."""
        self.process(event)
        self.checkpoint(event)

    def process(self, event: LedgerEvent) -> None:
        """Handle one event. Peer outages are waited out; other failures are retried a few times,
        then the event is passed over (the sweeper picks the payment up later)."""
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            try:
                notices = self.handle(event)
            except LedgerUnavailable:
                self._stop.wait(self.retry_seconds)
                continue
            except LedgerError as error:
                if attempt < MAX_ATTEMPTS_PER_EVENT:
                    self._stop.wait(self.retry_seconds * attempt)
                    continue
                log.error(
                    "giving up on event %s in tx %s: %s",
                    event.name,
                    event.transaction_id,
                    type(error).__name__,
                )
                return
            if notices:
                try:
                    with self.services.db.session() as session:
                        for account_id, event_type, event_id, data in notices:
                            enqueue(session, account_id, event_type, event_id, data)
                except IntegrityError:
                    pass  # the same event handled twice at once: the other handling queued it
            return

    def checkpoint(self, event: LedgerEvent) -> None:
        with self.services.db.session() as session:
            row = session.get(EventCheckpoint, self.checkpoints.name)
            if row is None:
                row = EventCheckpoint(name=self.checkpoints.name, block_number=0, updated_at=utcnow())
                session.add(row)
            row.block_number = event.block_number
            row.transaction_id = event.transaction_id
            row.updated_at = utcnow()

    def handle(self, event: LedgerEvent) -> list[tuple[str, str, str, JSON]]:
        """Act on one event; returns the webhook notices (account, type, event id, data) to queue."""
        self.services.metrics.follower_events.labels(event.name).inc()
        payment_id = event.payload.get("payment_id")
        if not self.concerns_us(event) or not isinstance(payment_id, str) or not payment_id:
            return []
        payer_bank = event.payload.get("payer_bank")
        payee_bank = event.payload.get("payee_bank")
        if event.name == "PaymentInitiated":
            if payee_bank == self.msp_id:
                self.payments.settle_incoming(payment_id)
            return []
        if event.name == "PaymentRejected":
            notices = self._notices(event, payment_id, "payment.rejected", payer=True)
            if payer_bank == self.msp_id:
                self.payments.refund(payment_id)
            return notices
        if event.name == "PaymentCompleted":
            notices = self._notices(event, payment_id, "payment.completed", payer=True)
            return notices + self._notices(event, payment_id, "payment.received", payer=False)
        if event.name == "PaymentRefunded":
            return self._notices(event, payment_id, "payment.refunded", payer=True)
        return []

    def _notices(
        self, event: LedgerEvent, payment_id: str, event_type: str, *, payer: bool
    ) -> list[tuple[str, str, str, JSON]]:
        bank = event.payload.get("payer_bank" if payer else "payee_bank")
        if bank != self.msp_id or not self._has_subscriptions():
            return []
        record = self.ledger.get_payment(payment_id, details=True)
        details = record.get("details")
        if not isinstance(details, dict):
            return []
        account_id = details.get("payer_account" if payer else "payee_account")
        if not isinstance(account_id, str):
            return []
        data = representations.payment(record, self.services.currencies())
        event_id = f"{event_type}:{payment_id}"
        return [(account_id, event_type, event_id, data)]

    def _has_subscriptions(self) -> bool:
        # Asked for every completion this bank takes part in, so a plain statement on a pooled
        # connection rather than an ORM session (which was a fifth of the gateway's CPU under load).
        # Never cached: a subscription made a moment ago must hear of the next payment.
        with self.services.db.engine.connect() as connection:
            return connection.execute(_ANY_ACTIVE_SUBSCRIPTION).first() is not None


class PaymentSweeper:
    """Periodic pass over this bank's unfinished payments (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.ledger = services.ledger
        self.msp_id = services.msp_id
        self.payments = IncomingPayments(services)
        self.interval = services.config.sweep_interval_seconds
        self.timeout = services.config.payment_timeout_seconds
        self.grace = services.config.sweep_grace_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="payment-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except LedgerError as error:
                log.warning("payment sweep interrupted: %s", type(error).__name__)
            except Exception:
                log.exception("payment sweep failed")

    def sweep(self, now: float | None = None) -> dict[str, int]:
        """One pass; returns counts of what it did (for logs and tests)."""
        moment = time.time() if now is None else now
        timeout = self._timeout()
        counts = {"completed": 0, "rejected": 0, "refunded": 0, "pending_incoming": 0, "failed": 0}
        for payment in self._payments("initiated"):
            payment_id = str(payment.get("payment_id"))
            created = _epoch(payment.get("created_at"))
            age = moment - created if created is not None else float("inf")
            try:
                if payment.get("payee_bank") == self.msp_id:
                    if age < self.grace:
                        # Fresh: the follower is on it; settling it here too would only collide.
                        counts["pending_incoming"] += 1
                        continue
                    outcome = self.payments.settle_incoming(payment_id)
                    if outcome in ("completed", "rejected"):
                        counts[outcome] += 1
                    else:
                        counts["pending_incoming"] += 1
                elif (
                    payment.get("payer_bank") == self.msp_id
                    and age >= timeout
                    and self.payments.refund(payment_id) == "refunded"
                ):
                    counts["refunded"] += 1
            except LedgerUnavailable:
                raise
            except LedgerError:
                # One stuck payment must not stop the pass; it is tried again next time.
                counts["failed"] += 1
                if payment.get("payee_bank") == self.msp_id:
                    counts["pending_incoming"] += 1
        for payment in self._payments("rejected"):
            if payment.get("payer_bank") != self.msp_id:
                continue
            try:
                if self.payments.refund(str(payment.get("payment_id"))) == "refunded":
                    counts["refunded"] += 1
            except LedgerUnavailable:
                raise
            except LedgerError:
                counts["failed"] += 1
        self.services.metrics.pending_incoming.set(counts["pending_incoming"])
        return counts

    def _timeout(self) -> float:
        """The contract's payment timeout when the reference data has one, else the configured one."""
        try:
            value = self.services.reference_data().get("payment_timeout_seconds")
        except LedgerError:
            value = None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return float(value)
        return float(self.timeout)

    def _payments(self, status: str) -> list[JSON]:
        found: list[JSON] = []
        bookmark = ""
        while True:
            page = self.ledger.list_payments(self.msp_id, status, 100, bookmark)
            items = [p for p in page.get("payments") or [] if isinstance(p, dict)]
            found.extend(items)
            bookmark = page.get("bookmark") or ""
            if not bookmark or not items:
                return found


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def start_workers(services: Services, *, follow: bool, webhooks: bool) -> None:
    if follow:
        follower = PaymentFollower(services)
        sweeper = PaymentSweeper(services)
        follower.start()
        sweeper.start()
        services.workers += [follower, sweeper]
    if webhooks:
        sender = WebhookSender(
            services.db,
            services.config.webhook_timeout_seconds,
            services.config.webhook_max_attempts,
            on_attempt=lambda outcome: services.metrics.webhook_deliveries.labels(outcome).inc(),
            policy=services.egress,
        )
        sender.start()
        services.workers.append(sender)
