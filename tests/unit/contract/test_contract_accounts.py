"""Accounts: open, freeze, unfreeze, close at zero, limits, history."""

from __future__ import annotations

import pytest

from tests.unit.contract.conftest import HK, REG, US, Ledger, Refused


def test_open_account_is_idempotent_and_refuses_a_taken_id(ledger: Ledger) -> None:
    request = {"account_id": "acme", "holder": "Acme Ltd", "jurisdiction": "US", "kyc_ref": "KYC-1"}
    assert ledger.submit(US, "OpenAccount", request) == {"status": "active", "opened": True}
    assert ledger.submit(US, "OpenAccount", request) == {"status": "active", "opened": False}
    message = ledger.refused(US, "OpenAccount", {**request, "holder": "Other"})
    assert message == "[account_exists] 'account_id' is already used at USBankMSP"
    # The same id at another bank is another account.
    assert ledger.submit(HK, "OpenAccount", {**request, "jurisdiction": "HK"})["opened"] is True
    account = ledger.account(US, "acme")
    assert (account["holder"], account["jurisdiction"], account["kyc_ref"], account["status"]) == (
        "Acme Ltd",
        "US",
        "KYC-1",
        "active",
    )
    assert account["balances"] == {}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"holder": "A", "jurisdiction": "US", "kyc_ref": "K"}, "[invalid_request] 'account_id' is required"),
        (
            {"account_id": "a b", "holder": "A", "jurisdiction": "US", "kyc_ref": "K"},
            "[invalid_request] 'account_id' must be 1 to 64",
        ),
        (
            {"account_id": "a", "holder": "", "jurisdiction": "US", "kyc_ref": "K"},
            "[invalid_request] 'holder' must not be empty",
        ),
        (
            {"account_id": "a", "holder": "A", "jurisdiction": "usa", "kyc_ref": "K"},
            "[invalid_request] 'jurisdiction' must be a jurisdiction code",
        ),
        ({"account_id": "a", "holder": "A", "jurisdiction": "US"}, "[invalid_request] 'kyc_ref' is required"),
        (
            {"account_id": "a", "holder": "A", "jurisdiction": "US", "kyc_ref": "K", "extra": 1},
            "[invalid_request] unknown field 'extra'",
        ),
        (
            {"account_id": "a", "holder": "A\x00B", "jurisdiction": "US", "kyc_ref": "K"},
            "[invalid_request] 'holder' must not contain control characters",
        ),
    ],
)
def test_open_account_validates_each_field(
    ledger: Ledger, request_: dict[str, object], expected: str
) -> None:
    assert ledger.refused(US, "OpenAccount", request_).startswith(expected)


def test_private_input_must_come_in_the_transient_map(ledger: Ledger) -> None:
    message = ledger.refused(US, "OpenAccount")
    assert message.startswith("[invalid_request] the transient map needs a 'request' entry")


def test_frozen_account_can_neither_pay_nor_be_paid(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 1000)
    ledger.issue(US, "bob", 1000)
    assert ledger.submit(US, "FreezeAccount", {"account_id": "alice", "reason": "court order"}) == {
        "status": "frozen"
    }
    assert ledger.account(US, "alice")["freeze_reason"] == "court order"
    with pytest.raises(Refused, match=r"^\[account_frozen\] the account to debit is frozen"):
        ledger.transfer(US, "alice", "bob", 100, "t1")
    with pytest.raises(Refused, match=r"^\[account_frozen\] the account to credit is frozen"):
        ledger.transfer(US, "bob", "alice", 100, "t2")
    with pytest.raises(Refused, match=r"^\[account_frozen\]"):
        ledger.issue(US, "alice", 5)
    ledger.submit(US, "UnfreezeAccount", {"account_id": "alice"})
    ledger.transfer(US, "alice", "bob", 100, "t3")
    assert (ledger.balance(US, "alice"), ledger.balance(US, "bob")) == (900, 1100)
    assert ledger.refused(US, "UnfreezeAccount", {"account_id": "alice"}).startswith("[invalid_state]")


def test_close_needs_a_frozen_account_a_fresh_revision_and_zero_balance(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 300)
    stale = ledger.account(US, "alice")
    message = ledger.refused(
        US,
        "CloseAccount",
        {"account_id": "alice", "revision": stale["revision"], "pending_credits": stale["pending_credits"]},
    )
    assert message.startswith("[invalid_state] freeze the account first")
    ledger.submit(US, "FreezeAccount", {"account_id": "alice", "reason": "closing"})
    message = ledger.refused(
        US,
        "CloseAccount",
        {"account_id": "alice", "revision": stale["revision"], "pending_credits": stale["pending_credits"]},
    )
    assert message.startswith("[invalid_state] 'revision' is stale")
    fresh = ledger.account(US, "alice")
    message = ledger.refused(
        US,
        "CloseAccount",
        {"account_id": "alice", "revision": fresh["revision"], "pending_credits": fresh["pending_credits"]},
    )
    assert message == "[account_not_empty] the account still holds 300 USD"
    ledger.submit(US, "UnfreezeAccount", {"account_id": "alice"})
    ledger.transfer(US, "alice", "bob", 300, "empty-it")
    ledger.submit(US, "FreezeAccount", {"account_id": "alice", "reason": "closing"})
    fresh = ledger.account(US, "alice")
    result = ledger.submit(
        US,
        "CloseAccount",
        {"account_id": "alice", "revision": fresh["revision"], "pending_credits": fresh["pending_credits"]},
    )
    assert result == {"status": "closed", "closed": True}
    assert ledger.account(US, "alice")["status"] == "closed"
    with pytest.raises(Refused, match=r"^\[account_closed\] the account to credit is closed"):
        ledger.transfer(US, "bob", "alice", 1, "after-close")
    ledger.assert_conserved()


def test_per_transaction_and_daily_limits(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 10_000)
    ledger.submit(
        US, "SetLimits", {"account_id": "alice", "currency": "USD", "per_transaction": 500, "daily": 800}
    )
    with pytest.raises(
        Refused, match=r"^\[limit_exceeded\] the debit 501 is above the per-transaction limit 500"
    ):
        ledger.transfer(US, "alice", "bob", 501, "t1")
    ledger.transfer(US, "alice", "bob", 500, "t2")
    with pytest.raises(
        Refused, match=r"^\[limit_exceeded\] the debit 301 would bring today's USD debits to 801"
    ):
        ledger.transfer(US, "alice", "bob", 301, "t3")
    ledger.transfer(US, "alice", "bob", 300, "t4")
    ledger.channel.advance(24 * 3600)  # a new UTC day
    ledger.transfer(US, "alice", "bob", 500, "t5")
    # Redemption is not an outgoing payment: limits do not apply.
    ledger.submit(
        US, "Redeem", {"account_id": "alice", "currency": "USD", "amount": 900, "withdrawal_ref": "w1"}
    )
    ledger.submit(
        US, "SetLimits", {"account_id": "alice", "currency": "USD", "per_transaction": None, "daily": None}
    )
    assert ledger.account(US, "alice")["limits"] == {}
    ledger.transfer(US, "alice", "bob", 5000, "t6")
    assert ledger.balance(US, "alice") == 10_000 - 500 - 300 - 500 - 900 - 5000
    assert ledger.refused(
        US, "SetLimits", {"account_id": "alice", "currency": "USD", "per_transaction": -1, "daily": None}
    ).startswith("[invalid_amount]")
    assert ledger.refused(
        US, "SetLimits", {"account_id": "alice", "currency": "USD", "daily": None}
    ).startswith("[invalid_request] 'per_transaction'")


def test_history_pages_newest_first(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    for index in range(5):
        ledger.issue(US, "alice", 100 + index, ref=f"dep-{index}")
        ledger.channel.advance(1)
    ledger.transfer(US, "alice", "bob", 50, "t1")
    seen: list[dict[str, object]] = []
    bookmark = ""
    while True:
        page = ledger.query(
            US, "GetAccountHistory", {"account_id": "alice", "page_size": 2, "bookmark": bookmark}
        )
        assert len(page["entries"]) <= 2
        seen += page["entries"]
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert [(e["kind"], e["amount"], e["reference"]) for e in seen] == [
        ("transfer_out", -50, "t1"),
        *[("issue", 100 + index, f"dep-{index}") for index in reversed(range(5))],
    ]
    assert ledger.query(US, "GetAccountHistory", {"account_id": "bob"})["entries"][0]["kind"] == "transfer_in"
    with pytest.raises(Refused, match=r"^\[invalid_request\] 'bookmark'"):
        ledger.query(US, "GetAccountHistory", {"account_id": "alice", "bookmark": "zz"})


def test_account_queries_belong_to_the_owning_bank(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    with pytest.raises(Refused, match=r"^\[unknown_account\]"):
        ledger.query(HK, "GetAccount", {"account_id": "alice"})
    with pytest.raises(
        Refused, match=r"^\[not_authorized\] a client of HKBankMSP may not act through the peer"
    ):
        ledger.query(US, "GetAccount", {"account_id": "alice"}, creator=HK)
    with pytest.raises(Refused, match=r"^\[not_authorized\] RegulatorMSP is not a registered bank"):
        ledger.query(REG, "GetAccount", {"account_id": "alice"})
