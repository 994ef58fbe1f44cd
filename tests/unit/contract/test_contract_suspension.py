"""A bank suspended by the regulator, and later reinstated.

While suspended: no new payment to or from it, no issue or transfer at it; what is in
flight still completes, is rejected or is refunded, and the bank still settles. Only
the regulator changes a bank's status, and the validators, not just the contract, hold
to that.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chaincode.deposit_token.ledger import iso
from chaincode.deposit_token.testing import ENDORSEMENT_POLICY_FAILURE, MVCC_READ_CONFLICT, VALID
from tests.unit.contract.conftest import HK, REFERENCE_DATA, REG, SG, US, Ledger, Refused

REASON = "AML review 2025-17"


def _bank(ledger: Ledger, msp_id: str) -> dict[str, Any]:
    banks = ledger.query(SG, "GetReferenceData")["banks"]
    record: dict[str, Any] = next(bank for bank in banks if bank["msp_id"] == msp_id)
    return record


def _suspend(ledger: Ledger, bank: str = HK, reason: str = REASON) -> dict[str, Any]:
    result: dict[str, Any] = ledger.submit(REG, "SuspendBank", args=[bank, reason])
    return result


def _payment_request(ledger: Ledger, payer_bank: str, payer: str, payee_bank: str, payee: str, key: str,
                     amount: int = 100) -> dict[str, Any]:  # fmt: skip
    return {
        "idempotency_key": key,
        "payer_account": payer,
        "payee_bank": payee_bank,
        "payee_account": payee,
        "currency": "USD",
        "amount": amount,
        "pending_credits": ledger.pending(payer_bank, payer),
    }


def _initiate(ledger: Ledger, payer_bank: str, payer: str, payee_bank: str, payee: str, key: str,
              amount: int = 100) -> str:  # fmt: skip
    request = _payment_request(ledger, payer_bank, payer, payee_bank, payee, key, amount)
    payment_id: str = ledger.submit(payer_bank, "InitiatePayment", request)["payment_id"]
    return payment_id


@pytest.fixture
def funded(ledger: Ledger) -> Ledger:
    """One customer per bank, each holding 10 000 USD cents of its own bank's token."""
    for bank, jurisdiction in ((US, "US"), (HK, "HK"), (SG, "SG")):
        ledger.open(bank, f"{bank}-c", jurisdiction)
        ledger.issue(bank, f"{bank}-c", 10_000)
    return ledger


def test_the_regulator_suspends_and_reinstates_a_bank(ledger: Ledger) -> None:
    assert _bank(ledger, HK) | {"currencies": None} == {
        "msp_id": HK, "name": "HKBank", "jurisdiction": "HK", "currencies": None,
        "status": "active", "status_reason": None, "status_since": None,
    }  # fmt: skip
    suspended_at = iso(ledger.channel.now)
    assert _suspend(ledger)["status"] == "suspended"
    assert (_bank(ledger, HK)["status"], _bank(ledger, HK)["status_reason"], _bank(ledger, HK)["status_since"]) == (
        "suspended",
        REASON,
        suspended_at,
    )
    event = ledger.channel.events[-1]
    assert (event.name, json.loads(event.payload)) == (
        "BankSuspended",
        {"bank": HK, "reason": REASON, "since": suspended_at},
    )
    assert _bank(ledger, US)["status"] == "active"  # only the named bank

    ledger.channel.advance(3600)
    reinstated = ledger.submit(REG, "ReinstateBank", args=[HK])
    assert (reinstated["status"], reinstated["status_reason"], reinstated["status_since"]) == (
        "active",
        None,
        iso(ledger.channel.now),
    )
    assert _bank(ledger, HK) == reinstated
    assert ledger.channel.events[-1].name == "BankReinstated"


@pytest.mark.parametrize(
    ("org", "function", "args", "expected"),
    [
        (US, "SuspendBank", [HK, REASON], "[not_authorized] only the regulator may suspend or reinstate a bank"),
        (HK, "SuspendBank", [HK, REASON], "[not_authorized] only the regulator may suspend or reinstate a bank"),
        (REG, "SuspendBank", ["GhostBankMSP", REASON], "[unknown_bank] 'msp_id': GhostBankMSP is not a registered"),
        (REG, "SuspendBank", [REG, REASON], "[unknown_bank] 'msp_id': RegulatorMSP is not a registered bank"),
        (REG, "SuspendBank", ["HK Bank", REASON], "[invalid_request] 'msp_id' must be an MSP id"),
        (REG, "SuspendBank", [HK, " "], "[invalid_request] 'reason' must not be empty"),
        (REG, "SuspendBank", [HK, "x" * 201], "[invalid_request] 'reason' must be at most 200 characters"),
        (REG, "SuspendBank", [HK, "two\nlines"], "[invalid_request] 'reason' must not contain control characters"),
        (REG, "ReinstateBank", [HK], "[invalid_state] HKBankMSP is active, not suspended: nothing to reinstate"),
        (REG, "ReinstateBank", ["GhostBankMSP"], "[unknown_bank] 'msp_id': GhostBankMSP is not a registered bank"),
    ],
)
def test_bad_status_changes_are_refused(
    ledger: Ledger, org: str, function: str, args: list[str], expected: str
) -> None:
    assert ledger.refused(org, function, args=args).startswith(expected)
    assert _bank(ledger, HK)["status"] == "active"


def test_suspending_twice_or_a_bank_reinstating_itself_is_refused(ledger: Ledger) -> None:
    _suspend(ledger)
    since = _bank(ledger, HK)["status_since"]
    ledger.channel.advance(60)
    assert ledger.refused(REG, "SuspendBank", args=[HK, "another reason"]) == (
        f"[invalid_state] HKBankMSP is already suspended since {since} (reason: {REASON})"
    )
    assert ledger.refused(HK, "ReinstateBank", args=[HK]).startswith("[not_authorized]")
    assert ledger.refused(US, "ReinstateBank", args=[HK]).startswith("[not_authorized]")
    # The first suspension stands, reason and time unchanged.
    assert (_bank(ledger, HK)["status_reason"], _bank(ledger, HK)["status_since"]) == (REASON, since)


def test_altered_chaincode_cannot_lift_its_own_banks_suspension(ledger: Ledger) -> None:
    _suspend(ledger)
    # The regulator's peer would endorse this reinstatement; HK's peer endorsing the very
    # same writes (as altered chaincode on it could) fails validation on the bank key's policy.
    honest = ledger.channel.simulate(REG, "ReinstateBank", [HK])
    assert honest.ok, honest.message
    forged = dataclasses.replace(honest, endorsers={HK})
    assert ledger.channel.commit([forged]) == [ENDORSEMENT_POLICY_FAILURE]
    assert _bank(ledger, HK)["status"] == "suspended"
    # The policy decides, not the code: the same writes endorsed by the regulator are valid.
    assert ledger.channel.commit([honest]) == [VALID]
    assert _bank(ledger, HK)["status"] == "active"


def test_new_payments_to_and_from_a_suspended_bank_are_refused(funded: Ledger) -> None:
    ledger = funded
    _suspend(ledger)
    expected = f"[bank_suspended] HKBankMSP is suspended by the regulator since {iso(ledger.channel.now)} " \
               f"(reason: {REASON}); no new payment to or from it is accepted"  # fmt: skip
    to_hk = _payment_request(ledger, US, f"{US}-c", HK, f"{HK}-c", "to-hk")
    from_hk = _payment_request(ledger, HK, f"{HK}-c", US, f"{US}-c", "from-hk")
    assert ledger.refused(US, "InitiatePayment", to_hk) == expected  # nothing changed: refused() checks
    assert ledger.refused(HK, "InitiatePayment", from_hk) == expected
    assert ledger.balance(US, f"{US}-c") == 10_000 and ledger.balance(HK, f"{HK}-c") == 10_000
    # Payments between two other banks are not concerned.
    payment_id = _initiate(ledger, US, f"{US}-c", SG, f"{SG}-c", "us-to-sg")
    assert ledger.submit(SG, "CompletePayment", {"payment_id": payment_id})["status"] == "completed"

    ledger.submit(REG, "ReinstateBank", args=[HK])
    for payer_bank, request, payee_bank in ((US, to_hk, HK), (HK, from_hk, US)):
        request["pending_credits"] = ledger.pending(payer_bank, request["payer_account"])
        started = ledger.submit(payer_bank, "InitiatePayment", request)
        assert started["created"] is True
        ledger.submit(payee_bank, "CompletePayment", {"payment_id": started["payment_id"]})
    assert ledger.balance(US, f"{US}-c") == 10_000 - 100 - 100 + 100
    assert ledger.balance(HK, f"{HK}-c") == 10_000 + 100 - 100
    ledger.assert_conserved()


def test_payments_in_flight_finish_or_are_refunded_while_a_bank_is_suspended(funded: Ledger) -> None:
    ledger = funded
    to_hk = _initiate(ledger, US, f"{US}-c", HK, f"{HK}-c", "to-hk", 1000)
    to_hk_rejected = _initiate(ledger, US, f"{US}-c", HK, f"{HK}-c", "to-hk-2", 2000)
    from_hk = _initiate(ledger, HK, f"{HK}-c", SG, f"{SG}-c", "from-hk", 3000)
    from_hk_rejected = _initiate(ledger, HK, f"{HK}-c", US, f"{US}-c", "from-hk-2", 400)
    from_hk_unanswered = _initiate(ledger, HK, f"{HK}-c", SG, f"{SG}-c", "from-hk-3", 500)
    ledger.channel.advance(1)
    _suspend(ledger)

    # The suspended bank completes and rejects what was sent to it...
    assert ledger.submit(HK, "CompletePayment", {"payment_id": to_hk})["completed"] is True
    ledger.submit(HK, "RejectPayment", {"payment_id": to_hk_rejected, "reason": "unknown_account"})
    assert ledger.submit(US, "RefundPayment", {"payment_id": to_hk_rejected})["refunded"] is True
    # ...its payees complete or reject what it sent, and it refunds its own payers.
    assert ledger.submit(SG, "CompletePayment", {"payment_id": from_hk})["completed"] is True
    ledger.submit(US, "RejectPayment", {"payment_id": from_hk_rejected, "reason": "account_frozen"})
    assert ledger.submit(HK, "RefundPayment", {"payment_id": from_hk_rejected})["refunded"] is True
    ledger.channel.advance(300)
    assert ledger.submit(HK, "RefundPayment", {"payment_id": from_hk_unanswered})["refunded"] is True

    statuses = {
        payment_id: ledger.query(REG, "GetPayment", args=[payment_id])["status"]
        for payment_id in (to_hk, to_hk_rejected, from_hk, from_hk_rejected, from_hk_unanswered)
    }
    assert statuses == {
        to_hk: "completed", to_hk_rejected: "refunded", from_hk: "completed",
        from_hk_rejected: "refunded", from_hk_unanswered: "refunded",
    }  # fmt: skip
    assert ledger.query(REG, "ListPayments", args=[json.dumps({"status": "initiated"})])["payments"] == []
    assert ledger.balance(US, f"{US}-c") == 10_000 - 1000
    assert ledger.balance(HK, f"{HK}-c") == 10_000 + 1000 - 3000
    assert ledger.balance(SG, f"{SG}-c") == 10_000 + 3000
    ledger.assert_conserved()


def test_an_initiation_endorsed_before_the_suspension_fails_if_it_commits_after(funded: Ledger) -> None:
    ledger = funded
    early = ledger.channel.simulate(
        US, "InitiatePayment", (), {"request": _payment_request(ledger, US, f"{US}-c", HK, f"{HK}-c", "race")}
    )
    assert early.ok, early.message
    _suspend(ledger)
    # It read HKBank's record before the suspension changed it: a read conflict, so no new
    # payment to a suspended bank slips in between endorsement and commit.
    assert ledger.channel.commit([early]) == [MVCC_READ_CONFLICT]
    assert ledger.balance(US, f"{US}-c") == 10_000
    ledger.assert_conserved()


def test_no_new_issue_or_transfer_but_redemption_and_retries_still_answer(funded: Ledger) -> None:
    ledger = funded
    ledger.open(HK, "hk-2", "HK")
    before_issue = {"account_id": f"{HK}-c", "currency": "USD", "amount": 10_000, "deposit_ref": "dep-early"}
    ledger.submit(HK, "Issue", before_issue)
    ledger.transfer(HK, f"{HK}-c", "hk-2", 500, "tr-early")
    paid_early = _payment_request(ledger, HK, f"{HK}-c", US, f"{US}-c", "early")
    early_id = ledger.submit(HK, "InitiatePayment", paid_early)["payment_id"]
    _suspend(ledger)

    issue = {"account_id": f"{HK}-c", "currency": "USD", "amount": 100, "deposit_ref": "dep-late"}
    assert ledger.refused(HK, "Issue", issue).startswith(
        f"[bank_suspended] HKBankMSP is suspended by the regulator since {iso(ledger.channel.now)} "
        f"(reason: {REASON}); it may not issue new tokens"
    )
    transfer = {"from_account": f"{HK}-c", "to_account": "hk-2", "currency": "USD", "amount": 100,
                "transfer_id": "tr-late", "pending_credits": ledger.pending(HK, f"{HK}-c")}  # fmt: skip
    assert ledger.refused(HK, "Transfer", transfer).endswith("; no new transfer within it is accepted")
    # A retry of what was done before the suspension gets its answer, and changes nothing.
    assert ledger.submit(HK, "Issue", before_issue) == {"issued": False}
    assert ledger.transfer(HK, f"{HK}-c", "hk-2", 500, "tr-early") == {"transferred": False}
    again = ledger.submit(HK, "InitiatePayment", paid_early)
    assert again == {"payment_id": early_id, "status": "initiated", "created": False}
    # Redemption turns tokens back into an ordinary deposit at the same bank: still open.
    redeem = {"account_id": "hk-2", "currency": "USD", "amount": 200, "withdrawal_ref": "wd-1",
              "pending_credits": ledger.pending(HK, "hk-2")}  # fmt: skip
    assert ledger.submit(HK, "Redeem", redeem) == {"redeemed": True}
    assert ledger.balance(HK, "hk-2") == 300
    assert ledger.balance(HK, f"{HK}-c") == 10_000 + 10_000 - 500 - 100
    # Accounts are still kept: the bank's customers are not what is suspended.
    ledger.open(HK, "hk-3", "HK")
    ledger.submit(HK, "FreezeAccount", {"account_id": "hk-3", "reason": "kyc refresh"})

    ledger.submit(REG, "ReinstateBank", args=[HK])
    assert ledger.submit(HK, "Issue", issue) == {"issued": True}
    assert ledger.submit(HK, "Transfer", transfer) == {"transferred": True}
    ledger.assert_conserved()


def test_a_suspended_bank_still_settles(funded: Ledger) -> None:
    ledger = funded
    for n, (payer_bank, payee_bank) in enumerate(((US, HK), (HK, SG), (SG, HK))):
        payment_id = _initiate(ledger, payer_bank, f"{payer_bank}-c", payee_bank, f"{payee_bank}-c", f"p{n}", 700)
        ledger.submit(payee_bank, "CompletePayment", {"payment_id": payment_id})
    _suspend(ledger)
    opened = ledger.submit(HK, "OpenSettlementCycle", args=["cycle-1"])
    assert (opened["payments"], opened["positions"][HK]) == (3, {"USD": 700})
    assert ledger.submit(HK, "ConfirmSettlement", args=["cycle-1", "RTGS-HK-1"])["confirmed"] is True
    for bank in (US, SG):
        ledger.submit(bank, "ConfirmSettlement", args=["cycle-1", f"RTGS-{bank}"])
    assert ledger.query(REG, "GetSettlementCycle", args=["cycle-1"])["status"] == "settled"
    ledger.assert_conserved()


def test_reloading_the_reference_data_does_not_lift_a_suspension(ledger: Ledger) -> None:
    ledger.open(HK, "hk-c", "HK")
    _suspend(ledger)
    since = _bank(ledger, HK)["status_since"]
    renamed = json.loads(json.dumps(REFERENCE_DATA))
    renamed["banks"][1]["name"] = "HKBank Ltd"
    assert ledger.submit(REG, "InitReferenceData", args=[json.dumps(renamed)])["changed"] is True
    record = _bank(ledger, HK)
    assert (record["name"], record["status"], record["status_reason"], record["status_since"]) == (
        "HKBank Ltd",
        "suspended",
        REASON,
        since,
    )
    with pytest.raises(Refused, match=r"^\[bank_suspended\] HKBankMSP is suspended"):
        ledger.submit(HK, "Issue", {"account_id": "hk-c", "currency": "HKD", "amount": 1, "deposit_ref": "d"})
    # The bank list as GetReferenceData shows it may be sent back; a status in it may not change anything.
    shown = ledger.query(REG, "GetReferenceData")
    again = {"regulator": REG, "currencies": shown["currencies"], "banks": shown["banks"]}
    assert ledger.submit(REG, "InitReferenceData", args=[json.dumps(again)])["changed"] is False
    for entry in again["banks"]:
        entry.update(status="active", status_reason=None)
    assert ledger.refused(REG, "InitReferenceData", args=[json.dumps(again)]) == (
        "[invalid_request] 'banks[0].status' differs from the ledger's: a bank's status changes only "
        "by SuspendBank and ReinstateBank"
    )
    assert _bank(ledger, HK)["status"] == "suspended"
