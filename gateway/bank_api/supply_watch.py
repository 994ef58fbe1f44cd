"""Supply over time, and supply that moves without a report (the regulator's side; decision 0030).

Every transaction that changes a supply reports the change in its event (``supply``:
``{"at", "changes": [{"issuer", "currency", "delta"}]}``, docs/contract-api.md). The regulator's
monitor stores each reported change once (keyed by transaction and position, so handling an event
again after a restart adds nothing). From these rows:

- the **history** of a token class is their running sum, in buckets of a minute, an hour or a day;
- the **reported supply** of a class is their sum, which must equal the supply the ledger holds.
  A difference means a supply moved without a report (an issuer running altered chaincode, say,
  minting without an ``Issued`` event). The ledger's figure and the reports are read at different
  moments, so a difference is judged only when the channel is quiet (no event for a moment and no
  block committed while the supply was read) and reported only once the same difference has held
  for ``confirm_seconds``: a report still on its way shows as a difference that goes away.

The monitor reads events from block 0 on a new database, so the reports cover the whole chain. A
channel whose contract predates the reports starts with a difference equal to its supply then.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.bank_api.ledger import JSON, LedgerEvent
from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import SupplyMovement

INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_POINTS = 10_000
MAX_CHANGES_PER_EVENT = 16
# What a report's fields may hold: the contract's own MSP id and currency shapes.
_ISSUER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")

TokenClass = tuple[str, str]  # (issuer, currency)


@dataclass(frozen=True)
class Movement:
    issuer: str
    currency: str
    delta: int
    at: datetime


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reported(event: LedgerEvent) -> list[Movement]:
    """The supply changes an event reports; nothing for an event without a well-formed report.

    Events come from every bank's chaincode, altered or not: a malformed report is ignored here
    (and shows, if the supply did move, as a difference the drift rule reports).
    """
    report = event.payload.get("supply")
    if not isinstance(report, dict):
        return []
    at, changes = _moment(report.get("at")), report.get("changes")
    if at is None or not isinstance(changes, list) or len(changes) > MAX_CHANGES_PER_EVENT:
        return []
    movements = []
    for change in changes:
        if not isinstance(change, dict):
            return []
        issuer, currency, delta = change.get("issuer"), change.get("currency"), change.get("delta")
        if not (isinstance(issuer, str) and _ISSUER.fullmatch(issuer)):
            return []
        if not (isinstance(currency, str) and _CURRENCY.fullmatch(currency)):
            return []
        if isinstance(delta, bool) or not isinstance(delta, int) or abs(delta) >= 2**62:
            return []
        movements.append(Movement(issuer, currency, delta, at))
    return movements


def record(db: Database, event: LedgerEvent) -> int:
    """Store the event's reported changes once; how many were new."""
    movements = reported(event)
    if not movements:
        return 0
    rows = [
        {
            "transaction_id": event.transaction_id[:64], "seq": seq, "issuer": movement.issuer,
            "currency": movement.currency, "delta": movement.delta, "at": movement.at, "event": event.name[:64],
            "block_number": event.block_number,
        }
        for seq, movement in enumerate(movements)
    ]  # fmt: skip
    try:
        # One plain statement for the whole event, on every supply event of the channel (decision 0035).
        with db.transaction() as connection:
            connection.execute(insert(SupplyMovement), rows)
    except IntegrityError:
        return 0  # stored before a restart, or at the same moment by another thread
    return len(movements)


def reported_supply(db: Database) -> dict[TokenClass, int]:
    """Each token class's supply as the sum of its reported changes."""
    with db.session(write=False) as session:
        rows = session.execute(
            select(SupplyMovement.issuer, SupplyMovement.currency, func.sum(SupplyMovement.delta)).group_by(
                SupplyMovement.issuer, SupplyMovement.currency
            )
        )
        return {(issuer, currency): int(total) for issuer, currency, total in rows}


def recent_transactions(db: Database, token_class: TokenClass, limit: int = 5) -> list[str]:
    with db.session(write=False) as session:
        rows = session.scalars(
            select(SupplyMovement.transaction_id)
            .where(SupplyMovement.issuer == token_class[0], SupplyMovement.currency == token_class[1])
            .order_by(SupplyMovement.at.desc(), SupplyMovement.block_number.desc())
            .limit(limit)
        )
        return list(rows)


@dataclass(frozen=True)
class Point:
    at: datetime  # the bucket's start
    supply: int  # at the bucket's end
    increase: int
    decrease: int  # a positive figure
    changes: int


@dataclass(frozen=True)
class History:
    opening: int  # the supply at ``since``
    points: list[Point]  # buckets with at least one change, oldest first


def bucket_start(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def history(db: Database, token_class: TokenClass, since: datetime, until: datetime, seconds: int) -> History:
    """The class's supply from ``since`` to ``until`` (inclusive), summed per bucket of ``seconds``."""
    issuer, currency = token_class
    same_class = (SupplyMovement.issuer == issuer, SupplyMovement.currency == currency)
    with db.session(write=False) as session:
        opening = session.scalar(
            select(func.coalesce(func.sum(SupplyMovement.delta), 0)).where(*same_class, SupplyMovement.at < since)
        )
        rows = session.execute(
            select(SupplyMovement.at, SupplyMovement.delta)
            .where(*same_class, SupplyMovement.at >= since, SupplyMovement.at <= until)
            .order_by(SupplyMovement.at, SupplyMovement.block_number, SupplyMovement.seq)
        ).all()
    running = int(opening or 0)
    points: list[Point] = []
    for at, delta in rows:
        start = bucket_start(at, seconds)
        if not points or points[-1].at != start:
            points.append(Point(start, running, 0, 0, 0))
        last = points[-1]
        running += int(delta)
        points[-1] = Point(
            start, running, last.increase + max(int(delta), 0), last.decrease + max(-int(delta), 0), last.changes + 1
        )
    return History(int(opening or 0), points)


@dataclass(frozen=True)
class Drift:
    token_class: TokenClass
    ledger_supply: int
    reported_supply: int
    since: datetime

    @property
    def difference(self) -> int:
        return self.ledger_supply - self.reported_supply


class DriftTracker:
    """Differences between the ledger's supply and the reported one, kept until they hold long enough."""

    def __init__(self) -> None:
        self._seen: dict[TokenClass, tuple[int, datetime]] = {}

    def observe(
        self, ledger: dict[TokenClass, int], reports: dict[TokenClass, int], now: datetime, confirm_seconds: int
    ) -> list[Drift]:
        """The differences that have held, unchanged, for ``confirm_seconds`` up to ``now``."""
        confirmed = []
        for token_class in sorted(set(ledger) | set(reports)):
            actual, expected = ledger.get(token_class, 0), reports.get(token_class, 0)
            if actual == expected:
                self._seen.pop(token_class, None)
                continue
            difference, since = self._seen.get(token_class, (None, now))
            if difference != actual - expected:
                self._seen[token_class] = (actual - expected, now)
                since = now
            if now - since >= timedelta(seconds=confirm_seconds):
                confirmed.append(Drift(token_class, actual, expected, since))
        return confirmed


def ledger_supply(token_classes: Iterable[JSON]) -> dict[TokenClass, int]:
    """``GetSupply``'s answer as a mapping; entries that are not well formed are left out."""
    supply: dict[TokenClass, int] = {}
    for item in token_classes:
        if not isinstance(item, dict):
            continue
        issuer, currency, amount = item.get("issuer"), item.get("currency"), item.get("supply")
        if isinstance(issuer, str) and isinstance(currency, str) and isinstance(amount, int):
            supply[(issuer, currency)] = amount
    return supply
