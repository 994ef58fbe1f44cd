"""Disclosure on request: the regulator asks, each bank of the payment answers for itself; what is
delivered reaches the regulator only, and a request or an answer cannot be forged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chaincode.deposit_token import disclosures
from chaincode.deposit_token.collections import disclosure_collection, regulator_collection
from chaincode.deposit_token.keys import disclosed, disclosure
from chaincode.deposit_token.payments import details_hash
from chaincode.deposit_token.testing import ENDORSEMENT_POLICY_FAILURE, VALID, RWSet, Simulation
from chaincode.shim.contract import ContractRouter
from tests.integration.rogue_deposit_token import RogueDepositTokenContract
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused

ROGUE = ContractRouter([RogueDepositTokenContract()])
BASIS = "AML Ordinance s.12, case 2025-044"


@pytest.fixture
def payment(ledger: Ledger) -> str:
    ledger.open(US, "alice", "US", holder="Alice Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.issue(US, "alice", 10_000)
    request = {
        "idempotency_key": "k", "payer_account": "alice", "payee_bank": HK, "payee_account": "shop",
        "currency": "USD", "amount": 2500, "remittance": "INV-9", "pending_credits": ledger.pending(US, "alice"),
    }  # fmt: skip
    payment_id: str = ledger.submit(US, "InitiatePayment", request)["payment_id"]
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    return payment_id


def _request(ledger: Ledger, payment_id: str) -> str:
    result = ledger.submit(REG, "RequestDisclosure", args=[payment_id, BASIS])
    request_id: str = result["request_id"]
    return request_id


def test_the_regulator_asks_and_each_bank_answers_for_itself(ledger: Ledger, payment: str) -> None:
    request_id = _request(ledger, payment)
    record = ledger.query(SG, "GetDisclosure", args=[request_id])
    assert record | {"requested_at": None} == {
        "request_id": request_id, "payment_id": payment, "payer_bank": US, "payee_bank": HK,
        "legal_basis": BASIS, "requested_by": REG, "requested_at": None,
        "answers": {
            US: {"bank": US, "status": "pending", "at": None, "tx_id": None, "reason": None},
            HK: {"bank": HK, "status": "pending", "at": None, "tx_id": None, "reason": None},
        },
    }  # fmt: skip
    event = ledger.channel.events[-1]
    assert (event.name, json.loads(event.payload)) == (
        "DisclosureRequested", {"request_id": request_id, "payment_id": payment, "payer_bank": US, "payee_bank": HK},
    )  # fmt: skip
    assert ledger.submit(US, "ApproveDisclosure", args=[request_id]) == {
        "request_id": request_id, "status": "disclosed", "disclosed": True,
    }  # fmt: skip
    assert ledger.submit(US, "ApproveDisclosure", args=[request_id])["disclosed"] is False
    ledger.submit(HK, "RefuseDisclosure", args=[request_id, "no court order attached"])
    answers = ledger.query(REG, "GetDisclosure", args=[request_id])["answers"]
    assert (answers[US]["status"], answers[HK]["status"], answers[HK]["reason"]) == (
        "disclosed", "refused", "no court order attached",
    )  # fmt: skip
    assert ledger.refused(HK, "ApproveDisclosure", args=[request_id]).startswith(
        "[invalid_state] HKBankMSP already answered disclosure request"
    )
    # The regulator reads what was delivered, and it hashes to the public record's details_hash.
    delivered = ledger.query(REG, "GetDisclosure", {"details": True}, args=[request_id])["delivered"]
    assert set(delivered) == {US}
    details = delivered[US]["details"]
    assert details == {"payer_account": "alice", "payer_jurisdiction": "US", "payee_account": "shop",
                       "remittance": "INV-9"}  # fmt: skip
    public = ledger.query(REG, "GetPayment", args=[payment])
    assert details_hash(delivered[US]["salt"], details) == public["details_hash"]
    listed = ledger.query(REG, "ListDisclosures", args=[json.dumps({"bank": HK, "status": "refused"})])
    assert [r["request_id"] for r in listed["requests"]] == [request_id]
    assert ledger.query(REG, "ListDisclosures", args=[json.dumps({"status": "pending"})])["requests"] == []


def test_only_the_regulator_asks_and_only_the_payments_banks_answer(ledger: Ledger, payment: str) -> None:
    assert ledger.refused(US, "RequestDisclosure", args=[payment, BASIS]) == (
        "[not_authorized] only the regulator may request a disclosure"
    )
    assert ledger.refused(REG, "RequestDisclosure", args=["0" * 64, BASIS]).startswith("[payment_not_found]")
    assert ledger.refused(REG, "RequestDisclosure", args=[payment, ""]).startswith(
        "[invalid_request] 'legal_basis' must not be empty"
    )
    request_id = _request(ledger, payment)
    assert ledger.refused(SG, "ApproveDisclosure", args=[request_id]) == (
        f"[not_authorized] {SG} is not a party to payment {payment}"
    )
    assert ledger.refused(US, "ApproveDisclosure", args=["f" * 64]).startswith("[disclosure_not_found]")
    assert ledger.refused(US, "ApproveDisclosure", args=["nope"]).startswith("[invalid_request] 'request_id'")
    with pytest.raises(Refused, match=r"^\[not_authorized\] only the regulator and the payment's banks"):
        ledger.query(SG, "GetDisclosure", {"details": True}, args=[request_id])
    # A payment's bank sees its own delivery only: HKBank has none yet, USBank's is not for it.
    ledger.submit(US, "ApproveDisclosure", args=[request_id])
    assert ledger.query(HK, "GetDisclosure", {"details": True}, args=[request_id])["delivered"] == {}


def test_no_other_bank_can_read_a_disclosure(ledger: Ledger, payment: str) -> None:
    request_id = _request(ledger, payment)
    ledger.submit(US, "ApproveDisclosure", args=[request_id])
    simulation = ledger.channel.simulate(SG, "RogueReadDisclosure", [US, request_id], router=ROGUE)
    assert not simulation.ok
    # HKBank is the payee, but the delivery is USBank's, to the regulator: HKBank's peer does not hold it.
    peeked = ledger.channel.simulate(HK, "RogueReadDisclosure", [US, request_id], router=ROGUE)
    assert not peeked.ok or json.loads(peeked.payload)["record"] == ""
    assert ledger.channel.private_items(disclosure_collection(US))  # the regulator's peer holds it


def test_a_request_cannot_be_forged_and_an_answer_only_by_its_bank(ledger: Ledger, payment: str) -> None:
    planted = ledger.channel.simulate(SG, "RogueRequestDisclosure", ["a" * 64, payment], router=ROGUE)
    assert planted.ok
    assert ledger.channel.commit([planted]) == [ENDORSEMENT_POLICY_FAILURE]
    assert ledger.query(REG, "ListDisclosures")["requests"] == []
    request_id = _request(ledger, payment)
    # SGBank writing USBank's answer: the answer key's state-based policy names USBank.
    forged = RWSet(writes={("", f"\x00dt.disclosure_answer\x00{request_id}\x00{US}\x00"): b'{"status":"refused"}'})
    assert ledger.channel.commit([Simulation("e" * 64, "X", 200, "", b"", None, forged, {SG})]) == [
        ENDORSEMENT_POLICY_FAILURE
    ]
    # Nor can a bank write another bank's disclosure collection.
    key = (disclosure_collection(US), disclosed(request_id))
    fake = RWSet(writes={key: b'{"details":{}}'})
    assert ledger.channel.commit([Simulation("d" * 64, "X", 200, "", b"", None, fake, {HK})]) == [
        ENDORSEMENT_POLICY_FAILURE
    ]
    assert ledger.channel.private_items(regulator_collection(REG)).keys() == {disclosure(request_id)}


def test_a_lying_bank_delivers_details_that_do_not_match_the_hash(ledger: Ledger, payment: str) -> None:
    request_id = _request(ledger, payment)
    made_up: dict[str, Any] = {"payer_account": "someone-else", "payer_jurisdiction": "US", "payee_account": "shop",
                               "remittance": "INV-9"}  # fmt: skip
    lie = ledger.channel.simulate(HK, "RogueDisclose", [request_id, json.dumps(made_up)], router=ROGUE)
    assert lie.ok and ledger.channel.commit([lie]) == [VALID]  # its own answer: the validators cannot tell
    delivered = ledger.query(REG, "GetDisclosure", {"details": True}, args=[request_id])["delivered"][HK]
    assert delivered["details"] == made_up
    public = ledger.query(REG, "GetPayment", args=[payment])
    assert details_hash(delivered["salt"], delivered["details"]) != public["details_hash"]
    assert ledger.query(REG, "GetDisclosure", args=[request_id])["answers"][HK]["status"] == disclosures.DISCLOSED
