"""Idempotency-Key: one effect, one stored answer; across restarts and concurrent duplicates."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.bank_api.storage.models import IdempotencyRecord, utcnow
from tests.unit.bank_api.conftest import Gateway, GatewayFactory
from tests.unit.bank_api.fake_ledger import FakeNetwork


def _setup(us: Gateway, hk: Gateway, amount: str = "100.00") -> tuple[str, str, str]:
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, amount)
    return buyer, key, supplier


def _pay(gateway: Gateway, key: str, idem: str, supplier: str, amount: str = "10.00"):
    return gateway.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": amount},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
    )


def test_same_key_same_body_replays_the_first_answer(us: Gateway, hk: Gateway) -> None:
    buyer, key, supplier = _setup(us, hk)
    first = _pay(us, key, "order-1", supplier)
    second = _pay(us, key, "order-1", supplier)
    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert us.ledger.count("InitiatePayment") == 1
    assert us.ledger.network.balance("USBankMSP", buyer, "USD") == 9000


def test_same_key_different_body_is_409(us: Gateway, hk: Gateway) -> None:
    _, key, supplier = _setup(us, hk)
    assert _pay(us, key, "order-2", supplier, "10.00").status_code == 201
    clash = _pay(us, key, "order-2", supplier, "11.00")
    assert clash.status_code == 409
    assert clash.get_json()["code"] == "idempotency_key_reused"
    assert us.ledger.count("InitiatePayment") == 1


def test_keys_are_per_account(us: Gateway, hk: Gateway) -> None:
    _, key_a, supplier = _setup(us, hk)
    buyer_b, key_b = us.open_account("Buyer B")
    us.issue(buyer_b, "50.00")
    a = _pay(us, key_a, "shared-key", supplier).get_json()
    b = _pay(us, key_b, "shared-key", supplier).get_json()
    assert a["payment_id"] != b["payment_id"]
    assert len(us.ledger.network.payments) == 2


def test_contract_refusal_is_stored_and_replayed(us: Gateway, hk: Gateway) -> None:
    buyer, key, supplier = _setup(us, hk, "5.00")
    refused = _pay(us, key, "too-much", supplier, "10.00")
    assert refused.status_code == 409 and refused.get_json()["code"] == "insufficient_funds"
    us.issue(buyer, "50.00", ref="top-up")
    again = _pay(us, key, "too-much", supplier, "10.00")
    assert again.status_code == 409 and again.get_data() == refused.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"


def test_input_errors_and_outages_do_not_bind_the_key(network: FakeNetwork, us: Gateway, hk: Gateway) -> None:
    _, key, supplier = _setup(us, hk)
    assert _pay(us, key, "k", supplier, "1.001").status_code == 400
    network.down = True
    down = _pay(us, key, "k", supplier, "10.00")
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.get_json()["code"] == "peer_unreachable"
    network.down = False
    ok = _pay(us, key, "k", supplier, "10.00")
    assert ok.status_code == 201
    assert "Idempotent-Replayed" not in ok.headers


def test_twenty_concurrent_identical_requests_make_one_payment(make_gateway: GatewayFactory) -> None:
    # Twenty writes at once are more than the default cap on writes in flight (12), which would
    # answer some of them 503 overloaded (test_bank_api_overload.py); here only idempotency is tested.
    us = make_gateway("USBankMSP", max_concurrent_writes=20)
    hk = make_gateway("HKBankMSP")
    buyer, key, supplier = _setup(us, hk)
    # Slow the ledger down a little so the duplicates really overlap the first request.
    original = us.ledger.initiate_payment
    gate = threading.Event()

    def slow_initiate(request: dict[str, object]) -> dict[str, object]:
        gate.wait(0.3)
        return original(request)

    us.ledger.initiate_payment = slow_initiate  # type: ignore[method-assign]
    start = threading.Barrier(20)
    app = us.app

    def one(_: int) -> Any:
        client = app.test_client()
        start.wait()
        return client.post(
            "/v1/payments",
            json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "10.00"},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "burst"},
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(one, range(20)))
    gate.set()
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.get_data() for r in responses}) == 1
    assert sum(1 for r in responses if "Idempotent-Replayed" not in r.headers) == 1
    assert us.ledger.count("InitiatePayment") == 1
    assert len(us.ledger.network.payments) == 1
    assert us.ledger.network.balance("USBankMSP", buyer, "USD") == 9000


def test_replay_survives_a_gateway_restart(network: FakeNetwork, make_gateway: GatewayFactory) -> None:
    us = make_gateway("USBankMSP")
    hk = make_gateway("HKBankMSP")
    _, key, supplier = _setup(us, hk)
    first = _pay(us, key, "restart-1", supplier)
    us.services.db.dispose()
    restarted = make_gateway("USBankMSP")  # same database file and key file
    assert restarted.operator_key == us.operator_key
    again = _pay(restarted, key, "restart-1", supplier)
    assert again.get_data() == first.get_data()
    assert len(network.payments) == 1


def test_request_abandoned_mid_flight_is_taken_over_after_the_lease(
    network: FakeNetwork, make_gateway: GatewayFactory
) -> None:
    """A gateway died after the ledger committed but before it stored the answer."""
    us = make_gateway("USBankMSP", idempotency_lease_seconds=30)
    hk = make_gateway("HKBankMSP")
    buyer, key, supplier = _setup(us, hk)
    store = us.services.idempotency
    from gateway.bank_api.auth import Principal
    from gateway.bank_api.idempotency import Claim, fingerprint

    body = {"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "10.00"}
    principal = Principal("merchant", "k", buyer)
    claim = store.claim_or_replay(principal.idempotency_scope, "crash-1", fingerprint("POST", "/v1/payments", body))
    assert isinstance(claim, Claim)
    # The first attempt reached the ledger (same derived key as the route uses) and then the process died.
    from gateway.bank_api.routes.payments import _request_key

    us.ledger.initiate_payment(
        {
            "idempotency_key": _request_key(principal, "crash-1"),
            "payer_account": buyer,
            "payee_bank": "HKBankMSP",
            "payee_account": supplier,
            "currency": "USD",
            "amount": 1000,
        }
    )
    with us.services.db.session() as session:
        record = session.scalars(select(IdempotencyRecord)).one()
        record.lease_until = utcnow() - timedelta(seconds=1)  # the dead holder's lease ran out
    retry = _pay(us, key, "crash-1", supplier)
    assert retry.status_code == 201
    assert len(network.payments) == 1  # the retry found the first attempt's payment
    assert retry.get_json()["payment_id"] in network.payments
    assert network.balance("USBankMSP", buyer, "USD") == 9000


def test_open_account_replay_does_not_reveal_the_key_again(us: Gateway) -> None:
    body = {"holder": "Acme", "jurisdiction": "US", "kyc_ref": "K-9"}
    headers = {**us.op(), "Idempotency-Key": "onboard-acme"}
    first = us.client.post("/v1/accounts", json=body, headers=headers)
    again = us.client.post("/v1/accounts", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["api_key"].startswith("dtk_")
    assert again.get_json()["api_key"] is None
    assert again.get_json()["account"] == first.get_json()["account"]
    assert len(us.ledger.network.accounts["USBankMSP"]) == 1


def test_claims_left_by_a_dead_gateway_are_released_at_start(
    network: FakeNetwork, make_gateway: GatewayFactory
) -> None:
    us = make_gateway("USBankMSP")
    hk = make_gateway("HKBankMSP")
    buyer, key, supplier = _setup(us, hk)
    from gateway.bank_api.auth import Principal
    from gateway.bank_api.idempotency import Claim, fingerprint

    body = {"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "10.00"}
    scope = Principal("merchant", "k", buyer).idempotency_scope
    claim = us.services.idempotency.claim_or_replay(scope, "k-dead", fingerprint("POST", "/v1/payments", body))
    assert isinstance(claim, Claim)  # the process holding this claim now dies
    us.services.db.dispose()
    restarted = make_gateway("USBankMSP", idempotency_wait_seconds=0.2)
    response = _pay(restarted, key, "k-dead", supplier)
    assert response.status_code == 201
    assert len(network.payments) == 1
