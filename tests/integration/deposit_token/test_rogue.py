"""A rogue bank: HKBank's chaincode server runs altered code and HKBank's client uses it.

Two paths must both stop it: the honest chaincode refuses what a bank may not do, and when the
bank runs altered chaincode, the validating peers reject its transactions
(ENDORSEMENT_POLICY_FAILURE) because collection-level policies and state-based endorsement name
the bank that owns each key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fabric_client import EndorseError

from tests.integration.deposit_token_support import (
    HK,
    REG,
    SG,
    US,
    Consortium,
    Refused,
    altered_chaincode,
)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def victims(banks: Consortium) -> dict[str, str]:
    """USBank's customer with money, and a USBank → SGBank payment in flight."""
    us = banks[US]
    alice, shop = banks.payer_and_payee(US, SG, ("victim", "victim-shop"), 10_000)
    payment_id = us.submit("InitiatePayment", us.payment_request(banks.id("victim-pay"), alice, SG, shop, 1000))[
        "payment_id"
    ]
    return {"alice": alice, "shop": shop, "payment_id": payment_id}


def test_honest_chaincode_refuses_the_other_bank(banks: Consortium, victims: dict[str, str]) -> None:
    hk = banks[HK]
    # HKBank's client drives USBank's peer: refused by the chaincode (creator is not the peer's org).
    issue = {"account_id": victims["alice"], "currency": "USD", "amount": 1, "deposit_ref": banks.id("steal")}
    for function, request in [
        ("Issue", issue),
        ("Redeem", {"account_id": victims["alice"], "currency": "USD", "amount": 1, "withdrawal_ref": "x"}),
        ("RefundPayment", {"payment_id": victims["payment_id"]}),
    ]:
        with pytest.raises(EndorseError) as error:
            hk.contract.submit_transaction(
                function, transient={"request": json.dumps(request).encode()}, endorsing_organizations=[US]
            )
        assert (error.value.chaincode_status, error.value.reason) == (403, "not_authorized"), str(error.value)
    # On its own peer, HKBank may not move a payment it is not party to.
    refusal = hk.refused("CompletePayment", {"payment_id": victims["payment_id"]})
    assert (refusal.status, refusal.reason) == (403, "not_authorized")


def test_altered_chaincode_fails_validation(banks: Consortium, state_dir: Path, victims: dict[str, str]) -> None:
    us, hk = banks[US], banks[HK]
    supply_before = banks.supply()
    balance_before = us.balance(victims["alice"])
    with altered_chaincode(state_dir, HK):
        # Issue USBank's token: a supply change in USBank's supply collection.
        assert hk.attempt("RogueMint", None, US, "USD", "1000000").code == "ENDORSEMENT_POLICY_FAILURE"
        # Move USBank's payment on (HKBank is neither payer nor payee).
        for status in ("completed", "refunded"):
            outcome = hk.attempt("RogueMovePayment", None, victims["payment_id"], status)
            assert outcome.code == "ENDORSEMENT_POLICY_FAILURE"
        # Rewrite the regulator's corridor policy.
        assert hk.attempt("RogueCorridor", None, json.dumps({"rules": []})).code == "ENDORSEMENT_POLICY_FAILURE"
        # Debit or credit USBank's customer: USBank's books are its implicit collection, so
        # HKBank's peer simulates the write, and every peer's validation refuses it.
        for function, args in [
            ("RogueDebit", (US, victims["alice"], "USD")),
            ("RogueCredit", (US, victims["alice"], "USD", "5000")),
        ]:
            assert hk.attempt(function, None, *args).code == "ENDORSEMENT_POLICY_FAILURE"
        # The same altered code is valid where HKBank owns the keys: the policies decide, not the code.
        own = hk.attempt("RogueMint", None, HK, "HKD", "0")
        assert own.code == "VALID"
    banks.wait_everywhere(own.block)
    assert banks.supply() == supply_before
    assert us.balance(victims["alice"]) == balance_before
    record = banks[REG].evaluate("GetPayment", None, victims["payment_id"])
    assert record["status"] == "initiated"
    assert banks[REG].evaluate("GetReferenceData")["corridor_policy"]["rules"][0]["currency"] == "CNH"
    banks.assert_conserved()
    # The payment still completes normally.
    banks[SG].submit("CompletePayment", {"payment_id": victims["payment_id"]})
    assert banks[SG].balance(victims["shop"]) == 1000
    banks.assert_conserved()


def test_payee_faking_a_refund_does_not_cost_the_payer(
    banks: Consortium, state_dir: Path, victims: dict[str, str]
) -> None:
    us, hk = banks[US], banks[HK]
    shop = banks.id("rogue-payee-shop")
    hk.open(shop, "HK")
    before = us.balance(victims["alice"])
    payment_id = us.submit(
        "InitiatePayment", us.payment_request(banks.id("to-rogue"), victims["alice"], HK, shop, 500)
    )["payment_id"]
    with altered_chaincode(state_dir, HK):
        # The payee may move an initiated record on, so its altered code can mark it refunded ...
        outcome = hk.attempt("RogueMovePayment", None, payment_id, "refunded")
        assert outcome.code == "VALID"
    banks.wait_everywhere(outcome.block)
    # ... but the payer bank's books still owe the refund, so the payer gets the money back.
    assert us.submit("RefundPayment", {"payment_id": payment_id})["refunded"] is True
    assert us.balance(victims["alice"]) == before
    with pytest.raises(Refused):
        hk.submit("CompletePayment", {"payment_id": payment_id}, retries=1)
    banks.assert_conserved()
