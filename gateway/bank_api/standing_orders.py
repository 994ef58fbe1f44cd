"""Standing orders of corporate groups: scheduled payments and sweeps, run by the gateway's sweeper.

A standing order belongs to a corporate group (routes/groups.py) and pays from one of the
group's accounts at this bank:

- ``payment``: a fixed amount to another of the group's accounts (here or at another bank),
  once at ``start_at`` or every day, week or month from it;
- ``sweep``: keeps an account at ``target_balance``: the excess goes to the group's header
  account (here or elsewhere) and, with ``top_up``, a shortfall is paid from the header account
  (which must then be at this bank: a gateway can debit only its own bank's books). Checked on
  the schedule and, with ``on_credit``, whenever an interbank payment lands on the account.

Money moves only through the ordinary payment path (``Transfer`` here, ``InitiatePayment`` to
another bank), so conservation, no overdraft, limits, frozen accounts and corridor rules are the
contract's, as for any payment.

Exactly once per run: a run is claimed as a row of ``standing_order_runs`` (``pending``), in the
same database transaction that moves the order's ``next_due_at`` on, before any money moves. The
run's id derives from (order, due time) and the payment's idempotency key from the run's id; the
amount and the parties are written into the row before the ledger is called. A gateway that
restarts at any point resumes pending runs with the same ledger call, which the ledger answers
with the first call's payment (decision 0008), so a period is paid at most once; the claim makes
it attempted at least once. A run the contract refuses (insufficient funds, a frozen account, a
corridor rule) is recorded ``failed`` with the contract's code, and the next period is claimed on
its own schedule all the same. A run the ledger cannot take now (an outage) stays pending and is
tried again on the next pass.

The runner has no loop of its own: the payment sweeper (workers.py) calls ``run_due`` on every
pass, as it settles expired escrows. The scheduler's "now" is a clock that can be injected
(tests) or shifted by ``standing_order_clock_offset_seconds`` (test networks only), so a run can
be made due without waiting a day.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.bank_api import outgoing
from gateway.bank_api.faults import Faults
from gateway.bank_api.ledger import JSON, ContractRejected, LedgerError
from gateway.bank_api.money import Currencies
from gateway.bank_api.representations import timestamp
from gateway.bank_api.storage.models import StandingOrder, StandingOrderRun, utcnow
from gateway.bank_api.webhooks import enqueue

if TYPE_CHECKING:
    from gateway.bank_api.app import Services

log = logging.getLogger(__name__)

GROUP_ID = r"^[a-z0-9][a-z0-9_-]{0,47}$"
ORDER_ID = r"^so_[0-9a-f]{32}$"
PAYMENT, SWEEP = "payment", "sweep"
KINDS = (PAYMENT, SWEEP)
EVERY = ("day", "week", "month")
ACTIVE, CANCELLED, FINISHED = "active", "cancelled", "finished"
ORDER_STATUSES = (ACTIVE, CANCELLED, FINISHED)
PENDING, PAID, FAILED, NOTHING_DUE = "pending", "paid", "failed", "nothing_due"
RUN_STATUSES = (PENDING, PAID, FAILED, NOTHING_DUE)
SCHEDULE, CREDIT = "schedule", "credit"
ORDER_EVENT_TYPES = (
    "standing_order.created", "standing_order.cancelled", "standing_order.finished",
    "standing_order.run_paid", "standing_order.run_failed",
)  # fmt: skip

# Periods of one payment order claimed per pass when the gateway was down for several: the rest
# follow on the next passes, so one long outage does not make one pass endless.
MAX_CATCH_UP = 31
ORDERS_PER_PASS = 200
RUNS_PER_PASS = 200

Clock = Callable[[], datetime]


def group_owner(group_id: str) -> str:
    """The webhook owner of a group's subscriptions (see ``Principal.webhook_owner``)."""
    return f"group/{group_id}"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day of the month ``months`` later, or the month's last day when it is shorter."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_time(start: datetime, every: str | None, n: int) -> datetime:
    """The ``n``-th due time (0 = ``start``), counted from the start so that short months do not drift."""
    if n == 0 or every is None:
        return start
    if every == "day":
        return start + timedelta(days=n)
    if every == "week":
        return start + timedelta(weeks=n)
    return add_months(start, n)


def run_id_for(order_id: str, trigger: str, ref: str) -> str:
    digest = hashlib.sha256(f"standing-order-run\n{order_id}\n{trigger}\n{ref}".encode()).hexdigest()
    return "run_" + digest[:32]


def payment_key(run_id: str) -> str:
    """The ledger's idempotency key of a run's payment: the same on every attempt of the run."""
    return hashlib.sha256(f"standing-order-payment\n{run_id}".encode()).hexdigest()


def _money(currencies: Currencies, value: int | None, currency: str) -> str | None:
    return None if value is None else currencies.format_amount(value, currency)


def order_body(order: StandingOrder, currencies: Currencies) -> JSON:
    sweep = order.kind == SWEEP
    return {
        "order_id": order.order_id,
        "group_id": order.group_id,
        "kind": order.kind,
        "status": order.status,
        "from_account": order.from_account,
        "to_bank": order.to_bank,
        "to_account": order.to_account,
        "currency": order.currency,
        "amount": _money(currencies, order.amount, order.currency),
        "target_balance": _money(currencies, order.target_balance, order.currency),
        "top_up": bool(order.top_up) if sweep else None,
        "on_credit": bool(order.on_credit) if sweep else None,
        "every": order.every,
        "start_at": timestamp(order.start_at),
        "next_due_at": timestamp(order.next_due_at),
        "remittance": order.remittance,
        "created_at": timestamp(order.created_at),
    }


def run_body(run: StandingOrderRun, currency: str, currencies: Currencies) -> JSON:
    return {
        "run_id": run.run_id,
        "order_id": run.order_id,
        "due_at": timestamp(run.due_at),
        "trigger": run.trigger,
        "status": run.status,
        "reason": run.reason,
        "amount": _money(currencies, run.amount, currency),
        "currency": currency,
        "payer_account": run.payer_account,
        "payee_bank": run.payee_bank,
        "payee_account": run.payee_account,
        "payment_id": run.payment_id,
        "attempts": run.attempts,
        "last_error": run.last_error,
        "updated_at": timestamp(run.updated_at),
    }


def notify(session: Session, order: StandingOrder, event_type: str, event_id: str, data: JSON) -> None:
    """Queue a webhook for the group's subscriptions and the paying account's."""
    for owner in dict.fromkeys((group_owner(order.group_id), order.from_account)):
        enqueue(session, owner, event_type, event_id, data)


@dataclass(frozen=True)
class _Plan:
    amount: int
    payer: str
    payee_bank: str
    payee_account: str


_ANY_CREDIT_SWEEP = (
    select(StandingOrder.order_id).where(StandingOrder.on_credit == 1, StandingOrder.status == ACTIVE).limit(1)
)


class StandingOrders:
    """Claims due runs and pays them; one instance per gateway process (its sweeper's)."""

    def __init__(self, services: Services, clock: Clock | None = None) -> None:
        self.services = services
        self.db = services.db
        self.ledger = services.ledger
        offset = timedelta(seconds=services.config.standing_order_clock_offset_seconds)
        self.clock: Clock = clock or (lambda: utcnow() + offset)
        self.faults = Faults(services.config.fault_file)
        self._stop = threading.Event()
        # A pass claims and runs under this lock, so two passes in one process never run one row
        # at once; a second process on the same database would only repeat idempotent calls.
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock()

    def stop(self) -> None:
        self._stop.set()

    # -- one pass ---------------------------------------------------------------------------------

    def run_due(self) -> dict[str, int]:
        """Claim every run due now, then run every pending run; returns counts (logs and tests)."""
        with self._lock:
            now = self.now()
            due, pending = self._work(now)
            if not due and not pending:
                return {"standing_order_runs_claimed": 0}
            # Nothing due: no write session for the claim (runs left pending by an outage only).
            claimed = self.claim_due(now) if due else 0
            ended = self.run_pending()
        counts = {"standing_order_runs_claimed": claimed}
        counts.update({f"standing_order_runs_{status}": n for status, n in ended.items()})
        return counts

    def _work(self, now: datetime) -> tuple[bool, bool]:
        """Whether an order is due and whether a run is pending: the usual pass's two indexed reads,
        on one pooled connection.

        A plain connection rather than an ORM session, as for the follower's subscription check: the
        session's setup cost more than the two reads themselves.
        """
        with self.db.engine.connect() as connection:
            due = connection.execute(
                select(StandingOrder.order_id)
                .where(StandingOrder.status == ACTIVE, StandingOrder.next_due_at <= now)
                .limit(1)
            ).first()
            pending = connection.execute(
                select(StandingOrderRun.run_id).where(StandingOrderRun.status == PENDING).limit(1)
            ).first()
        return due is not None, pending is not None

    def claim_due(self, now: datetime) -> int:
        due = (
            select(StandingOrder)
            .where(StandingOrder.status == ACTIVE, StandingOrder.next_due_at <= now)
            .order_by(StandingOrder.next_due_at)
        )
        claimed = 0
        currencies = self.services.currencies()
        with self.db.session() as session:
            for order in session.scalars(due.limit(ORDERS_PER_PASS)).all():
                claimed += self._claim_periods(session, order, now, currencies)
        return claimed

    def _claim_periods(self, session: Session, order: StandingOrder, now: datetime, currencies: Currencies) -> int:
        n = order.runs_claimed
        if order.kind == SWEEP and order.every is not None:
            # A sweep brings the balance to its target whenever it runs, so of periods missed while
            # the gateway was down only the latest is worth a run.
            while due_time(order.start_at, order.every, n + 1) <= now:
                n += 1
        claimed = 0
        due = due_time(order.start_at, order.every, n)
        while due <= now and claimed < MAX_CATCH_UP:
            run_id = run_id_for(order.order_id, SCHEDULE, due.isoformat())
            if session.get(StandingOrderRun, run_id) is None:
                session.add(_new_run(run_id, order.order_id, due, SCHEDULE))
                claimed += 1
            n += 1
            if order.every is None:
                break
            due = due_time(order.start_at, order.every, n)
        order.runs_claimed = n
        order.updated_at = utcnow()
        if order.every is None:
            order.status, order.next_due_at = FINISHED, None
            notify(
                session, order, "standing_order.finished", f"standing_order.finished:{order.order_id}",
                order_body(order, currencies),
            )  # fmt: skip
        else:
            order.next_due_at = due
        return claimed

    def claim_on_credit(self, account_id: str, payment_id: str) -> int:
        """A payment landed on ``account_id``: claim a run of each of its sweeps that asked for it."""
        now = utcnow()
        claimed = 0
        with self.db.session() as session:
            orders = session.scalars(
                select(StandingOrder).where(
                    StandingOrder.from_account == account_id,
                    StandingOrder.kind == SWEEP,
                    StandingOrder.on_credit == 1,
                    StandingOrder.status == ACTIVE,
                )
            ).all()
            for order in orders:
                run_id = run_id_for(order.order_id, CREDIT, payment_id)
                if session.get(StandingOrderRun, run_id) is None:
                    session.add(_new_run(run_id, order.order_id, now, CREDIT))
                    claimed += 1
        return claimed

    def has_credit_sweeps(self) -> bool:
        # Asked for every incoming payment: a plain statement, built once (decision 0035).
        with self.db.transaction(write=False) as connection:
            return connection.execute(_ANY_CREDIT_SWEEP).first() is not None

    def run_pending(self) -> dict[str, int]:
        with self.db.session(write=False) as session:
            run_ids = session.scalars(
                select(StandingOrderRun.run_id)
                .where(StandingOrderRun.status == PENDING)
                .order_by(StandingOrderRun.due_at, StandingOrderRun.run_id)
                .limit(RUNS_PER_PASS)
            ).all()
        ended: dict[str, int] = {}
        for run_id in run_ids:
            status = self._run(run_id)
            ended[status] = ended.get(status, 0) + 1
        return ended

    # -- one run ----------------------------------------------------------------------------------

    def _run(self, run_id: str) -> str:
        with self.db.session(write=False) as session:
            run = session.get(StandingOrderRun, run_id)
            order = session.get(StandingOrder, run.order_id) if run is not None else None
            if run is None or order is None or run.status != PENDING:
                return "gone"
            session.expunge(run)
            session.expunge(order)
        try:
            if run.amount is None:
                if order.status == CANCELLED:
                    return self._finish(run_id, FAILED, reason="cancelled")
                plan = self._plan(order)
                if plan is None:
                    return self._finish(run_id, NOTHING_DUE)
                self._fix(run_id, plan)
                # Test networks only: stop here, the run claimed and its payment fixed but not made.
                self.faults.hold_standing_order_run(run_id, self._stop)
            else:
                assert run.payer_account and run.payee_bank and run.payee_account
                plan = _Plan(run.amount, run.payer_account, run.payee_bank, run.payee_account)
            payment_id = self._pay(run_id, order, plan)
        except ContractRejected as refusal:
            log.info("standing order %s: run %s refused: %s", order.order_id, run_id, refusal.code)
            return self._finish(run_id, FAILED, reason=refusal.code[:64])
        except LedgerError as error:
            # The outcome of a write may be unknown: the run stays pending and the next pass repeats
            # the same idempotent call.
            log.warning("standing order %s: run %s interrupted: %s", order.order_id, run_id, type(error).__name__)
            with self.db.session() as session:
                row = session.get(StandingOrderRun, run_id)
                if row is not None:
                    row.attempts += 1
                    row.last_error = f"{type(error).__name__}: {error}"[:256]
                    row.updated_at = utcnow()
            return PENDING
        return self._finish(run_id, PAID, payment_id=payment_id)

    def _plan(self, order: StandingOrder) -> _Plan | None:
        """What the run pays; for a sweep, from the balance now (None: nothing to move)."""
        if order.kind == PAYMENT:
            assert order.amount is not None
            return _Plan(order.amount, order.from_account, order.to_bank, order.to_account)
        assert order.target_balance is not None
        balances = self.ledger.get_account(order.from_account).get("balances") or {}
        balance = balances.get(order.currency, 0)
        balance = balance if isinstance(balance, int) and not isinstance(balance, bool) else 0
        if balance > order.target_balance:
            return _Plan(balance - order.target_balance, order.from_account, order.to_bank, order.to_account)
        if balance < order.target_balance and order.top_up:
            return _Plan(order.target_balance - balance, order.to_account, self.ledger.msp_id, order.from_account)
        return None

    def _fix(self, run_id: str, plan: _Plan) -> None:
        with self.db.session() as session:
            row = session.get(StandingOrderRun, run_id)
            assert row is not None
            row.amount, row.payer_account = plan.amount, plan.payer
            row.payee_bank, row.payee_account = plan.payee_bank, plan.payee_account
            row.updated_at = utcnow()

    def _pay(self, run_id: str, order: StandingOrder, plan: _Plan) -> str:
        key = payment_key(run_id)
        remittance = order.remittance or f"standing order {order.order_id}"
        if plan.payee_bank == self.ledger.msp_id:
            return outgoing.transfer(
                self.ledger, self.db, plan.payer, plan.payee_account, order.currency, plan.amount, remittance, key
            )
        initiated = outgoing.initiate(
            self.ledger, plan.payer, plan.payee_bank, plan.payee_account, order.currency, plan.amount, remittance, key
        )
        return str(initiated["payment_id"])

    def _finish(self, run_id: str, status: str, *, reason: str | None = None, payment_id: str | None = None) -> str:
        currencies = self.services.currencies()
        with self.db.session() as session:
            row = session.get(StandingOrderRun, run_id)
            order = session.get(StandingOrder, row.order_id) if row is not None else None
            if row is None or order is None:
                return "gone"
            row.status, row.reason, row.payment_id = status, reason, payment_id
            row.last_error = None
            if status in (PAID, FAILED):
                row.attempts += 1  # the ledger call that settled it
            row.updated_at = utcnow()
            if status in (PAID, FAILED):
                event_type = f"standing_order.run_{status}"
                data = run_body(row, order.currency, currencies)
                notify(session, order, event_type, f"{event_type}:{run_id}", data)
        log.info("standing order run %s: %s%s", run_id, status, f" ({reason})" if reason else "")
        return status


def _new_run(run_id: str, order_id: str, due: datetime, trigger: str) -> StandingOrderRun:
    now = utcnow()
    return StandingOrderRun(
        run_id=run_id,
        order_id=order_id,
        due_at=due,
        trigger=trigger,
        status=PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
