"""Disclosure on request through the gateways, on the real contract in memory: the regulator files a
request, a bank's operator (or its standing policy) approves or refuses it, and the regulator's gateway
checks each delivery against the payment's public hash: verified, or mismatch when a bank lies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chaincode.shim.contract import ContractRouter
from gateway.bank_api.disclosures import StandingApproval, details_hash
from gateway.bank_api.storage.models import DisclosureCheck
from tests.integration.rogue_deposit_token import RogueDepositTokenContract
from tests.unit.regulator.conftest import HK, SG, US, Gateway, GatewayFactory, Ledger

BASIS = "Banking Ordinance s.55, inquiry 2025-031"
DETAILS = {"payer_account": "alice", "payer_jurisdiction": "US", "payee_account": "shop", "remittance": "INV-77"}


@pytest.fixture
def payment(contract: Ledger) -> str:
    contract.open(US, "alice", "US")
    contract.open(HK, "shop", "HK")
    contract.issue(US, "alice", 10_000)
    request = {
        "idempotency_key": "k", "payer_account": "alice", "payee_bank": HK, "payee_account": "shop",
        "currency": "USD", "amount": 1234, "remittance": "INV-77", "pending_credits": contract.pending(US, "alice"),
    }  # fmt: skip
    payment_id: str = contract.submit(US, "InitiatePayment", request)["payment_id"]
    contract.submit(HK, "CompletePayment", {"payment_id": payment_id})
    return payment_id


def _file(regulator: Gateway, payment_id: str, key: str = "req-1", basis: str = BASIS) -> Any:
    return regulator.client.post(
        "/v1/disclosure-requests",
        json={"payment_id": payment_id, "legal_basis": basis},
        headers={**regulator.headers(), "Idempotency-Key": key},
    )


def _answer(bank: Gateway, request_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return bank.client.post(f"/v1/disclosure-requests/{request_id}/{action}", json=body or {}, headers=bank.headers())


def test_filed_approved_refused_and_verified(
    regulator: Gateway, make_gateway: GatewayFactory, payment: str, contract: Ledger
) -> None:
    us, hk = make_gateway(US), make_gateway(HK)
    filed = _file(regulator, payment)
    assert filed.status_code == 201, filed.get_json()
    request = filed.get_json()
    request_id = request["request_id"]
    assert filed.headers["Location"] == f"/v1/disclosure-requests/{request_id}"
    assert (request["payment_id"], request["legal_basis"], request["requested_by"]) == (payment, BASIS, "RegulatorMSP")
    assert {bank: a["status"] for bank, a in request["answers"].items()} == {HK: "pending", US: "pending"}
    # A retry with the same key files nothing new.
    again = _file(regulator, payment)
    assert (again.get_json()["request_id"], again.headers.get("Idempotent-Replayed")) == (request_id, "true")
    assert len(regulator.ok("/v1/disclosure-requests")["requests"]) == 1

    # Each bank sees the request; USBank's operator approves, HKBank's refuses.
    assert [r["request_id"] for r in us.ok("/v1/disclosure-requests?status=pending")["requests"]] == [request_id]
    approved = _answer(us, request_id, "approval")
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["answers"][US]["status"] == "disclosed"
    refused = _answer(hk, request_id, "refusal", {"reason": "awaiting a court order"})
    assert refused.get_json()["answers"][HK] | {"at": None, "tx_id": None} == {
        "status": "refused", "at": None, "tx_id": None, "reason": "awaiting a court order",
    }  # fmt: skip
    again = _answer(hk, request_id, "approval")
    assert (again.status_code, again.get_json()["code"]) == (409, "invalid_state")
    assert us.ok("/v1/disclosure-requests?status=pending")["requests"] == []

    checked = regulator.ok(f"/v1/disclosure-requests/{request_id}")
    public = regulator.ok(f"/v1/payments/{payment}")
    assert checked["expected_details_hash"] == public["details_hash"]
    assert set(checked["deliveries"]) == {US}
    delivery = checked["deliveries"][US]
    assert (delivery["check"], delivery["details"], delivery["details_hash"]) == (
        "verified",
        DETAILS,
        public["details_hash"],
    )
    with regulator.services.db.session(write=False) as session:
        row = session.get(DisclosureCheck, (request_id, US))
        assert row is not None and row.result == "verified"
    # The first check's time stays.
    assert (
        regulator.ok(f"/v1/disclosure-requests/{request_id}")["deliveries"][US]["checked_at"] == delivery["checked_at"]
    )
    rows = regulator.get("/v1/disclosure-requests?format=csv").get_data(as_text=True).splitlines()
    assert (
        rows[0]
        == "request_id,payment_id,payer_bank,payee_bank,legal_basis,requested_by,requested_at,payer_answer,payee_answer"
    )
    assert rows[1].endswith(",disclosed,refused")
    # The list never carries the details; only the request's own view does.
    assert "alice" not in regulator.get("/v1/disclosure-requests").get_data(as_text=True)


def test_a_bank_that_lies_is_shown_as_a_mismatch(regulator: Gateway, payment: str, contract: Ledger) -> None:
    request_id = _file(regulator, payment).get_json()["request_id"]
    made_up = {**DETAILS, "payer_account": "someone-else"}
    rogue = ContractRouter([RogueDepositTokenContract()])
    lie = contract.channel.simulate(HK, "RogueDisclose", [request_id, json.dumps(made_up)], router=rogue)
    assert lie.ok and contract.channel.commit([lie]) == ["VALID"]
    contract.submit(US, "ApproveDisclosure", args=[request_id])
    deliveries = regulator.ok(f"/v1/disclosure-requests/{request_id}")["deliveries"]
    assert (deliveries[HK]["check"], deliveries[HK]["details"]["payer_account"]) == ("mismatch", "someone-else")
    assert deliveries[US]["check"] == "verified"
    with regulator.services.db.session(write=False) as session:
        assert session.get(DisclosureCheck, (request_id, HK)).result == "mismatch"  # type: ignore[union-attr]


def test_a_standing_policy_approves_on_its_own(make_gateway: GatewayFactory, regulator: Gateway, payment: str) -> None:
    us = make_gateway(US, disclosure_standing_approval=True)
    first = _file(regulator, payment, key="a").get_json()["request_id"]
    second = _file(regulator, payment, key="b").get_json()["request_id"]
    approval = StandingApproval(us.services, interval=60)
    assert sorted(approval.approve_pending()) == sorted([first, second])
    assert approval.approve_pending() == []
    assert all(
        regulator.ok(f"/v1/disclosure-requests/{rid}")["deliveries"][US]["check"] == "verified"
        for rid in (first, second)
    )


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"legal_basis": BASIS}, 400, "payment_id is required"),
        ({"payment_id": "abc", "legal_basis": BASIS}, 400, "payment_id is malformed"),
        ({"payment_id": "0" * 64}, 400, "legal_basis is required"),
        ({"payment_id": "0" * 64, "legal_basis": "x" * 501}, 400, "legal_basis must be at most 500 characters"),
        ({"payment_id": "0" * 64, "legal_basis": BASIS}, 404, "no payment"),
        ({"payment_id": "0" * 64, "legal_basis": BASIS, "x": 1}, 400, "unknown field(s): x"),
    ],
)
def test_bad_requests_are_refused_by_name(regulator: Gateway, body: dict[str, Any], status: int, detail: str) -> None:
    response = regulator.client.post(
        "/v1/disclosure-requests", json=body, headers={**regulator.headers(), "Idempotency-Key": "x"}
    )
    assert response.status_code == status, response.get_json()
    assert detail in response.get_json()["detail"]


def test_answers_come_only_from_the_payments_banks(
    regulator: Gateway, make_gateway: GatewayFactory, payment: str
) -> None:
    sg, us = make_gateway(SG), make_gateway(US)
    request_id = _file(regulator, payment).get_json()["request_id"]
    response = _answer(sg, request_id, "approval")
    assert (response.status_code, response.get_json()["code"]) == (403, "not_authorized")
    assert sg.ok("/v1/disclosure-requests")["requests"] == []
    assert _answer(us, "f" * 64, "approval").status_code == 404
    assert _answer(us, "nope", "approval").status_code == 400
    assert _answer(us, request_id, "refusal", {}).get_json()["detail"] == "reason is required"
    assert regulator.get("/v1/disclosure-requests/" + "f" * 64).status_code == 404
    # Keys do not cross here either.
    assert regulator.get("/v1/disclosure-requests", key=us.operator_key).status_code == 401
    assert us.get("/v1/disclosure-requests", key=regulator.operator_key).status_code == 401


@pytest.mark.parametrize(
    ("action", "body", "detail"),
    [
        ("refusal", {"reason": 5}, "reason must be a string"),
        ("refusal", {"reason": "   "}, "reason"),
        ("refusal", {"reason": "x" * 201}, "reason must be at most 200 characters"),
        ("refusal", {"reason": "no", "detail": "x"}, "unknown field(s): detail"),
        ("approval", {"reason": "x"}, "unknown field(s): reason"),
    ],
)
def test_a_banks_answer_of_the_wrong_shape_is_refused_and_changes_nothing(
    regulator: Gateway, make_gateway: GatewayFactory, payment: str, action: str, body: dict[str, Any], detail: str
) -> None:
    us = make_gateway(US)
    request_id = _file(regulator, payment).get_json()["request_id"]
    response = _answer(us, request_id, action, body)
    assert response.status_code == 400 and detail in response.get_json()["detail"], response.get_json()
    assert us.ok(f"/v1/disclosure-requests/{request_id}")["answers"][US]["status"] == "pending"


def test_the_banks_list_refuses_an_unknown_status(make_gateway: GatewayFactory) -> None:
    us = make_gateway(US)
    response = us.get("/v1/disclosure-requests", query_string={"status": "approved"})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["detail"] == "status must be one of pending, disclosed, refused"
    assert us.ok("/v1/disclosure-requests", query_string={"status": "refused"}) == {"requests": []}


def test_the_gateways_hash_is_the_contracts() -> None:
    from chaincode.deposit_token.payments import details_hash as contracts

    salt = "ab" * 16
    assert details_hash(salt, {**DETAILS, "remittance": "Überweisung €"}) == contracts(
        salt, {**DETAILS, "remittance": "Überweisung €"}
    )
