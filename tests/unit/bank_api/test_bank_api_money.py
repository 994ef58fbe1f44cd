"""Money at the edge: decimal strings in, integer minor units inside, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bank_api.fx import RateTable
from gateway.bank_api.money import (
    DEFAULT_EXPONENTS,
    MAX_MINOR_UNITS,
    Currencies,
    MoneyError,
    convert,
    format_amount,
    parse_amount,
)

CURRENCIES = Currencies(DEFAULT_EXPONENTS)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        ("12.3", "USD", 1230),
        ("12", "USD", 1200),
        ("0.01", "USD", 1),
        ("1500", "JPY", 1500),
        ("90071992547409.91", "USD", MAX_MINOR_UNITS),
    ],
)
def test_valid_amounts_become_minor_units(text: str, currency: str, minor: int) -> None:
    assert CURRENCIES.parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency", "code"),
    [
        (12.34, "USD", "invalid_amount"),
        (12, "USD", "invalid_amount"),
        (True, "USD", "invalid_amount"),
        (None, "USD", "invalid_amount"),
        ("12.345", "USD", "invalid_amount"),
        ("1.5", "JPY", "invalid_amount"),
        ("-1.00", "USD", "invalid_amount"),
        ("0", "USD", "invalid_amount"),
        ("0.00", "USD", "invalid_amount"),
        ("90071992547409.92", "USD", "invalid_amount"),
        ("1e3", "USD", "invalid_amount"),
        ("NaN", "USD", "invalid_amount"),
        ("Infinity", "USD", "invalid_amount"),
        (" 1.00", "USD", "invalid_amount"),
        ("1,000.00", "USD", "invalid_amount"),
        ("+1.00", "USD", "invalid_amount"),
        ("01.00", "USD", "invalid_amount"),
        ("1.", "USD", "invalid_amount"),
        (".5", "USD", "invalid_amount"),
        ("١٢", "USD", "invalid_amount"),
        ("9" * 41, "USD", "invalid_amount"),
        ("1.00", "usd", "unknown_currency"),
        ("1.00", "XXX", "unknown_currency"),
        ("1.00", 840, "unknown_currency"),
    ],
)
def test_bad_amounts_are_refused_with_a_code(value: object, currency: object, code: str) -> None:
    with pytest.raises(MoneyError) as refused:
        CURRENCIES.parse_amount(value, currency)
    assert refused.value.code == code
    assert refused.value.message


@given(st.integers(min_value=1, max_value=MAX_MINOR_UNITS), st.sampled_from([0, 2]))
def test_format_then_parse_is_identity(minor: int, exponent: int) -> None:
    assert parse_amount(format_amount(minor, exponent), exponent) == minor


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e12"), places=2))
def test_parse_agrees_with_decimal_arithmetic(amount: Decimal) -> None:
    assert parse_amount(format(amount, "f"), 2) == int(amount * 100)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_json_floats_are_always_refused(value: float) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value, 2)


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=9).map(lambda n: "1" + "0" * n),
)
def test_more_decimals_than_the_exponent_are_refused(whole: int, digits: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(f"{whole}.{digits[:3]}1", 2)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_formatting_keeps_sign_and_exponent(minor: int) -> None:
    text = format_amount(minor, 2)
    assert text.startswith("-") == (minor < 0)
    assert len(text.split(".")[1]) == 2
    assert Decimal(text) * 100 == minor


def test_conversion_rounds_half_even_across_exponents() -> None:
    assert convert(1000, 2, 2, Decimal("7.8")) == 7800  # 10.00 USD -> 78.00 HKD
    assert convert(1, 2, 0, Decimal("150")) == 2  # 0.01 USD -> 1.5 JPY -> 2 (half-even)
    assert convert(3, 2, 0, Decimal("150")) == 4  # 4.5 JPY -> 4 (half-even)
    assert convert(150, 0, 2, Decimal("0.0066")) == 99  # 150 JPY -> 0.99 USD


def test_rate_table_derives_inverse_and_cross_rates() -> None:
    table = RateTable({"USD/HKD": "8", "USD/SGD": "1.25"})
    assert table.rate("USD", "HKD") == Decimal(8)
    assert table.rate("HKD", "USD") == Decimal("0.125")
    assert table.rate("HKD", "SGD") == Decimal("0.15625")
    with pytest.raises(MoneyError) as refused:
        table.rate("USD", "JPY")
    assert refused.value.code == "unsupported_currency_pair"
