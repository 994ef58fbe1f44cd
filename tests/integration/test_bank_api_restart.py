"""Gateways killed mid-flow and restarted: exactly once, and incoming payments carry on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.integration.bank_api_support import BankGateway, ready_gateways, unique, wait_for
from tests.integration.conftest import network_cli

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    return ready_gateways(network)


def _fabric_calls(bank: BankGateway, transaction: str) -> float:
    """How many Fabric calls of ``transaction`` the gateway made, from its metrics."""
    text = requests.get(bank.url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("bank_api_fabric_call_duration_seconds_count{")
        and f'transaction="{transaction}"' in line
        and 'outcome="ok"' in line
    )


def _restart(bank: BankGateway) -> None:
    network_cli("start-node", f"gateway.{bank.msp_id}")
    assert wait_for(bank.ready, timeout=60)


def test_incoming_payments_carry_on_after_the_payee_gateway_restarts(banks: dict[str, BankGateway]) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    buyer = us.open_account("Restart Buyer", "US")
    supplier = hk.open_account("Restart Supplier", "HK")
    us.issue(buyer.account_id, "USD", "100.00")
    network_cli("kill-node", "gateway.HKBankMSP")  # SIGKILL: no chance to tidy up
    try:
        payment_ids = []
        for n in range(3):
            paid = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", f"{n + 1}.00", unique("while-down"))
            assert paid.status_code == 201, paid.text
            payment_ids.append(paid.json()["payment_id"])
        assert [us.payment(p, buyer.headers)["status"] for p in payment_ids] == ["initiated"] * 3
    finally:
        _restart(hk)
    completed = wait_for(
        lambda: all(us.payment(p, buyer.headers)["status"] == "completed" for p in payment_ids), timeout=90
    )
    assert completed, "payments sent while the payee gateway was down were not completed after its restart"
    assert hk.balances(supplier) == {"USD": "6.00"}
    history = hk.get(f"/v1/accounts/{supplier.account_id}/history", supplier.headers).json()["entries"]
    credited = sorted(e["payment_id"] for e in history if e["kind"] == "payment_in")
    assert credited == sorted(payment_ids)  # each exactly once


def test_payer_gateway_killed_mid_payment_gives_exactly_one_payment(banks: dict[str, BankGateway]) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    buyer = us.open_account("Crash Buyer", "US")
    supplier = hk.open_account("Crash Supplier", "HK")
    us.issue(buyer.account_id, "USD", "100.00")
    key = unique("crash")
    first: dict[str, Any] = {}

    def send() -> None:
        try:
            response = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "40.00", key)
            first["status"] = response.status_code
            first["body"] = response.json()
        except requests.RequestException as error:  # the gateway died under the request
            first["error"] = type(error).__name__

    reads_before = _fabric_calls(us, "GetAccount")
    sender = threading.Thread(target=send)
    sender.start()
    # The gateway reads the payer's pending credits, then submits InitiatePayment and waits for the
    # commit: kill it right after that read, while the submit is under way.
    assert wait_for(lambda: _fabric_calls(us, "GetAccount") > reads_before, timeout=30, interval=0.01)
    network_cli("kill-node", "gateway.USBankMSP")
    sender.join(timeout=120)
    assert "error" in first or "status" in first
    _restart(us)

    retried = wait_for(
        lambda: (r := us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "40.00", key)).status_code != 409 and r,
        timeout=90,
    )
    assert retried and retried.status_code == 201, retried.text if retried else "still in progress"
    payment = retried.json()
    if first.get("status") == 201:
        assert first["body"]["payment_id"] == payment["payment_id"]
    assert wait_for(lambda: us.payment(payment["payment_id"], buyer.headers)["status"] == "completed", timeout=90)
    assert us.balances(buyer) == {"USD": "60.00"}  # debited once
    assert hk.balances(supplier) == {"USD": "40.00"}  # credited once
    again = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "40.00", key)
    assert again.status_code == 201 and again.json()["payment_id"] == payment["payment_id"]
    assert us.balances(buyer) == {"USD": "60.00"}


def test_twenty_concurrent_identical_payments_make_one(banks: dict[str, BankGateway]) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    buyer = us.open_account("Burst Buyer", "US")
    supplier = hk.open_account("Burst Supplier", "HK")
    us.issue(buyer.account_id, "USD", "100.00")
    key = unique("burst")
    barrier = threading.Barrier(20)

    def one(_: int) -> requests.Response:
        barrier.wait()
        while True:
            response = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "7.00", key)
            # Twenty writes at once are more than the gateway's cap on writes in flight (12): those
            # refused as overloaded come back after Retry-After with the same key, as a client must.
            if response.status_code != 503 or response.json().get("code") != "overloaded":
                return response
            time.sleep(float(response.headers["Retry-After"]))

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(one, range(20)))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses if r.status_code != 201]
    assert len({r.json()["payment_id"] for r in responses}) == 1
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") != "true") == 1
    assert us.balances(buyer) == {"USD": "93.00"}
    history = us.get(f"/v1/accounts/{buyer.account_id}/history", buyer.headers).json()["entries"]
    assert [e["kind"] for e in history].count("payment_out") == 1
    payment_id = responses[0].json()["payment_id"]
    assert wait_for(lambda: us.payment(payment_id, buyer.headers)["status"] == "completed", timeout=90)
    assert Decimal(hk.balances(supplier)["USD"]) == Decimal("7.00")


def test_peer_down_gives_503_with_retry_after_and_recovers(banks: dict[str, BankGateway]) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    buyer = us.open_account("Outage Buyer", "US")
    supplier = hk.open_account("Outage Supplier", "HK")
    us.issue(buyer.account_id, "USD", "10.00")
    network_cli("kill-node", "peer.USBankMSP")
    try:
        ready = requests.get(us.url + "/readyz", timeout=60)
        assert ready.status_code == 503 and int(ready.headers["Retry-After"]) > 0
        read = us.get(f"/v1/accounts/{buyer.account_id}", buyer.headers)
        assert read.status_code == 503, read.text
        assert read.json()["code"] == "peer_unreachable" and int(read.headers["Retry-After"]) > 0
        key = unique("outage")
        paid = us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "3.00", key)
        assert paid.status_code == 503, paid.text
    finally:
        network_cli("start-node", "peer.USBankMSP")
    assert wait_for(us.ready, timeout=120)
    retried = wait_for(
        lambda: (r := us.pay(buyer, "HKBankMSP", supplier.account_id, "USD", "3.00", key)).status_code == 201 and r,
        timeout=120,
    )
    assert retried, "the payment could not be made after the peer came back"
    payment_id = retried.json()["payment_id"]
    assert wait_for(lambda: us.payment(payment_id, buyer.headers)["status"] == "completed", timeout=120)
    assert us.balances(buyer) == {"USD": "7.00"}
