"""The gateway's ledger port fetches what the other bank holds (decision 0036), on the real contract."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.bank_api.fabric_ledger import DETAILS_NOT_YET_PAUSES
from gateway.bank_api.ledger import ContractRejected, LedgerFailure
from tests.unit.contract.conftest import HK, SG, US, Ledger, new_ledger
from tests.unit.contract.test_contract_payments import _initiate, _setup
from tests.unit.regulator.channel_ledger import ChannelLedger


@pytest.fixture
def paid() -> tuple[Ledger, str]:
    ledger = new_ledger()
    _setup(ledger)
    return ledger, _initiate(ledger)["payment_id"]


def test_the_payee_bank_sees_and_completes_with_the_payer_banks_details(paid: tuple[Ledger, str]) -> None:
    ledger, payment_id = paid
    hk = ChannelLedger(ledger.channel, HK)
    before: dict[str, Any] = hk.get_payment(payment_id, details=True)
    assert before["status"] == "initiated"
    assert before["details"]["payee_account"] == "shop"  # from USBank's peer, checked against the hash
    assert hk.complete_payment(payment_id)["completed"] is True
    assert hk.complete_payment(payment_id)["completed"] is False  # no second fetch needed or made
    assert ledger.balance(HK, "shop") == 2500
    # A completion goes ahead of new work in the connection's bound on submissions in flight.
    assert hk.follow_ups == ["CompletePayment", "CompletePayment"]
    # A third bank's gateway gets no details, from its own peer or the payer's.
    sg = ChannelLedger(ledger.channel, SG)
    with pytest.raises(ContractRejected) as refused:
        sg.get_payment(payment_id, details=True)
    assert refused.value.code == "not_authorized"
    with pytest.raises(ContractRejected) as refused:
        sg.evaluate("GetPaymentDetails", payment_id, on=US)
    assert refused.value.code == "not_authorized"


def test_details_the_payer_bank_does_not_hold_yet_are_a_retry(paid: tuple[Ledger, str]) -> None:
    ledger, payment_id = paid
    hk = ChannelLedger(ledger.channel, HK)
    # Asked of a peer whose books do not hold them (as a payer's peer that has not committed yet).
    with pytest.raises(LedgerFailure, match="does not hold the details"):
        hk._counterparty_details("GetPaymentDetails", payment_id, SG, f"payment {payment_id}")
    assert hk._checked_details("GetPaymentDetails", payment_id, SG, {}, "payment") is None
    # Details that do not match the record's hash are not shown.
    record = hk.get_payment(payment_id)
    assert hk._checked_details("GetPaymentDetails", payment_id, US, {**record, "details_hash": "0" * 64}, "p") is None
    assert hk._checked_details("GetPaymentDetails", payment_id, US, record, "p") is not None


def test_the_events_word_for_the_payer_spares_a_read_and_a_wrong_one_is_corrected(
    paid: tuple[Ledger, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, payment_id = paid
    hk = ChannelLedger(ledger.channel, HK)
    asked: list[tuple[str, str | None]] = []
    evaluate = hk.evaluate

    def counting(name: str, *args: str, **kwargs: Any) -> Any:
        asked.append((name, kwargs.get("on")))
        return evaluate(name, *args, **kwargs)

    monkeypatch.setattr(hk, "evaluate", counting)
    # A wrong hint (a bank whose books do not hold the details): the record on our peer corrects it.
    assert hk.complete_payment(payment_id, SG)["completed"] is True
    assert asked == [("GetPaymentDetails", SG), ("GetPayment", None), ("GetPaymentDetails", US)]
    asked.clear()
    second = _initiate(ledger, key="order-2")["payment_id"]
    assert hk.complete_payment(second, US)["completed"] is True
    assert asked == [("GetPaymentDetails", US)]  # the right hint: no read of the record first


def _payer_peer_behind(hk: ChannelLedger, monkeypatch: pytest.MonkeyPatch, asks_behind: int) -> list[float]:
    """The payer bank's peer answers the first ``asks_behind`` asks for details as a peer that has
    not committed the initiation yet; returns the pauses the gateway made."""
    evaluate = hk.evaluate
    asks = {"n": 0}

    def behind(name: str, *args: str, **kwargs: Any) -> Any:
        if name == "GetPaymentDetails" and kwargs.get("on") == US:
            asks["n"] += 1
            if asks["n"] <= asks_behind:
                raise ContractRejected("details_not_here", "USBankMSP's books do not hold the details", 404)
        return evaluate(name, *args, **kwargs)

    monkeypatch.setattr(hk, "evaluate", behind)
    pauses: list[float] = []
    monkeypatch.setattr(hk, "pause", pauses.append)
    return pauses


def test_a_payer_peer_a_moment_behind_is_asked_again_at_once_not_after_the_task_retry(
    paid: tuple[Ledger, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, payment_id = paid
    hk = ChannelLedger(ledger.channel, HK)
    pauses = _payer_peer_behind(hk, monkeypatch, asks_behind=2)
    assert hk.complete_payment(payment_id, US)["completed"] is True
    assert pauses == list(DETAILS_NOT_YET_PAUSES[:2])
    assert ledger.balance(HK, "shop") == 2500
    assert hk.metrics.details_not_yet._value.get() == 2


def test_a_payer_peer_still_behind_after_the_pauses_is_left_to_the_task_retry(
    paid: tuple[Ledger, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, payment_id = paid
    hk = ChannelLedger(ledger.channel, HK)
    pauses = _payer_peer_behind(hk, monkeypatch, asks_behind=len(DETAILS_NOT_YET_PAUSES) + 1)
    with pytest.raises(LedgerFailure, match="does not hold the details"):
        hk.complete_payment(payment_id, US)
    assert pauses == list(DETAILS_NOT_YET_PAUSES)
    assert ledger.balance(HK, "shop") == 0 and hk.get_payment(payment_id)["status"] == "initiated"
    # A refusal that is not "not there yet" is not waited on: it is the answer.
    hk2 = ChannelLedger(ledger.channel, SG)
    pauses2: list[float] = []
    monkeypatch.setattr(hk2, "pause", pauses2.append)
    with pytest.raises(ContractRejected):
        hk2.complete_payment(payment_id, US)
    assert pauses2 == []


def test_a_pvp_accepted_before_the_proposers_peer_committed_it_waits_for_the_details(
    paid: tuple[Ledger, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, _ = paid
    hk = ChannelLedger(ledger.channel, HK)
    given = {"details": {"proposer_account": "alice"}, "salt": "ab" * 16}
    asks: list[str | None] = []

    def evaluate(name: str, *args: str, **kwargs: Any) -> Any:
        assert name == "GetPvpDetails"
        asks.append(kwargs.get("on"))
        if len(asks) <= 2:
            raise ContractRejected("pvp_not_found", "no PvP pvp-1", 404)
        return given

    sent: dict[str, Any] = {}
    pauses: list[float] = []
    monkeypatch.setattr(hk, "get_pvp", lambda pvp_id: {"legs": {"a": {"bank": HK}, "p": {"bank": US}}})
    monkeypatch.setattr(hk, "evaluate", evaluate)
    monkeypatch.setattr(hk, "_debit", lambda name, account, request: sent.update(request) or {"accepted": True})
    monkeypatch.setattr(hk, "pause", pauses.append)
    assert hk.accept_pvp("pvp-1", "shop") == {"accepted": True}
    assert asks == [US, US, US] and pauses == list(DETAILS_NOT_YET_PAUSES[:2])
    assert sent == {"pvp_id": "pvp-1", "payer_account": "shop", **given}


def test_a_payment_initiated_to_us_is_queued_with_its_payer() -> None:
    from gateway.bank_api.ledger import LedgerEvent
    from gateway.bank_api.workers import COMPLETE, PaymentFollower

    follower = PaymentFollower.__new__(PaymentFollower)
    follower.msp_id = HK
    event = LedgerEvent(7, "tx", "PaymentInitiated", {"payment_id": "p" * 64, "payer_bank": US, "payee_bank": HK})
    [spec] = follower.tasks_for(event)
    assert (spec.action, spec.counterparty) == (COMPLETE, US)


def test_payments_initiated_to_us_in_a_group_are_each_queued_with_their_payer() -> None:
    from gateway.bank_api.ledger import LedgerEvent
    from gateway.bank_api.workers import COMPLETE, PaymentFollower

    follower = PaymentFollower.__new__(PaymentFollower)
    follower.msp_id = HK
    listed = [{"payment_id": n * 64, "payer_bank": US, "payee_bank": payee} for n, payee in (("a", HK), ("b", SG),
                                                                                             ("c", HK))]  # fmt: skip
    specs = follower.tasks_for(LedgerEvent(7, "tx", "PaymentsInitiated", {"payer_bank": US, "payments": listed}))
    assert [(spec.action, spec.payment_id, spec.counterparty) for spec in specs] == [
        (COMPLETE, "a" * 64, US), (COMPLETE, "c" * 64, US),
    ]  # fmt: skip
