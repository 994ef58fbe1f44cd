"""Interbank payments: the state machine, idempotency, timeouts, cross-currency, privacy of the record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chaincode.deposit_token.payments import payment_id_for
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused


def _setup(ledger: Ledger, amount: int = 10_000) -> None:
    ledger.open(US, "alice", "US", holder="Alice Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.issue(US, "alice", amount)


def _initiate(ledger: Ledger, key: str = "order-1", amount: int = 2500, **extra: Any) -> dict[str, Any]:
    request = {
        "idempotency_key": key,
        "payer_account": "alice",
        "payee_bank": HK,
        "payee_account": "shop",
        "currency": "USD",
        "amount": amount,
        "remittance": "Invoice INV-9 for Alice",
        "pending_credits": ledger.pending(US, "alice"),
        **extra,
    }
    result: dict[str, Any] = ledger.submit(US, "InitiatePayment", request)
    return result


def test_initiate_then_complete(ledger: Ledger) -> None:
    _setup(ledger)
    started = _initiate(ledger)
    created = started.pop("payment")
    assert started == {"payment_id": payment_id_for(US, "order-1"), "status": "initiated", "created": True}
    payment_id = started["payment_id"]
    # The response carries the public record as stored, and nothing private (it travels in the block).
    assert created == ledger.query(HK, "GetPayment", args=[payment_id])
    assert "details" not in created and "alice" not in json.dumps(created)
    assert ledger.balance(US, "alice") == 7500
    assert ledger.supply()[(US, "USD")] == 7500  # the payer bank's token is burned
    event = ledger.channel.events[-1]
    # The supply change is reported in the event: the burn of the payer bank's 25.00 USD.
    assert (event.name, json.loads(event.payload)) == (
        "PaymentInitiated",
        {
            "payment_id": payment_id, "payer_bank": US, "payee_bank": HK,
            "supply": {"at": created["created_at"], "changes": [{"issuer": US, "currency": "USD", "delta": -2500}]},
        },
    )  # fmt: skip
    ledger.assert_conserved()

    assert ledger.submit(HK, "CompletePayment", {"payment_id": payment_id}) == {
        "payment_id": payment_id,
        "status": "completed",
        "completed": True,
    }
    assert ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})["completed"] is False
    assert ledger.balance(HK, "shop") == 2500
    assert ledger.supply()[(HK, "USD")] == 2500
    record = ledger.query(SG, "GetPayment", args=[payment_id])
    assert record["status"] == "completed"
    assert [step["status"] for step in record["timeline"]] == ["initiated", "completed"]
    assert (record["payer_bank"], record["payee_bank"], record["amount"], record["payee_amount"]) == (
        US,
        HK,
        2500,
        2500,
    )
    ledger.assert_conserved()


def test_a_retried_initiation_has_one_effect(ledger: Ledger) -> None:
    _setup(ledger)
    first = _initiate(ledger)
    again = _initiate(ledger)
    assert "payment" in first and "payment" not in again  # a repeat is told the id and status only
    assert again == {"payment_id": first["payment_id"], "status": first["status"], "created": False}
    assert ledger.balance(US, "alice") == 7500
    with pytest.raises(Refused, match=r"^\[duplicate_reference\] 'idempotency_key' was already used"):
        _initiate(ledger, amount=2600)
    ledger.submit(HK, "CompletePayment", {"payment_id": first["payment_id"]})
    assert _initiate(ledger)["status"] == "completed"


def test_reject_then_refund(ledger: Ledger) -> None:
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    with pytest.raises(Refused, match=r"^\[not_authorized\] only the payee bank rejects"):
        ledger.submit(US, "RejectPayment", {"payment_id": payment_id, "reason": "x"})
    with pytest.raises(Refused, match=r"^\[invalid_request\] 'reason' must be a code"):
        ledger.submit(HK, "RejectPayment", {"payment_id": payment_id, "reason": "Alice is unknown"})
    ledger.submit(HK, "RejectPayment", {"payment_id": payment_id, "reason": "unknown_account"})
    with pytest.raises(Refused, match=r"^\[invalid_state\] payment .* is rejected, not initiated"):
        ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    with pytest.raises(Refused, match=r"^\[not_authorized\] only the payer bank refunds"):
        ledger.submit(HK, "RefundPayment", {"payment_id": payment_id})
    assert ledger.submit(US, "RefundPayment", {"payment_id": payment_id})["refunded"] is True
    assert ledger.submit(US, "RefundPayment", {"payment_id": payment_id})["refunded"] is False
    assert ledger.balance(US, "alice") == 10_000
    record = ledger.query(REG, "GetPayment", args=[payment_id])
    assert (record["status"], record["reason"]) == ("refunded", "unknown_account")
    assert [step["status"] for step in record["timeline"]] == ["initiated", "rejected", "refunded"]
    ledger.assert_conserved()


def test_a_stale_initiated_payment_is_refunded_after_the_timeout(ledger: Ledger) -> None:
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    with pytest.raises(Refused, match=r"^\[not_expired\] payment .* may refund it 300 s after creation"):
        ledger.submit(US, "RefundPayment", {"payment_id": payment_id})
    ledger.channel.advance(301)
    ledger.submit(US, "RefundPayment", {"payment_id": payment_id})
    record = ledger.query(REG, "GetPayment", args=[payment_id])
    assert (record["status"], record["reason"]) == ("refunded", "expired")
    with pytest.raises(Refused, match=r"^\[invalid_state\] payment .* is refunded, not initiated"):
        ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    assert ledger.balance(US, "alice") == 10_000
    ledger.assert_conserved()


def test_the_regulator_sets_the_timeout(ledger: Ledger) -> None:
    assert ledger.refused(US, "SetPaymentTimeout", args=["5"]).startswith("[not_authorized]")
    assert ledger.refused(REG, "SetPaymentTimeout", args=["0"]).startswith("[invalid_request]")
    ledger.submit(REG, "SetPaymentTimeout", args=["5"])
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    ledger.channel.advance(5)
    assert ledger.submit(US, "RefundPayment", {"payment_id": payment_id})["status"] == "refunded"


def test_a_completed_payment_cannot_be_refunded(ledger: Ledger) -> None:
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    ledger.channel.advance(1000)
    with pytest.raises(Refused, match=r"^\[invalid_state\] payment .* is completed and cannot be refunded"):
        ledger.submit(US, "RefundPayment", {"payment_id": payment_id})


def test_the_payee_bank_refuses_to_credit_an_unknown_or_frozen_payee(ledger: Ledger) -> None:
    _setup(ledger)
    ledger.submit(HK, "FreezeAccount", {"account_id": "shop", "reason": "sanctions screening"})
    payment_id = _initiate(ledger)["payment_id"]
    with pytest.raises(Refused, match=r"^\[account_frozen\] the account to credit is frozen"):
        ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    unknown = _initiate(ledger, key="order-2", payee_account="ghost")["payment_id"]
    with pytest.raises(Refused, match=r"^\[unknown_account\] 'payee_account' names no account at HKBankMSP"):
        ledger.submit(HK, "CompletePayment", {"payment_id": unknown})
    ledger.assert_conserved()


def test_cnh_between_two_mainland_accounts_is_refused_at_completion(ledger: Ledger) -> None:
    ledger.open(HK, "cn-payer", "CN")
    ledger.open(SG, "cn-payee", "CN")
    ledger.open(SG, "sg-payee", "SG")
    ledger.submit(
        REG,
        "InitReferenceData",
        args=[
            json.dumps(
                {
                    "regulator": REG,
                    "currencies": {"CNH": 2},
                    "banks": [
                        {
                            "msp_id": SG,
                            "name": "SGBank",
                            "jurisdiction": "SG",
                            "currencies": ["SGD", "EUR", "USD", "CNH"],
                        }
                    ],
                }
            )
        ],
    )
    ledger.issue(HK, "cn-payer", 1000, currency="CNH")
    request = {
        "idempotency_key": "cnh-1",
        "payer_account": "cn-payer",
        "payee_bank": SG,
        "payee_account": "cn-payee",
        "currency": "CNH",
        "amount": 100,
        "pending_credits": ledger.pending(HK, "cn-payer"),
    }
    payment_id = ledger.submit(HK, "InitiatePayment", request)["payment_id"]
    with pytest.raises(Refused, match=r"^\[corridor_forbidden\] CNH is cross-border only"):
        ledger.submit(SG, "CompletePayment", {"payment_id": payment_id})
    ledger.submit(SG, "RejectPayment", {"payment_id": payment_id, "reason": "corridor_forbidden"})
    ledger.submit(HK, "RefundPayment", {"payment_id": payment_id})
    other = ledger.submit(
        HK,
        "InitiatePayment",
        {
            **request,
            "idempotency_key": "cnh-2",
            "payee_account": "sg-payee",
            "pending_credits": ledger.pending(HK, "cn-payer"),
        },
    )
    ledger.submit(SG, "CompletePayment", {"payment_id": other["payment_id"]})
    assert ledger.balance(SG, "sg-payee", "CNH") == 100
    ledger.assert_conserved()


def test_cross_currency_payment_locks_the_rate_and_both_amounts(ledger: Ledger) -> None:
    _setup(ledger)
    started = _initiate(ledger, amount=10_000, payee_currency="HKD", payee_amount=78_125, rate="7.8125")
    ledger.submit(HK, "CompletePayment", {"payment_id": started["payment_id"]})
    record = ledger.query(REG, "GetPayment", args=[started["payment_id"]])
    assert (
        record["currency"],
        record["amount"],
        record["payee_currency"],
        record["payee_amount"],
        record["rate"],
    ) == (
        "USD",
        10_000,
        "HKD",
        78_125,
        "7.8125",
    )
    assert ledger.balance(US, "alice") == 0
    assert ledger.balance(HK, "shop", "HKD") == 78_125
    supply = ledger.supply()
    assert (supply[(US, "USD")], supply[(HK, "HKD")]) == (0, 78_125)
    ledger.assert_conserved()


def test_public_record_and_events_hold_no_customer_data(ledger: Ledger) -> None:
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    secrets = ["alice", "shop", "Alice Example", "Shop Example", "KYC-alice", "INV-9", "Invoice"]
    public = b"".join(key.encode() + value for key, value in ledger.channel.public_items().items())
    events = b"".join(event.payload + event.name.encode() for event in ledger.channel.events)
    for secret in secrets:
        assert secret.encode() not in public, secret
        assert secret.encode() not in events, secret
    record = ledger.query(REG, "GetPayment", args=[payment_id])
    assert "details" not in record
    assert len(record["details_hash"]) == 64


def test_only_the_two_banks_read_the_details(ledger: Ledger) -> None:
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    wanted = {
        "payer_account": "alice",
        "payer_jurisdiction": "US",
        "payee_account": "shop",
        "remittance": "Invoice INV-9 for Alice",
    }
    assert ledger.query(US, "GetPayment", {"details": True}, args=[payment_id])["details"] == wanted
    # No collection is shared: the payee bank's books hold them only once it completed the payment,
    # with what the payer bank's peer gave it (and only it and the payer get that answer).
    assert ledger.query(HK, "GetPayment", {"details": True}, args=[payment_id])["details"] is None
    given = ledger.query(US, "GetPaymentDetails", args=[payment_id], creator=HK)
    assert given["details"] == wanted and len(given["salt"]) == 32
    assert ledger.query(US, "GetPaymentDetails", args=[payment_id]) == given
    for third in (SG, REG):
        with pytest.raises(Refused, match=r"^\[not_authorized\] only the payer and payee banks"):
            ledger.query(US, "GetPaymentDetails", args=[payment_id], creator=third)
    with pytest.raises(Refused, match=r"^\[details_not_here\]"):
        ledger.query(HK, "GetPaymentDetails", args=[payment_id])
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    assert ledger.query(HK, "GetPayment", {"details": True}, args=[payment_id])["details"] == wanted
    assert ledger.query(HK, "GetPaymentDetails", args=[payment_id], creator=US) == given
    with pytest.raises(Refused, match=r"^\[not_authorized\] only the payer and payee banks"):
        ledger.query(SG, "GetPayment", {"details": True}, args=[payment_id])
    with pytest.raises(Refused, match=r"^\[not_authorized\]"):
        ledger.query(REG, "GetPayment", {"details": True}, args=[payment_id])
    # A payee bank's client cannot read them through the payer bank's peer either.
    with pytest.raises(Refused, match=r"^\[not_authorized\] a client of HKBankMSP"):
        ledger.query(US, "GetPayment", {"details": True}, args=[payment_id], creator=HK)


def test_list_payments_filters_and_pages(ledger: Ledger) -> None:
    _setup(ledger, amount=100_000)
    ledger.open(SG, "sg-shop", "SG")
    ids = []
    for index in range(5):
        ids.append(_initiate(ledger, key=f"o{index}", amount=100)["payment_id"])
        ledger.channel.advance(1)
    ledger.submit(HK, "CompletePayment", {"payment_id": ids[1]})
    ledger.submit(HK, "CompletePayment", {"payment_id": ids[3]})
    to_sg = ledger.submit(
        US,
        "InitiatePayment",
        {
            "idempotency_key": "sg",
            "payer_account": "alice",
            "payee_bank": SG,
            "payee_account": "sg-shop",
            "currency": "USD",
            "amount": 5,
        },
    )["payment_id"]
    everything = ledger.query(REG, "ListPayments", args=[json.dumps({"page_size": 10})])
    assert [p["payment_id"] for p in everything["payments"]] == [to_sg, *reversed(ids)]
    completed = ledger.query(REG, "ListPayments", args=[json.dumps({"bank": HK, "status": "completed"})])
    assert [p["payment_id"] for p in completed["payments"]] == [ids[3], ids[1]]
    pages, bookmark = [], ""
    while True:
        page = ledger.query(
            SG, "ListPayments", args=[json.dumps({"bank": HK, "page_size": 2, "bookmark": bookmark})]
        )
        pages.append([p["payment_id"] for p in page["payments"]])
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert (
        ledger.query(SG, "ListPayments", args=[json.dumps({"bank": SG})])["payments"][0]["payment_id"]
        == to_sg
    )
    with pytest.raises(Refused, match=r"^\[invalid_request\] 'status' must be one of"):
        ledger.query(SG, "ListPayments", args=[json.dumps({"status": "lost"})])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"payee_bank": "NoBankMSP"}, "[unknown_bank] 'payee_bank': NoBankMSP is not a registered bank"),
        ({"payee_bank": US}, "[invalid_request] 'payee_bank' is the payer's own bank"),
        ({"payer_account": "ghost"}, "[unknown_account] 'payer_account' names no account at USBankMSP"),
        ({"amount": 0}, "[invalid_amount] 'amount' must be positive"),
        ({"amount": 10_001}, "[insufficient_funds] account balance 10000 USD is below the debit 10001"),
        ({"currency": "EUR"}, "[currency_not_issued] USBankMSP does not issue EUR tokens"),
        ({"idempotency_key": ""}, "[invalid_request] 'idempotency_key' must not be empty"),
        ({"payee_amount": 5}, "[invalid_request] 'payee_amount' must equal 'amount'"),
        ({"salt": "short"}, "[invalid_request] 'salt' has characters or a length that is not allowed"),
    ],
)
def test_bad_payment_requests_are_refused(ledger: Ledger, change: dict[str, Any], expected: str) -> None:
    _setup(ledger)
    request = {
        "idempotency_key": "o",
        "payer_account": "alice",
        "payee_bank": HK,
        "payee_account": "shop",
        "currency": "USD",
        "amount": 100,
        "pending_credits": ledger.pending(US, "alice"),
        **change,
    }
    assert ledger.refused(US, "InitiatePayment", request).startswith(expected)


def test_payment_ids_are_validated(ledger: Ledger) -> None:
    with pytest.raises(Refused, match=r"^\[invalid_request\] 'payment_id' must be a payment id"):
        ledger.query(REG, "GetPayment", args=["abc"])
    with pytest.raises(Refused, match=r"^\[payment_not_found\]"):
        ledger.query(REG, "GetPayment", args=["0" * 64])
    with pytest.raises(Refused, match=r"^\[payment_not_found\]"):
        ledger.submit(HK, "CompletePayment", {"payment_id": "0" * 64})


def test_open_payments_are_listed_from_their_own_index_until_they_are_final(ledger: Ledger) -> None:
    """A sweep for initiated or rejected payments reads what is open, not every payment ever made."""
    _setup(ledger, amount=100_000)
    ids = [_initiate(ledger, key=f"o{index}", amount=100)["payment_id"] for index in range(4)]
    ledger.submit(HK, "CompletePayment", {"payment_id": ids[0]})
    ledger.submit(HK, "RejectPayment", {"payment_id": ids[1], "reason": "unknown_account"})
    ledger.submit(HK, "RejectPayment", {"payment_id": ids[2], "reason": "unknown_account"})
    ledger.submit(US, "RefundPayment", {"payment_id": ids[2]})

    def listed(bank: str | None, status: str) -> set[str]:
        query = {"status": status} if bank is None else {"bank": bank, "status": status}
        return {p["payment_id"] for p in ledger.query(REG, "ListPayments", args=[json.dumps(query)])["payments"]}

    assert listed(HK, "initiated") == listed(US, "initiated") == listed(None, "initiated") == {ids[3]}
    assert listed(US, "rejected") == {ids[1]}
    assert listed(US, "completed") == {ids[0]}
    assert listed(US, "refunded") == {ids[2]}
    open_entries = [key for key in ledger.channel.public_items() if key.startswith("open-payment/")]
    # ids[1] (rejected, refund due) and ids[3] (initiated), each under payer, payee and all banks.
    assert sorted(entry.rsplit("/", 1)[1] for entry in open_entries) == sorted([ids[1], ids[3]] * 3)


def test_the_payee_credits_only_details_that_match_the_public_hash(ledger: Ledger) -> None:
    """The details reach the payee bank from the payer bank's peer (docs/decisions/0036), so the
    contract checks them against the salted hash the payer's endorsement put in the public record."""
    _setup(ledger)
    payment_id = _initiate(ledger)["payment_id"]
    given = ledger.query(US, "GetPaymentDetails", args=[payment_id], creator=HK)
    other_salt = ("0" if given["salt"][0] != "0" else "1") + given["salt"][1:]
    for details, salt in [
        ({**given["details"], "payee_account": "elsewhere"}, given["salt"]),
        ({**given["details"], "remittance": "changed"}, given["salt"]),
        ({**given["details"], "extra": "x"}, given["salt"]),
        (given["details"], other_salt),
    ]:
        message = ledger.refused(HK, "CompletePayment", {"payment_id": payment_id, "details": details, "salt": salt})
        assert message.startswith("[invalid_request] 'details' and 'salt' do not match the public hash"), message
    # Without them at all (the test helper would fetch them, so straight to the channel).
    bare = ledger.channel.simulate(HK, "CompletePayment", (), {"request": {"payment_id": payment_id}})
    assert bare.message.startswith("[invalid_request] 'details' (an object) and 'salt' (hex) are required")
    for request in (
        {"payment_id": payment_id, "details": "text", "salt": given["salt"]},
        {"payment_id": payment_id, "details": given["details"], "salt": "not hex"},
        {"payment_id": payment_id, "details": given["details"]},
    ):
        assert ledger.refused(HK, "CompletePayment", {**request}).startswith("[invalid_request] 'details' (an object)")
    assert ledger.query(REG, "GetPayment", args=[payment_id])["status"] == "initiated"
    assert ledger.submit(HK, "CompletePayment", {"payment_id": payment_id, **given})["completed"] is True
    assert ledger.balance(HK, "shop", "USD") == 2500


def test_a_salt_of_half_a_byte_is_refused_not_a_crash(ledger: Ledger) -> None:
    _setup(ledger)
    request = {
        "idempotency_key": "salted", "payer_account": "alice", "payee_bank": HK, "payee_account": "shop",
        "currency": "USD", "amount": 1, "pending_credits": ledger.pending(US, "alice"),
    }  # fmt: skip
    for salt in ("a" * 33, "a" * 30, "A" * 32, "a" * 130):
        message = ledger.refused(US, "InitiatePayment", {**request, "salt": salt})
        assert message.startswith("[invalid_request] 'salt'"), message
    assert _initiate(ledger, key="salted", amount=1, salt="ab" * 16)["created"] is True
