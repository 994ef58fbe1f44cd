"""Money: integer minor units per ISO 4217 currency, never floats.

An amount in a request must be a JSON integer of minor units (12.34 USD is 1234). A
fraction, a string, a boolean, zero, a negative number or anything from 10**18 up is
refused; 10**18 keeps every single amount inside a signed 64-bit integer for the
databases and languages on the other side of the gateway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from chaincode.deposit_token.errors import refusal

AMOUNT_LIMIT = 10**18
"""Every amount is strictly below this."""

CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_RATE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")


@dataclass(frozen=True)
class Money:
    """A positive amount of one currency in minor units."""

    currency: str
    minor: int

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError("minor units must be an int")
        if not 0 < self.minor < AMOUNT_LIMIT:
            raise ValueError("minor units must be positive and below 10**18")
        if not CURRENCY_CODE.fullmatch(self.currency):
            raise ValueError("a currency is a three-letter ISO 4217 code")


def parse_amount(value: object, field: str) -> int:
    """A request's amount as positive minor units, or a refusal naming the field."""
    if isinstance(value, bool):
        raise refusal("invalid_amount", f"'{field}' must be an integer number of minor units, not a boolean")
    if isinstance(value, float):
        raise refusal(
            "invalid_amount",
            f"'{field}' must be an integer number of minor units; there is no fraction of the smallest unit",
        )
    if isinstance(value, str):
        raise refusal("invalid_amount", f"'{field}' must be a JSON integer of minor units, not a string")
    if not isinstance(value, int):
        raise refusal("invalid_amount", f"'{field}' must be an integer number of minor units")
    if value <= 0:
        raise refusal("invalid_amount", f"'{field}' must be positive, got {value}")
    if value >= AMOUNT_LIMIT:
        raise refusal("invalid_amount", f"'{field}' must be below 10**18 minor units")
    return value


def parse_currency(value: object, field: str, exponents: dict[str, int]) -> str:
    """A currency code known to the reference data, or a refusal."""
    if not isinstance(value, str) or not CURRENCY_CODE.fullmatch(value):
        raise refusal("unknown_currency", f"'{field}' must be a three-letter ISO 4217 code")
    if value not in exponents:
        raise refusal("unknown_currency", f"'{field}': currency {value} is not in the reference data")
    return value


def parse_rate(value: object, field: str) -> Decimal:
    """A locked exchange rate given as a decimal string such as ``"7.8125"``."""
    if not isinstance(value, str) or not _RATE.fullmatch(value):
        raise refusal(
            "invalid_request",
            f"'{field}' must be a decimal string like \"7.8125\" (up to 12 digits each side)",
        )
    try:
        rate = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes it
        raise refusal("invalid_request", f"'{field}' is not a decimal number") from None
    if rate <= 0:
        raise refusal("invalid_request", f"'{field}' must be positive")
    return rate


def convert(amount: int, rate: Decimal, from_exponent: int, to_exponent: int) -> int:
    """``amount`` minor units of one currency at ``rate`` in the other's minor units (half-even)."""
    exact = Decimal(amount) * rate * (Decimal(10) ** (to_exponent - from_exponent))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
