"""Private input: the JSON object a caller puts in the transient map under ``request``.

Transient data never reaches the ledger, so everything that names a customer or an
account travels this way. Each accessor validates one field and refuses with a message
that names the field (never its value: the value may be customer data).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.money import parse_amount, parse_currency
from chaincode.shim.api import MAX_UNICODE_RUNE, MIN_UNICODE_RUNE

TRANSIENT_KEY = "request"

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@#-]{0,127}$")
JURISDICTION = re.compile(r"^[A-Z]{2,4}$")
CREDIT_ID = re.compile(r"^[0-9a-f]{64}\.[1-9][0-9]{0,5}$")
MAX_PENDING_CREDITS = 1000
"""At most this many pending credits are folded by one transaction (they are point reads)."""


def _no_controls(text: str) -> bool:
    return (
        all(ch >= " " and ch != "\x7f" for ch in text)
        and MIN_UNICODE_RUNE not in text
        and (MAX_UNICODE_RUNE not in text)
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


class Request:
    """The validated fields of one transient request."""

    def __init__(self, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise refusal("invalid_request", f"unknown field '{unknown[0]}' in the request")
        self._data = data

    @classmethod
    def from_transient(cls, transient: Mapping[str, bytes], allowed: Iterable[str]) -> Request:
        raw = transient.get(TRANSIENT_KEY)
        if raw is None:
            raise refusal(
                "invalid_request",
                f"the transient map needs a '{TRANSIENT_KEY}' entry: private input never goes in arguments",
            )
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError):
            raise refusal("invalid_request", f"transient '{TRANSIENT_KEY}' is not a UTF-8 JSON object") from None
        if not isinstance(data, dict):
            raise refusal("invalid_request", f"transient '{TRANSIENT_KEY}' must be a JSON object")
        return cls(data, allowed)

    @classmethod
    def from_transient_or_empty(cls, transient: Mapping[str, bytes], allowed: Iterable[str]) -> Request:
        if TRANSIENT_KEY not in transient:
            return cls({}, allowed)
        return cls.from_transient(transient, allowed)

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def _required(self, name: str) -> Any:
        if name not in self._data or self._data[name] is None:
            raise refusal("invalid_request", f"'{name}' is required")
        return self._data[name]

    def text(self, name: str, max_length: int = 200, pattern: re.Pattern[str] | None = None) -> str:
        value = self._required(name)
        if not isinstance(value, str):
            raise refusal("invalid_request", f"'{name}' must be a string")
        if not value.strip():
            raise refusal("invalid_request", f"'{name}' must not be empty")
        if len(value) > max_length:
            raise refusal("invalid_request", f"'{name}' must be at most {max_length} characters")
        if not _no_controls(value):
            raise refusal("invalid_request", f"'{name}' must not contain control characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise refusal("invalid_request", f"'{name}' has characters or a length that is not allowed")
        return value

    def optional_text(self, name: str, max_length: int = 200, pattern: re.Pattern[str] | None = None) -> str | None:
        return self.text(name, max_length, pattern) if self.has(name) else None

    def account_id(self, name: str = "account_id") -> str:
        value = self._required(name)
        if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
            raise refusal(
                "invalid_request",
                f"'{name}' must be 1 to 64 letters, digits or . _ : @ - (starting with a letter or digit)",
            )
        return value

    def reference(self, name: str) -> str:
        value = self._required(name)
        if not isinstance(value, str) or not REFERENCE.fullmatch(value):
            raise refusal(
                "invalid_request",
                f"'{name}' must be 1 to 128 letters, digits or . _ : / @ # - (first a letter or digit)",
            )
        return value

    def jurisdiction(self, name: str = "jurisdiction") -> str:
        value = self._required(name)
        if not isinstance(value, str) or not JURISDICTION.fullmatch(value):
            raise refusal("invalid_request", f"'{name}' must be a jurisdiction code of 2 to 4 capital letters")
        return value

    def amount(self, name: str = "amount") -> int:
        return parse_amount(self._required(name), name)

    def optional_limit(self, name: str) -> int | None:
        if name not in self._data:
            raise refusal("invalid_request", f"'{name}' is required (null for no limit)")
        value = self._data[name]
        return None if value is None else parse_amount(value, name)

    def currency(self, exponents: dict[str, int], name: str = "currency") -> str:
        return parse_currency(self._required(name), name, exponents)

    def flag(self, name: str) -> bool:
        value = self._data.get(name, False)
        if not isinstance(value, bool):
            raise refusal("invalid_request", f"'{name}' must be true or false")
        return value

    def raw(self, name: str) -> Any:
        return self._data.get(name)

    def page_size(self, default: int = 50, maximum: int = 500) -> int:
        value = self._data.get("page_size", default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise refusal("invalid_request", f"'page_size' must be an integer from 1 to {maximum}")
        return value

    def bookmark(self) -> str:
        value = self._data.get("bookmark") or ""
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{0,2048}", value) or len(value) % 2:
            raise refusal("invalid_request", "'bookmark' must be a bookmark returned by the previous page")
        return value

    def pending_credits(self) -> list[str]:
        """Ids of credits received since the account's last debit, from ``GetAccount``."""
        return self._ids("pending_credits", MAX_PENDING_CREDITS, "credit", "credits", required=False)

    def change_ids(self, maximum: int) -> list[str]:
        """Ids of supply changes, from ``GetSupplyChanges`` (the same form as credit ids)."""
        return self._ids("change_ids", maximum, "supply change", "changes", required=True)

    def _ids(self, name: str, maximum: int, what: str, plural: str, *, required: bool) -> list[str]:
        """A list of ledger-made ids (transaction id and counter), without repeats."""
        value = self._data.get(name, None if required else [])
        if not isinstance(value, list) or (required and not value):
            article = "a non-empty list" if required else "a list"
            raise refusal("invalid_request", f"'{name}' must be {article} of {what} ids")
        if len(value) > maximum:
            raise refusal("invalid_request", f"'{name}' may list at most {maximum} {plural}")
        ids: list[str] = []
        for item in value:
            if not isinstance(item, str) or not CREDIT_ID.fullmatch(item):
                raise refusal("invalid_request", f"'{name}' holds an id that is not a {what} id")
            if item not in ids:
                ids.append(item)
        return ids


def parse_json_argument(text: str, name: str) -> dict[str, Any]:
    """A public JSON-object argument (reference data, policies, list filters)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise refusal("invalid_request", f"argument '{name}' is not valid JSON") from None
    if not isinstance(value, dict):
        raise refusal("invalid_request", f"argument '{name}' must be a JSON object")
    return value
