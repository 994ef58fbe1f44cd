"""The incoming-payment follower: checkpoints, exactly once across restarts, outages."""

from __future__ import annotations

from typing import Any

from gateway.bank_api.ledger import LedgerEvent
from gateway.bank_api.storage.models import EventCheckpoint
from gateway.bank_api.workers import Checkpoints, PaymentFollower
from tests.unit.bank_api.conftest import Gateway, GatewayFactory
from tests.unit.bank_api.fake_ledger import FakeNetwork, stop_when


def _pay(us: Gateway, key: str, supplier: str, idem: str, amount: str = "1.00") -> str:
    response = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": amount},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
    )
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["payment_id"])


def test_follower_completes_and_checkpoints_each_event(us: Gateway, hk: Gateway) -> None:
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "a")
    follower = PaymentFollower(hk.services, retry_seconds=0.01)
    network = us.ledger.network
    initiated = next(e for e in network.events if e.name == "PaymentInitiated")
    follower.handle_with_retries(initiated)
    assert network.payments[payment_id]["status"] == "completed"
    assert Checkpoints(hk.services).load() == (initiated.block_number, initiated.transaction_id)


def test_restarted_follower_resumes_from_checkpoint_and_repeats_nothing(
    network: FakeNetwork, make_gateway: GatewayFactory
) -> None:
    us = make_gateway("USBankMSP")
    hk = make_gateway("HKBankMSP", follow_events=True)
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    first = _pay(us, key, supplier, "1")
    assert stop_when(lambda: network.payments[first]["status"] == "completed")
    hk.services.stop_workers()  # the HK gateway goes down
    hk.services.db.dispose()
    second = _pay(us, key, supplier, "2")
    third = _pay(us, key, supplier, "3")
    assert network.payments[second]["status"] == "initiated"
    completions_before = hk.ledger.count("CompletePayment")
    restarted = make_gateway("HKBankMSP", follow_events=True)  # same database: same checkpoint
    assert stop_when(lambda: all(network.payments[p]["status"] == "completed" for p in (second, third)))
    # Only the two new payments were completed; the first one was not handled again.
    assert restarted.ledger.count("CompletePayment") - completions_before == 2
    assert network.balance("HKBankMSP", supplier, "USD") == 300
    last = network.events[-1]
    assert stop_when(lambda: Checkpoints(restarted.services).load()[0] == last.block_number)


def test_crash_between_handling_and_checkpoint_is_harmless(us: Gateway, hk: Gateway) -> None:
    """The handling ran but the checkpoint was not written: the event comes again and is a no-op."""
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "x", "4.00")
    network = us.ledger.network
    initiated = next(e for e in network.events if e.name == "PaymentInitiated")
    follower = PaymentFollower(hk.services)
    follower.handle(initiated)  # effect, no checkpoint
    follower.handle_with_retries(initiated)  # redelivered after the "restart"
    assert network.payments[payment_id]["status"] == "completed"
    assert network.balance("HKBankMSP", supplier, "USD") == 400
    assert network.total_balances("USD") == network.total_supply("USD")


def test_follower_waits_out_a_peer_outage(network: FakeNetwork, us: Gateway, make_gateway: GatewayFactory) -> None:
    hk = make_gateway("HKBankMSP")
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "o")
    network.down = True
    follower = PaymentFollower(hk.services, retry_seconds=0.01)
    follower.start()
    try:
        assert network.payments[payment_id]["status"] == "initiated"
        network.down = False
        assert stop_when(lambda: network.payments[payment_id]["status"] == "completed")
    finally:
        follower.stop()


def test_events_for_other_banks_are_checkpointed_and_ignored(us: Gateway, hk: Gateway) -> None:
    event = LedgerEvent(
        7, "tx-other", "PaymentInitiated", {"payment_id": "p", "payer_bank": "SGBankMSP", "payee_bank": "USBankMSP"}
    )
    follower = PaymentFollower(hk.services)
    calls_before = len(hk.ledger.network.calls)
    follower.handle_with_retries(event)
    assert len(hk.ledger.network.calls) == calls_before
    with hk.services.db.session(write=False) as session:
        row: Any = session.get(EventCheckpoint, "deposit_token")
        assert (row.block_number, row.transaction_id) == (7, "tx-other")
