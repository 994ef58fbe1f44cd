"""Money at the HTTP edge: decimal strings outside, integer minor units inside.

A merchant writes ``"12.34"`` for twelve dollars and thirty-four cents; the ledger
sees ``1234``. Anything that is not an exact, positive decimal in the currency's
exponent is refused here, so no float, rounding or sign surprise ever reaches a
transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# The largest integer a JSON number can carry exactly in every common runtime (2**53 - 1).
# Amounts beyond it would round silently in a JavaScript or spreadsheet client.
MAX_MINOR_UNITS = 2**53 - 1

# ISO 4217 exponents of the currencies the network knows; the ledger's reference data
# overrides these when it is reachable.
DEFAULT_EXPONENTS: Mapping[str, int] = {"USD": 2, "EUR": 2, "JPY": 0, "CNH": 2, "HKD": 2, "SGD": 2}

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DECIMAL = re.compile(r"^(?P<whole>0|[1-9][0-9]*)(?:\.(?P<fraction>[0-9]+))?$")
_RATE = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,12})?$")


class MoneyError(ValueError):
    """An amount or currency the edge refuses; ``code`` is the stable problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Currencies:
    """The currencies this gateway accepts, with their exponents."""

    exponents: Mapping[str, int]

    def exponent(self, currency: object) -> int:
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            raise MoneyError("unknown_currency", "currency must be a three-letter ISO 4217 code such as USD")
        exponent = self.exponents.get(currency)
        if exponent is None:
            known = ", ".join(sorted(self.exponents))
            raise MoneyError("unknown_currency", f"currency {currency} is not used on this network ({known})")
        return exponent

    def known(self, currency: str, field: str = "currency") -> str:
        """``currency`` if this network uses it; the refusal names the field."""
        try:
            self.exponent(currency)
        except MoneyError as error:
            raise MoneyError(error.code, f"{field}: {error.message}") from None
        return currency

    def parse_amount(self, value: object, currency: object, field: str = "amount") -> int:
        """A positive decimal string in the currency's exponent → integer minor units."""
        exponent = self.exponent(currency)
        return parse_amount(value, exponent, field)

    def format_amount(self, minor_units: int, currency: str) -> str:
        exponent = self.exponents.get(currency, 0)
        return format_amount(minor_units, exponent)


def parse_amount(value: object, exponent: int, field: str = "amount") -> int:
    if isinstance(value, bool | int | float):
        raise MoneyError(
            "invalid_amount",
            f'{field} must be a decimal string such as "12.34", not a JSON number',
        )
    if not isinstance(value, str):
        raise MoneyError("invalid_amount", f'{field} must be a decimal string such as "12.34"')
    if len(value) > 40:
        raise MoneyError("invalid_amount", f"{field} is too long")
    if value.startswith("-"):
        raise MoneyError("invalid_amount", f"{field} must be positive")
    # fullmatch: with match, "$" would also accept a final newline ("1\n").
    match = _DECIMAL.fullmatch(value)
    if match is None:
        raise MoneyError(
            "invalid_amount",
            f'{field} must be a plain decimal string such as "12.34" (digits, at most one dot, '
            "no sign, exponent, spaces or leading zeros)",
        )
    fraction = match.group("fraction") or ""
    if len(fraction) > exponent:
        if exponent == 0:
            raise MoneyError("invalid_amount", f"{field} must be a whole number in this currency")
        raise MoneyError("invalid_amount", f"{field} has more than {exponent} decimal places")
    minor = int(match.group("whole")) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    if minor == 0:
        raise MoneyError("invalid_amount", f"{field} must be greater than zero")
    if minor > MAX_MINOR_UNITS:
        raise MoneyError("invalid_amount", f"{field} is too large")
    return minor


def format_amount(minor_units: int, exponent: int) -> str:
    """Integer minor units → decimal string with exactly ``exponent`` decimals (sign kept)."""
    sign = "-" if minor_units < 0 else ""
    digits = str(abs(minor_units))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def parse_rate(value: object, field: str = "rate") -> Decimal:
    """An FX rate as a decimal string ("7.8125"): positive, at most 12 decimals."""
    if not isinstance(value, str) or not _RATE.fullmatch(value):
        raise MoneyError("invalid_request", f'{field} must be a positive decimal string such as "7.8125"')
    try:
        rate = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guarantees a decimal
        raise MoneyError("invalid_request", f"{field} is not a decimal") from exc
    if rate <= 0:
        raise MoneyError("invalid_request", f"{field} must be greater than zero")
    return rate


def convert(minor_units: int, from_exponent: int, to_exponent: int, rate: Decimal) -> int:
    """Minor units in one currency → minor units in another at ``rate``, rounded half-even.

    The contract recomputes ``amount x rate`` the same way and refuses a payee amount that
    differs, so both sides must round identically.
    """
    exact = Decimal(minor_units) * rate * (Decimal(10) ** (to_exponent - from_exponent))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
