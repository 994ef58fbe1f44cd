"""The regulator's monitoring: rules over public records, alerts with their evidence.

Rules (settings kept in the regulator gateway's database, changed through its API):

``large_payment``
    a single payment whose amount, in either leg's currency, reaches that currency's threshold;
``velocity``
    between two banks (payer bank to payee bank), more than ``max_payments`` payments, or more
    than ``max_amounts[currency]`` in total, within ``window_seconds`` of creation time;
``stale_payment``
    a payment still ``initiated`` (or ``rejected`` and not refunded) longer than the rule allows
    since it entered that status;
``unconfirmed_cycle``
    a settlement cycle still open ``deadline_seconds`` after it was opened;
``supply_drift``
    a token class whose supply on the ledger differs from the sum of the supply changes its
    transactions reported, the same difference for ``confirm_seconds`` (gateway/bank_api/supply_watch.py).

The first two are judged when a payment is initiated: the monitor follows the chaincode events
from a checkpoint in the database, like a bank gateway's follower, reads each new payment's
public record and keeps its figures (``observed_payments``) for the velocity windows. The last
two are judged by a periodic scan of what is still open, against the wall clock. The supply rule
is judged every few seconds while the channel is quiet. Every event's supply report is kept for
the supply's history.

Every alert has a ``dedup_key`` naming what it is about (the payment, the pair of banks and the
window, the cycle), unique in the database: raising is an insert that is a no-op the second
time. The checkpoint never runs ahead of what was handled, so after a restart the monitor
handles again at most what it had not saved yet, and the unique key keeps those alerts from
being raised twice: none is lost, none is repeated. A rule change applies from then on; it does
not re-judge what was already seen.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gateway.bank_api import representations, supply_watch
from gateway.bank_api.boundary import Absent, Amount, Body, worded
from gateway.bank_api.ledger import JSON, LedgerError, LedgerEvent, LedgerUnavailable, OversightLedger
from gateway.bank_api.money import Currencies, MoneyError
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.storage.models import Alert, AlertRule, ObservedPayment, utcnow
from gateway.bank_api.validation import bad_request
from gateway.bank_api.webhooks import enqueue
from gateway.bank_api.workers import Checkpoints, payment_events

if TYPE_CHECKING:
    from gateway.bank_api.app import Services

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "regulator-monitor"
CHECKPOINT_INTERVAL = 1.0
SCAN_INTERVAL_SECONDS = 15.0
SUPPLY_CHECK_SECONDS = 5.0
# The supply is compared only after this long without an event: reports still on their way would
# show as differences (which the rule's confirmation time absorbs anyway).
QUIET_SECONDS = 2.0
MAX_EVIDENCE_PAYMENTS = 50
MAX_SECONDS = 30 * 24 * 3600

# The regulator's webhooks all belong to its seat, under this subscriber name.
ALERT_SUBSCRIBER = "regulator"
ALERT_RAISED = "alert.raised"
ALERT_EVENT_TYPES = (ALERT_RAISED,)

LARGE_PAYMENT = "large_payment"
VELOCITY = "velocity"
STALE_PAYMENT = "stale_payment"
UNCONFIRMED_CYCLE = "unconfirmed_cycle"
SUPPLY_DRIFT = "supply_drift"
RULES = (LARGE_PAYMENT, VELOCITY, STALE_PAYMENT, UNCONFIRMED_CYCLE, SUPPLY_DRIFT)

# Until the regulator sets thresholds, the amount rules have none and stay quiet; the time rules
# flag what is well past the contract's default payment timeout (300 s) or a day's settlement.
DEFAULTS: dict[str, JSON] = {
    LARGE_PAYMENT: {"enabled": True, "thresholds": {}},
    VELOCITY: {"enabled": True, "window_seconds": 3600, "max_payments": None, "max_amounts": {}},
    STALE_PAYMENT: {"enabled": True, "initiated_seconds": 900, "rejected_seconds": 900},
    UNCONFIRMED_CYCLE: {"enabled": True, "deadline_seconds": 4 * 3600},
    SUPPLY_DRIFT: {"enabled": True, "confirm_seconds": 30},
}
SETTINGS_FIELDS: dict[str, tuple[str, ...]] = {rule: tuple(settings) for rule, settings in DEFAULTS.items()}


# -- rule settings ------------------------------------------------------------------------------


RULES_CACHE_SECONDS = 2.0
_cache: dict[str, tuple[float, dict[str, JSON]]] = {}
_cache_lock = threading.Lock()


class RuleBook:
    """The rules' settings in minor units; a rule never set has its defaults.

    The monitor reads them for every payment, so they are kept for ``RULES_CACHE_SECONDS`` per
    database; a change through this process's API clears that at once, one made by another process
    on the same database shows within that time.
    """

    def __init__(self, services: Services) -> None:
        self.db = services.db

    def load(self) -> dict[str, JSON]:
        with _cache_lock:
            cached = _cache.get(self.db.url)
            if cached is not None and time.monotonic() - cached[0] < RULES_CACHE_SECONDS:
                return {rule: dict(settings) for rule, settings in cached[1].items()}
        with self.db.session(write=False) as session:
            stored = {row.rule: json.loads(row.settings) for row in session.scalars(select(AlertRule))}
        loaded = {rule: {**DEFAULTS[rule], **stored.get(rule, {})} for rule in RULES}
        with _cache_lock:
            _cache[self.db.url] = (time.monotonic(), loaded)
        return {rule: dict(settings) for rule, settings in loaded.items()}

    def save(self, rule: str, settings: JSON) -> None:
        with self.db.session() as session:
            row = session.get(AlertRule, rule)
            if row is None:
                row = AlertRule(rule=rule, settings="{}", updated_at=utcnow())
                session.add(row)
            row.settings = json.dumps(settings, sort_keys=True)
            row.updated_at = utcnow()
        with _cache_lock:
            _cache.pop(self.db.url, None)


def _amounts(value: Any) -> Any:
    if not isinstance(value, dict):
        raise PydanticCustomError("amounts", 'must be an object of currency: amount, such as {"USD": "10000.00"}')
    return value


MAX_PAYMENTS = 1_000_000
# Each setting belongs to some rules only: one left out is not given (the route names what its rule
# misses), and null is refused like any other value of the wrong type, but for max_payments, where
# it means no limit.
Enabled = Annotated[bool, Field(default=None)]
Seconds = Annotated[
    int, Field(default=None, ge=1, le=MAX_SECONDS), worded(f"must be a whole number from 1 to {MAX_SECONDS}")
]
# currency -> decimal string; each currency is checked where the amount becomes minor units
Amounts = Annotated[dict[str, Amount], Field(default_factory=dict), BeforeValidator(_amounts)]


class AlertRuleSettings(Body):
    """Every setting of the rule named in the path (the GET answer shows which)"""

    enabled: Enabled
    thresholds: Annotated[
        Amounts, Field(description="large_payment: currency -> amount at which a single payment is flagged")
    ]
    window_seconds: Seconds
    max_payments: Annotated[
        int, Field(ge=1, le=MAX_PAYMENTS), worded(f"must be a whole number from 1 to {MAX_PAYMENTS}")
    ] | Absent = None
    max_amounts: Annotated[Amounts, Field(description="velocity: currency -> total between two banks in the window")]
    initiated_seconds: Seconds
    rejected_seconds: Seconds
    deadline_seconds: Seconds
    confirm_seconds: Annotated[
        Seconds, Field(description="supply_drift: how long the same difference must hold before it is raised")
    ]


def parse_settings(rule: str, body: AlertRuleSettings, currencies: Currencies) -> JSON:
    """A rule's settings from the HTTP body (amounts as decimal strings); every field is required."""
    fields = SETTINGS_FIELDS[rule]
    given = body.model_fields_set
    unknown = sorted(given - set(fields))
    if unknown:
        raise bad_request(f"unknown field(s) for {rule}: {', '.join(unknown[:5])}")
    missing = [name for name in fields if name not in given]
    if missing:
        raise bad_request(f"{rule} needs every one of its settings; missing: {', '.join(missing)}")
    settings: JSON = {}
    for name in fields:
        value = getattr(body, name)
        if name in ("thresholds", "max_amounts"):
            amounts: dict[str, int] = {}
            for currency, amount in value.items():
                try:
                    amounts[currency] = currencies.parse_amount(amount, currency, f"{name}.{currency}")
                except MoneyError as error:
                    raise ApiProblem(400, error.code, f"{name}: {error.message}") from error
            settings[name] = amounts
        else:
            settings[name] = value
    return settings


def settings_view(settings: dict[str, JSON], currencies: Currencies) -> JSON:
    """Every rule's settings, amounts as decimal strings."""
    view: JSON = {}
    for rule, values in settings.items():
        shown = dict(values)
        for name in ("thresholds", "max_amounts"):
            if name in shown:
                shown[name] = {
                    currency: currencies.format_amount(int(amount), currency)
                    for currency, amount in sorted(shown[name].items())
                }
        view[rule] = shown
    return view


# -- alerts ---------------------------------------------------------------------------------------


def alert_view(alert: Alert) -> JSON:
    return {
        "alert_id": alert.id,
        "rule": alert.rule,
        "subject": alert.subject,
        "state": "acknowledged" if alert.acknowledged_at is not None else "open",
        "raised_at": representations.timestamp(alert.raised_at),
        "evidence": json.loads(alert.evidence),
        "acknowledged_at": representations.timestamp(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "note": alert.acknowledgement_note,
    }


ALERT_COLUMNS = ("alert_id", "rule", "state", "raised_at", "subject", "acknowledged_at", "acknowledged_by", "note",
                 "evidence")  # fmt: skip


def alert_row(view: JSON) -> list[Any]:
    return [
        view["alert_id"], view["rule"], view["state"], view["raised_at"], view["subject"], view["acknowledged_at"],
        view["acknowledged_by"], view["note"], json.dumps(view["evidence"], sort_keys=True),
    ]  # fmt: skip


class AlertStore:
    def __init__(self, services: Services) -> None:
        self.db = services.db

    def raise_alert(self, rule: str, dedup_key: str, subject: str, evidence: JSON) -> str | None:
        """Record the alert unless one with this key exists; returns the new alert's id, if any."""
        alert_id = secrets.token_hex(8)
        try:
            with self.db.session() as session:
                if session.scalar(select(Alert.id).where(Alert.dedup_key == dedup_key)) is not None:
                    return None
                raised_at = utcnow()
                session.add(
                    Alert(
                        id=alert_id,
                        rule=rule,
                        dedup_key=dedup_key,
                        subject=subject[:256],
                        evidence=json.dumps(evidence, sort_keys=True),
                        raised_at=raised_at,
                    )
                )
                # Queued in the same transaction: an alert is pushed exactly when it is raised.
                pushed = {
                    "alert_id": alert_id,
                    "rule": rule,
                    "subject": subject[:256],
                    "raised_at": representations.timestamp(raised_at),
                    "evidence": evidence,
                }
                enqueue(session, ALERT_SUBSCRIBER, ALERT_RAISED, f"{ALERT_RAISED}:{alert_id}", pushed)
        except IntegrityError:
            return None  # raised at the same moment by another thread: one is enough
        log.info("alert %s raised: %s", alert_id, subject)
        return alert_id

    def list(self, state: str | None, rule: str | None) -> list[Alert]:
        with self.db.session(write=False) as session:
            query = select(Alert).order_by(Alert.raised_at.desc(), Alert.id)
            if state == "open":
                query = query.where(Alert.acknowledged_at.is_(None))
            elif state == "acknowledged":
                query = query.where(Alert.acknowledged_at.is_not(None))
            if rule is not None:
                query = query.where(Alert.rule == rule)
            return list(session.scalars(query))

    def get(self, alert_id: str) -> Alert | None:
        with self.db.session(write=False) as session:
            return session.get(Alert, alert_id)

    def acknowledge(self, alert_id: str, key_id: str, note: str | None) -> Alert:
        with self.db.session() as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                raise ApiProblem(404, "alert_not_found", f"no alert {alert_id}")
            if alert.acknowledged_at is not None:
                if alert.acknowledgement_note == note:
                    return alert  # a retry of the same acknowledgement
                raise ApiProblem(
                    409,
                    "already_acknowledged",
                    f"alert {alert_id} was acknowledged at {representations.timestamp(alert.acknowledged_at)} "
                    f"by key {alert.acknowledged_by}",
                )
            alert.acknowledged_at = utcnow()
            alert.acknowledged_by = key_id
            alert.acknowledgement_note = note
            return alert


# -- the monitor --------------------------------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _epoch_bucket(moment: datetime, seconds: int) -> int:
    return int(moment.timestamp()) // seconds


class RegulatorMonitor:
    """Follows the channel's events and scans what is open; raises alerts (see the module docstring)."""

    def __init__(
        self,
        services: Services,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scan_interval: float = SCAN_INTERVAL_SECONDS,
        retry_seconds: float = 2.0,
        supply_interval: float = SUPPLY_CHECK_SECONDS,
    ) -> None:
        self.services = services
        self.ledger = cast(OversightLedger, services.ledger)
        # The same position store as the banks' payment follower, under the monitor's own name.
        self.checkpoints = Checkpoints(services, CHECKPOINT_NAME)
        self.rules = RuleBook(services)
        self.alerts = AlertStore(services)
        self.clock = clock
        self.scan_interval = scan_interval
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stream: Any = None
        self._unsaved: LedgerEvent | None = None
        self._saved_at = 0.0
        self.supply_interval = supply_interval
        self.drifts = supply_watch.DriftTracker()
        # For the supply rule: whether events are arriving, and when the last one did.
        self._stream_live = False
        self._events_seen = 0
        self._last_event_at = 0.0

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        loops: tuple[tuple[Callable[[], None], str], ...] = (
            (self.follow, "regulator-monitor"),
            (lambda: self._every(self.scan_interval, self.scan, "scan"), "regulator-scan"),
            (
                lambda: self._every(self.supply_interval, self._check_supply_when_quiet, "supply check"),
                "regulator-supply",
            ),
        )
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        for thread in self._threads:
            thread.join(timeout=30)

    # -- events ---------------------------------------------------------------
    def load_checkpoint(self) -> tuple[int, str | None]:
        return self.checkpoints.load()

    def save_checkpoint(self, event: LedgerEvent) -> None:
        self.checkpoints.save(event)

    def follow(self) -> None:
        """Handle events from the checkpoint on, until stopped; resumes after a dropped stream."""
        while not self._stop.is_set():
            block, tx_id = self.load_checkpoint()
            try:
                self._stream = self.ledger.events(block, tx_id)
                self._stream_live = True
                for event in self._stream:
                    if self._stop.is_set():
                        break
                    self._events_seen += 1
                    self._last_event_at = time.monotonic()
                    self.handle_with_retries(event)
                    self._handled(event)
            except LedgerError as error:
                log.warning("event stream interrupted (%s); resuming from the checkpoint", type(error).__name__)
            except Exception:
                log.exception("regulator monitor failed; resuming from the checkpoint")
            finally:
                self._stream, self._stream_live = None, False
                self._flush()
            self._stop.wait(self.retry_seconds)

    def _handled(self, event: LedgerEvent) -> None:
        # At most one checkpoint write a second: a restart handles that much again, which the
        # alerts' unique keys make harmless.
        self._unsaved = event
        if time.monotonic() - self._saved_at >= CHECKPOINT_INTERVAL:
            self._flush()

    def _flush(self) -> None:
        if self._unsaved is not None:
            self.save_checkpoint(self._unsaved)
            self._unsaved, self._saved_at = None, time.monotonic()

    def handle_with_retries(self, event: LedgerEvent) -> list[str]:
        while not self._stop.is_set():
            try:
                return self.handle(event)
            except LedgerUnavailable:
                self._stop.wait(self.retry_seconds)
        return []

    def handle(self, event: LedgerEvent) -> list[str]:
        """The alerts one event raises (only a new payment can raise any, and an InitiatePayments
        transaction's event lists several); keeps its supply report."""
        supply_watch.record(self.services.db, event)
        raised: list[str] = []
        for name, about in payment_events(event):
            payment_id = about.get("payment_id")
            if name == "PaymentInitiated" and isinstance(payment_id, str):
                raised.extend(self.observe(self.ledger.get_payment(payment_id)))
        return raised

    # -- payment rules ----------------------------------------------------------
    def observe(self, record: JSON) -> list[str]:
        created = _moment(record.get("created_at"))
        amount = record.get("amount")
        if created is None or isinstance(amount, bool) or not isinstance(amount, int):
            return []
        payment_id = str(record["payment_id"])
        try:
            # A plain statement, on every payment of the channel (decision 0035).
            with self.services.db.transaction() as connection:
                connection.execute(
                    insert(ObservedPayment).values(
                        payment_id=payment_id,
                        payer_bank=str(record["payer_bank"]),
                        payee_bank=str(record["payee_bank"]),
                        currency=str(record["currency"]),
                        amount=amount,
                        created_at=created,
                    )
                )
        except IntegrityError:
            pass  # observed before a restart: its rules are checked again, their alerts' keys are unique
        settings = self.rules.load()
        raised: list[str | None] = []
        if settings[LARGE_PAYMENT]["enabled"]:
            raised.append(self._large_payment(record, settings[LARGE_PAYMENT]["thresholds"]))
        if settings[VELOCITY]["enabled"]:
            raised += self._velocity(record, created, settings[VELOCITY])
        return [alert_id for alert_id in raised if alert_id is not None]

    def _large_payment(self, record: JSON, thresholds: dict[str, int]) -> str | None:
        currencies = self.services.currencies()
        legs = [(record["currency"], record["amount"])]
        if record.get("payee_currency") and record.get("payee_currency") != record["currency"]:
            legs.append((record["payee_currency"], record.get("payee_amount")))
        for currency, amount in legs:
            threshold = thresholds.get(currency)
            if threshold is None or not isinstance(amount, int) or amount < threshold:
                continue
            shown = currencies.format_amount(amount, currency)
            return self.alerts.raise_alert(
                LARGE_PAYMENT,
                f"{LARGE_PAYMENT}:{record['payment_id']}",
                f"payment of {shown} {currency} from {record['payer_bank']} to {record['payee_bank']}",
                {
                    "payment_ids": [record["payment_id"]],
                    "payer_bank": record["payer_bank"],
                    "payee_bank": record["payee_bank"],
                    "currency": currency,
                    "amount": shown,
                    "threshold": currencies.format_amount(threshold, currency),
                    "created_at": record.get("created_at"),
                },
            )
        return None

    def _velocity(self, record: JSON, created: datetime, settings: JSON) -> list[str | None]:
        if settings.get("max_payments") is None and not settings.get("max_amounts"):
            return []  # no limit set: nothing to count (the payment is kept for when one is)
        window = int(settings["window_seconds"])
        payer, payee = str(record["payer_bank"]), str(record["payee_bank"])
        since = created - timedelta(seconds=window)
        with self.services.db.session(write=False) as session:
            rows = list(
                session.execute(
                    select(ObservedPayment.payment_id, ObservedPayment.currency, ObservedPayment.amount)
                    .where(
                        ObservedPayment.payer_bank == payer,
                        ObservedPayment.payee_bank == payee,
                        ObservedPayment.created_at >= since,
                        ObservedPayment.created_at <= created,
                    )
                    .order_by(ObservedPayment.created_at)
                )
            )
        bucket = _epoch_bucket(created, window)
        evidence_base = {
            "payer_bank": payer,
            "payee_bank": payee,
            "window_seconds": window,
            "window_start": representations.timestamp(since),
            "window_end": record.get("created_at"),
            "triggered_by": record["payment_id"],
        }
        raised: list[str | None] = []
        limit = settings.get("max_payments")
        if limit is not None and len(rows) > limit:
            raised.append(
                self.alerts.raise_alert(
                    VELOCITY,
                    f"{VELOCITY}:{payer}>{payee}:count:{bucket}",
                    f"{len(rows)} payments from {payer} to {payee} within {window} s (limit {limit})",
                    {
                        **evidence_base,
                        "payments": len(rows),
                        "limit": limit,
                        "payment_ids": [row[0] for row in rows][-MAX_EVIDENCE_PAYMENTS:],
                    },
                )
            )
        currencies = self.services.currencies()
        for currency, ceiling in sorted((settings.get("max_amounts") or {}).items()):
            in_currency = [row for row in rows if row[1] == currency]
            total = sum(int(row[2]) for row in in_currency)
            if total <= ceiling:
                continue
            raised.append(
                self.alerts.raise_alert(
                    VELOCITY,
                    f"{VELOCITY}:{payer}>{payee}:{currency}:{bucket}",
                    f"{currencies.format_amount(total, currency)} {currency} from {payer} to {payee} within "
                    f"{window} s (limit {currencies.format_amount(ceiling, currency)})",
                    {
                        **evidence_base,
                        "currency": currency,
                        "total": currencies.format_amount(total, currency),
                        "limit": currencies.format_amount(ceiling, currency),
                        "payments": len(in_currency),
                        "payment_ids": [row[0] for row in in_currency][-MAX_EVIDENCE_PAYMENTS:],
                    },
                )
            )
        return raised

    # -- supply against its reports --------------------------------------------------
    def _every(self, interval: float, work: Callable[[], object], what: str) -> None:
        """Run ``work`` every ``interval`` seconds until stopped; a failed pass is logged, not fatal."""
        while not self._stop.wait(interval):
            try:
                work()
            except LedgerError as error:
                log.warning("regulator %s interrupted: %s", what, type(error).__name__)
            except Exception:
                log.exception("regulator %s failed", what)

    def _check_supply_when_quiet(self) -> None:
        if self._stream_live and time.monotonic() - self._last_event_at >= QUIET_SECONDS:
            self.check_supply()

    def check_supply(self) -> list[str]:
        """Compare each supply with its reports; the alerts raised for differences that held."""
        settings = self.rules.load()[SUPPLY_DRIFT]
        if not settings["enabled"]:
            return []
        seen, height = self._events_seen, self.ledger.channel_view().height
        on_ledger = supply_watch.ledger_supply(self.ledger.get_supply().get("token_classes") or [])
        if self.ledger.channel_view().height != height or self._events_seen != seen:
            return []  # the chain moved while the supply was read: judge at a quieter moment
        reports = supply_watch.reported_supply(self.services.db)
        drifts = self.drifts.observe(on_ledger, reports, self.clock(), int(settings["confirm_seconds"]))
        raised = [self._drift(drift) for drift in drifts]
        return [alert_id for alert_id in raised if alert_id is not None]

    def _drift(self, drift: supply_watch.Drift) -> str | None:
        issuer, currency = drift.token_class
        currencies = self.services.currencies()
        shown = {
            name: currencies.format_amount(amount, currency)
            for name, amount in (("ledger_supply", drift.ledger_supply), ("reported_supply", drift.reported_supply),
                                 ("difference", drift.difference))
        }  # fmt: skip
        return self.alerts.raise_alert(
            SUPPLY_DRIFT,
            f"{SUPPLY_DRIFT}:{issuer}/{currency}:{drift.difference}",
            f"supply of {issuer}'s {currency} is {shown['ledger_supply']} on the ledger, but its transactions "
            f"reported {shown['reported_supply']} (difference {shown['difference']})",
            {
                "issuer": issuer,
                "currency": currency,
                **shown,
                "since": representations.timestamp(drift.since),
                "last_reported_transactions": supply_watch.recent_transactions(self.services.db, drift.token_class),
            },
        )

    # -- what stays open too long --------------------------------------------------
    def scan(self) -> list[str]:
        """One pass over open payments and open cycles against the clock; the alerts it raised."""
        from gateway.bank_api.oversight import every_payment

        settings = self.rules.load()
        now = self.clock()
        raised: list[str | None] = []
        stale = settings[STALE_PAYMENT]
        if stale["enabled"]:
            for status in ("initiated", "rejected"):
                allowed = int(stale[f"{status}_seconds"])
                for record in every_payment(self.ledger, {"status": status}, limit=10**9):
                    raised.append(self._stale(record, status, allowed, now))
        cycles = settings[UNCONFIRMED_CYCLE]
        if cycles["enabled"]:
            data = self.ledger.list_settlement_cycles()
            for cycle in data.get("cycles") or []:
                if isinstance(cycle, dict):
                    raised.append(self._unconfirmed(cycle, int(cycles["deadline_seconds"]), now))
        return [alert_id for alert_id in raised if alert_id is not None]

    def _stale(self, record: JSON, status: str, allowed: int, now: datetime) -> str | None:
        entered = [step.get("at") for step in record.get("timeline") or [] if step.get("status") == status]
        since = _moment(entered[-1] if entered else record.get("created_at"))
        if since is None or (now - since).total_seconds() <= allowed:
            return None
        age = int((now - since).total_seconds())
        return self.alerts.raise_alert(
            STALE_PAYMENT,
            f"{STALE_PAYMENT}:{record['payment_id']}:{status}",
            f"payment from {record['payer_bank']} to {record['payee_bank']} {status} for {age} s (limit {allowed} s)",
            {
                "payment_ids": [record["payment_id"]],
                "status": status,
                "since": representations.timestamp(since),
                "age_seconds": age,
                "limit_seconds": allowed,
                "payer_bank": record["payer_bank"],
                "payee_bank": record["payee_bank"],
                "waiting_for": record["payee_bank"] if status == "initiated" else record["payer_bank"],
            },
        )

    def _unconfirmed(self, cycle: JSON, deadline: int, now: datetime) -> str | None:
        opened = _moment(cycle.get("opened_at"))
        confirmations = cycle.get("confirmations") or {}
        pending = sorted(bank for bank, leg in confirmations.items() if not (leg or {}).get("confirmed"))
        if opened is None or not pending or (now - opened).total_seconds() <= deadline:
            return None
        return self.alerts.raise_alert(
            UNCONFIRMED_CYCLE,
            f"{UNCONFIRMED_CYCLE}:{cycle['cycle_id']}",
            f"settlement cycle {cycle['cycle_id']} unconfirmed by {', '.join(pending)} "
            f"{int((now - opened).total_seconds())} s after opening (limit {deadline} s)",
            {
                "cycle_id": cycle["cycle_id"],
                "opened_at": representations.timestamp(opened),
                "pending_banks": pending,
                "payments": len(cycle.get("payments") or []),
                "limit_seconds": deadline,
            },
        )


def start_monitor(services: Services) -> RegulatorMonitor:
    monitor = RegulatorMonitor(services)
    monitor.start()
    services.workers.append(monitor)
    return monitor
