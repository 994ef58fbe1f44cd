"""Escrow: lock, release by the buyer, the attestor or both, partly, at expiry either way; refusals."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from chaincode.deposit_token.escrow import escrow_id_for
from chaincode.deposit_token.ledger import iso
from chaincode.deposit_token.payments import payment_id_for
from tests.unit.contract.conftest import HK, REG, US, Ledger, Refused


def _setup(ledger: Ledger, amount: int = 10_000) -> None:
    ledger.open(US, "buyer", "US", holder="Buyer Example")
    ledger.open(US, "seller", "US", holder="Seller Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.issue(US, "buyer", amount)


def _expiry(ledger: Ledger, seconds: float = 3600) -> str:
    return iso(ledger.channel.now + dt.timedelta(seconds=seconds))


def _lock(ledger: Ledger, key: str = "order-1", amount: int = 4000, **terms: Any) -> dict[str, Any]:
    request = {
        "idempotency_key": key,
        "payer_account": "buyer",
        "payee_bank": US,
        "payee_account": "seller",
        "currency": "USD",
        "amount": amount,
        "release_by": "buyer",
        "expires_at": _expiry(ledger),
        "on_expiry": "refund",
        "remittance": "PO-77 for Buyer",
        "pending_credits": ledger.pending(US, "buyer"),
        **terms,
    }
    result: dict[str, Any] = ledger.submit(US, "LockEscrow", request)
    return result


def _release(ledger: Ledger, escrow_id: str, amount: int, release_id: str = "r1", **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = ledger.submit(
        US, "ReleaseEscrow", {"escrow_id": escrow_id, "release_id": release_id, "amount": amount, "by": "buyer",
                              **extra},
    )  # fmt: skip
    return result


def test_lock_takes_the_money_out_of_the_available_balance(ledger: Ledger) -> None:
    _setup(ledger)
    locked = _lock(ledger)
    escrow_id = escrow_id_for(US, "order-1")
    assert locked["escrow_id"] == escrow_id and locked["created"] is True
    assert locked["escrow"]["status"] == "open" and locked["escrow"]["available"] == 4000
    # A transaction's answer travels in the block: no account, attestor or remittance in it.
    assert not {"buyer", "seller", "PO-77"} & set(json.dumps(locked).replace('"', " ").split())
    assert "PO-77 for Buyer" not in json.dumps(locked)
    assert ledger.query(US, "GetEscrow", {"escrow_id": escrow_id})["payer_account"] == "buyer"
    assert ledger.balance(US, "buyer") == 6000
    assert ledger.supply()[(US, "USD")] == 6000
    ledger.assert_conserved()
    # A retry answers with the same escrow and locks nothing more; other terms under the key are refused.
    assert _lock(ledger)["created"] is False
    assert ledger.balance(US, "buyer") == 6000
    with pytest.raises(Refused, match="duplicate_reference"):
        _lock(ledger, amount=4001)
    # Nothing of the escrow is public: the event names the escrow id and the bank only.
    event = ledger.channel.events[-1]
    # The lock burns the locked amount, and the event reports it (decision 0030).
    burned = {"at": "2025-01-06T09:00:00.000000Z", "changes": [{"issuer": US, "currency": "USD", "delta": -4000}]}
    expected = {"escrow_id": escrow_id, "bank": US, "supply": burned}
    assert (event.name, json.loads(event.payload)) == ("EscrowLocked", expected)
    assert "buyer" not in json.dumps(ledger.channel.public_items(), default=str)


def test_locked_money_cannot_pay_anything_else(ledger: Ledger) -> None:
    _setup(ledger, 5000)
    _lock(ledger, amount=4000)
    with pytest.raises(Refused, match="insufficient_funds"):
        ledger.transfer(US, "buyer", "seller", 1001, "t1")
    with pytest.raises(Refused, match="insufficient_funds"):
        _lock(ledger, key="order-2", amount=1001)
    ledger.transfer(US, "buyer", "seller", 1000, "t2")
    ledger.assert_conserved()


def test_concurrent_lock_and_spend_only_one_commits(ledger: Ledger) -> None:
    _setup(ledger, 5000)
    lock = ledger.simulate(US, "LockEscrow", {
        "idempotency_key": "race", "payer_account": "buyer", "payee_bank": US, "payee_account": "seller",
        "currency": "USD", "amount": 4000, "release_by": "buyer", "expires_at": _expiry(ledger),
        "on_expiry": "refund", "pending_credits": ledger.pending(US, "buyer"),
    })  # fmt: skip
    spend = ledger.simulate(US, "Transfer", {
        "from_account": "buyer", "to_account": "seller", "currency": "USD", "amount": 4000,
        "transfer_id": "race-t", "pending_credits": ledger.pending(US, "buyer"),
    })  # fmt: skip
    assert lock.ok and spend.ok
    codes = ledger.channel.commit([lock, spend])
    assert codes == ["VALID", "MVCC_READ_CONFLICT"]
    assert ledger.balance(US, "buyer") == 1000
    ledger.assert_conserved()


def test_buyer_releases_in_parts_then_a_double_release_is_refused(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger)["escrow_id"]
    first = _release(ledger, escrow_id, 1500, "r1")
    assert first["released"] is True and first["payment_id"] is None
    assert first["escrow"]["available"] == 2500 and first["escrow"]["status"] == "open"
    assert ledger.balance(US, "seller") == 1500
    assert _release(ledger, escrow_id, 1500, "r1")["released"] is False  # a retry
    with pytest.raises(Refused, match="duplicate_reference"):
        _release(ledger, escrow_id, 1000, "r1")
    with pytest.raises(Refused, match="insufficient_funds"):
        _release(ledger, escrow_id, 2501, "r2")
    done = _release(ledger, escrow_id, 2500, "r2")
    assert done["escrow"]["status"] == "released" and done["escrow"]["available"] == 0
    assert ledger.balance(US, "seller") == 4000 and ledger.balance(US, "buyer") == 6000
    with pytest.raises(Refused, match="invalid_state"):
        _release(ledger, escrow_id, 1, "r3")
    assert ledger.query(US, "ListDueEscrows")["escrow_ids"] == []
    ledger.assert_conserved()


def test_only_the_named_releaser_releases(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger, release_by="attestor", attestor="inspect-co")["escrow_id"]
    with pytest.raises(Refused, match="not_authorized"):
        _release(ledger, escrow_id, 100)
    with pytest.raises(Refused, match="not_authorized"):
        _release(ledger, escrow_id, 100, by="attestor", attestor="someone-else")
    assert _release(ledger, escrow_id, 4000, by="attestor", attestor="inspect-co")["escrow"]["status"] == "released"
    assert ledger.balance(US, "seller") == 4000
    # Another bank cannot see or move this bank's escrows (they are in its books).
    with pytest.raises(Refused, match="escrow_not_found"):
        ledger.query(HK, "GetEscrow", {"escrow_id": escrow_id})
    ledger.assert_conserved()


def test_both_must_approve_the_same_release(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger, release_by="both", attestor="inspect-co")["escrow_id"]
    waiting = _release(ledger, escrow_id, 3000, "r1")
    assert waiting["released"] is False and waiting["awaiting"] == "attestor"
    before = ledger.snapshot()
    assert _release(ledger, escrow_id, 3000, "r1")["awaiting"] == "attestor"  # the buyer again: no change
    assert ledger.snapshot() == before
    assert ledger.balance(US, "seller") == 0
    with pytest.raises(Refused, match="duplicate_reference"):
        _release(ledger, escrow_id, 2000, "r1", by="attestor", attestor="inspect-co")
    done = _release(ledger, escrow_id, 3000, "r1", by="attestor", attestor="inspect-co")
    assert done["released"] is True
    assert ledger.query(US, "GetEscrow", {"escrow_id": escrow_id})["releases"][0]["by"] == "both"
    assert ledger.balance(US, "seller") == 3000
    ledger.assert_conserved()


def test_expiry_refunds_the_rest_to_the_buyer(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger)["escrow_id"]
    _release(ledger, escrow_id, 1000)
    with pytest.raises(Refused, match="not_expired"):
        ledger.submit(US, "ExpireEscrow", {"escrow_id": escrow_id})
    assert ledger.query(US, "ListDueEscrows")["escrow_ids"] == []
    ledger.channel.advance(3601)
    assert ledger.query(US, "ListDueEscrows")["escrow_ids"] == [escrow_id]
    with pytest.raises(Refused, match="invalid_state"):
        _release(ledger, escrow_id, 100, "late")
    expired = ledger.submit(US, "ExpireEscrow", {"escrow_id": escrow_id})
    assert expired["outcome"] == "refund" and expired["escrow"]["status"] == "refunded"
    assert expired["escrow"]["refunded"] == 3000 and expired["escrow"]["released"] == 1000
    assert ledger.balance(US, "buyer") == 9000 and ledger.balance(US, "seller") == 1000
    assert ledger.submit(US, "ExpireEscrow", {"escrow_id": escrow_id})["expired"] is False
    assert ledger.query(US, "ListDueEscrows")["escrow_ids"] == []
    ledger.assert_conserved()


def test_expiry_releases_to_the_payee_when_the_terms_say_so(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger, on_expiry="release")["escrow_id"]
    ledger.channel.advance(3601)
    expired = ledger.submit(US, "ExpireEscrow", {"escrow_id": escrow_id})
    assert expired["outcome"] == "release" and expired["escrow"]["status"] == "released"
    assert ledger.balance(US, "seller") == 4000
    ledger.assert_conserved()


def test_release_to_another_bank_is_an_interbank_payment(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger, payee_bank=HK, payee_account="shop")["escrow_id"]
    assert ledger.supply()[(US, "USD")] == 6000
    released = _release(ledger, escrow_id, 2500)
    payment_id = released["payment_id"]
    assert payment_id == payment_id_for(US, f"escrow/{escrow_id}/r1")
    record = ledger.query(HK, "GetPayment", args=[payment_id])
    assert (record["status"], record["amount"], record["payee_bank"]) == ("initiated", 2500, HK)
    assert "shop" not in json.dumps(record)
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    assert ledger.balance(HK, "shop", "USD") == 2500
    assert ledger.supply()[(HK, "USD")] == 2500 and ledger.supply()[(US, "USD")] == 6000
    # At expiry the rest returns to the buyer (these terms say refund).
    ledger.channel.advance(3601)
    ledger.assert_conserved()
    expired = ledger.submit(US, "ExpireEscrow", {"escrow_id": escrow_id})
    assert expired["outcome"] == "refund" and ledger.balance(US, "buyer") == 7500
    ledger.assert_conserved()


def test_a_rejected_release_refunds_the_buyer(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger, payee_bank=HK, payee_account="nobody")["escrow_id"]
    payment_id = _release(ledger, escrow_id, 4000)["payment_id"]
    with pytest.raises(Refused, match="unknown_account"):
        ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    ledger.submit(HK, "RejectPayment", {"payment_id": payment_id, "reason": "unknown_account"})
    ledger.submit(US, "RefundPayment", {"payment_id": payment_id})
    assert ledger.balance(US, "buyer") == 10_000
    ledger.assert_conserved()


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        ({"release_by": "anyone"}, "invalid_request"),
        ({"release_by": "attestor"}, "invalid_request"),
        ({"attestor": "inspect-co"}, "invalid_request"),
        ({"on_expiry": "keep"}, "invalid_request"),
        ({"expires_at": "2000-01-01T00:00:00.000000Z"}, "invalid_request"),
        ({"expires_at": "tomorrow"}, "invalid_request"),
        ({"amount": 0}, "invalid_amount"),
        ({"amount": 10_001}, "insufficient_funds"),
        ({"currency": "HKD"}, "currency_not_issued"),
        ({"payee_account": "buyer"}, "invalid_request"),
        ({"payee_account": "ghost"}, "unknown_account"),
        ({"payee_bank": "NoBankMSP"}, "unknown_bank"),
    ],
)
def test_bad_terms_are_refused_and_change_nothing(ledger: Ledger, terms: dict[str, Any], code: str) -> None:
    _setup(ledger)
    request = {
        "idempotency_key": "bad", "payer_account": "buyer", "payee_bank": US, "payee_account": "seller",
        "currency": "USD", "amount": 100, "release_by": "buyer", "expires_at": _expiry(ledger),
        "on_expiry": "refund", **terms,
    }  # fmt: skip
    message = ledger.refused(US, "LockEscrow", request)
    assert message.startswith(f"[{code}]"), message


def test_a_regulator_or_other_bank_cannot_lock_or_release(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger)["escrow_id"]
    with pytest.raises(Refused, match="escrow_not_found"):
        ledger.submit(HK, "ReleaseEscrow", {"escrow_id": escrow_id, "release_id": "x", "amount": 1, "by": "buyer"})
    with pytest.raises(Refused):
        ledger.submit(REG, "ExpireEscrow", {"escrow_id": escrow_id})


def test_no_new_escrow_with_a_suspended_bank_but_open_ones_finish(ledger: Ledger) -> None:
    _setup(ledger)
    escrow_id = _lock(ledger, payee_bank=HK, payee_account="shop")["escrow_id"]
    ledger.submit(REG, "SuspendBank", args=[HK, "licence review"])
    with pytest.raises(Refused, match="bank_suspended"):
        _lock(ledger, key="order-2", payee_bank=HK, payee_account="shop")
    # What is locked still reaches the payee: its payment is completed like any in flight.
    payment_id = _release(ledger, escrow_id, 4000)["payment_id"]
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    assert ledger.balance(HK, "shop") == 4000
    ledger.assert_conserved()
