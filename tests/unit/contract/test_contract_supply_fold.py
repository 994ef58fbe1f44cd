"""Folding supply changes: the supply and conservation are unchanged, reads get cheaper, a fold of the
same changes twice (or at once) never counts them twice, and only the issuer folds its own class."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaincode.deposit_token.testing import MVCC_READ_CONFLICT, VALID
from tests.unit.contract.conftest import HK, US, Ledger, new_ledger


def _changes(ledger: Ledger, bank: str, currency: str = "USD") -> list[str]:
    ids: list[str] = ledger.query(bank, "GetSupplyChanges", {"currency": currency})["change_ids"]
    return ids


def _fold(ledger: Ledger, bank: str, ids: list[str], currency: str = "USD") -> dict[str, int]:
    result: dict[str, int] = ledger.submit(bank, "FoldSupply", {"currency": currency, "change_ids": ids})
    return result


def test_a_fold_keeps_the_supply_and_leaves_one_change(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    for index in range(6):
        ledger.issue(US, "alice", 100 + index, ref=f"d{index}")
    ledger.submit(US, "Redeem", {"account_id": "alice", "currency": "USD", "amount": 50, "withdrawal_ref": "W-1",
                                 "pending_credits": ledger.pending(US, "alice")})  # fmt: skip
    before = ledger.supply()[(US, "USD")]
    ids = _changes(ledger, US)
    assert len(ids) == 7

    simulation = ledger.simulate(US, "FoldSupply", {"currency": "USD", "change_ids": ids})
    assert simulation.ok and simulation.event is not None
    name, payload = simulation.event
    assert name == "SupplyFolded" and "supply" not in json.loads(payload)  # no supply change to report
    assert ledger.channel.commit([simulation]) == [VALID]

    assert simulation.json() == {"currency": "USD", "folded": 7, "total": before}
    assert ledger.supply()[(US, "USD")] == before
    assert len(_changes(ledger, US)) == 1
    ledger.assert_conserved()
    # the same ids again: already folded, nothing to do, nothing changes
    assert _fold(ledger, US, ids) == {"currency": "USD", "folded": 0, "total": 0}
    assert ledger.supply()[(US, "USD")] == before


def test_two_folds_of_the_same_changes_commit_once(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    for index in range(4):
        ledger.issue(US, "alice", 10, ref=f"d{index}")
    ids = _changes(ledger, US)
    first = ledger.simulate(US, "FoldSupply", {"currency": "USD", "change_ids": ids})
    second = ledger.simulate(US, "FoldSupply", {"currency": "USD", "change_ids": ids[1:]})
    assert ledger.channel.commit([first, second]) == [VALID, MVCC_READ_CONFLICT]
    assert ledger.supply()[(US, "USD")] == 40
    ledger.assert_conserved()


def test_a_bank_folds_only_its_own_supply_and_bad_lists_are_refused(ledger: Ledger) -> None:
    ledger.open(US, "alice")
    ledger.issue(US, "alice", 10)
    ids = _changes(ledger, US)
    # HKBank's fold names its own class: US's change ids are simply absent there
    assert _fold(ledger, HK, ids, currency="USD") == {"currency": "USD", "folded": 0, "total": 0}
    assert ledger.supply()[(US, "USD")] == 10
    for bad, reason in (
        ([], "must be a non-empty list"),
        (["nope"], "not a supply change id"),
        ("x", "must be a non-empty list"),
        (ids * 1001, "at most 1000"),
    ):
        message = ledger.refused(US, "FoldSupply", {"currency": "USD", "change_ids": bad})
        assert message.startswith("[invalid_request]") and reason in message, message
    assert ledger.refused(US, "FoldSupply", {"currency": "XXX", "change_ids": ids}).startswith("[")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.integers(min_value=1, max_value=500), st.just("fold")), max_size=25))
def test_folding_at_any_moment_never_changes_supply_or_conservation(steps: list[int | str]) -> None:
    ledger = new_ledger()
    ledger.open(US, "alice")
    expected = 0
    for index, step in enumerate(steps):
        if step == "fold":
            ids = _changes(ledger, US)
            if ids:
                _fold(ledger, US, ids)
        else:
            assert isinstance(step, int)
            ledger.issue(US, "alice", step, ref=f"d{index}")
            expected += step
        assert ledger.supply().get((US, "USD"), 0) == expected
    ledger.assert_conserved()
