"""Issue, redeem and intra-bank transfer: idempotency, atomicity, pending credits, corridor."""

from __future__ import annotations

import json

import pytest

from tests.unit.contract.conftest import HK, REG, US, Ledger, Refused


def test_issue_is_idempotent_by_deposit_reference(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    request = {"account_id": "alice", "currency": "USD", "amount": 1234, "deposit_ref": "CORE-77"}
    assert ledger.submit(US, "Issue", request) == {"issued": True}
    assert ledger.submit(US, "Issue", request) == {"issued": False}
    message = ledger.refused(US, "Issue", {**request, "amount": 1235})
    assert message == "[duplicate_reference] 'deposit_ref' was already used for a different request"
    assert ledger.balance(US, "alice") == 1234
    assert ledger.supply()[(US, "USD")] == 1234
    ledger.assert_conserved()


def test_redeem_is_idempotent_and_lowers_supply(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.issue(US, "alice", 1000)
    request = {
        "account_id": "alice",
        "currency": "USD",
        "amount": 400,
        "withdrawal_ref": "W-1",
        "pending_credits": ledger.pending(US, "alice"),
    }
    assert ledger.submit(US, "Redeem", request) == {"redeemed": True}
    assert ledger.submit(US, "Redeem", request) == {"redeemed": False}
    assert ledger.balance(US, "alice") == 600
    assert ledger.supply()[(US, "USD")] == 600
    message = ledger.refused(US, "Redeem", {**request, "withdrawal_ref": "W-2", "amount": 601})
    assert message.startswith("[insufficient_funds] account balance 600 USD is below the debit 601")
    ledger.assert_conserved()


def test_transfer_is_atomic_and_idempotent(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 1000)
    assert ledger.transfer(US, "alice", "bob", 250, "T-1") == {"transferred": True}
    # A retry after the credits were folded still answers "already done".
    assert ledger.transfer(US, "alice", "bob", 250, "T-1") == {"transferred": False}
    assert (ledger.balance(US, "alice"), ledger.balance(US, "bob")) == (750, 250)
    with pytest.raises(Refused, match=r"^\[duplicate_reference\]"):
        ledger.transfer(US, "alice", "bob", 251, "T-1")
    with pytest.raises(Refused, match=r"^\[invalid_request\] 'from_account' and 'to_account' must differ"):
        ledger.transfer(US, "alice", "alice", 1, "T-2")
    with pytest.raises(Refused, match=r"^\[unknown_account\] 'to_account' names no account at USBankMSP"):
        ledger.transfer(US, "alice", "nobody", 1, "T-3")
    ledger.assert_conserved()


def test_credits_are_spendable_once_listed(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 500)
    ledger.issue(US, "alice", 700)
    account = ledger.account(US, "alice")
    assert account["balances"] == {"USD": 1200}
    assert len(account["pending_credits"]) == 2
    without = {
        "from_account": "alice",
        "to_account": "bob",
        "currency": "USD",
        "amount": 100,
        "transfer_id": "T-1",
    }
    message = ledger.refused(US, "Transfer", without)
    assert message == (
        "[insufficient_funds] account balance 0 USD is below the debit 100 "
        "(credits received since the last debit count once listed in 'pending_credits')"
    )
    # Only the listed credit is spendable.
    message = ledger.refused(
        US, "Transfer", {**without, "amount": 600, "pending_credits": account["pending_credits"][:1]}
    )
    assert message.startswith("[insufficient_funds]")
    ledger.submit(US, "Transfer", {**without, "amount": 1200, "pending_credits": account["pending_credits"]})
    after = ledger.account(US, "alice")
    assert after["balances"] == {"USD": 0}
    assert after["pending_credits"] == []
    # Listing ids that were already folded changes nothing and is harmless.
    ledger.issue(US, "alice", 10)
    ledger.submit(
        US,
        "Transfer",
        {
            **without,
            "transfer_id": "T-2",
            "amount": 10,
            "pending_credits": account["pending_credits"] + ledger.pending(US, "alice"),
        },
    )
    assert ledger.balance(US, "alice") == 0
    assert ledger.refused(US, "Transfer", {**without, "pending_credits": ["nope"]}).startswith(
        "[invalid_request] 'pending_credits' holds an id that is not a credit id"
    )
    ledger.assert_conserved()


def test_consolidation_folds_without_changing_the_balance(ledger: Ledger) -> None:
    ledger.open(US, "merchant")
    for index in range(4):
        ledger.issue(US, "merchant", 25, ref=f"d{index}")
    pending = ledger.pending(US, "merchant")
    assert len(pending) == 4
    ledger.submit(US, "ConsolidateAccount", {"account_id": "merchant", "pending_credits": pending})
    assert ledger.account(US, "merchant")["pending_credits"] == []
    assert ledger.balance(US, "merchant") == 100


def test_cnh_is_cross_border_only(ledger: Ledger) -> None:
    ledger.open(HK, "sz-1", jurisdiction="CN")
    ledger.open(HK, "sz-2", jurisdiction="CN")
    ledger.open(HK, "hk-1", jurisdiction="HK")
    ledger.issue(HK, "sz-1", 10_000, currency="CNH")
    with pytest.raises(Refused, match=r"^\[corridor_forbidden\] CNH is cross-border only"):
        ledger.transfer(HK, "sz-1", "sz-2", 100, "c1", currency="CNH")
    ledger.transfer(HK, "sz-1", "hk-1", 100, "c2", currency="CNH")
    assert ledger.balance(HK, "hk-1", "CNH") == 100


def test_the_regulator_sets_corridor_rules(ledger: Ledger) -> None:
    ledger.open(HK, "hk-1", jurisdiction="HK")
    ledger.open(HK, "us-1", jurisdiction="US")
    ledger.open(HK, "sg-1", jurisdiction="SG")
    ledger.issue(HK, "hk-1", 10_000, currency="HKD")
    policy = {"rules": [{"currency": "HKD", "allowed": [["US", "HK"]]}]}
    message = ledger.refused(HK, "SetCorridorPolicy", args=[json.dumps(policy)])
    assert message == "[not_authorized] only the regulator may change the corridor policy"
    ledger.submit(REG, "SetCorridorPolicy", args=[json.dumps(policy)])
    in_force = ledger.query(REG, "GetReferenceData")["corridor_policy"]
    assert (in_force["version"], in_force["rules"], in_force["caps"]) == (
        2,
        [{"currency": "HKD", "allowed": [["HK", "US"]]}],
        [],
    )
    ledger.transfer(HK, "hk-1", "us-1", 10, "h1", currency="HKD")
    with pytest.raises(Refused, match=r"^\[corridor_forbidden\] HKD may move only between"):
        ledger.transfer(HK, "hk-1", "sg-1", 10, "h2", currency="HKD")
    # The new policy replaced the default: CNH moves freely now.
    assert ledger.query(REG, "GetReferenceData")["corridor_policy"]["rules"][0]["currency"] == "HKD"
    for bad, expected in [
        ({"rules": [{"currency": "XXX", "cross_border_only": True}]}, "[unknown_currency]"),
        ({"rules": [{"currency": "USD"}]}, "[invalid_request] 'rules[0]' needs"),
        ({"rules": [{"currency": "USD", "allowed": [["US"]]}]}, "[invalid_request] 'rules[0].allowed'"),
        ({"policy": []}, "[invalid_request] a corridor policy"),
    ]:
        assert ledger.refused(REG, "SetCorridorPolicy", args=[json.dumps(bad)]).startswith(expected)


def test_reference_data_is_the_regulators_and_idempotent(ledger: Ledger) -> None:
    data = ledger.query(US, "GetReferenceData")
    assert data["regulator"] == REG
    assert [bank["msp_id"] for bank in data["banks"]] == ["HKBankMSP", "SGBankMSP", "USBankMSP"]
    again = {"regulator": REG, "currencies": data["currencies"], "banks": data["banks"]}
    assert ledger.submit(REG, "InitReferenceData", args=[json.dumps(again)])["changed"] is False
    # A bank may not initialise or extend the reference data, nor claim to be the regulator.
    assert ledger.refused(US, "InitReferenceData", args=[json.dumps({**again, "regulator": US})]).startswith(
        "[not_authorized]"
    )
    grown = {
        **again,
        "currencies": {**data["currencies"], "CHF": 2},
        "banks": [
            *data["banks"],
            {"msp_id": "CHBankMSP", "name": "CHBank", "jurisdiction": "CH", "currencies": ["CHF"]},
        ],
    }
    assert ledger.submit(REG, "InitReferenceData", args=[json.dumps(grown)])["changed"] is True
    assert "CHBankMSP" in [bank["msp_id"] for bank in ledger.query(US, "GetReferenceData")["banks"]]
    changed_exponent = {**again, "currencies": {**data["currencies"], "JPY": 2}}
    assert ledger.refused(REG, "InitReferenceData", args=[json.dumps(changed_exponent)]).startswith(
        "[invalid_request] the exponent of JPY is 0 and cannot change"
    )
