"""The regulator's corridor policy: versions and their history, caps at initiation, a change
that applies to the next payment only, and the payment list's filters over public records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chaincode.deposit_token import corridor
from chaincode.deposit_token.collections import books_collection
from chaincode.deposit_token.keys import corridor_usage
from chaincode.deposit_token.testing import ENDORSEMENT_POLICY_FAILURE, VALID, RWSet, Simulation
from chaincode.shim.contract import ContractRouter
from tests.integration.rogue_deposit_token import RogueDepositTokenContract
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused

ROGUE = ContractRouter([RogueDepositTokenContract()])
CNH_RULE = {"currency": "CNH", "cross_border_only": True}


def _policy(ledger: Ledger, **changes: Any) -> dict[str, Any]:
    body = {"rules": [CNH_RULE], **changes}
    result: dict[str, Any] = ledger.submit(REG, "SetCorridorPolicy", args=[json.dumps(body)])
    return result


def _customers(ledger: Ledger, amount: int = 1_000_000) -> None:
    """alice at USBank (US) with USD; shop at HKBank (HK); us-branch at HKBank, a US customer."""
    ledger.open(US, "alice", "US")
    ledger.open(HK, "shop", "HK")
    ledger.open(HK, "us-branch", "US")
    ledger.open(SG, "sg-co", "SG")
    ledger.issue(US, "alice", amount)
    ledger.issue(SG, "sg-co", amount)


def _request(ledger: Ledger, key: str, amount: int, payee: str = "shop", payer_bank: str = US,
             payer: str = "alice", payee_bank: str = HK) -> dict[str, Any]:  # fmt: skip
    return {
        "idempotency_key": key,
        "payer_account": payer,
        "payee_bank": payee_bank,
        "payee_account": payee,
        "currency": "USD",
        "amount": amount,
        "pending_credits": ledger.pending(payer_bank, payer),
    }


def _pay(ledger: Ledger, key: str, amount: int, **extra: Any) -> str:
    payer_bank = extra.get("payer_bank", US)
    payment_id: str = ledger.submit(payer_bank, "InitiatePayment", _request(ledger, key, amount, **extra))["payment_id"]
    return payment_id


# -- versions and history ----------------------------------------------------------


def test_every_change_is_a_new_version_and_the_history_keeps_them_all(ledger: Ledger) -> None:
    first = ledger.query(US, "GetCorridorPolicy")
    assert (first["version"], first["rules"], first["caps"], first["note"]) == (1, [CNH_RULE], [], None)
    init_tx = first["tx_id"]
    ledger.channel.advance(60)
    second = _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "per_payment": 500}],
                     note="USD outflow to HK capped (circular 2025-3)")  # fmt: skip
    assert second["version"] == 2
    assert second["caps"] == [{"currency": "USD", "from": "US", "to": "HK", "per_payment": 500, "daily": None}]
    assert second["note"] == "USD outflow to HK capped (circular 2025-3)"
    assert second["changed_at"] == "2025-01-06T09:01:00.000000Z"
    assert "previous" not in second
    event = ledger.channel.events[-1]
    assert (event.name, json.loads(event.payload)) == (
        "CorridorPolicyChanged",
        {"version": 2, "currencies": ["CNH"], "caps": ["USD US->HK"]},
    )
    _policy(ledger)
    history = ledger.query(SG, "GetCorridorPolicyHistory")["versions"]
    assert [v["version"] for v in history] == [3, 2, 1]
    assert history[1] == second
    assert history[2]["tx_id"] == init_tx and history[2]["caps"] == []
    assert (
        history[0] == ledger.query(SG, "GetCorridorPolicy") == ledger.query(SG, "GetReferenceData")["corridor_policy"]
    )


def test_a_change_must_start_from_the_version_in_force(ledger: Ledger) -> None:
    _policy(ledger)
    stale = json.dumps({"rules": [], "base_version": 1})
    assert ledger.refused(REG, "SetCorridorPolicy", args=[stale]).startswith(
        "[invalid_state] the corridor policy is at version 2, not 1"
    )
    assert _policy(ledger, base_version=2)["version"] == 3


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"rules": [], "caps": {}}, "[invalid_request] 'caps' must be a list"),
        ({"rules": [], "caps": [{"currency": "USD", "from": "US", "to": "HK"}]}, "[invalid_request] 'caps[0]' needs"),
        ({"rules": [], "caps": [{"currency": "XXX", "from": "US", "to": "HK", "daily": 1}]}, "[unknown_currency]"),
        ({"rules": [], "caps": [{"currency": "USD", "from": "us", "to": "HK", "daily": 1}]},
         "[invalid_request] 'caps[0].from' must be 2 to 4 capital letters"),
        ({"rules": [], "caps": [{"currency": "USD", "from": "US", "to": "HK", "daily": "1.00"}]},
         "[invalid_amount] 'caps[0].daily' must be a JSON integer"),
        ({"rules": [], "caps": [{"currency": "USD", "from": "US", "to": "HK", "daily": 0}]},
         "[invalid_amount] 'caps[0].daily' must be positive"),
        ({"rules": [], "caps": [{"currency": "USD", "from": "US", "to": "HK", "daily": 5, "weekly": 9}]},
         "[invalid_request] 'caps[0]' must be an object of"),
        ({"rules": [], "caps": [{"currency": "USD", "from": "US", "to": "HK", "daily": 5}] * 2},
         "[invalid_request] 'caps[1]': USD US->HK has a cap already"),
        ({"rules": [], "note": "x" * 201}, "[invalid_request] 'note' must be at most 200 characters"),
        ({"rules": [], "base_version": 0}, "[invalid_request] 'base_version' must be the version number"),
        ({"rules": [], "extra": 1}, "[invalid_request] a corridor policy is an object with 'rules'"),
    ],
)  # fmt: skip
def test_bad_policies_are_refused_by_name(ledger: Ledger, policy: dict[str, Any], expected: str) -> None:
    assert ledger.refused(REG, "SetCorridorPolicy", args=[json.dumps(policy)]).startswith(expected)


def test_no_bank_can_change_the_policy_even_with_altered_chaincode(ledger: Ledger) -> None:
    body = json.dumps({"rules": []})
    assert ledger.refused(HK, "SetCorridorPolicy", args=[body]) == (
        "[not_authorized] only the regulator may change the corridor policy"
    )
    # The honest function run by a bank's altered chaincode on its own peer: Fabric refuses the write.
    simulation = ledger.channel.simulate(HK, "RogueCorridor", [body], router=ROGUE)
    assert ledger.channel.commit([simulation]) == [ENDORSEMENT_POLICY_FAILURE]
    _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "per_payment": 100}])
    # A version planted where archived versions live is a new key, valid to write, but no version in
    # force links to it, so the history and the payments never see it.
    planted = ledger.channel.simulate(HK, "RogueArchiveCorridor", ["f" * 64, json.dumps({"rules": []})], router=ROGUE)
    assert ledger.channel.commit([planted]) == [VALID]
    history = ledger.query(REG, "GetCorridorPolicyHistory")["versions"]
    assert [(v["version"], v["rules"]) for v in history] == [(2, [CNH_RULE]), (1, [CNH_RULE])]


# -- caps ----------------------------------------------------------------------------


def test_a_payment_above_the_per_payment_cap_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    _customers(ledger)
    _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "per_payment": 50_000}])
    message = ledger.refused(US, "InitiatePayment", _request(ledger, "big", 50_001))
    assert message == (
        "[corridor_cap_exceeded] corridor cap USD US->HK (policy version 2): 50001 is above the 50000 "
        "allowed per payment"
    )
    payment_id = _pay(ledger, "at-cap", 50_000)
    assert ledger.query(REG, "GetPayment", args=[payment_id])["corridor_version"] == 2
    # Directional, and per corridor: HK->US and SG->HK are not capped by a US->HK cap.
    ledger.open(US, "us-shop", "US")
    _pay(ledger, "sg", 90_000, payer_bank=SG, payer="sg-co")
    ledger.issue(HK, "shop", 90_000, currency="USD")
    _pay(ledger, "back", 90_000, payer_bank=HK, payer="shop", payee_bank=US, payee="us-shop")
    ledger.assert_conserved()


def test_the_daily_cap_counts_what_the_payer_bank_sent_that_utc_day(ledger: Ledger) -> None:
    _customers(ledger)
    _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "daily": 100_000}])
    first = _pay(ledger, "d1", 60_000)
    ledger.submit(HK, "RejectPayment", {"payment_id": first, "reason": "unknown_account"})
    ledger.submit(US, "RefundPayment", {"payment_id": first})
    _pay(ledger, "d2", 30_000)
    # The refunded payment still counts: 90 000 went out today.
    message = ledger.refused(US, "InitiatePayment", _request(ledger, "d3", 10_001))
    assert message == (
        "[corridor_cap_exceeded] corridor cap USD US->HK (policy version 2): USBankMSP sent 90000 in this "
        "corridor on 2025-01-06 (UTC); 10001 more would pass the daily cap of 100000"
    )
    _pay(ledger, "d4", 10_000)
    assert ledger.refused(US, "InitiatePayment", _request(ledger, "d5", 1)).startswith("[corridor_cap_exceeded]")
    # A retry of a payment already made is answered, not counted again.
    assert ledger.submit(US, "InitiatePayment", _request(ledger, "d4", 10_000))["created"] is False
    ledger.channel.advance(15 * 3600)  # 00:00 UTC has passed
    _pay(ledger, "next-day", 100_000)
    ledger.assert_conserved()


def test_another_banks_altered_chaincode_cannot_reset_a_banks_daily_count(ledger: Ledger) -> None:
    _customers(ledger)
    _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "daily": 100}])
    _pay(ledger, "d1", 100)
    reset = ledger.channel.simulate(HK, "RogueResetCorridorUsage", [US, "USD", "US", "HK", "2025-01-06"], router=ROGUE)
    # The books are an implicit collection: the simulation goes through, validation refuses it.
    assert reset.status == 200
    assert ledger.channel.commit([reset]) == [ENDORSEMENT_POLICY_FAILURE]
    # So does a hand-made write set endorsed by HK alone.
    key = (books_collection(US), corridor_usage("USD", "US", "HK", "2025-01-06"))
    forged = Simulation("f" * 64, "RogueResetCorridorUsage", 200, "", b"", None, RWSet(writes={key: b"{}"}), {HK})
    assert ledger.channel.commit([forged]) == [ENDORSEMENT_POLICY_FAILURE]
    assert ledger.refused(US, "InitiatePayment", _request(ledger, "d2", 1)).startswith("[corridor_cap_exceeded]")


def test_the_payee_bank_checks_the_per_payment_cap_again(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payer bank whose altered chaincode skips the caps gets its payment rejected by the payee bank."""
    _customers(ledger)
    _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "per_payment": 1000}])
    with monkeypatch.context() as patched:
        patched.setattr(corridor, "apply_caps", lambda *args, **kwargs: None)
        payment_id = _pay(ledger, "skipped", 5000)
    with pytest.raises(Refused, match=r"^\[corridor_forbidden\] corridor cap USD US->HK \(policy version 2\)"):
        ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})


# -- a change applies to the next payment, not to one under way ---------------------------


def test_a_rule_change_applies_to_the_next_payment_and_not_to_one_already_initiated(ledger: Ledger) -> None:
    _customers(ledger)
    under_way = _pay(ledger, "before", 100, payee="us-branch")
    # USD becomes cross-border only: us-branch is a US account, like alice's.
    _policy(ledger, rules=[CNH_RULE, {"currency": "USD", "cross_border_only": True}])
    _policy(ledger, rules=[CNH_RULE, {"currency": "USD", "cross_border_only": True}], note="restated")
    assert ledger.submit(HK, "CompletePayment", {"payment_id": under_way})["completed"] is True
    assert ledger.query(REG, "GetPayment", args=[under_way])["corridor_version"] == 1
    after = _pay(ledger, "after", 100, payee="us-branch")
    with pytest.raises(Refused, match=r"^\[corridor_forbidden\] USD is cross-border only.*policy version 3"):
        ledger.submit(HK, "CompletePayment", {"payment_id": after})
    ledger.assert_conserved()


def test_a_payer_outside_every_allowed_pair_is_refused_at_initiation(ledger: Ledger) -> None:
    _customers(ledger)
    under_way = _pay(ledger, "before", 100)
    _policy(ledger, rules=[CNH_RULE, {"currency": "USD", "allowed": [["SG", "HK"]]}])
    assert ledger.refused(US, "InitiatePayment", _request(ledger, "after", 100)).startswith(
        "[corridor_forbidden] USD may move only between the jurisdiction pairs the corridor policy lists, "
        "and none includes the payer's jurisdiction (corridor rule USD, policy version 2)"
    )
    assert ledger.submit(HK, "CompletePayment", {"payment_id": under_way})["completed"] is True
    _pay(ledger, "sg", 100, payer_bank=SG, payer="sg-co")


def test_a_cap_change_in_flight_fails_the_initiation_which_is_retried_under_the_new_version(ledger: Ledger) -> None:
    _customers(ledger)
    initiation = ledger.simulate(US, "InitiatePayment", _request(ledger, "racing", 5000))
    _policy(ledger, caps=[{"currency": "USD", "from": "US", "to": "HK", "per_payment": 1000}])
    assert ledger.channel.commit([initiation]) == ["MVCC_READ_CONFLICT"]
    assert ledger.refused(US, "InitiatePayment", _request(ledger, "racing", 5000)).startswith("[corridor_cap_exceeded]")


# -- the list of payments, filtered ---------------------------------------------------


def _list(ledger: Ledger, **query: Any) -> list[str]:
    return [p["payment_id"] for p in ledger.query(REG, "ListPayments", args=[json.dumps(query)])["payments"]]


def test_payments_are_filtered_by_banks_currency_amount_and_time(ledger: Ledger) -> None:
    _customers(ledger)
    ledger.issue(HK, "shop", 10_000, currency="HKD")
    ledger.open(SG, "sg-shop", "SG")
    a = _pay(ledger, "a", 100)  # 09:00:00 US->HK
    ledger.channel.advance(60)
    b = _pay(ledger, "b", 5000, payee_bank=SG, payee="sg-shop")  # 09:01 US->SG
    ledger.channel.advance(60)
    c = _pay(ledger, "c", 700, payer_bank=SG, payer="sg-co")  # 09:02 SG->HK
    ledger.channel.advance(60)
    fx = ledger.submit(HK, "InitiatePayment", {  # 09:03 HK->SG, HKD 7800 -> USD 1000
        "idempotency_key": "fx", "payer_account": "shop", "payee_bank": SG, "payee_account": "sg-shop",
        "currency": "HKD", "amount": 7800, "payee_currency": "USD", "payee_amount": 1000, "rate": "0.1282051282",
        "pending_credits": ledger.pending(HK, "shop"),
    })["payment_id"]  # fmt: skip
    assert _list(ledger) == [fx, c, b, a]
    assert _list(ledger, payer_bank=US) == [b, a]
    assert _list(ledger, payee_bank=HK) == [c, a]
    assert _list(ledger, payer_bank=US, payee_bank=SG) == [b]
    assert _list(ledger, bank=SG) == [fx, c, b]
    assert _list(ledger, currency="HKD") == [fx]
    # Either leg counts: the HKD payment delivered 1000 USD.
    assert _list(ledger, currency="USD", min_amount=700, max_amount=1000) == [fx, c]
    assert _list(ledger, currency="USD", min_amount=701) == [fx, b]
    assert _list(ledger, since="2025-01-06T09:01:00.000000Z", until="2025-01-06T09:02:00.000000Z") == [c, b]
    assert _list(ledger, until="2025-01-06T09:00:59.999999Z") == [a]
    assert _list(ledger, since="2025-01-06T09:03:00.000001Z") == []
    assert _list(ledger, bank=SG, status="initiated", currency="USD", since="2025-01-06T09:02:00.000000Z") == [fx, c]
    # A scan limit stops early with a bookmark that resumes exactly where it stopped.
    seen: list[str] = []
    bookmark = ""
    pages = 0
    while True:
        query = {"currency": "USD", "min_amount": 700, "scan_limit": 1, "bookmark": bookmark}
        page = ledger.query(REG, "ListPayments", args=[json.dumps(query)])
        seen += [p["payment_id"] for p in page["payments"]]
        pages += 1
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert (seen, pages) == ([fx, c, b], 4)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"min_amount": 5}, "[invalid_request] 'min_amount' needs 'currency'"),
        ({"currency": "USD", "min_amount": 9, "max_amount": 5}, "[invalid_request] 'min_amount' is above 'max_amount'"),
        ({"currency": "QQQ"}, "[unknown_currency]"),
        ({"currency": "USD", "max_amount": "5"}, "[invalid_amount] 'max_amount' must be a JSON integer"),
        ({"since": "yesterday"}, "[invalid_request] 'since' must be a time like 2025-01-06T09:00:00.000000Z"),
        ({"until": 5}, "[invalid_request] 'until' must be a time like"),
        ({"payer_bank": "a/b"}, "[invalid_request] 'payer_bank' must be an MSP id"),
        ({"scan_limit": 0}, "[invalid_request] 'scan_limit' must be an integer from 1 to 10000"),
        ({"colour": "red"}, "[invalid_request] unknown field 'colour'"),
    ],
)  # fmt: skip
def test_bad_list_filters_are_refused_by_name(ledger: Ledger, query: dict[str, Any], expected: str) -> None:
    with pytest.raises(Refused) as refused:
        ledger.query(REG, "ListPayments", args=[json.dumps(query)])
    assert str(refused.value).startswith(expected)
