"""Webhooks: merchants are told about their payments at a URL they register.

Every delivery is signed: header ``Bank-Api-Signature: t=<unix seconds>,v1=<hex>`` where
``v1`` is HMAC-SHA256 with the subscription's secret over ``"<t>.<raw body>"``. A receiver
recomputes it, compares in constant time, and refuses old timestamps (replays). Deliveries
are rows, written in the same transaction as the event that caused them, then sent by a
worker with exponential backoff until the receiver answers 2xx or the attempts run out.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.bank_api.egress import EgressPolicy, EgressRefused, Target
from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import WebhookDelivery, WebhookSubscription, utcnow

EVENT_TYPES = (
    "payment.received", "payment.completed", "payment.rejected", "payment.refunded",
    "escrow.locked", "escrow.approved", "escrow.released", "escrow.refunded",
    "pvp.proposed", "pvp.locked", "pvp.delivered", "pvp.refunded",
    "standing_order.created", "standing_order.cancelled", "standing_order.finished",
    "standing_order.run_paid", "standing_order.run_failed",
)  # fmt: skip
SIGNATURE_HEADER = "Bank-Api-Signature"
MAX_BACKOFF_SECONDS = 3600
MAX_SUBSCRIPTIONS_PER_ACCOUNT = 10

log = logging.getLogger(__name__)


class WebhookError(ValueError):
    """A subscription request the gateway refuses; the message says why."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_seconds: int = 300) -> bool:
    """What a receiver does (also used by the tests): check the signature and its age."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff_seconds(attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failures: 2, 4, 8 ... seconds, at most an hour."""
    return float(min(2**attempts, MAX_BACKOFF_SECONDS))


@dataclass(frozen=True)
class NewSubscription:
    subscription: WebhookSubscription
    secret: str


class WebhookStore:
    def __init__(self, db: Database, allowed_hosts: tuple[str, ...] = (), policy: EgressPolicy | None = None) -> None:
        self.db = db
        self.allowed_hosts = allowed_hosts
        self.policy = policy or EgressPolicy()

    def check_url(self, url: str) -> None:
        """Refuse a URL the gateway must not call; the name is resolved too when it resolves now."""
        try:
            target = self.policy.check_url(url)
            if self.allowed_hosts and target.host.lower() not in (h.lower() for h in self.allowed_hosts):
                raise WebhookError(f"webhooks may only go to {', '.join(self.allowed_hosts)}")
            self.policy.resolve(url)
        except EgressRefused as error:
            # A name that does not resolve yet may be registered; delivery checks again anyway.
            if "does not resolve" not in str(error):
                raise WebhookError(str(error)) from error

    def subscribe(self, account_id: str, url: str, event_types: list[str]) -> NewSubscription:
        self.check_url(url)
        secret = "whsec_" + secrets.token_urlsafe(32)
        with self.db.session() as session:
            active = session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.account_id == account_id, WebhookSubscription.disabled_at.is_(None)
                )
            ).all()
            if len(active) >= MAX_SUBSCRIPTIONS_PER_ACCOUNT:
                raise WebhookError(f"an account may have at most {MAX_SUBSCRIPTIONS_PER_ACCOUNT} webhooks")
            subscription = WebhookSubscription(
                id="wh_" + secrets.token_hex(10),
                account_id=account_id,
                url=url,
                secret=secret,
                event_types=",".join(event_types),
                created_at=utcnow(),
            )
            session.add(subscription)
        return NewSubscription(subscription, secret)

    def active(self, account_id: str) -> list[WebhookSubscription]:
        with self.db.session(write=False) as session:
            return list(
                session.scalars(
                    select(WebhookSubscription)
                    .where(
                        WebhookSubscription.account_id == account_id,
                        WebhookSubscription.disabled_at.is_(None),
                    )
                    .order_by(WebhookSubscription.created_at)
                )
            )

    def get(self, account_id: str, subscription_id: str) -> WebhookSubscription | None:
        with self.db.session(write=False) as session:
            row = session.get(WebhookSubscription, subscription_id)
            if row is None or row.account_id != account_id:
                return None
            return row

    def unsubscribe(self, account_id: str, subscription_id: str) -> bool:
        with self.db.session() as session:
            row = session.get(WebhookSubscription, subscription_id)
            if row is None or row.account_id != account_id or row.disabled_at is not None:
                return False
            row.disabled_at = utcnow()
            return True

    def deliveries(self, subscription_id: str, limit: int, before: str | None) -> list[WebhookDelivery]:
        with self.db.session(write=False) as session:
            query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
            if before:
                anchor = session.get(WebhookDelivery, before)
                if anchor is not None:
                    query = query.where(WebhookDelivery.created_at <= anchor.created_at, WebhookDelivery.id != before)
            query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
            return list(session.scalars(query))


def enqueue(session: Session, account_id: str, event_type: str, event_id: str, data: dict[str, Any]) -> int:
    """Queue ``event_type`` for every subscription of the account that wants it (once per event id).

    Runs inside the caller's transaction, so the delivery rows commit with the caller's
    checkpoint or not at all.
    """
    now = utcnow()
    subscriptions = session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.account_id == account_id, WebhookSubscription.disabled_at.is_(None)
        )
    ).all()
    queued = 0
    for subscription in subscriptions:
        if event_type not in subscription.event_types.split(","):
            continue
        exists = session.scalar(
            select(WebhookDelivery.id).where(
                WebhookDelivery.subscription_id == subscription.id, WebhookDelivery.event_id == event_id
            )
        )
        if exists is not None:
            continue
        payload = {
            "id": event_id,
            "type": event_type,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        session.add(
            WebhookDelivery(
                id="whd_" + secrets.token_hex(10),
                subscription_id=subscription.id,
                event_id=event_id,
                event_type=event_type,
                payload=json.dumps(payload, separators=(",", ":"), sort_keys=True),
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        queued += 1
    return queued


@dataclass(frozen=True)
class _Job:
    delivery_id: str
    subscription_id: str
    url: str
    secret: str
    payload: str
    event_type: str


class WebhookSender:
    """Background worker: sends due deliveries on a small pool, with backoff on failure.

    Each subscription has at most one delivery in flight, so a receiver that answers slowly (or
    not at all, until the timeout) holds one worker and delays no other merchant's webhooks.
    """

    def __init__(
        self,
        db: Database,
        timeout_seconds: float,
        max_attempts: int,
        on_attempt: Any = None,
        poll_seconds: float = 0.5,
        policy: EgressPolicy | None = None,
        concurrency: int = 8,
    ) -> None:
        self.db = db
        self.policy = policy or EgressPolicy()
        self.timeout = timeout_seconds
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.on_attempt = on_attempt
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._in_flight: dict[str, str] = {}  # delivery id -> subscription id
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-sender") as pool:
            while not self._stop.is_set():
                self._wake.clear()
                with self._lock:
                    free = self.concurrency - len(self._in_flight)
                jobs: list[_Job] = []
                if free > 0:
                    try:
                        jobs = self._due(utcnow(), free)
                    except Exception:
                        log.exception("webhook sender could not read its queue; retrying")
                for job in jobs:
                    with self._lock:
                        self._in_flight[job.delivery_id] = job.subscription_id
                    pool.submit(self._send_tracked, job)
                if not jobs:
                    self._wake.wait(self.poll_seconds)

    def _send_tracked(self, job: _Job) -> None:
        try:
            self._send(job)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", job.delivery_id)
        finally:
            with self._lock:
                self._in_flight.pop(job.delivery_id, None)
            self._wake.set()

    def _due(self, moment: datetime, limit: int) -> list[_Job]:
        """Due deliveries, oldest first, at most one per subscription and none of a busy subscription."""
        with self._lock:
            busy = set(self._in_flight.values())
        with self.db.session(write=False) as session:
            due = session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(WebhookSubscription, WebhookDelivery.subscription_id == WebhookSubscription.id)
                .where(
                    WebhookDelivery.state == "pending",
                    WebhookDelivery.next_attempt_at <= moment,
                    WebhookDelivery.subscription_id.not_in(busy),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit * 4)
            ).all()
        jobs: list[_Job] = []
        for d, s in due:
            if s.id in busy or len(jobs) == limit:
                continue
            busy.add(s.id)
            jobs.append(_Job(d.id, s.id, s.url, s.secret, d.payload, d.event_type))
        return jobs

    def _send(self, job: _Job) -> None:
        status, error = self._post(job.url, job.secret, job.payload, job.delivery_id, job.event_type)
        self._record(job.delivery_id, status, error)

    def send_due(self, now: datetime | None = None, limit: int = 20) -> int:
        """Attempt the deliveries that are due (one per subscription, in parallel), here and now;
        returns how many were attempted."""
        jobs = self._due(now or utcnow(), limit)
        if len(jobs) > 1:
            with ThreadPoolExecutor(min(len(jobs), self.concurrency)) as pool:
                list(pool.map(self._send, jobs))
        elif jobs:
            self._send(jobs[0])
        return len(jobs)

    def _post(
        self, url: str, secret: str, payload: str, delivery_id: str, event_type: str
    ) -> tuple[int | None, str | None]:
        body = payload.encode()
        try:
            # Checked again now, on what the name resolves to now: it may have changed since
            # registration (DNS rebinding), and the connection goes to the address checked here.
            target = self.policy.resolve(url)
        except EgressRefused as error:
            return None, f"refused: {error}"[:500]
        connection = _pinned_connection(target, self.timeout)
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "deposit-token-bank-api",
                    SIGNATURE_HEADER: sign(secret, int(time.time()), body),
                    "Bank-Api-Delivery": delivery_id,
                    "Bank-Api-Event": event_type,
                },
            )
            status = int(connection.getresponse().status)
        except (OSError, http.client.HTTPException, ValueError) as error:
            return None, f"could not reach the receiver: {error}"[:500]
        finally:
            connection.close()
        if 300 <= status < 400:
            return status, f"receiver answered {status}; redirects are not followed"
        if not 200 <= status < 300:
            return status, f"receiver answered {status}"
        return status, None

    def _record(self, delivery_id: str, status: int | None, error: str | None) -> None:
        ok = status is not None and 200 <= status < 300
        if self.on_attempt is not None:
            self.on_attempt("delivered" if ok else "failed")
        now = utcnow()
        with self.db.session() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            delivery.attempts += 1
            delivery.last_status_code = status
            delivery.last_error = error
            if ok:
                delivery.state = "delivered"
                delivery.delivered_at = now
            elif delivery.attempts >= self.max_attempts:
                delivery.state = "failed"
            else:
                delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, not to whatever the host name resolves to later."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = str(target.address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same for TLS: the certificate is still checked against the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = str(target.address)
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _pinned_connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return _PinnedHTTPConnection(target, timeout)
