"""Payment versus payment: both legs or neither; refusal, expiry; an altered chaincode cannot split them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from chaincode.deposit_token import keys
from chaincode.deposit_token.collections import supply_collection
from chaincode.deposit_token.ledger import iso
from chaincode.deposit_token.pvp import pvp_id_for
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused


def _setup(ledger: Ledger) -> None:
    ledger.open(US, "alice", "US", holder="Alice Importer")  # pays USD at USBank
    ledger.open(US, "bob-usd", "HK", holder="Bob Exporter")  # Bob's USD account at USBank
    ledger.open(HK, "bob", "HK", holder="Bob Exporter")  # pays HKD at HKBank
    ledger.open(HK, "alice-hkd", "US", holder="Alice Importer")  # Alice's HKD account at HKBank
    ledger.issue(US, "alice", 200_000)
    ledger.issue(HK, "bob", 2_000_000, "HKD")


def _propose(ledger: Ledger, key: str = "fx-1", seconds: float = 600, **extra: Any) -> dict[str, Any]:
    request = {
        "idempotency_key": key, "payer_account": "alice", "payee_account": "bob-usd", "currency": "USD",
        "amount": 100_000, "counter_bank": HK, "counter_payer_account": "bob",
        "counter_payee_account": "alice-hkd", "counter_currency": "HKD", "counter_amount": 780_000,
        "rate": "7.8", "expires_at": iso(ledger.channel.now + dt.timedelta(seconds=seconds)),
        "pending_credits": ledger.pending(US, "alice"), **extra,
    }  # fmt: skip
    result: dict[str, Any] = ledger.submit(US, "ProposePvp", request)
    return result


def _accept(ledger: Ledger, pvp_id: str, account: str = "bob") -> Any:
    return ledger.submit(HK, "AcceptPvp", {"pvp_id": pvp_id, "payer_account": account,
                                           "pending_credits": ledger.pending(HK, account)})  # fmt: skip


def test_both_legs_lock_then_both_deliver(ledger: Ledger) -> None:
    _setup(ledger)
    proposed = _propose(ledger)
    pvp_id = proposed["pvp_id"]
    assert pvp_id == pvp_id_for(US, "fx-1") and proposed["status"] == "proposed"
    assert ledger.balance(US, "alice") == 100_000
    public = ledger.query(SG, "GetPvp", args=[pvp_id])
    assert "alice" not in json.dumps(public) and "bob" not in json.dumps(public)
    ledger.assert_conserved()
    # Nothing is delivered while only one leg is locked.
    with pytest.raises(Refused, match="both legs"):
        ledger.submit(US, "DeliverPvpLeg", {"pvp_id": pvp_id})
    assert _propose(ledger)["created"] is False  # a retry
    assert _accept(ledger, pvp_id)["status"] == "locked"
    assert ledger.balance(HK, "bob", "HKD") == 1_220_000
    ledger.assert_conserved()
    # Once both are locked there is no refund, even after the expiry.
    ledger.channel.advance(601)
    with pytest.raises(Refused, match="can only be delivered"):
        ledger.submit(US, "RefundPvpLeg", {"pvp_id": pvp_id})
    assert ledger.submit(HK, "DeliverPvpLeg", {"pvp_id": pvp_id})["status"] == "locked"
    assert ledger.submit(US, "DeliverPvpLeg", {"pvp_id": pvp_id})["status"] == "settled"
    assert ledger.submit(US, "DeliverPvpLeg", {"pvp_id": pvp_id})["delivered"] is False
    assert ledger.balance(US, "bob-usd") == 100_000 and ledger.balance(HK, "alice-hkd", "HKD") == 780_000
    assert ledger.query(US, "ListOpenPvps", args=[US])["pvps"] == []
    ledger.assert_conserved()


def test_a_refusal_refunds_the_proposer(ledger: Ledger) -> None:
    _setup(ledger)
    pvp_id = _propose(ledger)["pvp_id"]
    with pytest.raises(Refused, match="not_expired"):
        ledger.submit(US, "RefundPvpLeg", {"pvp_id": pvp_id})
    ledger.submit(HK, "RefusePvp", {"pvp_id": pvp_id, "reason": "rate_not_agreed"})
    with pytest.raises(Refused, match="invalid_state"):
        _accept(ledger, pvp_id)
    refunded = ledger.submit(US, "RefundPvpLeg", {"pvp_id": pvp_id})
    assert refunded["status"] == "refunded" and ledger.balance(US, "alice") == 200_000
    assert ledger.balance(HK, "bob", "HKD") == 2_000_000
    ledger.assert_conserved()


def test_expiry_refunds_and_a_late_accept_is_refused(ledger: Ledger) -> None:
    _setup(ledger)
    pvp_id = _propose(ledger, seconds=30)["pvp_id"]
    ledger.channel.advance(31)
    with pytest.raises(Refused, match="expired"):
        _accept(ledger, pvp_id)
    assert ledger.submit(US, "RefundPvpLeg", {"pvp_id": pvp_id})["pvp"]["reason"] == "expired"
    assert ledger.balance(US, "alice") == 200_000
    ledger.assert_conserved()


def test_accept_and_refund_race_only_one_commits(ledger: Ledger) -> None:
    _setup(ledger)
    pvp_id = _propose(ledger, seconds=30)["pvp_id"]
    ledger.channel.advance(29)
    accept = ledger.simulate(HK, "AcceptPvp", {"pvp_id": pvp_id, "payer_account": "bob",
                                               "pending_credits": ledger.pending(HK, "bob")})  # fmt: skip
    ledger.channel.advance(2)
    refund = ledger.simulate(US, "RefundPvpLeg", {"pvp_id": pvp_id})
    assert accept.ok and refund.ok
    # In one block the second move of the record fails its policy check (the first changed the policy).
    assert ledger.channel.commit([accept, refund]) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]
    with pytest.raises(Refused, match="can only be delivered"):
        ledger.submit(US, "RefundPvpLeg", {"pvp_id": pvp_id})
    ledger.assert_conserved()


def test_only_the_named_counterparty_accepts(ledger: Ledger) -> None:
    _setup(ledger)
    ledger.open(HK, "mallory", "HK")
    ledger.issue(HK, "mallory", 1_000_000, "HKD")
    pvp_id = _propose(ledger)["pvp_id"]
    with pytest.raises(Refused, match="not_authorized"):
        _accept(ledger, pvp_id, "mallory")
    with pytest.raises(Refused, match="not_authorized"):
        ledger.submit(SG, "RefusePvp", {"pvp_id": pvp_id, "reason": "nope"})
    with pytest.raises(Refused, match="not_authorized"):
        ledger.submit(US, "AcceptPvp", {"pvp_id": pvp_id, "payer_account": "alice"})


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"counter_amount": 780_001}, "invalid_request"),
        ({"counter_currency": "USD", "counter_amount": 100_000, "rate": "1"}, "invalid_request"),
        ({"counter_bank": US}, "invalid_request"),
        ({"counter_currency": "SGD"}, "currency_not_issued"),
        ({"payee_account": "ghost"}, "unknown_account"),
        ({"amount": 300_000, "counter_amount": 2_340_000}, "insufficient_funds"),
        ({"rate": "seven"}, "invalid_request"),
    ],
)
def test_bad_offers_are_refused_and_change_nothing(ledger: Ledger, extra: dict[str, Any], code: str) -> None:
    _setup(ledger)
    request = {
        "idempotency_key": "bad", "payer_account": "alice", "payee_account": "bob-usd", "currency": "USD",
        "amount": 100_000, "counter_bank": HK, "counter_payer_account": "bob",
        "counter_payee_account": "alice-hkd", "counter_currency": "HKD", "counter_amount": 780_000,
        "rate": "7.8", "expires_at": iso(ledger.channel.now + dt.timedelta(seconds=60)), **extra,
    }  # fmt: skip
    message = ledger.refused(US, "ProposePvp", request)
    assert message.startswith(f"[{code}]"), message


def test_markers_are_in_the_supply_collections(ledger: Ledger) -> None:
    _setup(ledger)
    pvp_id = _propose(ledger)["pvp_id"]
    _accept(ledger, pvp_id)
    for bank in (US, HK):
        assert keys.pvp_lock(pvp_id) in ledger.channel.state[supply_collection(bank)]
    assert ledger.query(REG, "GetPvp", args=[pvp_id])["status"] == "locked"


def test_the_acceptor_locks_only_with_the_proposers_accounts(ledger: Ledger) -> None:
    """The four accounts come from the proposer bank's peer (docs/decisions/0036); the contract
    checks them against the salted hash in the public record before the acceptor's leg moves."""
    _setup(ledger)
    pvp_id = _propose(ledger)["pvp_id"]
    with pytest.raises(Refused, match=r"^\[not_authorized\]"):
        ledger.query(US, "GetPvpDetails", args=[pvp_id], creator=SG)
    given = ledger.query(US, "GetPvpDetails", args=[pvp_id], creator=HK)
    assert given["details"]["counter_payee_account"] == "alice-hkd"
    # HKBank's books do not hold them before it accepts: the gateway asks USBank's peer.
    assert ledger.query(HK, "GetPvp", {"details": True}, args=[pvp_id])["details"] is None
    forged = {**given["details"], "counter_payee_account": "bob"}  # Bob pays himself
    message = ledger.refused(
        HK, "AcceptPvp",
        {"pvp_id": pvp_id, "payer_account": "bob", "details": forged, "salt": given["salt"],
         "pending_credits": ledger.pending(HK, "bob")},
    )  # fmt: skip
    assert message.startswith("[invalid_request] 'details' and 'salt' do not match the public hash of PvP")
    _accept(ledger, pvp_id)
    assert ledger.query(HK, "GetPvp", {"details": True}, args=[pvp_id])["details"] == given["details"]
