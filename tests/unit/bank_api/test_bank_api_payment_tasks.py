"""Payment tasks: no payment waits for another, the checkpoint never waits for a payment, and
every task survives a restart exactly once."""

from __future__ import annotations

import threading
from typing import Any

from gateway.bank_api.ledger import JSON, LedgerFailure, LedgerUnavailable
from gateway.bank_api.storage.models import PaymentTask
from gateway.bank_api.workers import (
    MAX_ATTEMPTS_PER_TASK,
    Checkpoints,
    PaymentFollower,
    PaymentSweeper,
    PaymentTasks,
)
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


def _hold_completions_to(gateway: Gateway, payee_account: str) -> threading.Event:
    """Make the gateway's completions of payments to one account block until the returned event is set."""
    release = threading.Event()
    real = gateway.ledger.complete_payment

    def complete(payment_id: str, payer_bank: str | None = None) -> JSON:
        details = gateway.ledger.get_payment(payment_id, details=True)["details"]
        if details["payee_account"] == payee_account:
            release.wait(30)
        return real(payment_id, payer_bank)

    gateway.ledger.complete_payment = complete  # type: ignore[method-assign]
    return release


def _tasks(gateway: Gateway) -> list[tuple[str, str, int]]:
    with gateway.services.db.session(write=False) as session:
        rows = session.query(PaymentTask).order_by(PaymentTask.id).all()
        return [(row.task_key.split(":")[0], row.state, row.attempts) for row in rows]


def test_a_stuck_completion_delays_no_other_payment_nor_the_checkpoint(
    network: FakeNetwork, us: Gateway, make_gateway: GatewayFactory
) -> None:
    hk = make_gateway("HKBankMSP")
    buyer, key = us.open_account("Buyer")
    stuck_payee, _ = hk.open_account("Stuck Supplier", "HK")
    other_payee, _ = hk.open_account("Other Supplier", "HK")
    us.issue(buyer, "50.00")
    release = _hold_completions_to(hk, stuck_payee)
    follower = PaymentFollower(hk.services, retry_seconds=0.01)
    follower.start()
    try:
        stuck = _pay(us, key, stuck_payee, "stuck")
        assert stop_when(lambda: len(_tasks(hk)) == 1)
        others = [_pay(us, key, other_payee, f"other-{n}") for n in range(5)]
        assert stop_when(lambda: all(network.payments[p]["status"] == "completed" for p in others))
        assert network.payments[stuck]["status"] == "initiated"  # still held
        # The checkpoint passed the held payment's event and every later one.
        last = network.events[-1]
        assert stop_when(lambda: Checkpoints(hk.services).load()[0] == last.block_number)
        release.set()
        assert stop_when(lambda: network.payments[stuck]["status"] == "completed")
    finally:
        release.set()
        follower.stop()
    assert network.balance("HKBankMSP", other_payee, "USD") == 500
    assert network.balance("HKBankMSP", stuck_payee, "USD") == 100
    assert network.total_balances("USD") == network.total_supply("USD")


def test_events_that_need_nothing_do_not_fill_a_window(us: Gateway, hk: Gateway) -> None:
    """Thousands of other banks' events pass while one of ours is still unfinished."""
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "mine")
    network = us.ledger.network
    with network.lock:
        for n in range(2000):
            network.emit(f"other-{n}", "Transferred", {"bank": "SGBankMSP", "currency": "SGD"})
    follower = PaymentFollower(hk.services)  # not started: its tasks run only when asked
    for event in list(network.events):
        follower.record(event)
    follower.flush()
    assert Checkpoints(hk.services).load()[0] == network.events[-1].block_number
    assert network.payments[payment_id]["status"] == "initiated"
    assert _tasks(hk) == [("complete", "pending", 0)]
    assert follower.tasks.run_due() == {"done": 1}
    assert network.payments[payment_id]["status"] == "completed"


def test_a_queued_completion_survives_a_restart_and_runs_once(
    network: FakeNetwork, make_gateway: GatewayFactory
) -> None:
    us = make_gateway("USBankMSP")
    hk = make_gateway("HKBankMSP")
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "restart", "3.00")
    follower = PaymentFollower(hk.services)
    for event in list(network.events):
        follower.record(event)  # queued and checkpointed, then the gateway dies before running it
    hk.services.db.dispose()

    restarted = make_gateway("HKBankMSP", follow_events=True)  # same database
    assert stop_when(lambda: network.payments[payment_id]["status"] == "completed")
    assert restarted.ledger.count("CompletePayment") == 1
    # The restarted follower resumed after the event: nothing was queued twice.
    assert stop_when(lambda: _tasks(restarted) == [("complete", "done", 0)])
    assert network.balance("HKBankMSP", supplier, "USD") == 300


def test_a_task_left_claimed_by_a_dead_gateway_runs_again_on_the_next_start(us: Gateway, hk: Gateway) -> None:
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "claimed")
    network = us.ledger.network
    follower = PaymentFollower(hk.services)
    for event in list(network.events):
        follower.record(event)
    assert len(follower.tasks._claim(10)) == 1  # claimed by a worker that then dies
    assert follower.tasks.run_due() == {}  # leased: nobody else takes it
    fresh = PaymentTasks(hk.services)
    assert fresh.release_claims() == 1  # what a start does
    assert fresh.run_due() == {"done": 1}
    assert network.payments[payment_id]["status"] == "completed"


def test_an_outage_is_waited_out_without_using_up_attempts(us: Gateway, hk: Gateway) -> None:
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "outage")
    network = us.ledger.network
    tasks = PaymentTasks(hk.services, retry_seconds=0)
    follower = PaymentFollower(hk.services, tasks=tasks)
    for event in list(network.events):
        follower.record(event)
    real = hk.ledger.complete_payment
    outages = [0]

    def unavailable(payment_id: str, payer_bank: str | None = None) -> JSON:
        outages[0] += 1
        raise LedgerUnavailable("peer down", retry_after=0)

    hk.ledger.complete_payment = unavailable  # type: ignore[method-assign]
    for _ in range(MAX_ATTEMPTS_PER_TASK * 2):
        assert tasks.run_due() == {"pending": 1}
    assert outages[0] == MAX_ATTEMPTS_PER_TASK * 2
    assert _tasks(hk) == [("complete", "pending", 0)]
    hk.ledger.complete_payment = real  # type: ignore[method-assign]
    assert tasks.run_due() == {"done": 1}
    assert network.payments[payment_id]["status"] == "completed"


def test_a_failing_task_is_given_up_then_revived_by_the_sweeper(us: Gateway, hk: Gateway) -> None:
    buyer, key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment_id = _pay(us, key, supplier, "failing")
    network = us.ledger.network
    tasks = PaymentTasks(hk.services, retry_seconds=0)
    follower = PaymentFollower(hk.services, tasks=tasks)
    for event in list(network.events):
        follower.record(event)
    real = hk.ledger.complete_payment

    def broken(payment_id: str, payer_bank: str | None = None) -> Any:
        raise LedgerFailure("chaincode failed with status 500")

    hk.ledger.complete_payment = broken  # type: ignore[method-assign]
    ended = [tasks.run_due() for _ in range(MAX_ATTEMPTS_PER_TASK)]
    assert ended[-1] == {"failed": 1} and all(e == {"pending": 1} for e in ended[:-1])
    assert tasks.run_due() == {}  # failed: no longer tried
    hk.ledger.complete_payment = real  # type: ignore[method-assign]
    sweeper = PaymentSweeper(hk.services, tasks=tasks)
    assert sweeper.sweep(now=network.clock() + 60)["completions_queued"] == 1
    assert tasks.run_due() == {"done": 1}
    assert network.payments[payment_id]["status"] == "completed"


def _drain(follower: PaymentFollower, network: FakeNetwork, start: int) -> int:
    """Pass every event from ``start`` on, including those the handling itself causes."""
    while start < len(network.events):
        follower.handle_with_retries(network.events[start])
        start += 1
    return start


def test_webhook_tasks_are_queued_only_with_subscriptions(make_gateway: GatewayFactory) -> None:
    us = make_gateway("USBankMSP")
    hk = make_gateway("HKBankMSP", webhook_allowed_targets=("127.0.0.1",))
    buyer, key = us.open_account("Buyer")
    supplier, supplier_key = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    network = us.ledger.network
    follower = PaymentFollower(hk.services)
    _pay(us, key, supplier, "quiet")
    seen = _drain(follower, network, 0)
    assert [action for action, _, _ in _tasks(hk)] == ["complete"]  # no subscription: no notify task
    created = hk.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers={"Authorization": f"Bearer {supplier_key}"}
    )
    assert created.status_code == 201, created.get_json()
    _pay(us, key, supplier, "told")
    _drain(follower, network, seen)
    assert _tasks(hk) == [("complete", "done", 0), ("complete", "done", 0), ("notify", "done", 0)]
