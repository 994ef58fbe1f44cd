"""Concurrency: endorsements simulated on one snapshot and committed together, as on a busy channel."""

from __future__ import annotations

from typing import Any

from chaincode.deposit_token.testing import MVCC_READ_CONFLICT, VALID
from tests.unit.contract.conftest import HK, US, Ledger


def test_overdraft_race_only_the_debits_that_fit_commit(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 500)
    pending = ledger.pending(US, "alice")
    waiting = {f"t{index}": index for index in range(20)}
    committed, refused, conflicts = [], [], 0
    while waiting:
        simulations = {}
        for transfer_id in list(waiting):
            simulation = ledger.simulate(
                US,
                "Transfer",
                {
                    "from_account": "alice",
                    "to_account": "bob",
                    "currency": "USD",
                    "amount": 100,
                    "transfer_id": transfer_id,
                    "pending_credits": pending,
                },
            )
            if simulation.ok:
                simulations[transfer_id] = simulation
            else:
                assert simulation.message.startswith("[insufficient_funds]"), simulation.message
                refused.append(waiting.pop(transfer_id))
        codes = ledger.channel.commit(list(simulations.values()))
        for (transfer_id, _), code in zip(simulations.items(), codes, strict=True):
            if code == VALID:
                committed.append(waiting.pop(transfer_id))
            else:
                assert code == MVCC_READ_CONFLICT
                conflicts += 1
        assert ledger.balance(US, "alice") >= 0
    assert len(committed) == 5
    assert len(refused) == 15
    assert conflicts > 0  # they really raced
    assert (ledger.balance(US, "alice"), ledger.balance(US, "bob")) == (0, 500)
    ledger.assert_conserved()


def test_hot_payee_takes_200_concurrent_credits_without_a_conflict(ledger: Ledger) -> None:
    ledger.open(US, "merchant")
    for index in range(200):
        ledger.open(US, f"payer-{index}")
        ledger.issue(US, f"payer-{index}", 1000 + index)
    simulations = [
        ledger.simulate(
            US,
            "Transfer",
            {
                "from_account": f"payer-{index}",
                "to_account": "merchant",
                "currency": "USD",
                "amount": 1 + index,
                "transfer_id": f"pay-{index}",
                "pending_credits": ledger.pending(US, f"payer-{index}"),
            },
        )
        for index in range(200)
    ]
    assert all(simulation.ok for simulation in simulations)
    assert ledger.channel.commit(simulations) == [VALID] * 200
    assert ledger.balance(US, "merchant") == sum(1 + index for index in range(200))
    assert len(ledger.pending(US, "merchant")) == 200
    ledger.assert_conserved()


def test_hot_payee_across_banks(ledger: Ledger) -> None:
    ledger.open(HK, "merchant", "HK")
    for index in range(50):
        ledger.open(US, f"payer-{index}")
        ledger.issue(US, f"payer-{index}", 1000)

    def initiate(index: int) -> Any:
        return ledger.simulate(
            US,
            "InitiatePayment",
            {
                "idempotency_key": f"k{index}",
                "payer_account": f"payer-{index}",
                "payee_bank": HK,
                "payee_account": "merchant",
                "currency": "USD",
                "amount": 10 + index,
                "pending_credits": ledger.pending(US, f"payer-{index}"),
            },
        )

    initiations = [initiate(index) for index in range(50)]
    assert ledger.channel.commit(initiations) == [VALID] * 50
    completions = [
        ledger.simulate(HK, "CompletePayment", {"payment_id": simulation.json()["payment_id"]})
        for simulation in initiations
    ]
    assert ledger.channel.commit(completions) == [VALID] * 50
    assert ledger.balance(HK, "merchant") == sum(10 + index for index in range(50))
    ledger.assert_conserved()


def test_the_same_deposit_reference_twice_at_once_issues_once(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    request = {"account_id": "alice", "currency": "USD", "amount": 700, "deposit_ref": "CORE-1"}
    twins = [ledger.simulate(US, "Issue", request), ledger.simulate(US, "Issue", request)]
    assert ledger.channel.commit(twins) == [VALID, MVCC_READ_CONFLICT]
    assert ledger.submit(US, "Issue", request) == {"issued": False}
    assert ledger.balance(US, "alice") == 700


def test_completion_racing_a_timeout_refund_settles_on_one_outcome(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(HK, "shop", "HK")
    ledger.issue(US, "alice", 1000)
    payment_id = ledger.submit(
        US,
        "InitiatePayment",
        {
            "idempotency_key": "p",
            "payer_account": "alice",
            "payee_bank": HK,
            "payee_account": "shop",
            "currency": "USD",
            "amount": 400,
            "pending_credits": ledger.pending(US, "alice"),
        },
    )["payment_id"]
    ledger.channel.advance(301)
    refund = ledger.simulate(US, "RefundPayment", {"payment_id": payment_id})
    complete = ledger.simulate(HK, "CompletePayment", {"payment_id": payment_id})
    codes = ledger.channel.commit([complete, refund])
    assert codes[0] == VALID and codes[1] != VALID
    assert (ledger.balance(US, "alice"), ledger.balance(HK, "shop")) == (600, 400)
    ledger.assert_conserved()


def test_a_frozen_account_stops_credits_in_flight(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.issue(US, "alice", 1000)
    credit = ledger.simulate(
        US,
        "Transfer",
        {
            "from_account": "alice",
            "to_account": "bob",
            "currency": "USD",
            "amount": 10,
            "transfer_id": "t",
            "pending_credits": ledger.pending(US, "alice"),
        },
    )
    freeze = ledger.simulate(US, "FreezeAccount", {"account_id": "bob", "reason": "investigation"})
    assert ledger.channel.commit([freeze, credit]) == [VALID, MVCC_READ_CONFLICT]
    assert ledger.balance(US, "bob") == 0
