"""Escrows and PvP through HTTP on the fake network: lock, release, expiry; offer, accept, refuse, followers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.bank_api.storage.models import WebhookDelivery
from gateway.bank_api.workers import PaymentFollower, PaymentSweeper
from tests.unit.bank_api.conftest import Gateway, GatewayFactory, ledger_snapshot
from tests.unit.bank_api.fake_ledger import FakeNetwork


def _headers(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


def _lock(us: Gateway, key: str, idem: str = "e1", **terms: Any) -> Any:
    body = {
        "payee_bank": "USBankMSP", "currency": "USD", "amount": "40.00", "release_by": "buyer",
        "expires_in_seconds": 3600, "on_expiry": "refund", **terms,
    }  # fmt: skip
    return us.client.post("/v1/escrows", json=body, headers=_headers(key, idem))


def _attestor_key(us: Gateway, attestor: str = "inspect-co") -> str:
    response = us.client.post(f"/v1/attestors/{attestor}/api-keys", json={}, headers=us.op())
    assert response.status_code == 201, response.get_json()
    key: str = response.get_json()["api_key"]
    return key


def test_buyer_locks_and_releases_in_parts(us: Gateway, network: FakeNetwork) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    seller, seller_key = us.open_account("Seller")
    us.issue(buyer, "100.00")
    locked = _lock(us, buyer_key, payee_account=seller)
    assert locked.status_code == 201, locked.get_json()
    escrow = locked.get_json()
    assert (escrow["status"], escrow["amount"], escrow["available"]) == ("open", "40.00", "40.00")
    # Replayed with the same key: the same answer, nothing locked twice.
    again = _lock(us, buyer_key, payee_account=seller)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == escrow
    assert us.client.get(f"/v1/accounts/{buyer}", headers=_headers(buyer_key)).get_json()["balances"]["USD"] == "60.00"
    path = f"/v1/escrows/{escrow['escrow_id']}"
    assert us.client.get(path, headers=_headers(seller_key)).status_code == 200  # the payee sees it
    first = us.client.post(f"{path}/release", json={"amount": "15.00"}, headers=_headers(buyer_key, "r1"))
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["available"] == "25.00"
    # The payee cannot release it, and a release above what is left is refused.
    assert (
        us.client.post(f"{path}/release", json={"amount": "1.00"}, headers=_headers(seller_key, "x")).status_code == 403
    )
    too_much = us.client.post(f"{path}/release", json={"amount": "25.01"}, headers=_headers(buyer_key, "r2"))
    assert too_much.status_code == 409 and too_much.get_json()["code"] == "insufficient_funds"
    rest = us.client.post(f"{path}/release", json={"amount": "25.00"}, headers=_headers(buyer_key, "r3"))
    assert rest.get_json()["status"] == "released"
    assert (
        us.client.get(f"/v1/accounts/{seller}", headers=_headers(seller_key)).get_json()["balances"]["USD"] == "40.00"
    )
    assert network.total_balances("USD") == network.total_supply("USD")


def test_the_attestor_releases_and_sees_only_its_escrows(us: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    seller, _ = us.open_account("Seller")
    us.issue(buyer, "100.00")
    attestor_key = _attestor_key(us)
    other_key = _attestor_key(us, "someone-else")
    escrow = _lock(us, buyer_key, payee_account=seller, release_by="attestor", attestor="inspect-co").get_json()
    path = f"/v1/escrows/{escrow['escrow_id']}"
    assert us.client.get(path, headers=_headers(other_key)).status_code == 404
    refused = us.client.post(f"{path}/release", json={"amount": "1.00"}, headers=_headers(buyer_key, "b1"))
    assert refused.status_code == 403 and refused.get_json()["code"] == "not_authorized"
    released = us.client.post(f"{path}/release", json={"amount": "40.00"}, headers=_headers(attestor_key, "a1"))
    assert released.status_code == 200 and released.get_json()["status"] == "released"
    # An attestor's key reaches no account.
    assert us.client.get(f"/v1/accounts/{buyer}", headers=_headers(attestor_key)).status_code == 403


def test_expiry_refunds_through_the_sweeper(us: Gateway, network: FakeNetwork) -> None:
    now = [network.clock()]
    network.clock = lambda: now[0]
    buyer, buyer_key = us.open_account("Buyer")
    seller, _ = us.open_account("Seller")
    us.issue(buyer, "100.00")
    escrow = _lock(us, buyer_key, payee_account=seller, expires_in_seconds=5).get_json()
    sweeper = PaymentSweeper(us.services)
    assert sweeper.sweep()["escrows_expired"] == 0
    now[0] += 3600
    assert sweeper.sweep()["escrows_expired"] == 1
    assert us.client.get(f"/v1/escrows/{escrow['escrow_id']}", headers=us.op()).get_json()["status"] == "refunded"
    assert us.client.get(f"/v1/accounts/{buyer}", headers=us.op()).get_json()["balances"]["USD"] == "100.00"


def test_bad_escrow_requests_are_clear_400s(us: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    seller, _ = us.open_account("Seller")
    for terms, fragment in (
        ({"release_by": "nobody"}, "release_by"),
        ({"release_by": "attestor"}, "attestor is required"),
        ({"expires_in_seconds": 0}, "expires_in_seconds"),
        ({"expires_at": "2020-01-01T00:00:00Z", "expires_in_seconds": None}, "exactly one"),
        ({"amount": 40}, "amount"),
        ({"payee_account": buyer}, "own account"),
    ):
        body = {"payee_account": seller, **terms}
        body = {name: value for name, value in body.items() if value is not None}
        response = _lock(us, buyer_key, idem=f"bad-{fragment}", **body)
        assert response.status_code == 400, (terms, response.get_json())
        assert fragment in response.get_json()["detail"], response.get_json()
    assert us.client.post("/v1/escrows", json={}, headers=_headers(buyer_key)).status_code == 400  # no key


def test_pvp_through_both_gateways(us: Gateway, hk: Gateway, network: FakeNetwork) -> None:
    """USD at USBank for HKD at HKBank: proposed, accepted, both legs delivered; conservation."""
    alice, alice_key = us.open_account("Alice Importer")
    bob_usd, _ = us.open_account("Bob Exporter", "HK")
    bob, bob_key = hk.open_account("Bob Exporter", "HK")
    alice_hkd, _ = hk.open_account("Alice Importer", "US")
    us.issue(alice, "1000.00")
    hk.issue(bob, "10000.00", "HKD")
    offer = {
        "counterparty_bank": "HKBankMSP", "counterparty_account": bob, "counterparty_receives_at": bob_usd,
        "receive_account": alice_hkd, "currency": "USD", "amount": "100.00", "counter_currency": "HKD",
        "rate": "7.8", "expires_in_seconds": 600,
    }  # fmt: skip
    proposed = us.client.post("/v1/pvp", json=offer, headers=_headers(alice_key, "fx-1"))
    assert proposed.status_code == 201, proposed.get_json()
    body = proposed.get_json()
    assert (body["status"], body["counter_amount"]) == ("proposed", "780.00")
    path = f"/v1/pvp/{body['pvp_id']}"
    # Only the named counterparty answers, at its own bank.
    assert hk.client.post(f"{path}/accept", headers=_headers(hk.operator_key, "a0")).status_code == 403
    accepted = hk.client.post(f"{path}/accept", headers=_headers(bob_key, "a1"))
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["acceptor_leg_delivered"] is True
    sweeper = PaymentSweeper(us.services)
    assert sweeper.sweep()["pvp_delivered"] == 1
    assert us.client.get(path, headers=_headers(alice_key)).get_json()["status"] == "settled"
    assert network.balance("USBankMSP", bob_usd, "USD") == 10_000
    assert network.balance("HKBankMSP", alice_hkd, "HKD") == 78_000
    for currency in ("USD", "HKD"):
        assert network.total_balances(currency) == network.total_supply(currency)


def test_a_refused_pvp_is_refunded_by_the_sweeper(us: Gateway, hk: Gateway) -> None:
    alice, alice_key = us.open_account("Alice Importer")
    bob_usd, _ = us.open_account("Bob Exporter", "HK")
    bob, bob_key = hk.open_account("Bob Exporter", "HK")
    alice_hkd, _ = hk.open_account("Alice Importer", "US")
    us.issue(alice, "1000.00")
    offer = {
        "counterparty_bank": "HKBankMSP", "counterparty_account": bob, "counterparty_receives_at": bob_usd,
        "receive_account": alice_hkd, "currency": "USD", "amount": "100.00", "counter_currency": "HKD",
        "rate": "7.8", "expires_in_seconds": 600,
    }  # fmt: skip
    pvp_id = us.client.post("/v1/pvp", json=offer, headers=_headers(alice_key, "fx-2")).get_json()["pvp_id"]
    refused = hk.client.post(f"/v1/pvp/{pvp_id}/refuse", headers=_headers(bob_key, "r1"))
    assert refused.status_code == 200 and refused.get_json()["status"] == "refused"
    assert PaymentSweeper(us.services).sweep()["pvp_refunded"] == 1
    assert (
        us.client.get(f"/v1/accounts/{alice}", headers=_headers(alice_key)).get_json()["balances"]["USD"] == "1000.00"
    )


def test_followers_tell_the_counterparty_and_deliver_on_lock(
    make_gateway: GatewayFactory, network: FakeNetwork
) -> None:
    """HKBank's follower tells Bob of the offer (pvp.proposed); USBank's delivers its leg on PvpLocked."""
    us = make_gateway("USBankMSP", webhook_allowed_targets=("127.0.0.1",))
    hk = make_gateway("HKBankMSP", webhook_allowed_targets=("127.0.0.1",))
    alice, alice_key = us.open_account("Alice Importer")
    bob_usd, _ = us.open_account("Bob Exporter", "HK")
    bob, bob_key = hk.open_account("Bob Exporter", "HK")
    alice_hkd, _ = hk.open_account("Alice Importer", "US")
    us.issue(alice, "1000.00")
    hk.issue(bob, "10000.00", "HKD")
    hook = hk.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["pvp.proposed"]}, headers=_headers(bob_key)
    )
    assert hook.status_code == 201, hook.get_json()
    offer = {
        "counterparty_bank": "HKBankMSP", "counterparty_account": bob, "counterparty_receives_at": bob_usd,
        "receive_account": alice_hkd, "currency": "USD", "amount": "100.00", "counter_currency": "HKD",
        "rate": "7.8", "expires_in_seconds": 600,
    }  # fmt: skip
    pvp_id = us.client.post("/v1/pvp", json=offer, headers=_headers(alice_key, "fx-3")).get_json()["pvp_id"]
    hk_follower = PaymentFollower(hk.services, retry_seconds=0.01)
    for event in [e for e in network.events if e.name == "PvpProposed"]:
        hk_follower.handle_with_retries(event)
    with hk.services.db.session(write=False) as session:
        delivery = session.query(WebhookDelivery).one()
        assert (delivery.event_type, delivery.event_id) == ("pvp.proposed", f"pvp.proposed:{pvp_id}:HKBankMSP")
    assert hk.client.post(f"/v1/pvp/{pvp_id}/accept", headers=_headers(bob_key, "a1")).status_code == 200
    us_follower = PaymentFollower(us.services, retry_seconds=0.01)
    for event in [e for e in network.events if e.name == "PvpLocked"]:
        us_follower.handle_with_retries(event)
    assert network.pvps[pvp_id]["status"] == "settled"
    assert network.balance("USBankMSP", bob_usd, "USD") == 10_000


# --- bodies of the wrong shape: a 400 naming the field, and nothing locked, released or offered ------


def _state(network: FakeNetwork, gateway: Gateway) -> Any:
    return ledger_snapshot(gateway), copy.deepcopy((network.escrows, network.pvps))


@pytest.mark.parametrize(
    ("terms", "field", "code"),
    [
        ({"payee_account": 5}, "payee_account must be a string", "invalid_request"),
        ({"currency": 840}, "currency", "unknown_currency"),
        ({"release_by": ["buyer"]}, "release_by must be a string", "invalid_request"),
        ({"expires_in_seconds": True}, "expires_in_seconds must be a whole number", "invalid_request"),
        ({"expires_in_seconds": "3600"}, "expires_in_seconds must be a whole number", "invalid_request"),
        ({"expires_in_seconds": 3600.5}, "expires_in_seconds must be a whole number", "invalid_request"),
        ({"expires_in_seconds": 10**9}, "expires_in_seconds is out of range", "invalid_request"),
        ({"attestor": ""}, "attestor", "invalid_request"),
        ({"remittance": 7}, "remittance must be a string", "invalid_request"),
        ({"remittance": "a\u202eb"}, "remittance must contain printable characters only", "invalid_request"),
        ({"payee": "x"}, "unknown field(s): payee", "invalid_request"),
    ],
)
def test_escrow_terms_of_the_wrong_shape_are_refused_by_name(
    us: Gateway, network: FakeNetwork, terms: dict[str, Any], field: str, code: str
) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    seller, _ = us.open_account("Seller")
    us.issue(buyer, "100.00")
    before = _state(network, us)
    response = _lock(us, buyer_key, **{"payee_account": seller, **terms})
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["detail"] and response.get_json()["code"] == code, response.get_json()
    assert _state(network, us) == before


def test_optional_escrow_fields_may_be_null(us: Gateway) -> None:
    # The document says nullable: null reads as absent, as it always has.
    buyer, buyer_key = us.open_account("Buyer")
    seller, _ = us.open_account("Seller")
    us.issue(buyer, "100.00")
    locked = _lock(us, buyer_key, payee_account=seller, attestor=None, remittance=None, expires_at=None)
    assert locked.status_code == 201, locked.get_json()
    assert (locked.get_json()["attestor"], locked.get_json()["remittance"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"amount": 15}, "amount", "invalid_amount"),
        ({}, "amount is required", "invalid_amount"),
        ({"amount": "15.00", "release_ref": ""}, "release_ref", "invalid_request"),
        ({"amount": "15.00", "release_ref": 3}, "release_ref", "invalid_request"),
        ({"amount": "15.00", "ref": "x"}, "unknown field(s): ref", "invalid_request"),
    ],
)
def test_releases_of_the_wrong_shape_are_refused_by_name(
    us: Gateway, network: FakeNetwork, body: dict[str, Any], field: str, code: str
) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    seller, _ = us.open_account("Seller")
    us.issue(buyer, "100.00")
    escrow_id = _lock(us, buyer_key, payee_account=seller).get_json()["escrow_id"]
    before = _state(network, us)
    response = us.client.post(f"/v1/escrows/{escrow_id}/release", json=body, headers=_headers(buyer_key, "r1"))
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["detail"] and response.get_json()["code"] == code, response.get_json()
    assert _state(network, us) == before


def test_attestor_key_labels_are_text_or_null(us: Gateway) -> None:
    path = "/v1/attestors/inspect-co/api-keys"
    for body, field in (({"label": 5}, "label must be a string"), ({"name": "x"}, "unknown field(s): name")):
        refused = us.client.post(path, json=body, headers=us.op())
        assert refused.status_code == 400 and field in refused.get_json()["detail"], refused.get_json()
    assert us.client.post(path, json={"label": None}, headers=us.op()).status_code == 201
    assert us.client.post(path, headers=us.op()).status_code == 201  # no body at all


@pytest.mark.parametrize(
    ("terms", "field", "code"),
    [
        ({"expires_in_seconds": "600"}, "expires_in_seconds must be a whole number", "invalid_request"),
        ({"expires_in_seconds": None}, "expires_in_seconds must be a whole number", "invalid_request"),
        ({"expires_in_seconds": 0}, "expires_in_seconds is out of range", "invalid_request"),
        ({"rate": 7.8}, "rate must be a string", "invalid_request"),
        ({"rate": "7.8e0"}, "rate must be a positive decimal string", "invalid_rate"),
        ({"counter_currency": "hkd"}, "counter_currency", "unknown_currency"),
        ({"receive_account": ["x"]}, "receive_account must be a string", "invalid_request"),
        ({"note": "x"}, "unknown field(s): note", "invalid_request"),
    ],
)
def test_offers_of_the_wrong_shape_are_refused_by_name(
    us: Gateway, network: FakeNetwork, terms: dict[str, Any], field: str, code: str
) -> None:
    alice, alice_key = us.open_account("Alice Importer")
    us.issue(alice, "1000.00")
    offer = {
        "counterparty_bank": "HKBankMSP", "counterparty_account": "bob", "counterparty_receives_at": "bob-usd",
        "receive_account": "alice-hkd", "currency": "USD", "amount": "100.00", "counter_currency": "HKD",
        "rate": "7.8", "expires_in_seconds": 600, **terms,
    }  # fmt: skip
    before = _state(network, us)
    response = us.client.post("/v1/pvp", json=offer, headers=_headers(alice_key, "fx-bad"))
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["detail"] and response.get_json()["code"] == code, response.get_json()
    assert _state(network, us) == before


@pytest.mark.parametrize("answer", ["accept", "refuse"])
def test_an_answer_to_an_offer_takes_no_fields(us: Gateway, network: FakeNetwork, answer: str) -> None:
    _, key = us.open_account("Bob Exporter")
    before = _state(network, us)
    response = us.client.post(f"/v1/pvp/{'0' * 64}/{answer}", json={"rate": "8"}, headers=_headers(key, "a1"))
    assert response.status_code == 400 and response.get_json()["detail"] == "unknown field(s): rate"
    response = us.client.post(f"/v1/pvp/{'0' * 64}/{answer}", json=[], headers=_headers(key, "a2"))
    assert response.status_code == 400, response.get_json()
    assert _state(network, us) == before
