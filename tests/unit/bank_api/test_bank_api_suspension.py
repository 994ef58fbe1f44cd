"""A bank suspended by the regulator, as merchants and operators meet it through the gateway."""

from __future__ import annotations

from typing import Any

from chaincode.deposit_token.errors import STATUS_OF_CODE
from gateway.bank_api.ledger import CONTRACT_CODES
from gateway.bank_api.openapi import openapi_document
from gateway.bank_api.workers import PaymentFollower
from tests.unit.bank_api.conftest import Gateway, GatewayFactory, ledger_snapshot
from tests.unit.bank_api.fake_ledger import FakeNetwork

HK = "HKBankMSP"
REASON = "AML review 2025-17"


def _merchant(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


def _pay(gateway: Gateway, key: str, idem: str, payee_bank: str, payee: str, amount: str = "10.00") -> Any:
    return gateway.client.post(
        "/v1/payments",
        json={"payee_bank": payee_bank, "payee_account": payee, "currency": "USD", "amount": amount},
        headers=_merchant(key, idem),
    )


def _assert_suspended_problem(response: Any, refused: str) -> None:
    assert response.status_code == 409, response.get_json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.get_json()
    assert (body["code"], body["type"], body["title"]) == (
        "bank_suspended",
        "urn:deposit-token:problem:bank_suspended",
        "Conflict",
    )
    assert body["detail"].startswith(f"{HK} is suspended by the regulator since ")
    assert body["detail"].endswith(f"(reason: {REASON}); {refused}")


def test_new_payments_to_and_from_a_suspended_bank_get_a_409_naming_it(
    network: FakeNetwork, us: Gateway, hk: Gateway
) -> None:
    buyer, buyer_key = us.open_account("Buyer", "US")
    supplier, supplier_key = hk.open_account("Supplier", "HK")
    colleague, _ = hk.open_account("Colleague", "HK")
    us.issue(buyer, "100.00")
    hk.issue(supplier, "100.00")
    network.suspend(HK, REASON)
    before = ledger_snapshot(us)

    no_payment = "no new payment to or from it is accepted"
    _assert_suspended_problem(_pay(us, buyer_key, "to-hk", HK, supplier), no_payment)
    _assert_suspended_problem(_pay(hk, supplier_key, "from-hk", "USBankMSP", buyer), no_payment)
    _assert_suspended_problem(
        _pay(hk, supplier_key, "within-hk", HK, colleague), "no new transfer within it is accepted"
    )
    issued = hk.client.post(
        "/v1/issuances",
        json={"account_id": supplier, "currency": "USD", "amount": "1.00", "deposit_ref": "dep-late"},
        headers=hk.op(),
    )
    _assert_suspended_problem(issued, "it may not issue new tokens")
    assert ledger_snapshot(us) == before  # nothing moved
    # Redemption turns tokens back into an ordinary deposit at the same bank: still open.
    redeemed = hk.client.post(
        "/v1/redemptions",
        json={"account_id": supplier, "currency": "USD", "amount": "5.00", "withdrawal_ref": "wd-1"},
        headers=hk.op(),
    )
    assert redeemed.status_code == 201, redeemed.get_json()
    assert network.balance(HK, supplier, "USD") == 9500

    network.reinstate(HK)
    # The refusal settled that request: the same key replays it; a new key is a new payment.
    replayed = _pay(us, buyer_key, "to-hk", HK, supplier)
    assert replayed.status_code == 409 and replayed.headers["Idempotent-Replayed"] == "true"
    paid = _pay(us, buyer_key, "to-hk-again", HK, supplier)
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["status"] == "initiated"
    assert network.balance("USBankMSP", buyer, "USD") == 9000
    assert _pay(hk, supplier_key, "from-hk-again", "USBankMSP", buyer).status_code == 201


def test_a_payment_in_flight_completes_after_its_payee_bank_is_suspended(
    network: FakeNetwork, us: Gateway, hk: Gateway
) -> None:
    buyer, buyer_key = us.open_account("Buyer", "US")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "30.00")
    paid = _pay(us, buyer_key, "before", HK, supplier, "30.00")
    assert paid.status_code == 201 and paid.get_json()["status"] == "initiated"
    network.suspend(HK, REASON)
    # HKBank's follower sees the payment only now, while its bank is suspended.
    follower = PaymentFollower(hk.services)
    for event in list(network.events):
        follower.handle_with_retries(event)
    assert network.payments[paid.get_json()["payment_id"]]["status"] == "completed"
    assert network.balance(HK, supplier, "USD") == 3000
    assert network.total_balances("USD") == network.total_supply("USD")


def test_reference_data_shows_which_bank_is_suspended(network: FakeNetwork, make_gateway: GatewayFactory) -> None:
    network.suspend(HK, REASON)
    sg = make_gateway("SGBankMSP")  # a gateway caches reference data: this one reads it after the suspension
    banks = {bank["msp_id"]: bank for bank in sg.client.get("/v1/reference-data", headers=sg.op()).get_json()["banks"]}
    assert (banks[HK]["status"], banks[HK]["status_reason"]) == ("suspended", REASON)
    assert (banks["USBankMSP"]["status"], banks["USBankMSP"]["status_reason"]) == ("active", None)


def test_the_gateway_knows_every_contract_refusal_with_the_contracts_status() -> None:
    assert CONTRACT_CODES == STATUS_OF_CODE
    assert CONTRACT_CODES["bank_suspended"] == 409


def test_the_openapi_document_shows_the_suspension_refusal(network: FakeNetwork, us: Gateway, hk: Gateway) -> None:
    conflict = openapi_document()["components"]["responses"]["Conflict"]
    assert "bank_suspended" in conflict["description"]
    example = conflict["content"]["application/problem+json"]["examples"]["bank_suspended"]["value"]
    buyer, buyer_key = us.open_account("Buyer", "US")
    us.issue(buyer, "1.00")
    network.suspend(HK, REASON)
    answer = _pay(us, buyer_key, "doc", HK, "acc-anyone", "1.00").get_json()
    # The example has the shape of a real answer, down to the wording of the detail.
    assert set(example) == set(answer)
    assert {k: example[k] for k in ("type", "title", "status", "code")} == {
        k: answer[k] for k in ("type", "title", "status", "code")
    }
    assert example["detail"].split(" since ")[0] == answer["detail"].split(" since ")[0]
    assert example["detail"].rsplit(")", 1)[1] == answer["detail"].rsplit(")", 1)[1]
