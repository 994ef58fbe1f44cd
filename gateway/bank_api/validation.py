"""Request parsing at the edge: every field checked, every refusal naming the field.

The same patterns feed the OpenAPI document (``openapi.py``), so the published schema
and the checks cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request

from gateway.bank_api.money import Currencies, MoneyError
from gateway.bank_api.problems import ApiProblem

ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MSP_ID = r"^[A-Za-z][A-Za-z0-9.-]{0,63}$"
REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
JURISDICTION = r"^[A-Z]{2,4}$"
CURRENCY = r"^[A-Z]{3}$"
PAYMENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
CYCLE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
OPAQUE_ID = r"^[A-Za-z0-9_-]{1,64}$"

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_BOOKMARK = 1024

_COMPILED: dict[str, re.Pattern[str]] = {}


def _pattern(pattern: str) -> re.Pattern[str]:
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled


def bad_request(detail: str, code: str = "invalid_request") -> ApiProblem:
    return ApiProblem(400, code, detail)


def json_object() -> dict[str, Any]:
    """The request body as a JSON object (an empty body counts as ``{}``)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    if not request.is_json:
        raise ApiProblem(415, "unsupported_media_type", "send the body as application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise bad_request("the body is not valid JSON")
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


class Fields:
    """Typed access to a JSON object's fields; refuses unknown ones."""

    def __init__(self, body: Mapping[str, Any], allowed: Iterable[str]) -> None:
        self.body = body
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise bad_request(f"unknown field(s): {', '.join(unknown)}")

    def text(
        self,
        name: str,
        *,
        pattern: str | None = None,
        max_length: int = 256,
        required: bool = True,
        what: str = "",
    ) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise bad_request(f"{name} is required")
            return None
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string")
        if required and value == "":
            raise bad_request(f"{name} must not be empty")
        if len(value) > max_length:
            raise bad_request(f"{name} must be at most {max_length} characters")
        if pattern is not None and value != "" and not _pattern(pattern).match(value):
            raise bad_request(f"{name} is malformed{': ' + what if what else ''}")
        if not _printable(value):
            raise bad_request(f"{name} must not contain control characters")
        return value

    def required_text(self, name: str, **kwargs: Any) -> str:
        value = self.text(name, required=True, **kwargs)
        assert value is not None
        return value

    def amount(self, name: str, currency: str, currencies: Currencies, *, required: bool = True) -> int | None:
        if name not in self.body or self.body[name] is None:
            if required:
                raise bad_request(f"{name} is required", "invalid_amount")
            return None
        try:
            return currencies.parse_amount(self.body[name], currency, name)
        except MoneyError as error:
            raise ApiProblem(400, error.code, error.message) from error

    def currency(self, name: str, currencies: Currencies, *, required: bool = True) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise bad_request(f"{name} is required", "unknown_currency")
            return None
        try:
            currencies.exponent(value)
        except MoneyError as error:
            raise ApiProblem(400, error.code, f"{name}: {error.message}") from error
        return str(value)


def _printable(value: str) -> bool:
    return all(ch.isprintable() or ch == " " for ch in value)


def path_id(value: str, pattern: str, name: str) -> str:
    if not _pattern(pattern).match(value):
        raise bad_request(f"{name} in the path is malformed")
    return value


def page_size() -> int:
    raw = request.args.get("page_size")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def cursor() -> str:
    raw = request.args.get("cursor", "")
    if len(raw) > MAX_BOOKMARK or not raw.isprintable():
        raise bad_request("cursor is malformed")
    return raw


def query_choice(name: str, choices: Iterable[str]) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    options = list(choices)
    if raw not in options:
        raise bad_request(f"{name} must be one of {', '.join(options)}")
    return raw


def query_pattern(name: str, pattern: str) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not _pattern(pattern).match(raw):
        raise bad_request(f"{name} is malformed")
    return raw
