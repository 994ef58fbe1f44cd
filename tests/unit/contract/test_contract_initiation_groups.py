"""InitiatePayments: a payer bank initiates several payments in one transaction (decision 0038).

The property every test leans on: a committed group leaves the ledger as the same requests would,
committed one after another (each sees the ones before it), and a group with any refused item
changes nothing at all.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chaincode.deposit_token.collections import books_collection
from chaincode.deposit_token.keys import corridor_usage
from chaincode.deposit_token.payments import MAX_INITIATION_GROUP
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused, new_ledger


def _setup(ledger: Ledger) -> None:
    ledger.open(US, "alice", "US", holder="Alice Example")
    ledger.open(US, "bob", "US", holder="Bob Example")
    ledger.open(HK, "shop", "HK", holder="Shop Example")
    ledger.open(SG, "sg-co", "SG", holder="SG Company")
    ledger.issue(US, "alice", 10_000)
    ledger.issue(US, "bob", 5_000)


def _request(
    ledger: Ledger, key: str, amount: int, payer: str = "alice", payee_bank: str = HK, payee: str = "shop"
) -> dict[str, Any]:
    """An InitiatePayment request listing the payer's pending credits: in a group the first debit
    folds them and the next ones of the same payer find them gone."""
    return {
        "idempotency_key": key, "payer_account": payer, "payee_bank": payee_bank, "payee_account": payee,
        "currency": "USD", "amount": amount, "pending_credits": ledger.pending(US, payer),
    }  # fmt: skip


def _group_refusals(message: str) -> list[dict[str, Any]]:
    assert message.startswith("[group_refused] "), message
    refused: list[dict[str, Any]] = json.loads(message.removeprefix("[group_refused] "))["refused"]
    return refused


def test_a_group_initiates_each_payment_with_one_supply_change_and_one_event(ledger: Ledger) -> None:
    _setup(ledger)
    items = [_request(ledger, "a-1", 1000), _request(ledger, "b-1", 700, payer="bob"), _request(ledger, "a-2", 2500),
             _request(ledger, "a-3", 300, payee_bank=SG, payee="sg-co")]  # fmt: skip
    result = ledger.submit(US, "InitiatePayments", {"payments": items})
    assert result["initiated"] == 4
    assert [answer["created"] for answer in result["results"]] == [True] * 4
    ids = [answer["payment_id"] for answer in result["results"]]
    # The same answer InitiatePayment gives, item by item (the public record, never the details).
    single = new_ledger()
    _setup(single)
    alone = single.submit(US, "InitiatePayment", items[0])
    assert alone.keys() == result["results"][0].keys()
    assert alone["payment_id"] == ids[0]
    assert "details" not in result["results"][0]["payment"]
    # alice paid three times, each debit against what the one before left.
    assert ledger.balance(US, "alice") == 10_000 - 1000 - 2500 - 300
    assert ledger.balance(US, "bob") == 5_000 - 700
    assert ledger.supply()[(US, "USD")] == 15_000 - 4500
    event = ledger.channel.events[-1]
    payload = json.loads(event.payload)
    assert event.name == "PaymentsInitiated"
    assert payload["payer_bank"] == US
    assert payload["payments"] == [
        {"payment_id": pid, "payer_bank": US, "payee_bank": bank}
        for pid, bank in zip(ids, (HK, HK, HK, SG), strict=True)
    ]
    assert payload["supply"]["changes"] == [{"issuer": US, "currency": "USD", "delta": -4500}]
    for pid, amount in zip(ids, (1000, 700, 2500, 300), strict=True):
        record = ledger.query(REG, "GetPayment", args=[pid])
        assert (record["status"], record["amount"]) == ("initiated", amount)
    ledger.assert_conserved()
    # The payee banks complete them as they would any payment.
    for pid in ids:
        payee_bank = HK if pid != ids[3] else SG
        assert ledger.submit(payee_bank, "CompletePayment", {"payment_id": pid})["completed"] is True
    assert ledger.balance(HK, "shop") == 4200
    assert ledger.balance(SG, "sg-co") == 300
    ledger.assert_conserved()


def test_a_repeated_group_and_a_key_named_twice_get_the_first_answer(ledger: Ledger) -> None:
    _setup(ledger)
    twice = [_request(ledger, "a-1", 1000), _request(ledger, "a-1", 1000)]
    first = ledger.submit(US, "InitiatePayments", {"payments": twice})
    assert [answer["created"] for answer in first["results"]] == [True, False]
    assert first["results"][1] == {"payment_id": first["results"][0]["payment_id"], "status": "initiated",
                                   "created": False}  # fmt: skip
    assert first["initiated"] == 1
    assert ledger.balance(US, "alice") == 9_000
    events = len(ledger.channel.events)
    again = ledger.submit(US, "InitiatePayments", {"payments": [_request(ledger, "a-1", 1000)]})
    assert again == {"results": [first["results"][1]], "initiated": 0}
    assert len(ledger.channel.events) == events  # nothing new: no event
    assert ledger.balance(US, "alice") == 9_000
    # The same key for a different payment is refused, in a group as alone.
    refused = _group_refusals(ledger.refused(US, "InitiatePayments", {"payments": [_request(ledger, "a-1", 999)]}))
    assert [(item["position"], item["code"]) for item in refused] == [(0, "duplicate_reference")]
    ledger.assert_conserved()


def test_any_refused_item_refuses_the_group_and_names_each_one(ledger: Ledger) -> None:
    _setup(ledger)
    ledger.submit(US, "FreezeAccount", {"account_id": "bob", "reason": "fraud review"})
    items: list[Any] = [
        _request(ledger, "a-1", 6000),
        _request(ledger, "b-1", 100, payer="bob"),  # frozen
        _request(ledger, "a-2", 5000),  # what the first left is 4000: refused
        "not an object",
        _request(ledger, "a-3", 4000),  # fits only because the refused a-2 is undone
        _request(ledger, "x-1", 100, payee_bank=US),  # to its own bank
    ]
    refused = _group_refusals(ledger.refused(US, "InitiatePayments", {"payments": items}))
    assert [(item["position"], item["code"]) for item in refused] == [
        (1, "account_frozen"), (2, "insufficient_funds"), (3, "invalid_request"), (5, "invalid_request"),
    ]  # fmt: skip
    assert "4000 USD is below the debit 5000" in refused[1]["message"]
    # The rest, submitted again without the refused items, goes through exactly as judged.
    rest = [items[0], items[4]]
    assert ledger.submit(US, "InitiatePayments", {"payments": rest})["initiated"] == 2
    assert ledger.balance(US, "alice") == 0
    ledger.assert_conserved()


def test_a_refused_items_corridor_count_is_undone(ledger: Ledger) -> None:
    """apply_caps writes the day's corridor usage before the debit can refuse: that write must go."""
    _setup(ledger)
    cap = {"currency": "USD", "from": "US", "to": "HK", "daily": 3000}
    ledger.submit(REG, "SetCorridorPolicy", args=[json.dumps({"rules": [], "caps": [cap]})])
    ledger.submit(US, "FreezeAccount", {"account_id": "bob", "reason": "fraud review"})
    # b-1 passes the cap check and counts itself for the day, then its debit is refused (frozen):
    # a-2 fits under the cap only if that count is undone; a-3 is over it after a-1 and a-2.
    items = [_request(ledger, "a-1", 2000), _request(ledger, "b-1", 1000, payer="bob"), _request(ledger, "a-2", 1000),
             _request(ledger, "a-3", 1)]  # fmt: skip
    refused = _group_refusals(ledger.refused(US, "InitiatePayments", {"payments": items}))
    assert [(item["position"], item["code"]) for item in refused] == [
        (1, "account_frozen"), (3, "corridor_cap_exceeded"),
    ]  # fmt: skip
    assert ledger.submit(US, "InitiatePayments", {"payments": items[:1] + items[2:3]})["initiated"] == 2
    usage_key = corridor_usage("USD", "US", "HK", ledger.channel.now.date().isoformat())
    usage = json.loads(ledger.channel.state[books_collection(US)][usage_key].value)
    assert usage == {"total": 3000, "payments": 2}
    ledger.assert_conserved()


def test_the_payer_bank_alone_initiates_and_bad_groups_are_refused(ledger: Ledger) -> None:
    _setup(ledger)
    # HKBank's client cannot debit USBank's customers: its own books hold no alice.
    to_sg = {"payments": [_request(ledger, "a-1", 10, payee_bank=SG, payee="sg-co")]}
    refused = _group_refusals(ledger.refused(HK, "InitiatePayments", to_sg))
    assert [(item["position"], item["code"]) for item in refused] == [(0, "unknown_account")]
    one = {"payments": [_request(ledger, "a-1", 10)]}
    assert ledger.refused(REG, "InitiatePayments", one).startswith("[not_authorized]")
    for payments in ([], "text", None, [_request(ledger, f"k{n}", 1) for n in range(MAX_INITIATION_GROUP + 1)]):
        message = ledger.refused(US, "InitiatePayments", {"payments": payments})
        assert message.startswith("[invalid_request] 'payments' must be a list of 1 to"), message
    assert ledger.refused(US, "InitiatePayments", {"payments": [_request(ledger, "a-1", 10)], "extra": 1}).startswith(
        "[invalid_request] unknown field 'extra'"
    )
    assert ledger.balance(US, "alice") == 10_000
    ledger.assert_conserved()


def _state(ledger: Ledger) -> dict[str, Any]:
    """What the payments left, free of transaction ids and times: balances, supply, records, usage."""
    records = ledger.query(REG, "ListPayments", args=[json.dumps({"page_size": 200})])["payments"]
    return {
        "balances": {account: ledger.balance(US, account) for account in ("alice", "bob")},
        "supply": ledger.supply(),
        "payments": sorted((r["payment_id"], r["amount"], r["status"], r["payee_bank"]) for r in records),
    }


def test_a_group_ends_where_the_same_requests_one_by_one_end() -> None:
    """Random groups (a payer named several times, keys repeated, some refused) against the same
    requests as single transactions, refusals skipped: the ledgers must agree."""
    for seed in range(8):
        rng = random.Random(seed)
        grouped, one_by_one = new_ledger(), new_ledger()
        for ledger in (grouped, one_by_one):
            _setup(ledger)
        for _round in range(3):
            specs = [
                (f"k{rng.randrange(12)}", rng.choice((1, 500, 1500, 4000)), rng.choice(("alice", "bob")))
                for _ in range(rng.randrange(1, 9))
            ]
            expected_refused = []
            for position, (key, amount, payer) in enumerate(specs):
                try:
                    one_by_one.submit(US, "InitiatePayment", _request(one_by_one, key, amount, payer))
                except Refused:
                    expected_refused.append(position)
            items = [_request(grouped, key, amount, payer) for key, amount, payer in specs]
            try:
                grouped.submit(US, "InitiatePayments", {"payments": items})
                refused_positions: list[int] = []
            except Refused as refusal:
                refused_positions = [item["position"] for item in _group_refusals(str(refusal))]
                rest = [item for position, item in enumerate(items) if position not in refused_positions]
                if rest:
                    grouped.submit(US, "InitiatePayments", {"payments": rest})
            assert refused_positions == expected_refused, seed
        assert _state(grouped) == _state(one_by_one), seed
        grouped.assert_conserved()


def test_another_banks_client_gets_nothing_of_the_payer_banks_books(ledger: Ledger) -> None:
    """Run on USBank's peer by HKBank's client, a group naming alice reads and writes none of
    USBank's books (the contract debits the caller's bank only; decision 0036's sweep, for groups)."""
    _setup(ledger)
    item = _request(ledger, "a-1", 100)
    simulation = ledger.channel.simulate(US, "InitiatePayments", [], {"request": {"payments": [item]}}, creator=HK)
    assert not simulation.ok
    touched = [key for key in (*simulation.rwset.reads, *simulation.rwset.writes) if key[0] == books_collection(US)]
    assert touched == []
    assert "Alice" not in simulation.message


def test_a_groups_reads_take_as_many_requests_to_the_peer_whatever_its_size(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request from the chaincode to its peer is a round trip on the shim's stream: a group
    reads what its items need in a fixed number of them, not about three per item."""
    from chaincode.deposit_token.testing import MemoryStub

    _setup(ledger)
    for account in ("alice", "bob"):
        ledger.submit(US, "ConsolidateAccount", {"account_id": account, "pending_credits": ledger.pending(US, account)})
    requests: list[str] = []
    inside: list[bool] = []  # the memory stub answers a multiple read with single ones: one request
    for name in ("get_state", "get_state_multiple", "get_private_data", "get_private_data_multiple"):
        original = getattr(MemoryStub, name)

        def counted(stub: MemoryStub, *args: Any, _name: str = name, _original: Any = original) -> Any:
            if inside:
                return _original(stub, *args)
            requests.append(_name)
            inside.append(True)
            try:
                return _original(stub, *args)
            finally:
                inside.pop()

        monkeypatch.setattr(MemoryStub, name, counted)
    sizes = {}
    for size in (2, 12):
        items = [_request(ledger, f"s{size}-{n}", 10, payer=("alice", "bob")[n % 2]) for n in range(size)]
        requests.clear()
        assert ledger.submit(US, "InitiatePayments", {"payments": items})["initiated"] == size
        sizes[size] = len(requests)
    assert sizes[2] == sizes[12] <= 4, (sizes, requests)
