"""Overload is refused early and cheaply: 503 `overloaded` with Retry-After, nothing half done, and a
retry with the same Idempotency-Key runs the request as if the refused one never came."""

from __future__ import annotations

from typing import Any

import pytest
from fabric_client import SubmissionLimit

from gateway.bank_api.fabric_ledger import translate
from gateway.bank_api.ledger import Overloaded
from gateway.bank_api.openapi import openapi_document
from gateway.bank_api.regulator_openapi import regulator_document
from tests.unit.bank_api.conftest import Gateway, GatewayFactory, ledger_snapshot
from tests.unit.bank_api.fake_ledger import FakeNetwork


def _pay(gateway: Gateway, key: str, payee: str, idempotency_key: str, amount: str = "10.00") -> Any:
    return gateway.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": payee, "currency": "USD", "amount": amount},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key},
    )


def _assert_overloaded(response: Any) -> None:
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "overloaded" and body["detail"] == Overloaded.public_detail
    assert int(response.headers["Retry-After"]) >= 1


def test_the_clients_refusal_becomes_overloaded_with_whole_seconds() -> None:
    from fabric_client import Overloaded as ClientOverloaded

    refused = translate(ClientOverloaded("full", limit=64, in_flight=64, retry_after=0.3))
    assert type(refused) is Overloaded and refused.retry_after == 1
    assert translate(ClientOverloaded("full", limit=64, in_flight=64, retry_after=2.2)).retry_after == 3


def test_a_write_the_ledger_connection_refuses_is_503_and_the_key_is_released(
    network: FakeNetwork, us: Gateway, hk: Gateway, seeded: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = seeded
    payee, _ = hk.open_account("Shop Ltd", "HK")
    before = ledger_snapshot(us)
    refuse = Overloaded("64 submissions in flight", retry_after=2)

    def overloaded(request: Any) -> Any:
        raise refuse

    with monkeypatch.context() as patched:
        patched.setattr(us.ledger, "initiate_payment", overloaded)
        response = _pay(us, key, payee, "inv-1")
    _assert_overloaded(response)
    assert response.headers["Retry-After"] == "2"
    assert ledger_snapshot(us) == before  # nothing half done

    retried = _pay(us, key, payee, "inv-1")  # the same key: runs, neither replayed nor "in progress"
    assert retried.status_code == 201, retried.get_json()
    assert "Idempotent-Replayed" not in retried.headers
    assert network.balance("USBankMSP", seeded[0], "USD") == 9000


def test_writes_past_the_gateways_cap_are_refused_before_any_work(
    network: FakeNetwork, make_gateway: GatewayFactory
) -> None:
    us, hk = make_gateway("USBankMSP", max_concurrent_writes=2), make_gateway("HKBankMSP")
    payer, key = us.open_account("Payer Co")
    us.issue(payer, "100.00", ref="dep-cap")
    payee, _ = hk.open_account("Shop Ltd", "HK")
    cap = us.services.write_cap
    assert isinstance(cap, SubmissionLimit) and cap.limit == 2 and cap.in_flight == 0
    held = [cap.acquire(), cap.acquire()]  # two writes are running
    calls_before = len(network.calls)

    response = _pay(us, key, payee, "inv-2")
    _assert_overloaded(response)
    assert len(network.calls) == calls_before  # not even the reference data was read

    # Reads, health checks and the operator's recovery actions are not held up by the cap.
    assert us.client.get(f"/v1/accounts/{payer}", headers=us.op(key)).status_code == 200
    assert us.client.get("/healthz").status_code == 200
    frozen = us.client.post(f"/v1/accounts/{payer}/freeze", json={"reason": "fraud"}, headers=us.op())
    assert frozen.status_code == 200, frozen.get_json()
    unfrozen = us.client.post(f"/v1/accounts/{payer}/unfreeze", json={}, headers=us.op())
    _assert_overloaded(unfrozen)  # not a recovery action: counted like any write

    for place in held:
        place.release()
    assert us.client.post(f"/v1/accounts/{payer}/unfreeze", json={}, headers=us.op()).status_code == 200
    retried = _pay(us, key, payee, "inv-2")
    assert retried.status_code == 201, retried.get_json()
    assert cap.in_flight == 0  # every request gave its place back


def test_a_refused_write_gives_its_place_back(make_gateway: GatewayFactory) -> None:
    us = make_gateway("USBankMSP", max_concurrent_writes=1)
    for _ in range(3):
        bad = us.client.post("/v1/accounts", json={"holder": ""}, headers=us.op())
        assert bad.status_code == 400
    assert us.services.write_cap is not None and us.services.write_cap.in_flight == 0
    us.open_account("Acme Ltd")


def test_the_cap_can_be_turned_off(make_gateway: GatewayFactory) -> None:
    assert make_gateway("USBankMSP", max_concurrent_writes=0).services.write_cap is None


@pytest.mark.parametrize("document", [openapi_document, regulator_document], ids=["bank", "regulator"])
def test_every_write_documents_a_503(document: Any) -> None:
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/") and method in ("post", "put", "patch", "delete"):
                assert "503" in operation["responses"], (method, path)
    overloaded = document()["components"]["responses"]["Overloaded"]
    assert "Retry-After" in overloaded["headers"] and "`overloaded`" in overloaded["description"]
