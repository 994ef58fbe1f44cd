"""Every deposit-token flow on the real network, with conservation checked after each test.

The REST gateways are paused while these tests drive the payment state machine themselves.
"""

from __future__ import annotations

import json
import time

import pytest
from fabric_client import ChaincodeEvent

from tests.integration.deposit_token_support import (
    HK,
    REG,
    SG,
    US,
    Consortium,
    Refused,
)

pytestmark = pytest.mark.network


def test_reference_data_and_supply_are_public(banks: Consortium) -> None:
    reference = banks[SG].evaluate("GetReferenceData")
    assert reference["regulator"] == REG
    assert {bank["msp_id"]: bank["currencies"] for bank in reference["banks"]} == {
        US: ["USD"],
        HK: ["HKD", "CNH", "USD"],
        SG: ["SGD", "EUR", "USD"],
    }
    assert reference["currencies"]["JPY"] == 0
    assert reference["corridor_policy"]["rules"][0] == {"currency": "CNH", "cross_border_only": True}
    # The regulator reads every supply collection.
    classes = {(c["issuer"], c["currency"]) for c in banks[REG].evaluate("GetSupply")["token_classes"]}
    assert (HK, "CNH") in classes and (US, "USD") in classes


def test_account_lifecycle(banks: Consortium) -> None:
    us = banks[US]
    alice, bob = banks.id("alice"), banks.id("bob")
    us.open(alice, "US")
    us.open(bob, "US")
    assert us.account(alice)["status"] == "active"
    us.issue(alice, 1000)
    us.submit("FreezeAccount", {"account_id": alice, "reason": "kyc refresh"})
    assert us.refused("Transfer", us.transfer_request(alice, bob, 10, banks.id("t0"))()).reason == "account_frozen"
    us.submit("UnfreezeAccount", {"account_id": alice})
    us.submit("SetLimits", {"account_id": alice, "currency": "USD", "per_transaction": 300, "daily": 500})
    assert us.refused("Transfer", us.transfer_request(alice, bob, 301, banks.id("t1"))()).reason == "limit_exceeded"
    us.submit("Transfer", us.transfer_request(alice, bob, 300, banks.id("t2")))
    assert us.refused("Transfer", us.transfer_request(alice, bob, 201, banks.id("t3"))()).reason == "limit_exceeded"
    us.submit("Transfer", us.transfer_request(alice, bob, 200, banks.id("t4")))
    us.submit("SetLimits", {"account_id": alice, "currency": "USD", "per_transaction": None, "daily": None})
    us.submit("Transfer", us.transfer_request(alice, bob, 500, banks.id("t5")))
    assert (us.balance(alice), us.balance(bob)) == (0, 1000)
    # Close: freeze, read, close with the fresh revision.
    us.submit("FreezeAccount", {"account_id": alice, "reason": "closing"})
    fresh = us.account(alice)
    closed = us.submit(
        "CloseAccount",
        {"account_id": alice, "revision": fresh["revision"], "pending_credits": fresh["pending_credits"]},
    )
    assert closed == {"status": "closed", "closed": True}
    assert us.refused("Transfer", us.transfer_request(bob, alice, 1, banks.id("t6"))()).reason == "account_closed"


def test_issue_redeem_and_transfer_are_exactly_once(banks: Consortium) -> None:
    us = banks[US]
    alice, bob = banks.id("ann"), banks.id("ben")
    us.open(alice, "US")
    us.open(bob, "US")
    supply_before = banks.supply()[(US, "USD")]
    issue = {"account_id": alice, "currency": "USD", "amount": 5000, "deposit_ref": banks.id("dep")}
    assert us.submit("Issue", issue) == {"issued": True}
    assert us.submit("Issue", issue) == {"issued": False}
    assert us.refused("Issue", {**issue, "amount": 5001}).reason == "duplicate_reference"
    transfer = us.transfer_request(alice, bob, 1200, banks.id("tr"))
    assert us.submit("Transfer", transfer) == {"transferred": True}
    assert us.submit("Transfer", transfer) == {"transferred": False}
    redeem = {
        "account_id": bob,
        "currency": "USD",
        "amount": 200,
        "withdrawal_ref": banks.id("wd"),
        "pending_credits": us.pending(bob),
    }
    assert us.submit("Redeem", redeem) == {"redeemed": True}
    assert us.submit("Redeem", redeem) == {"redeemed": False}
    assert (us.balance(alice), us.balance(bob)) == (3800, 1000)
    assert banks.supply()[(US, "USD")] == supply_before + 5000 - 200
    history = us.evaluate("GetAccountHistory", {"account_id": bob, "page_size": 1})
    assert [entry["kind"] for entry in history["entries"]] == ["redeem"]
    assert history["bookmark"]
    second = us.evaluate("GetAccountHistory", {"account_id": bob, "page_size": 5, "bookmark": history["bookmark"]})
    assert [(e["kind"], e["amount"]) for e in second["entries"]] == [("transfer_in", 1200)]
    assert second["bookmark"] == ""


def test_interbank_payment_completes(banks: Consortium) -> None:
    us, hk = banks[US], banks[HK]
    payer, payee = banks.payer_and_payee(US, HK, ("payer", "shop"), 10_000)
    key = banks.id("order-1")
    started = us.submit("InitiatePayment", us.payment_request(key, payer, HK, payee, 2500, remittance="INV 1"))
    assert started["status"] == "initiated" and started["created"] is True
    again = us.submit("InitiatePayment", us.payment_request(key, payer, HK, payee, 2500, remittance="INV 1"))
    created = started.pop("payment")
    assert again == {**started, "created": False}  # a repeat gets the id and status, no record
    payment_id = started["payment_id"]
    # The new payment's public record came back with it (no read-back needed), details excluded:
    # a chaincode response travels in the block that every org receives.
    assert created == banks[REG].evaluate("GetPayment", None, payment_id)
    assert created["status"] == "initiated" and "details" not in created and payer not in json.dumps(created)
    assert hk.submit("CompletePayment", {"payment_id": payment_id})["completed"] is True
    assert hk.submit("CompletePayment", {"payment_id": payment_id})["completed"] is False
    assert (us.balance(payer), hk.balance(payee)) == (7500, 2500)
    record = banks[SG].evaluate("GetPayment", None, payment_id)
    assert [step["status"] for step in record["timeline"]] == ["initiated", "completed"]
    details = hk.evaluate("GetPayment", {"details": True}, payment_id)["details"]
    assert details == {
        "payer_account": payer,
        "payer_jurisdiction": "US",
        "payee_account": payee,
        "remittance": "INV 1",
    }
    assert banks[SG].refused("CompletePayment", {"payment_id": payment_id}).reason == "not_authorized"


def test_a_payee_bank_completes_several_payments_in_one_transaction(banks: Consortium) -> None:
    """CompletePayments (decision 0037) on real peers: one transaction, each payment judged on its own,
    one supply change for the group, and the payees' books and the public records as after single
    completions."""
    us, hk = banks[US], banks[HK]
    payer, payee = banks.payer_and_payee(US, HK, ("group-payer", "group-shop"), 10_000)
    ids = [
        us.submit("InitiatePayment", us.payment_request(banks.id(f"group-{n}"), payer, HK, payee, 100 + n))[
            "payment_id"
        ]
        for n in range(3)
    ]
    supply_before = banks.supply()[(HK, "USD")]
    items = []
    for payment_id in ids:
        given = json.loads(
            hk.contract.evaluate_transaction("GetPaymentDetails", payment_id, endorsing_organizations=[US])
        )
        items.append({"payment_id": payment_id, "details": given["details"], "salt": given["salt"]})
    tampered = {**items[2], "details": {**items[2]["details"], "remittance": "changed"}}
    answer = hk.submit("CompletePayments", {"payments": [items[0], items[1], tampered]})
    assert answer["completed"] == 2
    assert answer["results"][:2] == [{"payment_id": pid, "status": "completed", "completed": True} for pid in ids[:2]]
    assert answer["results"][2]["error"]["code"] == "invalid_request"
    assert hk.balance(payee) == 100 + 101
    assert banks.supply()[(HK, "USD")] == supply_before + 201
    statuses = [banks[SG].evaluate("GetPayment", None, pid)["status"] for pid in ids]
    assert statuses == ["completed", "completed", "initiated"]
    # The one left out completes on its own afterwards.
    assert hk.submit("CompletePayment", {"payment_id": ids[2]})["completed"] is True
    assert hk.balance(payee) == 100 + 101 + 102


def test_a_payer_bank_initiates_several_payments_in_one_transaction(banks: Consortium) -> None:
    """InitiatePayments (decision 0038) on real peers: a payer named twice is debited against what its
    first debit left, a refused request refuses the group (nothing written), and the rest goes through
    in one transaction with one supply change; the payee bank then completes them as any payment."""
    us, hk, sg = banks[US], banks[HK], banks[SG]
    payer, payee = banks.payer_and_payee(US, HK, ("igroup-payer", "igroup-shop"), 1_000)
    pending = us.pending(payer)
    items = [us.payment_request(banks.id(f"igroup-{n}"), payer, HK, payee, amount)() for n, amount in
             enumerate((600, 500, 400))]  # fmt: skip
    refusal = us.refused("InitiatePayments", {"payments": items})
    assert (refusal.status, refusal.reason) == (409, "group_refused")
    listed = json.loads(refusal.message.split("[group_refused] ", 1)[1])["refused"]
    # 600 leaves 400: the 500 is refused, and the 400 after it fits once the 500 is taken out.
    assert [(item["position"], item["code"]) for item in listed] == [(1, "insufficient_funds")]
    assert us.balance(payer) == 1_000 and us.pending(payer) == pending  # nothing was written
    supply_before = banks.supply()[(US, "USD")]
    answer = us.submit("InitiatePayments", {"payments": [items[0], items[2]]})
    assert answer["initiated"] == 2
    ids = [result["payment_id"] for result in answer["results"]]
    assert us.balance(payer) == 0
    assert banks.supply()[(US, "USD")] == supply_before - 1_000
    for payment_id, amount in zip(ids, (600, 400), strict=True):
        record = sg.evaluate("GetPayment", None, payment_id)  # a third bank sees the public record
        assert (record["status"], record["amount"], record["payer_bank"]) == ("initiated", amount, US)
        raw = hk.contract.evaluate_transaction("GetPaymentDetails", payment_id, endorsing_organizations=[US])
        given = json.loads(raw)
        request = {"payment_id": payment_id, "details": given["details"], "salt": given["salt"]}
        assert hk.submit("CompletePayment", request)["completed"] is True
    assert hk.balance(payee) == 1_000


def test_rejected_payment_is_refunded(banks: Consortium) -> None:
    us, sg = banks[US], banks[SG]
    payer = banks.id("rp")
    us.open(payer, "US")
    us.issue(payer, 800)
    started = us.submit("InitiatePayment", us.payment_request(banks.id("o2"), payer, SG, banks.id("ghost"), 300))
    payment_id = started["payment_id"]
    refusal = sg.refused("CompletePayment", {"payment_id": payment_id})
    assert (refusal.status, refusal.reason) == (404, "unknown_account")
    sg.submit("RejectPayment", {"payment_id": payment_id, "reason": "unknown_account"})
    assert us.balance(payer) == 500
    assert us.submit("RefundPayment", {"payment_id": payment_id})["refunded"] is True
    assert us.submit("RefundPayment", {"payment_id": payment_id})["refunded"] is False
    assert us.balance(payer) == 800
    record = banks[REG].evaluate("GetPayment", None, payment_id)
    assert (record["status"], record["reason"]) == ("refunded", "unknown_account")


def test_stale_payment_is_refunded_after_the_timeout(banks: Consortium) -> None:
    us, hk, reg = banks[US], banks[HK], banks[REG]
    payer, payee = banks.payer_and_payee(US, HK, ("tp", "tshop"), 900)
    timeout = reg.evaluate("GetReferenceData")["payment_timeout_seconds"]
    reg.submit("SetPaymentTimeout", None, "2")
    try:
        payment_id = us.submit("InitiatePayment", us.payment_request(banks.id("o3"), payer, HK, payee, 400))[
            "payment_id"
        ]
        deadline = time.monotonic() + 30
        while True:  # wait until the timeout has passed by the transaction clock
            try:
                us.submit("RefundPayment", {"payment_id": payment_id}, retries=1)
                break
            except Refused as refusal:
                assert refusal.reason == "not_expired"
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        reg.submit("SetPaymentTimeout", None, str(timeout))
    record = reg.evaluate("GetPayment", None, payment_id)
    assert (record["status"], record["reason"]) == ("refunded", "expired")
    assert us.balance(payer) == 900
    assert hk.refused("CompletePayment", {"payment_id": payment_id}).reason == "invalid_state"


def test_cross_currency_payment(banks: Consortium) -> None:
    us, hk = banks[US], banks[HK]
    payer, payee = banks.payer_and_payee(US, HK, ("fxp", "fxs"), 10_000)
    before = banks.supply()
    request = us.payment_request(
        banks.id("fx"), payer, HK, payee, 10_000, payee_currency="HKD", payee_amount=78_125, rate="7.8125"
    )
    payment_id = us.submit("InitiatePayment", request)["payment_id"]
    hk.submit("CompletePayment", {"payment_id": payment_id})
    assert hk.balance(payee, "HKD") == 78_125
    record = banks[REG].evaluate("GetPayment", None, payment_id)
    assert (record["amount"], record["payee_currency"], record["payee_amount"], record["rate"]) == (
        10_000,
        "HKD",
        78_125,
        "7.8125",
    )
    after = banks.supply()
    assert after[(US, "USD")] - before[(US, "USD")] == -10_000
    assert after[(HK, "HKD")] - before[(HK, "HKD")] == 78_125


def test_corridor_policy_applies_to_transfers_and_payments(banks: Consortium) -> None:
    hk, sg = banks[HK], banks[SG]
    mainland_a, mainland_b, offshore = banks.id("cn-a"), banks.id("cn-b"), banks.id("hk-a")
    hk.open(mainland_a, "CN")
    hk.open(mainland_b, "CN")
    hk.open(offshore, "HK")
    hk.issue(mainland_a, 5000, "CNH")
    refusal = hk.refused("Transfer", hk.transfer_request(mainland_a, mainland_b, 100, banks.id("c1"), "CNH")())
    assert (refusal.status, refusal.reason) == (403, "corridor_forbidden")
    hk.submit("Transfer", hk.transfer_request(mainland_a, offshore, 100, banks.id("c2"), "CNH"))
    assert hk.balance(offshore, "CNH") == 100
    # Interbank: only the payee bank knows the payee's jurisdiction, so its chaincode checks the
    # corridor at completion, for both currencies of the payment (CNH out, USD in here).
    sg_mainland = banks.id("sg-cn")
    sg.open(sg_mainland, "CN")
    request = hk.payment_request(
        banks.id("cnh"),
        mainland_a,
        SG,
        sg_mainland,
        100,
        "CNH",
        payee_currency="USD",
        payee_amount=14,
        rate="0.14",
    )
    payment_id = hk.submit("InitiatePayment", request)["payment_id"]
    refusal = sg.refused("CompletePayment", {"payment_id": payment_id})
    assert (refusal.status, refusal.reason) == (403, "corridor_forbidden")
    sg.submit("RejectPayment", {"payment_id": payment_id, "reason": "corridor_forbidden"})
    hk.submit("RefundPayment", {"payment_id": payment_id})
    assert hk.balance(mainland_a, "CNH") == 4900


def test_settlement_cycle_nets_and_settles(banks: Consortium) -> None:
    us, hk, sg = banks[US], banks[HK], banks[SG]
    accounts = {bank: banks.id(f"settle-{bank}") for bank in (US, HK, SG)}
    for bank, account in accounts.items():
        banks[bank].open(account, bank[:2])
        banks[bank].issue(account, 100_000)

    def pay(payer_bank: str, payee_bank: str, amount: int, key: str) -> None:
        payer = banks[payer_bank]
        started = payer.submit(
            "InitiatePayment",
            payer.payment_request(banks.id(key), accounts[payer_bank], payee_bank, accounts[payee_bank], amount),
        )
        banks[payee_bank].submit("CompletePayment", {"payment_id": started["payment_id"]})

    # Settle whatever earlier tests (or other tools) left completed, so this cycle is ours alone.
    try:
        earlier = us.submit("OpenSettlementCycle", None, banks.id("before"))
        for bank in json.loads(json.dumps(earlier["positions"])):
            banks[bank].submit("ConfirmSettlement", None, banks.id("before"), "EARLIER-1")
    except Refused as refusal:
        assert refusal.reason == "nothing_to_settle"
    pay(US, HK, 1000, "s1")
    pay(HK, SG, 300, "s2")
    pay(SG, US, 200, "s3")
    cycle_id = banks.id("cycle")
    opened = banks[REG].submit("OpenSettlementCycle", None, cycle_id)
    assert opened["payments"] == 3
    assert opened["positions"] == {HK: {"USD": 700}, SG: {"USD": 100}, US: {"USD": -800}}
    assert us.submit("ConfirmSettlement", None, cycle_id, "FED-1")["status"] == "open"
    assert hk.submit("ConfirmSettlement", None, cycle_id, "CHATS-1")["status"] == "open"
    assert sg.submit("ConfirmSettlement", None, cycle_id, "MEPS-1")["status"] == "settled"
    cycle = banks[REG].evaluate("GetSettlementCycle", None, cycle_id)
    assert cycle["status"] == "settled" and cycle["settled_at"]
    assert cycle_id in [c["cycle_id"] for c in banks[REG].evaluate("ListSettlementCycles")["cycles"]]
    assert sg.refused("ConfirmSettlement", None, cycle_id, "MEPS-2").reason == "already_confirmed"


def test_list_payments_of_a_bank(banks: Consortium) -> None:
    us, sg = banks[US], banks[SG]
    payer, payee = banks.payer_and_payee(US, SG, ("lp", "ls"), 1000)
    ids = [
        us.submit("InitiatePayment", us.payment_request(banks.id(f"l{i}"), payer, SG, payee, 10 + i))["payment_id"]
        for i in range(3)
    ]
    sg.submit("CompletePayment", {"payment_id": ids[1]})
    page = sg.evaluate("ListPayments", None, json.dumps({"bank": SG, "page_size": 3}))
    assert [p["payment_id"] for p in page["payments"]] == list(reversed(ids))
    completed = sg.evaluate("ListPayments", None, json.dumps({"bank": US, "status": "completed", "page_size": 500}))
    assert ids[1] in [p["payment_id"] for p in completed["payments"]]
    assert ids[0] not in [p["payment_id"] for p in completed["payments"]]

    def listed(status: str) -> set[str]:
        # Statuses a bank still acts on come from the open-payment index (public writes and
        # deletes on the real ledger); other tests' payments may be listed too.
        query = json.dumps({"bank": SG, "status": status, "page_size": 500})
        return {p["payment_id"] for p in sg.evaluate("ListPayments", None, query)["payments"]} & set(ids)

    assert listed("initiated") == {ids[0], ids[2]}
    sg.submit("RejectPayment", {"payment_id": ids[0], "reason": "test_cleanup"})
    assert (listed("initiated"), listed("rejected")) == ({ids[2]}, {ids[0]})
    us.submit("RefundPayment", {"payment_id": ids[0]})
    sg.submit("RejectPayment", {"payment_id": ids[2], "reason": "test_cleanup"})
    us.submit("RefundPayment", {"payment_id": ids[2]})  # returns once every peer has the block
    assert listed("initiated") == listed("rejected") == set()


def test_events_tell_the_payee_bank_without_customer_data(banks: Consortium) -> None:
    us, hk = banks[US], banks[HK]
    payer, payee = banks.payer_and_payee(US, HK, ("ev-payer", "ev-shop"), 500, holder="Evelyn Eventful")
    outcome = us.submit_outcome(
        "InitiatePayment",
        us.payment_request(banks.id("ev"), payer, HK, payee, 100, remittance="secret remittance"),
    )
    payment_id = outcome.result["payment_id"]
    network = hk.gateway.get_network("tokens")
    found: list[ChaincodeEvent] = []
    with network.get_chaincode_events("deposit_token", start_block=outcome.block, timeout=30) as events:
        for event in events:
            found.append(event)
            if event.event_name == "PaymentInitiated" and json.loads(event.payload)["payment_id"] == payment_id:
                break
    event = found[-1]
    published = json.loads(event.payload)
    # The payer bank's token burned, reported with the transaction's time (decision 0030): no customer data.
    assert published.pop("supply")["changes"] == [{"issuer": US, "currency": "USD", "delta": -100}]
    assert published == {"payment_id": payment_id, "payer_bank": US, "payee_bank": HK}
    for seen in found:
        for secret in (payer, payee, "Evelyn", "secret remittance"):
            assert secret.encode() not in seen.payload
    hk.submit("CompletePayment", {"payment_id": payment_id})


def test_folding_supply_changes_keeps_every_peers_view(banks: Consortium) -> None:
    us, account = banks[US], banks.id("fold")
    us.open(account, "US")
    for _ in range(5):
        us.issue(account, 100)
    ids = us.evaluate("GetSupplyChanges", {"currency": "USD"})["change_ids"]
    assert len(ids) >= 5
    before = {org: banks[org].evaluate("GetSupply")["token_classes"] for org in (US, HK, REG)}

    result = us.submit("FoldSupply", {"currency": "USD", "change_ids": ids})

    assert result["folded"] == len(ids)
    after = us.evaluate("GetSupplyChanges", {"currency": "USD", "page_size": 1000})["change_ids"]
    assert set(after).isdisjoint(ids) and len(after) <= 1000 - len(ids) + 1
    # The same supply on the issuer's peer and, once the fold's private data reached them, everywhere.
    assert us.evaluate("GetSupply")["token_classes"] == before[US]
    for org in (HK, REG):
        deadline = time.monotonic() + 60
        while banks[org].evaluate("GetSupply")["token_classes"] != before[org] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert banks[org].evaluate("GetSupply")["token_classes"] == before[org], org
    # HKBank's fold names its own USD class, where USBank's change ids are not: nothing is folded.
    assert banks[HK].submit("FoldSupply", {"currency": "USD", "change_ids": after[:1]})["folded"] == 0
    assert us.evaluate("GetSupply")["token_classes"] == before[US]
    banks.assert_conserved()
