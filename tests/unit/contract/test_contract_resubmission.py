"""A gateway that cannot tell whether a write committed runs the same request again (a new transaction id,
the same business reference). Whatever becomes of the two runs, the request has one effect: every write
the gateway resubmits reads the key its repeat would find, so both runs endorsed on the same state
cannot both commit, and a run on the state after the first is a no-op or a refusal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from chaincode.deposit_token.payments import payment_id_for
from tests.unit.contract.conftest import HK, US, Ledger, Refused

VALID = "VALID"


def _payment_request(ledger: Ledger, key: str = "order-1", amount: int = 400) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "payer_account": "alice",
        "payee_bank": HK,
        "payee_account": "shop",
        "currency": "USD",
        "amount": amount,
        "pending_credits": ledger.pending(US, "alice"),
    }


def _world(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(US, "bob")
    ledger.open(HK, "shop", "HK")
    ledger.issue(US, "alice", 1000, ref="seed")


def _initiated(ledger: Ledger) -> str:
    return str(ledger.submit(US, "InitiatePayment", _payment_request(ledger))["payment_id"])


def _rejected(ledger: Ledger) -> str:
    payment_id = _initiated(ledger)
    ledger.submit(HK, "RejectPayment", {"payment_id": payment_id, "reason": "unknown_account"})
    return payment_id


# (what to set up, returning the request's argument; the bank; the function; the request)
Case = tuple[Callable[[Ledger], Any], str, str, Callable[[Ledger, Any], dict[str, Any]]]
CASES: dict[str, Case] = {
    "InitiatePayment": (lambda _: None, US, "InitiatePayment", lambda ledger, _: _payment_request(ledger)),
    "CompletePayment": (_initiated, HK, "CompletePayment", lambda _, pid: {"payment_id": pid}),
    "RejectPayment": (_initiated, HK, "RejectPayment", lambda _, pid: {"payment_id": pid, "reason": "account_frozen"}),
    "RefundPayment": (_rejected, US, "RefundPayment", lambda _, pid: {"payment_id": pid}),
    "Issue": (
        lambda _: None,
        US,
        "Issue",
        lambda *_: {"account_id": "bob", "currency": "USD", "amount": 250, "deposit_ref": "CORE-7"},
    ),
    "Redeem": (
        lambda _: None,
        US,
        "Redeem",
        lambda ledger, _: {
            "account_id": "alice",
            "currency": "USD",
            "amount": 300,
            "withdrawal_ref": "W-7",
            "pending_credits": ledger.pending(US, "alice"),
        },
    ),
    "Transfer": (
        lambda _: None,
        US,
        "Transfer",
        lambda ledger, _: {
            "from_account": "alice",
            "to_account": "bob",
            "currency": "USD",
            "amount": 300,
            "transfer_id": "T-7",
            "pending_credits": ledger.pending(US, "alice"),
        },
    ),
    "OpenAccount": (
        lambda _: None,
        US,
        "OpenAccount",
        lambda *_: {"account_id": "carol", "holder": "Carol", "jurisdiction": "US", "kyc_ref": "K-7"},
    ),
}


def _effect(ledger: Ledger) -> Any:
    """What a write changed, as the banks' books and the supplies show it."""
    accounts = {
        (bank, account): ledger.account(bank, account)["balances"]
        for bank, account in ((US, "alice"), (US, "bob"), (HK, "shop"))
    }
    return accounts, ledger.supply()


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_runs_endorsed_on_the_same_state_commit_once(ledger: Ledger, name: str) -> None:
    setup, bank, function, request_of = CASES[name]
    _world(ledger)
    argument = setup(ledger)
    request = request_of(ledger, argument)
    first, second = ledger.simulate(bank, function, request), ledger.simulate(bank, function, request)
    assert first.ok and second.ok, (first.message, second.message)
    codes = ledger.channel.commit([first, second])
    assert codes[0] == VALID and codes[1] != VALID  # the lost run and its rerun cannot both apply
    ledger.assert_conserved()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_rerun_after_the_first_committed_changes_nothing(ledger: Ledger, name: str) -> None:
    setup, bank, function, request_of = CASES[name]
    _world(ledger)
    argument = setup(ledger)
    request = request_of(ledger, argument)
    ledger.submit(bank, function, request)
    after_first = _effect(ledger)
    # A no-op that commits, or a refusal: either way, the request took effect once.
    with contextlib.suppress(Refused):
        ledger.submit(bank, function, request)
    assert _effect(ledger) == after_first
    ledger.assert_conserved()


def test_the_rerun_of_an_initiation_names_the_same_payment(ledger: Ledger) -> None:
    _world(ledger)
    request = _payment_request(ledger)
    first = ledger.submit(US, "InitiatePayment", request)
    again = ledger.submit(US, "InitiatePayment", request)
    assert first["payment_id"] == again["payment_id"] == payment_id_for(US, "order-1")
    assert again["created"] is False
    assert ledger.balance(US, "alice") == 600


def test_settlement_runs_endorsed_on_the_same_state_commit_once(ledger: Ledger) -> None:
    _world(ledger)
    ledger.submit(HK, "CompletePayment", {"payment_id": _initiated(ledger)})
    opens = [ledger.channel.simulate(US, "OpenSettlementCycle", ["c1"]) for _ in range(2)]
    first, second = (ledger.channel.commit([run])[0] for run in opens)  # in two blocks
    assert first == VALID and second != VALID
    with pytest.raises(Refused, match=r"^\[duplicate_reference\]"):
        ledger.submit(US, "OpenSettlementCycle", args=["c1"])
    confirms = [ledger.channel.simulate(US, "ConfirmSettlement", ["c1", "wire-1"]) for _ in range(2)]
    codes = ledger.channel.commit(confirms)
    assert codes[0] == VALID and codes[1] != VALID
    again = ledger.submit(US, "ConfirmSettlement", args=["c1", "wire-1"])
    assert again["confirmed"] is False
