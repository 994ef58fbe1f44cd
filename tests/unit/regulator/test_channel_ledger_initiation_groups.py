"""The gateway initiates outgoing payments in groups (decision 0038), on the real contract."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from gateway.bank_api.fabric_ledger import INITIATION_GROUPS_IN_FLIGHT, _SubmitAlone
from gateway.bank_api.ledger import ContractRejected, LedgerEvent, LedgerFailure, Overloaded
from gateway.bank_api.workers import payment_events
from tests.unit.contract.conftest import HK, SG, US, Ledger, new_ledger
from tests.unit.regulator.channel_ledger import ChannelLedger, hold_submissions, record_calls, wait_for_groups


def _banks() -> tuple[Ledger, ChannelLedger]:
    ledger = new_ledger()
    ledger.open(US, "alice", "US", holder="Alice Example")
    ledger.open(US, "bob", "US", holder="Bob Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.open(SG, "sg-co", "SG", holder="SG Company")
    ledger.issue(US, "alice", 10_000)
    ledger.issue(US, "bob", 10_000)
    return ledger, ChannelLedger(ledger.channel, US)


def _request(key: str, amount: int, payer: str = "alice", payee_bank: str = HK, payee: str = "shop") -> dict[str, Any]:
    """As the REST route builds it (outgoing.initiate); the gateway adds the pending credits."""
    return {"idempotency_key": key, "payer_account": payer, "payee_bank": payee_bank, "payee_account": payee,
            "currency": "USD", "amount": amount}  # fmt: skip


def test_a_group_with_a_refused_item_goes_again_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, us = _banks()
    ledger.submit(US, "FreezeAccount", {"account_id": "bob", "reason": "fraud review"})
    submitted = record_calls(us, "submit", monkeypatch)
    pending = ledger.pending(US, "alice")
    requests = [
        {**_request("a-1", 1000), "pending_credits": pending},
        {**_request("b-1", 500, payer="bob"), "pending_credits": []},
        {**_request("a-2", 2000, payee_bank=SG, payee="sg-co"), "pending_credits": pending},
    ]
    outcomes = us._initiate_group(requests)
    # The group was refused at endorsement (nothing on the ledger), then the rest went as one.
    assert submitted == ["InitiatePayments", "InitiatePayments"]
    refused = outcomes[1]
    assert isinstance(refused, ContractRejected)
    assert (refused.code, refused.status) == ("account_frozen", 409)  # as InitiatePayment would refuse it
    for outcome, amount in ((outcomes[0], 1000), (outcomes[2], 2000)):
        assert isinstance(outcome, dict) and outcome["created"] is True
        assert outcome["payment"]["amount"] == amount
    event = ledger.channel.events[-1]
    assert event.name == "PaymentsInitiated"
    assert [p["payee_bank"] for p in json.loads(event.payload)["payments"]] == [HK, SG]
    assert ledger.balance(US, "alice") == 7_000
    assert ledger.balance(US, "bob") == 10_000
    ledger.assert_conserved()


def test_a_payment_alone_is_a_plain_initiate_payment_and_pending_credits_are_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger, us = _banks()
    submitted = record_calls(us, "submit", monkeypatch)
    # alice's issued money is a pending credit: the first try (none listed) is refused, the second
    # lists it; both go through the group, each a group of one.
    answer = us.initiate_payment(_request("a-1", 1000))
    assert answer["created"] is True
    assert submitted == ["InitiatePayment", "InitiatePayment"]
    assert ledger.channel.events[-1].name == "PaymentInitiated"
    assert ledger.balance(US, "alice") == 9_000
    # A repeat gets the first answer.
    assert us.initiate_payment(_request("a-1", 1000))["created"] is False
    assert ledger.balance(US, "alice") == 9_000


def test_concurrent_payments_share_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """While groups are being submitted, the payments that arrive wait and go together."""
    ledger, us = _banks()
    alone, behind = INITIATION_GROUPS_IN_FLIGHT, 4
    # A payer of its own for each payment: transactions in flight together that debited one account
    # would conflict at commit, and the in-memory channel does not retry as the gateway's client does.
    payers = [f"payer-{n}" for n in range(alone + behind)]
    for account in payers:
        ledger.open(US, account, "US")
        ledger.issue(US, account, 1_000)
        # Fold the issued credit, so each payment needs one try.
        ledger.submit(US, "ConsolidateAccount", {"account_id": account, "pending_credits": ledger.pending(US, account)})
    submitted = record_calls(us, "submit", monkeypatch)
    hold = hold_submissions(us, monkeypatch)
    answers: dict[int, Any] = {}

    def pay(n: int) -> None:
        answers[n] = us.initiate_payment(_request(f"k-{n}", 100 + n, payer=payers[n]))

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(alone + behind)]
    for thread in threads:
        thread.start()
    # As many lone payments in flight as may be, the others waiting behind them.
    assert wait_for_groups(us._initiations, alone, behind) == (alone, behind)
    hold.set()
    for thread in threads:
        thread.join(10)
    assert all(answers[n]["created"] is True for n in range(alone + behind))
    assert sorted(submitted) == ["InitiatePayment"] * alone + ["InitiatePayments"]
    assert [ledger.balance(US, account) for account in payers] == [1_000 - 100 - n for n in range(alone + behind)]
    ledger.assert_conserved()


def test_an_unreadable_group_answer_sends_each_alone_and_unavailability_reaches_every_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger, us = _banks()
    submit = us.submit
    out_of_range = json.dumps({"refused": [{"position": 9, "code": "x", "message": "y"}]})
    answers = iter(
        [
            ContractRejected("group_refused", "not json", 409),
            LedgerFailure("InitiatePayments failed: chaincode response 500"),
            ContractRejected("group_refused", out_of_range, 409),
            Overloaded("busy", retry_after=1),
        ]
    )

    def group_breaks(name: str, *args: str, **kwargs: Any) -> Any:
        if name == "InitiatePayments":
            raise next(answers)
        return submit(name, *args, **kwargs)

    monkeypatch.setattr(us, "submit", group_breaks)
    requests = [{**_request(f"a-{n}", 10), "pending_credits": []} for n in range(2)]
    for _ in range(3):  # unreadable, failed, a position out of range: each item goes alone
        assert all(isinstance(outcome, _SubmitAlone) for outcome in us._initiate_group(requests))
    busy = us._initiate_group(requests)
    assert all(isinstance(outcome, Overloaded) for outcome in busy)
    assert ledger.balance(US, "alice") == 10_000  # nothing was initiated


def test_the_follower_and_the_monitor_read_a_group_event_as_one_event_per_payment() -> None:
    event = LedgerEvent(
        7, "tx", "PaymentsInitiated",
        {"payer_bank": US, "payments": [{"payment_id": "p1", "payer_bank": US, "payee_bank": HK},
                                        {"payment_id": "p2", "payer_bank": US, "payee_bank": SG}, "junk"]},
    )  # fmt: skip
    assert payment_events(event) == [
        ("PaymentInitiated", {"payment_id": "p1", "payer_bank": US, "payee_bank": HK}),
        ("PaymentInitiated", {"payment_id": "p2", "payer_bank": US, "payee_bank": SG}),
    ]
    assert payment_events(LedgerEvent(7, "tx", "PaymentsInitiated", {"payments": "junk"})) == []
