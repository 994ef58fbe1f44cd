"""Bad input on the real network: each gets a clear refusal naming the problem and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.deposit_token_support import (
    HK,
    REG,
    US,
    Consortium,
)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def accounts(banks: Consortium) -> dict[str, str]:
    us, hk = banks[US], banks[HK]
    names = {name: banks.id(name) for name in ("alice", "bob", "frozen", "limited", "cn1", "cn2", "shop")}
    for name in ("alice", "bob", "frozen", "limited"):
        us.open(names[name], "US")
    for name in ("cn1", "cn2"):
        hk.open(names[name], "CN")
    hk.open(names["shop"], "HK")
    for name in ("alice", "frozen", "limited"):
        us.issue(names[name], 10_000)
    hk.issue(names["cn1"], 10_000, "CNH")
    us.submit("FreezeAccount", {"account_id": names["frozen"], "reason": "test"})
    us.submit("SetLimits", {"account_id": names["limited"], "currency": "USD", "per_transaction": 100, "daily": 150})
    return names


def _transfer(a: dict[str, str], **change: Any) -> dict[str, Any]:
    return {
        "from_account": a["alice"],
        "to_account": a["bob"],
        "currency": "USD",
        "amount": 100,
        "transfer_id": "bad-input",
        **change,
    }


CASES: list[tuple[str, str, Any, int, str, str]] = [
    # (id, bank, request builder, status, code, words the message must contain)
    ("negative", US, lambda a: _transfer(a, amount=-5), 400, "invalid_amount", "'amount' must be positive"),
    ("zero", US, lambda a: _transfer(a, amount=0), 400, "invalid_amount", "'amount' must be positive"),
    ("fraction", US, lambda a: _transfer(a, amount=12.5), 400, "invalid_amount", "integer number of minor units"),
    ("fraction-of-a-yen", US, lambda a: _transfer(a, amount=0.5), 400, "invalid_amount", "minor units"),
    ("overflow", US, lambda a: _transfer(a, amount=10**18), 400, "invalid_amount", "below 10**18"),
    ("overflow-int64", US, lambda a: _transfer(a, amount=2**64), 400, "invalid_amount", "below 10**18"),
    ("decimal-string", US, lambda a: _transfer(a, amount="1.00"), 400, "invalid_amount", "not a string"),
    ("non-numeric", US, lambda a: _transfer(a, amount="ten"), 400, "invalid_amount", "not a string"),
    ("boolean", US, lambda a: _transfer(a, amount=True), 400, "invalid_amount", "not a boolean"),
    ("unknown-currency", US, lambda a: _transfer(a, currency="XYZ"), 400, "unknown_currency", "XYZ"),
    ("currency-not-issued", US, lambda a: _transfer(a, currency="HKD"), 403, "currency_not_issued", "HKD"),
    ("unknown-account", US, lambda a: _transfer(a, to_account="nobody-here"), 404, "unknown_account", "'to_account'"),
    ("frozen-payer", US, lambda a: _transfer(a, from_account=a["frozen"]), 409, "account_frozen", "debit"),
    ("frozen-payee", US, lambda a: _transfer(a, to_account=a["frozen"]), 409, "account_frozen", "credit"),
    (
        "per-transaction-limit",
        US,
        lambda a: _transfer(a, from_account=a["limited"], amount=101),
        409,
        "limit_exceeded",
        "per-transaction limit 100",
    ),
    ("insufficient", US, lambda a: _transfer(a, amount=10_001), 409, "insufficient_funds", "below the debit"),
    (
        "corridor",
        HK,
        lambda a: _transfer(a, from_account=a["cn1"], to_account=a["cn2"], currency="CNH"),
        403,
        "corridor_forbidden",
        "cross-border only",
    ),
    ("unknown-field", US, lambda a: _transfer(a, note="hi"), 400, "invalid_request", "unknown field 'note'"),
    (
        "missing-field",
        US,
        lambda a: {k: v for k, v in _transfer(a).items() if k != "currency"},
        400,
        "invalid_request",
        "'currency' is required",
    ),
]


def _state(banks: Consortium, accounts: dict[str, str]) -> Any:
    return (
        banks.supply(),
        {
            name: banks[US if not name.startswith(("cn", "shop")) else HK].account(account)["balances"]
            for name, account in accounts.items()
        },
        [banks[bank].evaluate("GetBookTotals") for bank in (US, HK)],
    )


@pytest.mark.parametrize(("case", "bank", "build", "status", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_transfer_is_refused_and_changes_nothing(
    banks: Consortium,
    accounts: dict[str, str],
    case: str,
    bank: str,
    build: Any,
    status: int,
    code: str,
    words: str,
) -> None:
    before = _state(banks, accounts)
    request = build(accounts)
    request["pending_credits"] = banks[bank].pending(request.get("from_account", accounts["alice"]))
    refusal = banks[bank].refused("Transfer", request)
    assert (refusal.status, refusal.reason) == (status, code), refusal.message
    assert refusal.message.startswith(f"[{code}] ")
    assert words in refusal.message
    assert _state(banks, accounts) == before


def test_daily_limit(banks: Consortium, accounts: dict[str, str]) -> None:
    us = banks[US]
    us.submit("Transfer", us.transfer_request(accounts["limited"], accounts["bob"], 100, banks.id("d1")))
    before = _state(banks, accounts)
    refusal = us.refused("Transfer", us.transfer_request(accounts["limited"], accounts["bob"], 60, banks.id("d2"))())
    assert (refusal.status, refusal.reason) == (409, "limit_exceeded")
    assert "above the daily limit 150" in refusal.message
    assert _state(banks, accounts) == before


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"payee_bank": "NoSuchBankMSP"}, 404, "unknown_bank"),
        ({"amount": -1}, 400, "invalid_amount"),
        ({"currency": "ABC"}, 400, "unknown_currency"),
        ({"payee_currency": "HKD", "payee_amount": 1, "rate": "7.8"}, 400, "invalid_request"),
        ({"payer_account": "nobody-here"}, 404, "unknown_account"),
    ],
)
def test_bad_payment_is_refused_and_changes_nothing(
    banks: Consortium, accounts: dict[str, str], change: dict[str, Any], status: int, code: str
) -> None:
    before = _state(banks, accounts)
    us = banks[US]
    request = {**us.payment_request(banks.id("bad-pay"), accounts["alice"], HK, accounts["shop"], 100)(), **change}
    refusal = us.refused("InitiatePayment", request)
    assert (refusal.status, refusal.reason) == (status, code), refusal.message
    assert _state(banks, accounts) == before


def test_bad_public_arguments(banks: Consortium) -> None:
    reg = banks[REG]
    assert reg.refused("SetCorridorPolicy", None, "{not json").reason == "invalid_request"
    assert reg.refused("SetCorridorPolicy", None, json.dumps({"rules": [{"currency": "QQQ"}]})).reason == (
        "unknown_currency"
    )
    assert reg.refused("SetPaymentTimeout", None, "soon").reason == "invalid_request"
    assert banks[US].refused("OpenSettlementCycle", None, "bad cycle id").reason == "invalid_request"
    assert banks[US].refused("ConfirmSettlement", None, banks.id("no-cycle"), "REF").reason == "cycle_not_found"
