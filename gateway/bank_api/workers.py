"""Background work of a gateway: the event follower, the payment tasks, the sweeper, the webhook sender.

The follower reads the chaincode's events from a checkpoint kept in the gateway database and
turns each event that asks something of this bank into a *payment task*, a row of
``payment_tasks``:

- ``PaymentInitiated`` to this bank: ``complete`` it (credit the payee), or reject it with the
  contract's reason code when the payee cannot be credited (unknown, frozen or closed account,
  limits, corridor), so that the payer's bank refunds its customer;
- ``PaymentRejected`` of a payment this bank sent: ``refund`` the payer;
- completions, rejections and refunds this bank's merchants take part in: ``notify`` them
  (webhooks), when any merchant has a subscription.

The rows are written in the same database transaction as the checkpoint that passes the event,
so the follower never waits for the ledger: the checkpoint moves past every event at once,
whatever happens to the payments. Events that ask nothing of this bank (another bank's
transfers, payments between two other banks) move only the in-memory position, written at
most once per ``CHECKPOINT_INTERVAL``. A crash loses no task (the row is durable) and repeats
none (rows are unique per action and payment, and the checkpoint committed with them).

``PaymentTasks`` runs the rows: a dispatcher hands due rows to a pool, each on its own, so a
slow or stuck completion holds one worker and delays no other payment. A peer outage is waited
out; any other failure is retried with backoff a few times, then the row is marked failed and
left to the sweeper. Every action is idempotent at the contract (a payment moves on from
``initiated`` once), so a row run twice (a worker died after the ledger call, before recording
it) changes nothing the second time.

The sweeper is the safety net for what events alone cannot do: every few seconds it lists this
bank's open payments and queues (or revives) the tasks they still need: incoming payments left
initiated, ours the payee bank rejected, ours it never answered within the timeout. The same
pass settles expired escrows and runs the corporate groups' standing orders that are due
(standing_orders.py).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update

from gateway.bank_api import escrows, pvp, representations, supply_fold
from gateway.bank_api.faults import Faults
from gateway.bank_api.ledger import (
    JSON,
    ContractRejected,
    LedgerError,
    LedgerEvent,
    LedgerFailure,
    LedgerUnavailable,
)
from gateway.bank_api.standing_orders import StandingOrders
from gateway.bank_api.storage.models import EventCheckpoint, PaymentTask, WebhookSubscription, utcnow
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

# Failures other than an outage before a task is marked failed (the sweeper revives it later).
MAX_ATTEMPTS_PER_TASK = 5
# Seconds a worker holds a task; a gateway that died with it leaves it to be taken over after this
# (at once by the next start of a gateway on the same database, see ``release_claims``).
TASK_LEASE_SECONDS = 120.0
# Done tasks are kept this long so that a late replay of their event (a checkpoint written at an
# interval, below) finds them and does not act again; then the sweeper deletes them.
DONE_TASK_RETENTION = timedelta(days=2)
# How often the dispatcher looks for tasks that became due (new ones wake it at once).
DISPATCH_POLL_SECONDS = 0.5

# Seconds between checkpoint writes while only events that ask nothing of us keep coming.
CHECKPOINT_INTERVAL = 1.0

COMPLETE, REFUND, NOTIFY = "complete", "refund", "notify"
# PvP steps of the proposer's bank, on the acceptor's events (``payment_id`` holds the PvP id).
PVP_DELIVER, PVP_REFUND = "pvp_deliver", "pvp_refund"
# The acceptor's bank tells the named counterparty of an offer (``pvp.proposed``).
PVP_NOTIFY = "pvp_notify"

_ANY_ACTIVE_SUBSCRIPTION = select(WebhookSubscription.id).where(WebhookSubscription.disabled_at.is_(None)).limit(1)

# The statements run for every event and every task, built once and run as plain statements: built
# per call and run through an ORM session they were over half of a bank gateway's Python time at
# 16 payments/s (decision 0035).
_TASKS = cast(Table, PaymentTask.__table__)
_CHECKPOINTS = cast(Table, EventCheckpoint.__table__)
_DUE = (
    select(
        _TASKS.c.id, _TASKS.c.action, _TASKS.c.payment_id, _TASKS.c.event_name, _TASKS.c.counterparty,
        _TASKS.c.attempts,
    )
    .where(
        _TASKS.c.state == "pending",
        _TASKS.c.next_attempt_at <= bindparam("now"),
        or_(_TASKS.c.claimed_until.is_(None), _TASKS.c.claimed_until <= bindparam("now")),
    )
    .order_by(_TASKS.c.next_attempt_at, _TASKS.c.id)
    .limit(bindparam("limit"))
)
# Two gateways on one server database must not take the same task (SQLite ignores the clause: its
# write transactions are serial already).
_CLAIMABLE = _DUE.with_for_update(skip_locked=True)
_CLAIM = (
    update(_TASKS).where(_TASKS.c.id.in_(bindparam("ids", expanding=True))).values(claimed_until=bindparam("until"))
)
_QUEUED = select(_TASKS.c.task_key, _TASKS.c.state).where(_TASKS.c.task_key.in_(bindparam("keys", expanding=True)))
_REVIVE = (
    update(_TASKS)
    .where(_TASKS.c.task_key.in_(bindparam("keys", expanding=True)))
    .values(state="pending", attempts=0, next_attempt_at=bindparam("now"), updated_at=bindparam("now"))
)
_MOVE_CHECKPOINT = (
    update(_CHECKPOINTS)
    .where(_CHECKPOINTS.c.name == bindparam("checkpoint"))
    .values(block_number=bindparam("block"), transaction_id=bindparam("tx"), updated_at=bindparam("at"))
)

PAYMENT_EVENTS = frozenset({"PaymentInitiated", "PaymentRejected", "PaymentCompleted", "PaymentRefunded"})
# One CompletePayments (InitiatePayments) transaction completes (initiates) several payments and has
# one event (Fabric keeps one per transaction) that lists them: {payee_bank (payer_bank), payments:
# [{payment_id, payer_bank, payee_bank}]}; each listed payment is its single event's payload.
GROUP_EVENTS = {"PaymentsCompleted": "PaymentCompleted", "PaymentsInitiated": "PaymentInitiated"}
PVP_EVENTS = frozenset({"PvpProposed", "PvpLocked", "PvpRefused"})

Notice = tuple[str, str, str, JSON]  # account, webhook event type, event id, data


def payment_events(event: LedgerEvent) -> list[tuple[str, JSON]]:
    """The payment events one chaincode event stands for, as (name, payload): a ``PaymentsCompleted``
    (``PaymentsInitiated``) is a ``PaymentCompleted`` (``PaymentInitiated``) for each payment it lists;
    any other payment event is itself."""
    single = GROUP_EVENTS.get(event.name)
    if single is not None:
        listed = event.payload.get("payments")
        if not isinstance(listed, list):
            return []
        return [(single, item) for item in listed if isinstance(item, dict)]
    if event.name in PAYMENT_EVENTS:
        return [(event.name, event.payload)]
    return []


@dataclass(frozen=True)
class TaskSpec:
    """What is to be done for one payment: an action, and for ``notify`` the event to tell of."""

    action: str
    payment_id: str
    event_name: str | None = None
    # The other bank, when known (for ``complete``: the payer bank, whose peer holds the details).
    # A hint, not part of the task's identity.
    counterparty: str | None = field(default=None, compare=False)

    @classmethod
    def completion(cls, payment_id: str, payer_bank: object) -> TaskSpec:
        """Complete an incoming payment; ``payer_bank`` as an event or record gives it (kept if a name)."""
        return cls(COMPLETE, payment_id, counterparty=payer_bank if isinstance(payer_bank, str) else None)

    @property
    def key(self) -> str:
        if self.event_name:
            return f"{self.action}:{self.event_name}:{self.payment_id}"
        return f"{self.action}:{self.payment_id}"


@dataclass(frozen=True)
class ClaimedTask:
    id: int
    spec: TaskSpec
    attempts: int


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

    def save(self, event: LedgerEvent) -> None:
        """Write the position in a transaction of its own."""
        with self.db.transaction() as connection:
            self.write(connection, event)

    def write(self, connection: Connection, event: LedgerEvent) -> None:
        values = {"block": event.block_number, "tx": event.transaction_id, "at": utcnow()}
        if connection.execute(_MOVE_CHECKPOINT, {"checkpoint": self.name, **values}).rowcount == 0:
            connection.execute(
                insert(_CHECKPOINTS).values(
                    name=self.name, block_number=values["block"], transaction_id=values["tx"], updated_at=values["at"]
                )
            )


class IncomingPayments:
    """What the gateway does about one payment; shared by the tasks and the follower's direct handling."""

    def __init__(self, services: Services, faults: Faults | None = None) -> None:
        self.services = services
        self.ledger = services.ledger
        self.msp_id = services.msp_id
        self.faults = faults or Faults(services.config.fault_file)

    def settle_incoming(
        self, payment_id: str, stop: threading.Event | None = None, payer_bank: str | None = None
    ) -> str:
        """Complete an incoming payment, or reject it with the reason the payee cannot be paid.

        Returns what happened: completed, rejected, already (someone else did it) or skipped.
        """
        self.faults.hold_completion(self.ledger, payment_id, stop or threading.Event())
        try:
            result = self.ledger.complete_payment(payment_id, payer_bank)
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
        if status == "completed":
            self._claim_credit_sweeps(payment_id)
        return status

    def _claim_credit_sweeps(self, payment_id: str) -> None:
        """Sweeps that run when a payment lands on their account: claim a run for the sweeper."""
        orders = StandingOrders(self.services)
        if not orders.has_credit_sweeps():  # the usual case: one indexed read per incoming payment
            return
        try:
            details = self.ledger.get_payment(payment_id, details=True).get("details")
        except LedgerError as error:
            # The payment is completed; failing the task now would only repeat a finished completion.
            # The sweep's next scheduled run moves the money instead.
            log.warning("payment %s: sweeps on credit not checked: %s", payment_id, type(error).__name__)
            return
        account = details.get("payee_account") if isinstance(details, dict) else None
        if isinstance(account, str) and orders.claim_on_credit(account, payment_id):
            log.info("payment %s landed on an account with a sweep: a run is due", payment_id)

    def refund(self, payment_id: str) -> str:
        try:
            self.ledger.refund_payment(payment_id)
        except ContractRejected as refusal:
            if refusal.code in ALREADY_DONE_CODES or refusal.code == "not_expired":
                return refusal.code
            raise
        log.info("payment %s refunded to the payer", payment_id)
        return "refunded"

    def notices(self, event_name: str, payment_id: str) -> list[Notice]:
        """The webhooks this bank's merchants get for one payment event (needs the private details)."""
        kinds = {
            "PaymentRejected": (("payment.rejected", True),),
            "PaymentCompleted": (("payment.completed", True), ("payment.received", False)),
            "PaymentRefunded": (("payment.refunded", True),),
        }.get(event_name, ())
        if not kinds:
            return []
        record = self.ledger.get_payment(payment_id, details=True)
        details = record.get("details")
        if not isinstance(details, dict):
            return []
        found: list[Notice] = []
        for event_type, payer in kinds:
            if record.get("payer_bank" if payer else "payee_bank") != self.msp_id:
                continue
            account_id = details.get("payer_account" if payer else "payee_account")
            if not isinstance(account_id, str):
                continue
            data = representations.payment(record, self.services.currencies())
            found.append((account_id, event_type, f"{event_type}:{payment_id}", data))
        return found

    def pvp_offer_notices(self, pvp_id: str) -> list[Notice]:
        """``pvp.proposed`` for the account an offer names to pay its leg here."""
        record = self.ledger.get_pvp(pvp_id, details=True)
        details = record.get("details")
        if not isinstance(details, dict):
            # The accounts reach our peer by gossip: fail this attempt so that it is tried again.
            raise LedgerFailure(f"the details of PvP {pvp_id} have not reached this peer yet")
        account = details.get("counter_payer_account")
        if not isinstance(account, str):
            return []
        data = pvp.representation(record, self.services.currencies())
        return [(account, "pvp.proposed", f"pvp.proposed:{pvp_id}:{self.msp_id}", data)]

    def perform(self, spec: TaskSpec, stop: threading.Event | None = None) -> tuple[str, list[Notice]]:
        """Do one task against the ledger; returns its outcome and the webhooks to queue."""
        if spec.action == COMPLETE:
            return self.settle_incoming(spec.payment_id, stop, spec.counterparty), []
        if spec.action == REFUND:
            return self.refund(spec.payment_id), []
        if spec.action == NOTIFY and spec.event_name:
            notices = self.notices(spec.event_name, spec.payment_id)
            return f"{len(notices)} notices", notices
        if spec.action == PVP_NOTIFY:
            return "notified", self.pvp_offer_notices(spec.payment_id)
        if spec.action in (PVP_DELIVER, PVP_REFUND):
            step = pvp.deliver if spec.action == PVP_DELIVER else pvp.refund
            outcome = step(self.ledger, self.services.db, self.services.currencies(), spec.payment_id)
            if outcome == "invalid_state" and spec.action == PVP_DELIVER:
                # The acceptor's lock marker has not reached our peer's state yet: try again.
                raise LedgerFailure(f"PvP {spec.payment_id} cannot be delivered yet")
            return outcome, []
        raise ValueError(f"unknown payment task {spec.key}")


class PaymentTasks:
    """The durable queue of payment tasks and the pool that runs it (see the module docstring)."""

    def __init__(self, services: Services, concurrency: int | None = None, retry_seconds: float = 2.0) -> None:
        self.services = services
        self.db = services.db
        self.payments = IncomingPayments(services)
        self.concurrency = max(1, concurrency or services.config.follower_concurrency)
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: set[int] = set()
        self._running_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- queueing ---------------------------------------------------------------------------------

    def add(
        self, connection: Connection, specs: list[TaskSpec], block_number: int | None = None, *, revive: bool = False
    ) -> int:
        """Queue ``specs`` in the caller's transaction; returns how many became due.

        A task already queued is left alone; with ``revive``, one that is done or failed is made
        due again (the sweeper found its payment still open).
        """
        now = utcnow()
        wanted = {spec.key: spec for spec in specs}  # the same task asked twice is one task
        if not wanted:
            return 0
        queued = {str(key): str(state) for key, state in connection.execute(_QUEUED, {"keys": list(wanted)})}
        new = [
            {
                "task_key": key, "action": spec.action, "payment_id": spec.payment_id, "event_name": spec.event_name,
                "counterparty": spec.counterparty, "state": "pending", "attempts": 0, "next_attempt_at": now,
                "block_number": block_number, "created_at": now, "updated_at": now,
            }
            for key, spec in wanted.items()
            if key not in queued
        ]  # fmt: skip
        if new:
            connection.execute(insert(_TASKS), new)
        revived = [key for key, state in queued.items() if revive and state != "pending"]
        if revived:
            connection.execute(_REVIVE, {"keys": revived, "now": now})
        return len(new) + len(revived)

    def queue(self, specs: list[TaskSpec], *, revive: bool = False) -> int:
        with self.db.transaction() as connection:
            queued = self.add(connection, specs, revive=revive)
        if queued:
            self.wake()
        return queued

    def wake(self) -> None:
        self._wake.set()

    def release_claims(self) -> int:
        """End the leases of tasks left running by an earlier process, so they run again at once.

        As with idempotency claims, a lease from before this start belongs to a process that
        died; were it alive (a second gateway on the same database), running the task again
        would only repeat an idempotent ledger call.
        """
        with self.db.session() as session:
            rows = session.scalars(select(PaymentTask).where(PaymentTask.claimed_until.is_not(None))).all()
            for row in rows:
                row.claimed_until = None
            return len(rows)

    def counts(self) -> dict[str, int]:
        with self.db.session(write=False) as session:
            rows = session.execute(select(PaymentTask.state, func.count()).group_by(PaymentTask.state)).all()
        return {str(state): int(count) for state, count in rows}

    def prune(self, now: datetime | None = None) -> int:
        cutoff = (now or utcnow()) - DONE_TASK_RETENTION
        with self.db.session() as session:
            result = session.execute(
                delete(PaymentTask).where(PaymentTask.state == "done", PaymentTask.updated_at < cutoff)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- running ------------------------------------------------------------------------------------

    def start(self) -> None:
        released = self.release_claims()
        if released:
            log.info("%d payment task(s) left running by an earlier run are due again", released)
        self._thread = threading.Thread(target=self._dispatch, name="payment-tasks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def run_due(self, now: datetime | None = None) -> dict[str, int]:
        """Run every task due now once, here, one after the other (tests; the workers do this in the app).

        Returns how many ended in each state.
        """
        ended: dict[str, int] = {}
        for task in self._claim(1000, now):
            state = self._run(task)
            ended[state] = ended.get(state, 0) + 1
        return ended

    def _dispatch(self) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="payment-task") as pool:
            while not self._stop.is_set():
                self._wake.clear()
                with self._running_lock:
                    free = self.concurrency - len(self._running)
                claimed: list[ClaimedTask] = []
                if free > 0:
                    try:
                        claimed = self._claim(free)
                    except Exception:
                        log.exception("could not read the payment tasks; trying again")
                for task in claimed:
                    with self._running_lock:
                        self._running.add(task.id)
                    pool.submit(self._run_in_pool, task)
                if not claimed or len(claimed) < free:
                    self._wake.wait(DISPATCH_POLL_SECONDS)

    def _run_in_pool(self, task: ClaimedTask) -> None:
        try:
            self._run(task)
        except Exception:
            log.exception("payment task %s failed unexpectedly", task.spec.key)
        finally:
            with self._running_lock:
                self._running.discard(task.id)
            self._wake.set()

    def _claim(self, limit: int, now: datetime | None = None) -> list[ClaimedTask]:
        moment = now or utcnow()
        with self._running_lock:
            running = set(self._running)
        # Tasks running here hold a lease, so the query passes them by; the set is a second guard
        # (a test's ``now`` beyond the lease), applied here so the statement stays the same one.
        params = {"now": moment, "limit": limit + len(running)}
        # A read first: most polls find nothing, and they should not take the write lock for it.
        with self.db.transaction(write=False) as connection:
            if all(row.id in running for row in connection.execute(_DUE, params)):
                return []
        with self.db.transaction() as connection:
            rows = [row for row in connection.execute(_CLAIMABLE, params) if row.id not in running][:limit]
            if not rows:
                return []
            until = moment + timedelta(seconds=TASK_LEASE_SECONDS)
            connection.execute(_CLAIM, {"ids": [row.id for row in rows], "until": until})
        return [
            ClaimedTask(row.id, TaskSpec(row.action, row.payment_id, row.event_name, row.counterparty), row.attempts)
            for row in rows
        ]

    def _run(self, task: ClaimedTask) -> str:
        """Run one claimed task and record how it ended; returns its new state."""
        notices: list[Notice] = []
        error: str | None = None
        retry_in: float | None = None
        attempts = task.attempts
        try:
            outcome, notices = self.payments.perform(task.spec, self._stop)
        except LedgerUnavailable as unavailable:
            # Waited out without counting: the payment is fine, the way to the ledger is not.
            outcome, error = "", f"{type(unavailable).__name__}: {unavailable}"
            retry_in = max(self.retry_seconds, float(unavailable.retry_after) / 2)
        except (LedgerError, ValueError) as failure:
            attempts += 1
            outcome, error = "", f"{type(failure).__name__}: {failure}"
            if attempts < MAX_ATTEMPTS_PER_TASK:
                retry_in = self.retry_seconds * attempts
        now = utcnow()
        with self.db.session() as session:
            row = session.get(PaymentTask, task.id)
            if row is None:
                return "gone"
            row.claimed_until = None
            row.attempts = attempts
            row.updated_at = now
            row.last_error = error[:256] if error else None
            if error is None:
                row.state, row.outcome = "done", outcome[:32]
                for account_id, event_type, event_id, data in notices:
                    enqueue(session, account_id, event_type, event_id, data)
            elif retry_in is not None:
                row.next_attempt_at = now + timedelta(seconds=retry_in)
            else:
                row.state = "failed"
                log.error("giving up on payment task %s after %d attempts: %s", task.spec.key, attempts, error)
            return row.state


class PaymentFollower:
    """Thread that follows chaincode events from the checkpoint and queues what they ask for.

    It makes no ledger call per event, so nothing a payment does can hold the stream up (see the
    module docstring); the tasks run in ``PaymentTasks``.
    """

    def __init__(
        self,
        services: Services,
        retry_seconds: float = 2.0,
        concurrency: int | None = None,
        tasks: PaymentTasks | None = None,
    ) -> None:
        self.services = services
        self.ledger = services.ledger
        self.msp_id = services.msp_id
        self.tasks = tasks or PaymentTasks(services, concurrency, retry_seconds)
        self.payments = self.tasks.payments
        self.checkpoints = Checkpoints(services)
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._owns_tasks = tasks is None
        self._position_lock = threading.Lock()
        self._unsaved: LedgerEvent | None = None  # passed, but not yet in the checkpoint
        self._saved_at = 0.0
        self._flush_timer: threading.Timer | None = None

    def start(self) -> None:
        if self._owns_tasks:
            self.tasks.start()
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
        if self._owns_tasks:
            self.tasks.stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        while not self._stop.is_set():
            block, tx_id = self.checkpoints.load()
            try:
                self._stream = self.ledger.events(block, tx_id)
                for event in self._stream:
                    if self._stop.is_set():
                        break
                    self.record(event)
            except LedgerError as error:
                log.warning("event stream interrupted (%s); resuming from the checkpoint", type(error).__name__)
            except Exception:
                log.exception("event follower failed; resuming from the checkpoint")
            finally:
                stream, self._stream = self._stream, None
                if stream is not None and hasattr(stream, "close"):
                    stream.close()
                self.flush()
            self._stop.wait(self.retry_seconds)

    def concerns_us(self, event: LedgerEvent) -> bool:
        payload = event.payload
        if event.name == "PvpProposed":
            return payload.get("acceptor_bank") == self.msp_id
        if event.name in PVP_EVENTS:
            return payload.get("proposer_bank") == self.msp_id
        return any(
            self.msp_id in (about.get("payer_bank"), about.get("payee_bank")) for _, about in payment_events(event)
        )

    def tasks_for(self, event: LedgerEvent) -> list[TaskSpec]:
        """What an event asks of this bank (nothing for most events on the channel)."""
        if event.name in PVP_EVENTS:
            pvp_id = event.payload.get("pvp_id")
            if not self.concerns_us(event) or not isinstance(pvp_id, str) or not pvp_id:
                return []
            if event.name == "PvpProposed":
                return [TaskSpec(PVP_NOTIFY, pvp_id)] if self._has_subscriptions() else []
            return [TaskSpec(PVP_DELIVER if event.name == "PvpLocked" else PVP_REFUND, pvp_id)]
        specs: list[TaskSpec] = []
        subscribed: bool | None = None  # asked once per event, and only when a payment would tell
        for name, about in payment_events(event):
            payment_id = about.get("payment_id")
            if not isinstance(payment_id, str) or not payment_id:
                continue
            ours = about.get("payer_bank") == self.msp_id
            theirs_to_us = about.get("payee_bank") == self.msp_id
            if name == "PaymentInitiated" and theirs_to_us:
                specs.append(TaskSpec.completion(payment_id, about.get("payer_bank")))
            if name == "PaymentRejected" and ours:
                specs.append(TaskSpec(REFUND, payment_id))
            tells = {"PaymentRejected": ours, "PaymentCompleted": ours or theirs_to_us, "PaymentRefunded": ours}
            if tells.get(name):
                if subscribed is None:
                    subscribed = self._has_subscriptions()
                if subscribed:
                    specs.append(TaskSpec(NOTIFY, payment_id, name))
        return specs

    def record(self, event: LedgerEvent) -> None:
        """Pass one event: queue its tasks with the checkpoint, or just move the position on."""
        self.services.metrics.follower_events.labels(event.name).inc()
        specs = self.tasks_for(event)
        if not specs:
            self._advance(event)
            return
        with self._position_lock:
            with self.services.db.transaction() as connection:
                self.tasks.add(connection, specs, event.block_number)
                self.checkpoints.write(connection, event)
            self._unsaved, self._saved_at = None, time.monotonic()
        self.tasks.wake()

    def _advance(self, event: LedgerEvent) -> None:
        with self._position_lock:
            self._unsaved = event
            if time.monotonic() - self._saved_at < CHECKPOINT_INTERVAL:
                if self._flush_timer is None or not self._flush_timer.is_alive():
                    # The stream may go quiet now: write the position once the interval is up.
                    self._flush_timer = threading.Timer(CHECKPOINT_INTERVAL, self.flush)
                    self._flush_timer.daemon = True
                    self._flush_timer.start()
                return
        self.flush()

    def flush(self) -> None:
        """Write the position reached, if it is ahead of the checkpoint."""
        with self._position_lock:
            event = self._unsaved
            if event is None:
                return
            self.checkpoints.save(event)
            self._unsaved, self._saved_at = None, time.monotonic()

    def handle_with_retries(self, event: LedgerEvent) -> None:
        """Pass one event and run what it queued, here and now (the sequential form of ``run``)."""
        self.record(event)
        self.flush()
        self.tasks.run_due()

    def handle(self, event: LedgerEvent) -> list[Notice]:
        """Do what the event asks at once, without queueing or checkpointing; returns the webhooks due."""
        notices: list[Notice] = []
        for spec in self.tasks_for(event):
            notices.extend(self.payments.perform(spec)[1])
        return notices

    def _has_subscriptions(self) -> bool:
        # Asked for every payment event this bank takes part in, so a plain statement on a pooled
        # connection rather than an ORM session (which was a fifth of the gateway's CPU under load).
        # Never cached: a subscription made a moment ago must hear of the next payment.
        with self.services.db.engine.connect() as connection:
            return connection.execute(_ANY_ACTIVE_SUBSCRIPTION).first() is not None


class PaymentSweeper:
    """Periodic pass over this bank's unfinished payments (see the module docstring)."""

    def __init__(self, services: Services, tasks: PaymentTasks | None = None) -> None:
        self.services = services
        self.ledger = services.ledger
        self.msp_id = services.msp_id
        self.tasks = tasks or PaymentTasks(services)
        self.interval = services.config.sweep_interval_seconds
        self.timeout = services.config.payment_timeout_seconds
        self.grace = services.config.sweep_grace_seconds
        self.standing_orders = StandingOrders(services)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="payment-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.standing_orders.stop()
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
        """One pass: queue what open payments still need; returns counts (for logs and tests).

        It only reads the ledger; the tasks it queues run on the task workers, so one stuck
        payment never holds up the pass.
        """
        moment = time.time() if now is None else now
        timeout = self._timeout()
        counts = {"completions_queued": 0, "refunds_queued": 0, "pending_incoming": 0}
        specs: list[tuple[str, TaskSpec]] = []
        for payment in self._payments("initiated"):
            payment_id = str(payment.get("payment_id"))
            created = _epoch(payment.get("created_at"))
            age = moment - created if created is not None else float("inf")
            if payment.get("payee_bank") == self.msp_id:
                counts["pending_incoming"] += 1
                if age >= self.grace:  # fresh ones are the follower's: acting too would only collide
                    specs.append(("completions_queued", TaskSpec.completion(payment_id, payment.get("payer_bank"))))
            elif payment.get("payer_bank") == self.msp_id and age >= timeout:
                specs.append(("refunds_queued", TaskSpec(REFUND, payment_id)))
        for payment in self._payments("rejected"):
            if payment.get("payer_bank") == self.msp_id:
                specs.append(("refunds_queued", TaskSpec(REFUND, str(payment.get("payment_id")))))
        for counter, spec in specs:
            counts[counter] += self.tasks.queue([spec], revive=True)
        # Escrows past their expiry are settled here and now: one short transaction each, and
        # nobody else would act on them.
        try:
            counts["escrows_expired"] = escrows.expire_due(self.ledger, self.services.db, self.services.currencies())
        except LedgerError as error:  # the payments above are queued already; the next pass tries again
            log.warning("escrow expiry interrupted: %s", type(error).__name__)
        try:
            counts.update(pvp.sweep(self.ledger, self.services.db, self.services.currencies(), moment))
        except LedgerError as error:
            log.warning("PvP sweep interrupted: %s", type(error).__name__)
        try:
            mine = supply_fold.issued_currencies(self.services.reference_data(), self.msp_id)
        except LedgerError as error:
            log.warning("supply fold skipped: %s", type(error).__name__)
            mine = []
        folded = supply_fold.fold_supply(self.ledger, mine, self.services.config.supply_fold_threshold)
        counts["supply_changes_folded"] = sum(folded.values())
        # Standing orders due now are claimed and paid here: the runs are few (a group's treasury,
        # not its customers' payments), and an idle pass costs two indexed reads.
        try:
            counts.update(self.standing_orders.run_due())
        except LedgerError as error:
            log.warning("standing orders interrupted: %s", type(error).__name__)
        self.services.metrics.pending_incoming.set(counts["pending_incoming"])
        self.services.metrics.payment_tasks.set(self.tasks.counts().get("pending", 0))
        self.tasks.prune()
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
        tasks = PaymentTasks(services)
        follower = PaymentFollower(services, tasks=tasks)
        sweeper = PaymentSweeper(services, tasks=tasks)
        tasks.start()
        follower.start()
        sweeper.start()
        # Stopped in this order: nothing queues new tasks once the workers stop.
        services.workers += [follower, sweeper, tasks]
    if webhooks:
        start_webhook_sender(services)


def start_webhook_sender(services: Services) -> None:
    """The one worker that sends every queued webhook delivery (merchants' and the regulator's)."""
    sender = WebhookSender(
        services.db,
        services.config.webhook_timeout_seconds,
        services.config.webhook_max_attempts,
        on_attempt=lambda outcome: services.metrics.webhook_deliveries.labels(outcome).inc(),
        policy=services.egress,
    )
    sender.start()
    services.workers.append(sender)
