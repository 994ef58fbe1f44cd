"""The whole story through the banks' REST gateways only, on the real network.

1. onboard a buyer at the US bank and a supplier at the Hong Kong bank;
2. issue USD to the buyer;
3. the buyer pays the supplier cross-border (USD → HKD);
4. the supplier is credited without any call to its bank's gateway;
5. a settlement cycle nets and settles.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from gateway.bank_api.webhooks import verify
from tests.integration.bank_api_support import BankGateway, ready_gateways, unique, wait_for, webhook_receiver

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    found = ready_gateways(network)
    assert set(found) >= {"USBankMSP", "HKBankMSP", "SGBankMSP"}
    return found


def _confirm(bank: BankGateway, cycle_id: str, external_ref: str) -> requests.Response:
    """Confirm a leg, retrying 503s (the same reference again is a no-op at the contract)."""
    deadline = time.monotonic() + 300
    while True:
        response = bank.post(f"/v1/settlement-cycles/{cycle_id}/confirmation", {"external_ref": external_ref})
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(1)


def test_full_story_through_http(banks: dict[str, BankGateway]) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    buyer = us.open_account("Buyer Inc", "US")
    supplier = hk.open_account("Supplier Ltd", "HK")
    us.issue(buyer.account_id, "USD", "1000.00")
    assert us.balances(buyer) == {"USD": "1000.00"}

    hk_calls_before = hk.api_requests_served()
    paid = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "100.00", unique("invoice"),
                  payee_currency="HKD", remittance="invoice 2024-17")  # fmt: skip
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert (payment["status"], payment["amount"], payment["payee_currency"]) == ("initiated", "100.00", "HKD")
    expected_hkd = Decimal("100.00") * Decimal(payment["rate"])
    assert Decimal(payment["payee_amount"]) == expected_hkd.quantize(Decimal("0.01"))

    done = wait_for(
        lambda: (p := us.payment(payment["payment_id"], buyer.headers))["status"] == "completed" and p, timeout=60
    )
    assert done, "the payment was not completed by the payee bank"
    assert [step["status"] for step in done["timeline"]] == ["initiated", "completed"]
    assert hk.api_requests_served() == hk_calls_before  # no API call reached the HK gateway
    assert us.balances(buyer) == {"USD": "900.00"}
    assert hk.balances(supplier) == {"HKD": payment["payee_amount"]}
    seen_by_supplier = hk.payment(payment["payment_id"], supplier.headers)
    assert seen_by_supplier["remittance"] == "invoice 2024-17"
    history = hk.get(f"/v1/accounts/{supplier.account_id}/history", supplier.headers).json()["entries"]
    assert [(e["kind"], e["amount"], e["payment_id"]) for e in history] == [
        ("payment_in", payment["payee_amount"], payment["payment_id"])
    ]

    positions = us.get("/v1/positions").json()["positions"]
    assert Decimal(positions["HKBankMSP"]["HKD"]) >= Decimal(payment["payee_amount"])
    # A cycle over a large backlog may outlast the gateway's commit deadline (503): retry as a
    # client would; the same cycle id makes the retry safe.
    cycle_id = unique("cycle")
    opened = wait_for(
        lambda: (r := us.post("/v1/settlement-cycles", {"cycle_id": cycle_id})).status_code != 503 and r,
        timeout=300,
    )
    assert opened and opened.status_code == 201, opened.text if opened else "503 throughout"
    cycle = opened.json()
    assert cycle["payments"] >= 1 and cycle["status"] == "open"
    for currency in {ccy for by_ccy in cycle["positions"].values() for ccy in by_ccy}:
        total = sum(Decimal(by_ccy.get(currency, "0")) for by_ccy in cycle["positions"].values())
        assert total == 0, f"{currency} positions do not net to zero"
    for msp_id in cycle["banks"]:
        confirmed = _confirm(banks[msp_id], cycle["cycle_id"], unique("rtgs"))
        assert confirmed.status_code == 200, confirmed.text
    final = us.get(f"/v1/settlement-cycles/{cycle['cycle_id']}").json()
    assert final["status"] == "settled"
    assert all(leg["confirmed"] for leg in final["confirmations"].values())
    assert us.payment(payment["payment_id"], buyer.headers)["cycle_id"] == cycle["cycle_id"]


def test_payment_to_a_frozen_supplier_is_rejected_and_refunded(banks: dict[str, BankGateway]) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    buyer = us.open_account("Buyer Two", "US")
    supplier = hk.open_account("Frozen Supplier", "HK")
    us.issue(buyer.account_id, "USD", "50.00")
    frozen = hk.post(f"/v1/accounts/{supplier.account_id}/freeze", {"reason": "sanctions screening"})
    assert frozen.status_code == 200 and frozen.json()["status"] == "frozen"
    paid = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "20.00", unique("p"))
    assert paid.status_code == 201, paid.text
    payment_id = paid.json()["payment_id"]
    final = wait_for(lambda: (p := us.payment(payment_id, buyer.headers))["status"] == "refunded" and p, timeout=90)
    assert final, "the payment was not rejected and refunded"
    assert final["reason"] == "account_frozen"
    assert [s["status"] for s in final["timeline"]] == ["initiated", "rejected", "refunded"]
    assert us.balances(buyer) == {"USD": "50.00"}
    assert hk.balances(supplier) == {}


def test_auth_matrix_on_the_live_gateway(banks: dict[str, BankGateway]) -> None:
    us = banks["USBankMSP"]
    alice = us.open_account("Alice Co", "US")
    bob = us.open_account("Bob Co", "US")
    assert us.get(f"/v1/accounts/{alice.account_id}", {}).status_code == 401
    assert us.get(f"/v1/accounts/{alice.account_id}", {"Authorization": "Bearer dtk_00_wrong"}).status_code == 401
    assert us.get(f"/v1/accounts/{bob.account_id}", alice.headers).status_code == 403
    assert us.get("/v1/supply", alice.headers).status_code == 403
    refused = us.post("/v1/issuances", {"account_id": alice.account_id, "currency": "USD", "amount": "1.00",
                                        "deposit_ref": unique("d")}, alice.headers)  # fmt: skip
    assert refused.status_code == 403
    assert us.balances(alice) == {}


@pytest.mark.parametrize(
    ("amount", "status", "code"),
    [(1.5, 400, "invalid_amount"), ("1.001", 400, "invalid_amount"), ("-1", 400, "invalid_amount"),
     ("0", 400, "invalid_amount"), ("1" * 30, 400, "invalid_amount"), ("5000.00", 409, "insufficient_funds")],
)  # fmt: skip
def test_bad_amounts_on_the_live_gateway(banks: dict[str, BankGateway], amount: Any, status: int, code: str) -> None:
    us = banks["USBankMSP"]
    payer = us.open_account("Careful Co", "US")
    us.issue(payer.account_id, "USD", "10.00")
    response = us.pay(payer, "HKBankMSP", "acc-someone", "USD", amount, unique("bad"))
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert us.balances(payer) == {"USD": "10.00"}


def test_supplier_is_told_by_a_signed_webhook(banks: dict[str, BankGateway]) -> None:
    with webhook_receiver() as (base_url, received):
        us, hk = banks["USBankMSP"], banks["HKBankMSP"]
        buyer = us.open_account("Hook Buyer", "US")
        supplier = hk.open_account("Hook Supplier", "HK")
        hook = hk.post("/v1/webhooks", {"url": f"{base_url}/hook", "events": ["payment.received"]}, supplier.headers)
        assert hook.status_code == 201, hook.text
        us.issue(buyer.account_id, "USD", "5.00")
        paid = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "5.00", unique("hook"))
        assert paid.status_code == 201, paid.text
        assert wait_for(lambda: received, timeout=90), "no webhook arrived"
        signature, body = received[0]
        assert verify(hook.json()["secret"], signature, body, now=int(time.time()))
        event = json.loads(body)
        assert (event["type"], event["data"]["payment_id"]) == ("payment.received", paid.json()["payment_id"])
        deliveries = hk.get(f"/v1/webhooks/{hook.json()['id']}/deliveries", supplier.headers).json()["deliveries"]
        assert [(d["state"], d["last_status_code"]) for d in deliveries] == [("delivered", 204)]
