"""CompletePayments: a payee bank completes several incoming payments in one transaction (decision 0037)."""

from __future__ import annotations

import json
from typing import Any

from chaincode.deposit_token.payments import MAX_COMPLETION_GROUP
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger


def _setup(ledger: Ledger) -> None:
    ledger.open(US, "alice", "US", holder="Alice Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.open(HK, "cafe", "HK", holder="Cafe Example")
    ledger.issue(US, "alice", 100_000)


def _initiate(ledger: Ledger, key: str, amount: int, payee_account: str = "shop") -> str:
    request = {
        "idempotency_key": key, "payer_account": "alice", "payee_bank": HK, "payee_account": payee_account,
        "currency": "USD", "amount": amount, "pending_credits": ledger.pending(US, "alice"),
    }  # fmt: skip
    payment_id: str = ledger.submit(US, "InitiatePayment", request)["payment_id"]
    return payment_id


def _item(ledger: Ledger, payment_id: str) -> dict[str, Any]:
    given = ledger.query(US, "GetPaymentDetails", args=[payment_id], creator=HK)
    return {"payment_id": payment_id, "details": given["details"], "salt": given["salt"]}


def test_a_group_completes_each_payment_once_with_one_supply_change_and_one_event(ledger: Ledger) -> None:
    _setup(ledger)
    ids = [_initiate(ledger, f"order-{n}", 1000 + n, "shop" if n % 2 else "cafe") for n in range(4)]
    result = ledger.submit(HK, "CompletePayments", {"payments": [_item(ledger, pid) for pid in ids]})
    assert result == {
        "results": [{"payment_id": pid, "status": "completed", "completed": True} for pid in ids],
        "completed": 4,
    }
    assert ledger.balance(HK, "shop") == 1001 + 1003
    assert ledger.balance(HK, "cafe") == 1000 + 1002
    assert ledger.supply()[(HK, "USD")] == 4006
    for pid in ids:
        assert ledger.query(REG, "GetPayment", args=[pid])["status"] == "completed"
    event = ledger.channel.events[-1]
    payload = json.loads(event.payload)
    assert event.name == "PaymentsCompleted"
    assert payload["payments"] == [{"payment_id": pid, "payer_bank": US, "payee_bank": HK} for pid in ids]
    # One supply change for the group: the sum it minted.
    assert payload["supply"]["changes"] == [{"issuer": HK, "currency": "USD", "delta": 4006}]
    ledger.assert_conserved()
    # Again: every item is already done, nothing changes and no event is set.
    events = len(ledger.channel.events)
    again = ledger.submit(HK, "CompletePayments", {"payments": [_item(ledger, ids[0]) | {"payment_id": ids[0]}]})
    assert again == {"results": [{"payment_id": ids[0], "status": "completed", "completed": False}], "completed": 0}
    assert len(ledger.channel.events) == events
    assert ledger.supply()[(HK, "USD")] == 4006


def test_a_refused_item_writes_nothing_and_the_others_complete(ledger: Ledger) -> None:
    _setup(ledger)
    good, frozen_payee, tampered = (_initiate(ledger, f"order-{n}", 500, payee) for n, payee in
                                    enumerate(("shop", "cafe", "shop")))  # fmt: skip
    ledger.submit(HK, "FreezeAccount", {"account_id": "cafe", "reason": "fraud review"})
    bad_details = _item(ledger, tampered)
    bad_details["details"] = {**bad_details["details"], "payee_account": "cafe"}
    items = [_item(ledger, good), _item(ledger, frozen_payee), bad_details, "not an object", {"payment_id": "x"}]
    result = ledger.submit(HK, "CompletePayments", {"payments": items})
    codes = [entry.get("error", {}).get("code") for entry in result["results"]]
    assert codes == [None, "account_frozen", "invalid_request", "invalid_request", "invalid_request"]
    assert result["results"][0] == {"payment_id": good, "status": "completed", "completed": True}
    assert result["results"][2]["payment_id"] == tampered
    assert "do not match the public hash" in result["results"][2]["error"]["message"]
    assert result["completed"] == 1
    assert ledger.balance(HK, "shop") == 500
    assert ledger.balance(HK, "cafe") == 0
    assert ledger.supply()[(HK, "USD")] == 500
    for pid, status in ((good, "completed"), (frozen_payee, "initiated"), (tampered, "initiated")):
        assert ledger.query(SG, "GetPayment", args=[pid])["status"] == status
    ledger.assert_conserved()
    # The refused ones are still open and complete on their own later.
    assert ledger.submit(HK, "CompletePayment", {"payment_id": tampered})["completed"] is True
    ledger.assert_conserved()


def test_a_payment_named_twice_in_a_group_is_credited_once(ledger: Ledger) -> None:
    """A transaction reads committed state, not its own writes: the second mention must be refused."""
    _setup(ledger)
    pid = _initiate(ledger, "order-1", 700)
    item = _item(ledger, pid)
    result = ledger.submit(HK, "CompletePayments", {"payments": [item, dict(item)]})
    assert result["results"][0]["completed"] is True
    assert result["results"][1]["error"]["code"] == "invalid_request"
    assert "named twice" in result["results"][1]["error"]["message"]
    assert ledger.balance(HK, "shop") == 700
    assert ledger.supply()[(HK, "USD")] == 700
    ledger.assert_conserved()


def test_only_the_payee_bank_completes_and_bad_groups_are_refused(ledger: Ledger) -> None:
    _setup(ledger)
    pid = _initiate(ledger, "order-1", 700)
    # Another bank's items are each refused (it is not their payee bank); nothing changes.
    result = ledger.submit(SG, "CompletePayments", {"payments": [_item(ledger, pid)]})
    assert result["results"][0]["error"]["code"] == "not_authorized"
    assert ledger.refused(REG, "CompletePayments", {"payments": [_item(ledger, pid)]}).startswith("[not_authorized]")
    for payments in ([], "text", None, [{"payment_id": pid}] * (MAX_COMPLETION_GROUP + 1)):
        message = ledger.refused(HK, "CompletePayments", {"payments": payments})
        assert message.startswith("[invalid_request] 'payments' must be a list of 1 to"), message
    assert ledger.refused(HK, "CompletePayments", {"payments": [_item(ledger, pid)], "extra": 1}).startswith(
        "[invalid_request] unknown field 'extra'"
    )
    assert ledger.query(REG, "GetPayment", args=[pid])["status"] == "initiated"
    assert ledger.balance(HK, "shop") == 0
    ledger.assert_conserved()


def test_the_payer_banks_peer_hands_over_several_payments_details_at_once(ledger: Ledger) -> None:
    _setup(ledger)
    ids = [_initiate(ledger, f"order-{n}", 100 + n) for n in range(2)]
    asked = [*ids, "not an id", "f" * 64]
    answer = ledger.query(US, "GetPaymentsDetails", args=[json.dumps({"payment_ids": asked})], creator=HK)
    one_by_one = [ledger.query(US, "GetPaymentDetails", args=[pid], creator=HK) for pid in ids]
    assert answer["details"][:2] == one_by_one
    message = "'payment_ids[2]' must be a payment id (64 lowercase hex digits)"
    assert answer["details"][2] == {"payment_id": "not an id", "error": {"code": "invalid_request", "message": message}}
    assert answer["details"][3]["error"]["code"] == "payment_not_found"
    # A third bank's client gets a refusal for each payment, and nothing of the books.
    third = ledger.query(US, "GetPaymentsDetails", args=[json.dumps({"payment_ids": ids})], creator=SG)
    assert [item["error"]["code"] for item in third["details"]] == ["not_authorized", "not_authorized"]
    assert "alice" not in json.dumps(third)
    for wrong in ({"payment_ids": []}, {"payment_ids": "x"}, {}, {"payment_ids": ids * 26}):
        message = ledger.refused(US, "GetPaymentsDetails", args=[json.dumps(wrong)], creator=HK)
        assert message.startswith("[invalid_request] 'payment_ids' must be a list of 1 to 50"), message
