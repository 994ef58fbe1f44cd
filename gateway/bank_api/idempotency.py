"""Idempotent requests: one effect per (caller, Idempotency-Key), one stored answer.

The first request with a key claims it (a row, unique on scope+key, so concurrent
duplicates cannot both claim it), runs, and stores its response. Duplicates wait for
that answer and replay it; a different body under the same key is a 409. The claim is
a lease: if the gateway dies mid-request, a retry takes the request over once the
lease ends. That is safe because every ledger write the gateway makes is itself
idempotent (payment ids derive from the key; issues from the deposit reference), so
the takeover finds the first attempt's effect rather than making a second one.

Only answers that settle the request are stored (2xx and 4xx); a 5xx or a 503 from an
unreachable peer releases the key so the client's retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import IdempotencyRecord, utcnow

MAX_KEY_LENGTH = 255

_RECORDS = cast(Table, IdempotencyRecord.__table__)
_RECORD = select(_RECORDS).where(_RECORDS.c.scope == bindparam("scope"), _RECORDS.c.idempotency_key == bindparam("key"))
_STORE = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("record"), _RECORDS.c.state == bindparam("claimed"))
    .values(
        state="done",
        response_status=bindparam("status"),
        response_body=bindparam("body"),
        response_content_type=bindparam("content_type"),
        updated_at=bindparam("at"),
    )
)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    content_type: str


@dataclass(frozen=True)
class Claim:
    record_id: int
    token: str


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def validate_key(key: str | None, required: bool) -> str | None:
    if key is None:
        if required:
            raise ApiProblem(400, "idempotency_key_required", "the Idempotency-Key header is required for this request")
        return None
    if key == "" or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise ApiProblem(
            400,
            "invalid_request",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        )
    return key


class IdempotencyStore:
    def __init__(self, db: Database, lease_seconds: float, wait_seconds: float) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.wait_seconds = wait_seconds

    def claim_or_replay(self, scope: str, key: str, request_fingerprint: str) -> Claim | StoredResponse:
        """Claim the key for this request, or return the stored answer of an earlier one.

        Waits while another request holds the key, up to ``wait_seconds``; then 409.
        """
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.02
        while True:
            outcome = self._try_claim(scope, key, request_fingerprint)
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                raise ApiProblem(
                    409,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed; retry shortly",
                    headers={"Retry-After": "2"},
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _try_claim(self, scope: str, key: str, request_fingerprint: str) -> Claim | StoredResponse | None:
        now = utcnow()
        token = secrets.token_hex(8)
        try:
            # Plain statements: this runs on every write request (decision 0035).
            with self.db.transaction() as connection:
                record = connection.execute(_RECORD, {"scope": scope, "key": key}).first()
                if record is None:
                    inserted = connection.execute(
                        insert(_RECORDS).values(
                            scope=scope,
                            idempotency_key=key,
                            request_fingerprint=request_fingerprint,
                            state=f"in_flight:{token}",
                            lease_until=now + self.lease,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    new_id = inserted.inserted_primary_key
                    assert new_id is not None  # an insert into a table with a key
                    return Claim(record_id=int(new_id[0]), token=token)
                if record.request_fingerprint != request_fingerprint:
                    raise ApiProblem(
                        409,
                        "idempotency_key_reused",
                        "this Idempotency-Key was already used with a different request",
                    )
                if record.state == "done":
                    assert record.response_status is not None and record.response_body is not None
                    return StoredResponse(
                        record.response_status,
                        record.response_body,
                        record.response_content_type or "application/json",
                    )
                if record.lease_until <= now:
                    # The holder died or stalled: take the request over (see the module docstring).
                    connection.execute(
                        update(_RECORDS)
                        .where(_RECORDS.c.id == record.id)
                        .values(state=f"in_flight:{token}", lease_until=now + self.lease, updated_at=now)
                    )
                    return Claim(record_id=record.id, token=token)
                return None
        except IntegrityError:
            # A concurrent first request inserted the row between our read and insert.
            return None

    def store(self, claim: Claim, response: StoredResponse) -> None:
        # Only while the claim is still ours: a retry that took it over keeps its own answer.
        with self.db.transaction() as connection:
            connection.execute(
                _STORE,
                {
                    "record": claim.record_id, "claimed": f"in_flight:{claim.token}", "status": response.status,
                    "body": response.body, "content_type": response.content_type, "at": utcnow(),
                },
            )  # fmt: skip

    def expire_claims(self) -> int:
        """End the leases of requests left in flight, so retries take them over at once.

        Called when a gateway starts: a claim from before the start belongs to a process
        that died. Were it still alive (another worker on the same database), a takeover
        would only repeat an idempotent ledger call, so this is safe either way.
        """
        now = utcnow()
        with self.db.session() as session:
            result = session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.state != "done", IdempotencyRecord.lease_until > now)
                .values(lease_until=now, updated_at=now)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def release(self, claim: Claim) -> None:
        """Forget the claim so that a retry runs the request again."""
        with self.db.session() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.id == claim.record_id,
                    IdempotencyRecord.state == f"in_flight:{claim.token}",
                )
            )
