"""API keys: operators (bank staff), merchants (bound to one account), attestors and group treasurers.

An attestor (an inspection or logistics company named in escrows) is bound to its attestor
id, kept in the key's ``account_id`` column: it reaches no account, only the escrows that
name it (routes/escrows.py).

A key reads ``dtk_<key id>_<secret>``. The database keeps the key id and a SHA-256 of
the secret (the secret is 256 random bits, so a fast hash is enough); a key is shown
only when it is made, and revoking it takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import Request, current_app, g, request
from sqlalchemy import bindparam, select

from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import ApiKey, utcnow

OPERATOR = "operator"
MERCHANT = "merchant"
ATTESTOR = "attestor"
TREASURER = "treasurer"
KEY_PREFIX = "dtk_"

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    role: str
    key_id: str
    account_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR

    @property
    def attestor_id(self) -> str | None:
        return self.account_id if self.role == ATTESTOR else None

    @property
    def merchant_account(self) -> str | None:
        return self.account_id if self.role == MERCHANT else None

    @property
    def group_id(self) -> str | None:
        return self.account_id if self.role == TREASURER else None

    @property
    def webhook_owner(self) -> str | None:
        """Whose webhook subscriptions this key manages: its account's, or its group's."""
        if self.role == MERCHANT:
            return self.account_id
        if self.role == TREASURER:
            # "/" is not allowed in account ids, so a group's subscriptions never mix with an account's.
            return f"group/{self.account_id}"
        return None

    @property
    def idempotency_scope(self) -> str:
        # Merchants' keys are scoped to the account, so a rotated API key still finds old requests.
        if self.role == MERCHANT:
            return f"account:{self.account_id}"
        if self.role == ATTESTOR:
            return f"attestor:{self.account_id}"
        if self.role == TREASURER:
            return f"group:{self.account_id}"
        return OPERATOR


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    api_key: str


_KEY = select(ApiKey.key_id, ApiKey.role, ApiKey.account_id, ApiKey.secret_hash, ApiKey.revoked_at).where(
    ApiKey.key_id == bindparam("key_id")
)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, role: str, account_id: str | None = None, label: str | None = None) -> IssuedKey:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.db.session() as session:
            session.add(
                ApiKey(
                    key_id=key_id,
                    secret_hash=_hash(secret),
                    role=role,
                    account_id=account_id,
                    label=label,
                    created_at=utcnow(),
                )
            )
        return IssuedKey(key_id=key_id, api_key=f"{KEY_PREFIX}{key_id}_{secret}")

    def verify(self, api_key: str) -> Principal | None:
        if not api_key.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = api_key.removeprefix(KEY_PREFIX).partition("_")
        if not sep or not key_id or not secret or len(key_id) > 32:
            return None
        # Read on every request, never cached, so a revocation holds from the next request on: a
        # plain statement built once (decision 0035).
        with self.db.transaction(write=False) as connection:
            row = connection.execute(_KEY, {"key_id": key_id}).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return Principal(role=row.role, key_id=row.key_id, account_id=row.account_id)

    def revoke(self, key_id: str, account_id: str | None = None) -> bool:
        with self.db.session() as session:
            row = session.get(ApiKey, key_id)
            if row is None or (account_id is not None and row.account_id != account_id):
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True

    def list_for_account(self, account_id: str) -> list[ApiKey]:
        with self.db.session(write=False) as session:
            rows = session.scalars(select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at))
            return list(rows)

    def ensure_operator_key_file(self, path: str | None) -> str | None:
        """Make sure ``path`` holds a working operator key; create one on first start.

        Returns the key id when a new key was written. An existing file whose key still
        verifies is left alone, so restarts keep the same key.
        """
        if not path:
            return None
        key_file = Path(path)
        with self.db.session() as session:
            # The write session serialises this check between workers starting together.
            if key_file.exists():
                key_id, _, secret = key_file.read_text().strip().removeprefix(KEY_PREFIX).partition("_")
                row = session.get(ApiKey, key_id) if key_id else None
                if (
                    row is not None
                    and row.role == OPERATOR
                    and row.revoked_at is None
                    and hmac.compare_digest(row.secret_hash, _hash(secret))
                ):
                    return None
            key_id = secrets.token_hex(8)
            secret = secrets.token_urlsafe(32)
            session.add(
                ApiKey(
                    key_id=key_id,
                    secret_hash=_hash(secret),
                    role=OPERATOR,
                    account_id=None,
                    label="created on first start",
                    created_at=utcnow(),
                )
            )
            session.flush()
            key_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = key_file.with_suffix(key_file.suffix + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{KEY_PREFIX}{key_id}_{secret}\n")
            os.replace(tmp, key_file)
        log.info("operator API key %s written to %s", key_id, key_file)
        return key_id


def presented_key(req: Request) -> str | None:
    header = req.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    key = req.headers.get("X-API-Key")
    return key.strip() if key else None


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:  # pragma: no cover - routes always go through a decorator first
        raise ApiProblem(401, "unauthenticated", "an API key is required")
    return cast(Principal, principal)


def _authenticate(keys: KeyStore) -> Principal:
    key = presented_key(request)
    if key is None:
        raise ApiProblem(
            401,
            "unauthenticated",
            "an API key is required: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="bank-api"'},
        )
    principal = keys.verify(key)
    if principal is None:
        raise ApiProblem(
            401,
            "unauthenticated",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="bank-api", error="invalid_token"'},
        )
    return principal


def requires(*roles: str) -> Callable[[F], F]:
    """Route decorator: a valid key of one of ``roles``; the principal lands in ``g.principal``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            keys: KeyStore = current_app.extensions["bank_api"].keys
            principal = _authenticate(keys)
            if principal.role not in roles:
                needed = " or ".join(roles)
                article = "an" if needed[0] in "aeiou" else "a"
                raise ApiProblem(403, "forbidden", f"this route needs {article} {needed} key")
            g.principal = principal
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def ensure_account_access(principal: Principal, account_id: str) -> None:
    """Operators see every account of the bank; a merchant only its own."""
    if principal.is_operator:
        return
    if principal.merchant_account != account_id:
        raise ApiProblem(403, "forbidden", "this API key is not allowed to reach that account")
