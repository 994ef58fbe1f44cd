"""Authority: the honest contract refuses, and Fabric's validation stops altered chaincode.

A bank running altered chaincode (``RogueDepositTokenContract``) endorses on its own
peer whatever it likes; these tests commit its transactions and check that the
validators reject every write to another bank's books, supply or payment record.
"""

from __future__ import annotations

import json

import pytest

from chaincode.deposit_token.collections import books_collection
from chaincode.deposit_token.testing import (
    ENDORSEMENT_POLICY_FAILURE,
    VALID,
    RWSet,
    Simulation,
)
from chaincode.shim.contract import ContractRouter
from tests.integration.rogue_deposit_token import RogueDepositTokenContract
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, Refused

ROGUE = ContractRouter([RogueDepositTokenContract()])


def _rogue(ledger: Ledger, bank: str, function: str, *args: str) -> Simulation:
    simulation = ledger.channel.simulate(bank, function, args, router=ROGUE)
    assert simulation.ok, simulation.message
    return simulation


def test_honest_contract_refuses_a_bank_acting_on_another_banks_peer(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    requests: list[tuple[str, dict[str, object]]] = [
        ("Issue", {"account_id": "alice", "currency": "USD", "amount": 100, "deposit_ref": "d"}),
        ("Redeem", {"account_id": "alice", "currency": "USD", "amount": 1, "withdrawal_ref": "w"}),
        ("FreezeAccount", {"account_id": "alice", "reason": "x"}),
    ]
    for function, request in requests:
        message = ledger.refused(US, function, request, creator=HK)
        assert message.startswith(
            "[not_authorized] a client of HKBankMSP may not act through the peer of USBankMSP"
        )
    # The regulator is not a bank: it cannot issue.
    assert ledger.refused(
        REG, "OpenAccount", {"account_id": "r", "holder": "R", "jurisdiction": "US", "kyc_ref": "K"}
    ).startswith("[not_authorized]")


def test_altered_chaincode_cannot_issue_another_banks_token(ledger: Ledger) -> None:
    before = ledger.supply()
    simulation = _rogue(ledger, HK, "RogueMint", US, "USD", "1000000")
    assert ledger.channel.commit([simulation]) == [ENDORSEMENT_POLICY_FAILURE]
    assert ledger.supply() == before
    # The same code minting its own bank's token is valid: the policy, not the code, decides.
    assert ledger.channel.commit([_rogue(ledger, HK, "RogueMint", HK, "HKD", "5")]) == [VALID]


def test_altered_chaincode_cannot_touch_another_banks_books(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.issue(US, "alice", 500)
    before = ledger.snapshot()
    # USBank's books are its implicit collection, which (as in Fabric) lets any org's peer
    # simulate a write: only validation stands in the way, and it does.
    simulation = ledger.channel.simulate(HK, "RogueDebit", [US, "alice", "USD"], router=ROGUE)
    assert simulation.status == 200
    assert ledger.channel.commit([simulation]) == [ENDORSEMENT_POLICY_FAILURE]
    # Nor does a hand-made write set endorsed by HK alone.
    forged = RWSet(writes={(books_collection(US), "\x00head\x00alice\x00"): b'{"balances":{"USD":0}}'})
    forged_tx = Simulation("f" * 64, "RogueDebit", 200, "", b"", None, forged, {HK})
    assert ledger.channel.commit([forged_tx]) == [ENDORSEMENT_POLICY_FAILURE]
    assert ledger.snapshot() == before
    assert ledger.balance(US, "alice") == 500


def test_altered_chaincode_cannot_move_a_payment_it_is_not_party_to(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(HK, "shop", "HK")
    ledger.issue(US, "alice", 1000)
    payment_id = ledger.submit(
        US,
        "InitiatePayment",
        {
            "idempotency_key": "p",
            "payer_account": "alice",
            "payee_bank": HK,
            "payee_account": "shop",
            "currency": "USD",
            "amount": 100,
            "pending_credits": ledger.pending(US, "alice"),
        },
    )["payment_id"]
    # The honest contract refuses a third bank.
    assert ledger.refused(SG, "CompletePayment", {"payment_id": payment_id}).startswith(
        "[not_authorized] only the payee bank completes"
    )
    # Altered chaincode on the third bank's peer fails validation.
    for status in ("completed", "refunded"):
        assert ledger.channel.commit([_rogue(ledger, SG, "RogueMovePayment", payment_id, status)]) == [
            ENDORSEMENT_POLICY_FAILURE
        ]
    # After completion only both banks together could change the record: neither alone.
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    for bank in (US, HK):
        assert ledger.channel.commit([_rogue(ledger, bank, "RogueMovePayment", payment_id, "refunded")]) == [
            ENDORSEMENT_POLICY_FAILURE
        ]
    assert ledger.query(REG, "GetPayment", args=[payment_id])["status"] == "completed"


def test_a_payee_faking_a_refund_does_not_cost_the_payer(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(HK, "shop", "HK")
    ledger.issue(US, "alice", 1000)
    payment_id = ledger.submit(
        US,
        "InitiatePayment",
        {
            "idempotency_key": "p",
            "payer_account": "alice",
            "payee_bank": HK,
            "payee_account": "shop",
            "currency": "USD",
            "amount": 100,
            "pending_credits": ledger.pending(US, "alice"),
        },
    )["payment_id"]
    # The payee's altered chaincode marks the initiated payment refunded (its policy allows the payee).
    assert ledger.channel.commit([_rogue(ledger, HK, "RogueMovePayment", payment_id, "refunded")]) == [VALID]
    # The payer bank's books still say the money is owed back, so the refund happens.
    assert ledger.submit(US, "RefundPayment", {"payment_id": payment_id})["refunded"] is True
    assert ledger.balance(US, "alice") == 1000
    ledger.assert_conserved()


def test_altered_chaincode_cannot_rewrite_the_regulators_policy(ledger: Ledger) -> None:
    simulation = _rogue(ledger, US, "RogueCorridor", json.dumps({"rules": []}))
    assert ledger.channel.commit([simulation]) == [ENDORSEMENT_POLICY_FAILURE]
    assert ledger.query(US, "GetReferenceData")["corridor_policy"]["rules"][0]["currency"] == "CNH"


def test_a_third_bank_cannot_confirm_anothers_settlement_leg(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.open(HK, "shop", "HK")
    ledger.issue(US, "alice", 1000)
    payment_id = ledger.submit(
        US,
        "InitiatePayment",
        {
            "idempotency_key": "p",
            "payer_account": "alice",
            "payee_bank": HK,
            "payee_account": "shop",
            "currency": "USD",
            "amount": 100,
            "pending_credits": ledger.pending(US, "alice"),
        },
    )["payment_id"]
    ledger.submit(HK, "CompletePayment", {"payment_id": payment_id})
    ledger.submit(SG, "OpenSettlementCycle", args=["c1"])
    with pytest.raises(Refused, match=r"^\[not_authorized\] SGBankMSP has no leg in settlement cycle c1"):
        ledger.submit(SG, "ConfirmSettlement", args=["c1", "RTGS-1"])


def test_no_function_lets_another_banks_client_into_a_banks_books(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bank's books are its org's implicit collection, which Fabric lets any org's client read and
    write through the bank's own peer (memberOnlyRead and memberOnlyWrite are off for implicit
    collections; docs/decisions/0036). Only the contract stands between another bank's client and
    those books, so every function is run on USBank's peer as a client of each other org, with ids
    that exist, and none may touch USBank's books, except the two details queries for the other
    bank of that payment or PvP.
    """
    from tests.unit.contract.test_contract_pvp import _propose
    from tests.unit.contract.test_contract_pvp import _setup as pvp_setup

    pvp_setup(ledger)  # Alice (USBank) and Bob (HKBank), each with an account at the other bank
    pvp_id = _propose(ledger)["pvp_id"]
    payment_id = ledger.submit(
        US,
        "InitiatePayment",
        {"idempotency_key": "k", "payer_account": "alice", "payee_bank": HK, "payee_account": "bob",
         "currency": "USD", "amount": 100, "remittance": "Invoice for Alice",
         "pending_credits": ledger.pending(US, "alice")},
    )["payment_id"]  # fmt: skip
    touched: list[tuple[str, str, str]] = []
    from chaincode.deposit_token.testing import MemoryStub

    original_read, original_write = MemoryStub._check_read, MemoryStub._check_write

    def watch_read(stub: MemoryStub, name: str) -> object:
        if name == books_collection(stub._peer) and stub._creator != stub._peer:
            touched.append(("read", name, stub._creator))
        return original_read(stub, name)

    def watch_write(stub: MemoryStub, collection: str) -> None:
        if collection == books_collection(stub._peer) and stub._creator != stub._peer:
            touched.append(("write", collection, stub._creator))
        original_write(stub, collection)

    monkeypatch.setattr(MemoryStub, "_check_read", watch_read)
    monkeypatch.setattr(MemoryStub, "_check_write", watch_write)
    values = {
        "payment_id": payment_id, "pvp_id": pvp_id, "escrow_id": payment_id, "account_id": "alice",
        "msp_id": US, "bank": US, "cycle_id": "c1", "request_id": payment_id, "currency": "USD",
        "ids_json": json.dumps({"payment_ids": [payment_id]}),
    }  # fmt: skip
    request = {
        **values, "payer_account": "alice", "payee_account": "shop", "payee_bank": HK, "amount": 1,
        "idempotency_key": "other", "deposit_ref": "d", "withdrawal_ref": "w", "reason": "x", "details": True,
    }  # fmt: skip
    contract = next(iter(ledger.channel.router.metadata()["contracts"].values()))
    allowed = {"GetPaymentDetails", "GetPaymentsDetails", "GetPvpDetails"}
    for transaction in contract["transactions"]:
        name = transaction["name"]
        args = [str(values.get(p["name"], "{}")) for p in transaction["parameters"]]
        for creator in (HK, SG, REG):
            touched.clear()
            simulation = ledger.channel.simulate(US, name, args, {"request": request}, creator=creator)
            if name in allowed and creator == HK:
                assert simulation.ok and touched == [("read", books_collection(US), HK)], (name, simulation.message)
            else:
                assert touched == [], (name, creator, touched, simulation.message)
                assert "Alice" not in simulation.message and b"alice" not in simulation.payload, name
