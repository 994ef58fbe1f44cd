"""Money rules: amounts are positive integer minor units below 10**18 in a known, issued currency."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chaincode.deposit_token.money import AMOUNT_LIMIT, Money, convert
from tests.unit.contract.conftest import HK, US, Ledger


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (-100, "[invalid_amount] 'amount' must be positive"),
        (0, "[invalid_amount] 'amount' must be positive"),
        (12.34, "[invalid_amount] 'amount' must be an integer number of minor units"),
        (10.0, "[invalid_amount] 'amount' must be an integer number of minor units"),
        ("1234", "[invalid_amount] 'amount' must be a JSON integer of minor units, not a string"),
        ("12.34", "[invalid_amount] 'amount' must be a JSON integer of minor units, not a string"),
        ("ten", "[invalid_amount] 'amount' must be a JSON integer of minor units, not a string"),
        (True, "[invalid_amount] 'amount' must be an integer number of minor units, not a boolean"),
        (AMOUNT_LIMIT, "[invalid_amount] 'amount' must be below 10**18"),
        (2**63, "[invalid_amount] 'amount' must be below 10**18"),
        (None, "[invalid_request] 'amount' is required"),
        ([5], "[invalid_amount] 'amount' must be an integer number of minor units"),
    ],
)
def test_bad_amounts_are_refused_and_change_nothing(ledger: Ledger, amount: object, expected: str) -> None:
    ledger.open(US, "alice")
    message = ledger.refused(
        US, "Issue", {"account_id": "alice", "currency": "USD", "amount": amount, "deposit_ref": "d1"}
    )
    assert message.startswith(expected), message


def test_the_largest_allowed_amount_is_issued(ledger: Ledger) -> None:
    ledger.open(US, "whale")
    ledger.issue(US, "whale", AMOUNT_LIMIT - 1)
    assert ledger.balance(US, "whale") == AMOUNT_LIMIT - 1


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("XXX", "[unknown_currency] 'currency': currency XXX is not in the reference data"),
        ("usd", "[unknown_currency] 'currency' must be a three-letter ISO 4217 code"),
        (840, "[unknown_currency] 'currency' must be a three-letter ISO 4217 code"),
        ("HKD", "[currency_not_issued] USBankMSP does not issue HKD tokens"),
    ],
)
def test_unknown_or_foreign_currencies_are_refused(ledger: Ledger, currency: object, expected: str) -> None:
    ledger.open(US, "alice")
    message = ledger.refused(
        US, "Issue", {"account_id": "alice", "currency": currency, "amount": 100, "deposit_ref": "d1"}
    )
    assert message == expected


def test_non_json_numbers_are_refused(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    before = ledger.snapshot()
    simulation = ledger.channel.invoke(
        US,
        "Issue",
        (),
        {"request": b'{"account_id":"alice","currency":"USD","amount":NaN,"deposit_ref":"d"}'},
    )
    assert simulation.status == 400
    assert simulation.message.startswith("[invalid_request] transient 'request' is not a UTF-8 JSON object")
    assert ledger.snapshot() == before


def test_money_value_class_rejects_what_the_rules_reject() -> None:
    assert Money("USD", 1).minor == 1
    for bad in (0, -1, AMOUNT_LIMIT):
        with pytest.raises(ValueError):
            Money("USD", bad)
    with pytest.raises(TypeError):
        Money("USD", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money("USD", True)
    with pytest.raises(ValueError):
        Money("US", 1)


@pytest.mark.parametrize(
    ("amount", "rate", "from_exp", "to_exp", "expected"),
    [
        (10000, "7.8125", 2, 2, 78125),  # 100.00 USD -> 781.25 HKD
        (10000, "150.25", 2, 0, 15025),  # 100.00 USD -> 15025 JPY
        (15025, "0.006655", 0, 2, 9999),  # 15025 JPY -> 99.991... USD
        (1, "0.5", 2, 2, 0),  # half-even: 0.5 -> 0
        (3, "0.5", 2, 2, 2),  # half-even: 1.5 -> 2
    ],
)
def test_conversion_at_a_locked_rate(
    amount: int, rate: str, from_exp: int, to_exp: int, expected: int
) -> None:
    assert convert(amount, Decimal(rate), from_exp, to_exp) == expected


def test_cross_currency_payment_needs_a_consistent_payee_amount(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(HK, "shop", "HK")
    ledger.issue(US, "alice", 10000)
    request = {
        "idempotency_key": "fx-1",
        "payer_account": "alice",
        "payee_bank": HK,
        "payee_account": "shop",
        "currency": "USD",
        "amount": 10000,
        "payee_currency": "HKD",
        "payee_amount": 78000,
        "rate": "7.8125",
        "pending_credits": ledger.pending(US, "alice"),
    }
    message = ledger.refused(US, "InitiatePayment", request)
    assert message.startswith("[invalid_request] 'payee_amount' 78000 is not amount x rate = 78125 HKD")
    assert ledger.refused(US, "InitiatePayment", {**request, "rate": "7,8"}).startswith(
        "[invalid_request] 'rate' must be a decimal string"
    )
    assert ledger.refused(US, "InitiatePayment", {**request, "rate": None}).startswith(
        "[invalid_request] 'rate' is required"
    )
    assert ledger.refused(
        US, "InitiatePayment", {**request, "payee_currency": "SGD", "payee_amount": 78125}
    ).startswith("[currency_not_issued] HKBankMSP does not issue SGD")
