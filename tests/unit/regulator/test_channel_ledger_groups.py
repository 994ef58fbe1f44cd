"""The gateway completes incoming payments in groups (decision 0037), on the real contract."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from gateway.bank_api.fabric_ledger import COMPLETION_GROUPS_IN_FLIGHT, _SubmitAlone
from gateway.bank_api.ledger import ContractRejected, LedgerFailure, LedgerUnavailable
from tests.unit.contract.conftest import HK, SG, US, Ledger, new_ledger
from tests.unit.regulator.channel_ledger import ChannelLedger, hold_submissions, record_calls, wait_for_groups


def _payments(count: int) -> tuple[Ledger, list[str]]:
    ledger = new_ledger()
    ledger.open(US, "alice", "US", holder="Alice Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.open(HK, "cafe", "HK", holder="Cafe Example")
    ledger.issue(US, "alice", 100_000)
    ids = []
    for n in range(count):
        request = {
            "idempotency_key": f"order-{n}", "payer_account": "alice", "payee_bank": HK,
            "payee_account": "cafe" if n == 1 else "shop", "currency": "USD", "amount": 100 + n,
            "pending_credits": ledger.pending(US, "alice"),
        }  # fmt: skip
        ids.append(ledger.submit(US, "InitiatePayment", request)["payment_id"])
    return ledger, ids


def _request(hk: ChannelLedger, payment_id: str) -> dict[str, Any]:
    given = hk.evaluate("GetPaymentDetails", payment_id, on=US)
    return {"payment_id": payment_id, **given}


def test_a_group_is_one_transaction_and_each_payment_gets_its_own_answer() -> None:
    ledger, ids = _payments(3)
    ledger.submit(HK, "FreezeAccount", {"account_id": "cafe", "reason": "fraud review"})
    hk = ChannelLedger(ledger.channel, HK)
    outcomes = hk._complete_group([_request(hk, pid) for pid in ids])
    assert outcomes[0] == {"payment_id": ids[0], "status": "completed", "completed": True}
    assert outcomes[2] == {"payment_id": ids[2], "status": "completed", "completed": True}
    refused = outcomes[1]
    assert isinstance(refused, ContractRejected)
    assert (refused.code, refused.status) == ("account_frozen", 409)  # as CompletePayment would refuse it
    assert hk.follow_ups == ["CompletePayments"]  # one transaction, a follow-up
    assert ledger.channel.events[-1].name == "PaymentsCompleted"
    assert [p["payment_id"] for p in json.loads(ledger.channel.events[-1].payload)["payments"]] == [ids[0], ids[2]]
    assert ledger.balance(HK, "shop") == 100 + 102
    ledger.assert_conserved()
    # A group of one is a plain CompletePayment, with its plain event: light load is as before.
    ledger.submit(HK, "UnfreezeAccount", {"account_id": "cafe"})
    alone = hk._complete_group([_request(hk, ids[1])])
    assert alone == [{"payment_id": ids[1], "status": "completed", "completed": True}]
    assert hk.follow_ups[-1] == "CompletePayment"
    assert ledger.channel.events[-1].name == "PaymentCompleted"


def test_concurrent_completions_share_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """While groups are being submitted, the completions that become ready wait and go together."""
    alone, behind = COMPLETION_GROUPS_IN_FLIGHT, 3
    ledger, ids = _payments(alone + behind)
    hk = ChannelLedger(ledger.channel, HK)
    hold = hold_submissions(hk, monkeypatch)
    answers: dict[str, Any] = {}

    def complete(payment_id: str) -> None:
        answers[payment_id] = hk.complete_payment(payment_id, US)

    threads = [threading.Thread(target=complete, args=(pid,)) for pid in ids]
    for thread in threads:
        thread.start()
    # As many lone completions in flight as may be, three waiting behind them.
    assert wait_for_groups(hk._completions, alone, behind) == (alone, behind)
    hold.set()
    for thread in threads:
        thread.join(10)
    assert all(answers[pid]["completed"] is True for pid in ids)
    assert sorted(hk.follow_ups) == ["CompletePayment"] * alone + ["CompletePayments"]
    total = ledger.balance(HK, "shop") + ledger.balance(HK, "cafe")
    assert total == sum(100 + n for n in range(alone + behind))
    ledger.assert_conserved()


def test_a_group_that_fails_as_a_whole_is_tried_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, ids = _payments(2)
    hk = ChannelLedger(ledger.channel, HK)
    submit = hk.submit

    def group_breaks(name: str, *args: str, **kwargs: Any) -> Any:
        if name == "CompletePayments":
            raise LedgerFailure("CompletePayments failed: chaincode response 500")
        return submit(name, *args, **kwargs)

    monkeypatch.setattr(hk, "submit", group_breaks)
    outcomes = hk._complete_group([_request(hk, pid) for pid in ids])
    assert all(isinstance(outcome, _SubmitAlone) for outcome in outcomes)

    # complete_payment then submits its payment on its own (here its group is itself and a copy).
    def in_a_failing_group(request: dict[str, Any]) -> Any:
        outcome = hk._complete_group([request, dict(request)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(hk._completions, "run", in_a_failing_group)
    assert hk.complete_payment(ids[0], US)["completed"] is True
    assert hk.follow_ups[-1] == "CompletePayment"
    # The way to the ledger down is every caller's to wait out, not a reason to go alone.
    monkeypatch.setattr(hk, "submit", submit)
    hk.down = True
    with pytest.raises(LedgerUnavailable):
        hk._complete_group([_request_offline(ids[1]), _request_offline(ids[1])])


def _request_offline(payment_id: str) -> dict[str, Any]:
    return {"payment_id": payment_id, "details": {}, "salt": "ab" * 16}


def test_a_third_banks_group_completes_nothing() -> None:
    ledger, ids = _payments(2)
    hk = ChannelLedger(ledger.channel, HK)
    sg = ChannelLedger(ledger.channel, SG)
    outcomes = sg._complete_group([_request(hk, pid) for pid in ids])
    assert all(isinstance(outcome, ContractRejected) and outcome.code == "not_authorized" for outcome in outcomes)
    assert ledger.balance(HK, "shop") == 0
    ledger.assert_conserved()


def test_details_asked_together_are_one_query_on_the_payer_banks_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, ids = _payments(3)
    hk = ChannelLedger(ledger.channel, HK)
    asked = record_calls(hk, "evaluate", monkeypatch)
    outcomes = hk._ask_details(US, [*ids, "f" * 64])
    assert asked == ["GetPaymentsDetails"]
    for pid, outcome in zip(ids, outcomes[:3], strict=True):
        assert outcome == _request(hk, pid)
    missing = outcomes[3]
    assert isinstance(missing, ContractRejected) and missing.code == "payment_not_found"
    # Alone, it is the single query, as before grouping.
    asked.clear()
    assert hk._ask_details(US, [ids[0]]) == [_request(hk, ids[0])]
    assert asked[0] == "GetPaymentDetails"
    # Through the completion path: a missing payment is "not there yet" as with the single query.
    with pytest.raises(LedgerFailure, match="does not hold the details"):
        hk._counterparty_details("GetPaymentDetails", "e" * 64, US, "payment e")


def test_names_from_events_cannot_make_groups_without_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """The payer bank named by an event picks the peer asked; an altered chaincode's events could
    name endless non-banks, so groups stop at MAX_DETAILS_GROUPS and further asks go alone."""
    from gateway.bank_api import fabric_ledger

    ledger, ids = _payments(1)
    hk = ChannelLedger(ledger.channel, HK)
    monkeypatch.setattr(fabric_ledger, "MAX_DETAILS_GROUPS", 2)
    assert hk._details_group(US) is not None and hk._details_group("NoBank1") is not None
    assert hk._details_group("NoBank2") is None
    assert hk._details_group(US) is hk._details_group(US)  # the existing ones are kept
    # An ask that goes alone gets the same answer as one through a group.
    expected = {key: value for key, value in _request(hk, ids[0]).items() if key != "payment_id"}
    assert hk._counterparty_details("GetPaymentDetails", ids[0], US, "p") == expected
    alone = ChannelLedger(ledger.channel, HK)
    monkeypatch.setattr(fabric_ledger, "MAX_DETAILS_GROUPS", 0)
    assert alone._details_group(US) is None
    assert alone._counterparty_details("GetPaymentDetails", ids[0], US, "p") == expected
