"""Net settlement cycles: positions per currency sum to zero; settled when every bank confirmed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused


def _pay(
    ledger: Ledger,
    payer_bank: str,
    payer: str,
    payee_bank: str,
    payee: str,
    amount: int,
    key: str,
    currency: str = "USD",
    **extra: Any,
) -> str:
    payment_id: str = ledger.submit(
        payer_bank,
        "InitiatePayment",
        {
            "idempotency_key": key,
            "payer_account": payer,
            "payee_bank": payee_bank,
            "payee_account": payee,
            "currency": currency,
            "amount": amount,
            "pending_credits": ledger.pending(payer_bank, payer),
            **extra,
        },
    )["payment_id"]
    ledger.submit(payee_bank, "CompletePayment", {"payment_id": payment_id})
    return payment_id


@pytest.fixture
def three_banks(ledger: Ledger) -> Ledger:
    for bank, jurisdiction in ((US, "US"), (HK, "HK"), (SG, "SG")):
        ledger.open(bank, f"{bank}-c", jurisdiction)
        ledger.issue(bank, f"{bank}-c", 100_000)
    ledger.issue(HK, f"{HK}-c", 100_000, currency="HKD")
    return ledger


def test_positions_net_to_zero_and_the_cycle_settles(three_banks: Ledger) -> None:
    ledger = three_banks
    p1 = _pay(ledger, US, f"{US}-c", HK, f"{HK}-c", 1000, "a")
    p2 = _pay(ledger, HK, f"{HK}-c", SG, f"{SG}-c", 300, "b")
    p3 = _pay(ledger, SG, f"{SG}-c", US, f"{US}-c", 200, "c")
    p4 = _pay(
        ledger,
        US,
        f"{US}-c",
        HK,
        f"{HK}-c",
        1280,
        "d",
        payee_currency="HKD",
        payee_amount=10_000,
        rate="7.8125",
    )
    # A refunded payment is never settled.
    refunded = ledger.submit(
        US,
        "InitiatePayment",
        {
            "idempotency_key": "e",
            "payer_account": f"{US}-c",
            "payee_bank": SG,
            "payee_account": f"{SG}-c",
            "currency": "USD",
            "amount": 5,
            "pending_credits": ledger.pending(US, f"{US}-c"),
        },
    )["payment_id"]
    ledger.submit(SG, "RejectPayment", {"payment_id": refunded, "reason": "compliance"})
    ledger.submit(US, "RefundPayment", {"payment_id": refunded})

    opened = ledger.submit(REG, "OpenSettlementCycle", args=["2025-01-06-1"])
    assert opened["payments"] == 4
    assert opened["positions"] == {
        HK: {"HKD": 10_000, "USD": 1000 - 300},
        SG: {"USD": 300 - 200},
        US: {"HKD": -10_000, "USD": -1000 + 200},
    }
    for currency in ("USD", "HKD"):
        assert sum(position.get(currency, 0) for position in opened["positions"].values()) == 0
    for payment_id in (p1, p2, p3, p4):
        assert ledger.query(REG, "GetPayment", args=[payment_id])["cycle_id"] == "2025-01-06-1"
    assert ledger.query(REG, "GetPayment", args=[refunded])["cycle_id"] is None
    with pytest.raises(Refused, match=r"^\[nothing_to_settle\]"):
        ledger.submit(US, "OpenSettlementCycle", args=["2025-01-06-2"])
    with pytest.raises(Refused, match=r"^\[duplicate_reference\] settlement cycle 2025-01-06-1 exists"):
        ledger.submit(US, "OpenSettlementCycle", args=["2025-01-06-1"])

    assert ledger.submit(US, "ConfirmSettlement", args=["2025-01-06-1", "FED-123"])["status"] == "open"
    assert ledger.submit(US, "ConfirmSettlement", args=["2025-01-06-1", "FED-123"])["confirmed"] is False
    with pytest.raises(Refused, match=r"^\[already_confirmed\]"):
        ledger.submit(US, "ConfirmSettlement", args=["2025-01-06-1", "FED-999"])
    assert ledger.submit(HK, "ConfirmSettlement", args=["2025-01-06-1", "CHATS-9"])["status"] == "open"
    assert ledger.submit(SG, "ConfirmSettlement", args=["2025-01-06-1", "MEPS-4"])["status"] == "settled"
    assert ledger.channel.events[-1].name == "SettlementCycleSettled"
    cycle = ledger.query(REG, "GetSettlementCycle", args=["2025-01-06-1"])
    assert cycle["status"] == "settled"
    assert {bank: item["external_ref"] for bank, item in cycle["confirmations"].items()} == {
        US: "FED-123",
        HK: "CHATS-9",
        SG: "MEPS-4",
    }
    assert [c["cycle_id"] for c in ledger.query(SG, "ListSettlementCycles")["cycles"]] == ["2025-01-06-1"]
    ledger.assert_conserved()


def test_a_later_cycle_takes_only_new_payments(three_banks: Ledger) -> None:
    ledger = three_banks
    _pay(ledger, US, f"{US}-c", HK, f"{HK}-c", 1000, "a")
    ledger.submit(US, "OpenSettlementCycle", args=["c1"])
    later = _pay(ledger, HK, f"{HK}-c", US, f"{US}-c", 400, "b")
    opened = ledger.submit(HK, "OpenSettlementCycle", args=["c2"])
    assert opened == {"cycle_id": "c2", "positions": {HK: {"USD": -400}, US: {"USD": 400}}, "payments": 1}
    assert ledger.query(REG, "GetSettlementCycle", args=["c2"])["payments"] == [later]


def test_two_cycles_opened_at_once_cannot_take_the_same_payment(three_banks: Ledger) -> None:
    ledger = three_banks
    _pay(ledger, US, f"{US}-c", HK, f"{HK}-c", 1000, "a")
    first = ledger.channel.simulate(US, "OpenSettlementCycle", ["c1"])
    second = ledger.channel.simulate(HK, "OpenSettlementCycle", ["c2"])
    assert first.ok and second.ok
    # In one block Fabric rejects the second as soon as it writes a key whose policy the first
    # set (the payment's settled marker); in a later block its reads would be stale (MVCC).
    assert ledger.channel.commit([first, second]) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]
    with pytest.raises(Refused, match=r"^\[nothing_to_settle\]"):
        ledger.submit(HK, "OpenSettlementCycle", args=["c2"])
    assert [c["cycle_id"] for c in ledger.query(REG, "ListSettlementCycles")["cycles"]] == ["c1"]


def test_a_completion_racing_a_cycle_is_not_lost(three_banks: Ledger) -> None:
    ledger = three_banks
    _pay(ledger, US, f"{US}-c", HK, f"{HK}-c", 1000, "a")
    late = ledger.submit(
        SG,
        "InitiatePayment",
        {
            "idempotency_key": "late",
            "payer_account": f"{SG}-c",
            "payee_bank": US,
            "payee_account": f"{US}-c",
            "currency": "USD",
            "amount": 7,
            "pending_credits": ledger.pending(SG, f"{SG}-c"),
        },
    )["payment_id"]
    opening = ledger.channel.simulate(REG, "OpenSettlementCycle", ["c1"])
    completing = ledger.simulate(US, "CompletePayment", {"payment_id": late})
    # The completion commits first: the cycle's scan of unsettled payments is now a phantom read.
    assert ledger.channel.commit([completing, opening]) == ["VALID", "PHANTOM_READ_CONFLICT"]
    assert ledger.submit(REG, "OpenSettlementCycle", args=["c1"])["payments"] == 2


def test_a_bank_confirms_only_what_its_books_hold(three_banks: Ledger) -> None:
    ledger = three_banks
    payment_id = _pay(ledger, US, f"{US}-c", HK, f"{HK}-c", 1000, "a")
    ledger.submit(US, "OpenSettlementCycle", args=["c1"])
    # Forge the public record's amount (as altered chaincode of both banks together could).
    key = "\x00dt.payment\x00" + payment_id + "\x00"
    record = json.loads(ledger.channel.state[""][key].value)
    record["payee_amount"] = 999_999
    ledger.channel.state[""][key].value = json.dumps(record).encode()
    for bank in (US, HK):
        with pytest.raises(
            Refused, match=r"^\[invalid_state\] payment .* does not match .*'s books; not confirming"
        ):
            ledger.submit(bank, "ConfirmSettlement", args=["c1", "REF-1"])
    assert ledger.query(REG, "GetSettlementCycle", args=["c1"])["status"] == "open"


def test_settlement_input_is_validated(ledger: Ledger) -> None:
    with pytest.raises(Refused, match=r"^\[invalid_request\] 'cycle_id' must be 1 to 64"):
        ledger.submit(US, "OpenSettlementCycle", args=["bad id"])
    with pytest.raises(Refused, match=r"^\[cycle_not_found\]"):
        ledger.query(US, "GetSettlementCycle", args=["none"])
    with pytest.raises(Refused, match=r"^\[nothing_to_settle\]"):
        ledger.submit(US, "OpenSettlementCycle", args=["c1"])
