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
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import WebhookDelivery, WebhookSubscription, utcnow

EVENT_TYPES = ("payment.received", "payment.completed", "payment.rejected", "payment.refunded")
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
    def __init__(self, db: Database, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.db = db
        self.allowed_hosts = allowed_hosts

    def check_url(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise WebhookError("url must be an absolute http or https URL")
        if parsed.username or parsed.password:
            raise WebhookError("url must not carry credentials")
        if self.allowed_hosts and parsed.hostname not in self.allowed_hosts:
            raise WebhookError(f"webhooks may only go to {', '.join(self.allowed_hosts)}")

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


class WebhookSender:
    """Background worker: sends due deliveries, one at a time, with backoff on failure."""

    def __init__(
        self,
        db: Database,
        timeout_seconds: float,
        max_attempts: int,
        on_attempt: Any = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.db = db
        self.timeout = timeout_seconds
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.on_attempt = on_attempt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.send_due()
            except Exception:
                log.exception("webhook sender failed; retrying")
                sent = 0
            if sent == 0:
                self._stop.wait(self.poll_seconds)

    def send_due(self, now: datetime | None = None, limit: int = 20) -> int:
        """Attempt every delivery that is due; returns how many were attempted."""
        moment = now or utcnow()
        with self.db.session(write=False) as session:
            due = session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(WebhookSubscription, WebhookDelivery.subscription_id == WebhookSubscription.id)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= moment)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            ).all()
            jobs = [(d.id, s.url, s.secret, d.payload, d.event_type) for d, s in due]
        for delivery_id, url, secret, payload, event_type in jobs:
            status, error = self._post(url, secret, payload, delivery_id, event_type)
            self._record(delivery_id, status, error)
        return len(jobs)

    def _post(
        self, url: str, secret: str, payload: str, delivery_id: str, event_type: str
    ) -> tuple[int | None, str | None]:
        body = payload.encode()
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "deposit-token-bank-api",
                SIGNATURE_HEADER: sign(secret, int(time.time()), body),
                "Bank-Api-Delivery": delivery_id,
                "Bank-Api-Event": event_type,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), None
        except urllib.error.HTTPError as error:
            return int(error.code), f"receiver answered {error.code}"
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            return None, f"could not reach the receiver: {reason}"[:500]

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
