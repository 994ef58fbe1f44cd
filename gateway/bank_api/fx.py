"""The bank's FX rates for cross-currency payments.

The payer's bank quotes and locks the rate when the payment is initiated; the contract
records it with both amounts. Rates come from configuration (``"USD/HKD": "7.8125"`` means
one USD buys 7.8125 HKD). The inverse of a configured pair and crosses through a common
currency are derived, so a short table covers every pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal

from gateway.bank_api.money import MoneyError, parse_rate

# Indicative defaults so a fresh network can make cross-currency payments; a bank sets its own.
DEFAULT_RATES: Mapping[str, str] = {
    "USD/HKD": "7.8",
    "USD/SGD": "1.34",
    "USD/EUR": "0.92",
    "USD/JPY": "150",
    "USD/CNH": "7.2",
}

_RATE_DECIMALS = Decimal("0.00000001")


class RateTable:
    def __init__(self, rates: Mapping[str, str]) -> None:
        self._rates: dict[tuple[str, str], Decimal] = {}
        for pair, text in rates.items():
            base, sep, quote = pair.partition("/")
            if not sep or len(base) != 3 or len(quote) != 3:
                raise ValueError(f"FX pair {pair!r} must look like USD/HKD")
            rate = parse_rate(text, f"rate for {pair}")
            self._rates[(base, quote)] = rate
            self._rates.setdefault((quote, base), _quantize(Decimal(1) / rate))

    def rate(self, base: str, quote: str) -> Decimal:
        """How many units of ``quote`` one unit of ``base`` buys."""
        if base == quote:
            return Decimal(1)
        direct = self._rates.get((base, quote))
        if direct is not None:
            return direct
        for (first, middle), first_rate in self._rates.items():
            if first != base:
                continue
            second_rate = self._rates.get((middle, quote))
            if second_rate is not None:
                return _quantize(first_rate * second_rate)
        raise MoneyError("unsupported_currency_pair", f"this bank quotes no rate from {base} to {quote}")

    def pairs(self) -> dict[str, str]:
        return {f"{b}/{q}": _text(r) for (b, q), r in sorted(self._rates.items())}


def _quantize(rate: Decimal) -> Decimal:
    return rate.quantize(_RATE_DECIMALS, rounding=ROUND_DOWN).normalize()


def _text(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def rate_text(rate: Decimal) -> str:
    return _text(rate)
