"""The bank gateway's sweeper folds its supply changes, on the real contract in an in-memory channel:
the supply every org reads is unchanged, and the changes a read sums fall to one."""

from __future__ import annotations

from gateway.bank_api import supply_fold
from gateway.bank_api.workers import PaymentSweeper
from tests.unit.contract.conftest import US, Ledger
from tests.unit.regulator.conftest import Gateway, GatewayFactory


def _changes(contract: Ledger, currency: str = "USD") -> int:
    return len(contract.query(US, "GetSupplyChanges", {"currency": currency})["change_ids"])


def _supply(contract: Ledger) -> dict[tuple[str, str], int]:
    return contract.supply()


def test_the_sweeper_folds_a_class_past_the_threshold_and_the_supply_stays(
    contract: Ledger, make_gateway: GatewayFactory, regulator: Gateway
) -> None:
    us = make_gateway(US, supply_fold_threshold=5)
    contract.open(US, "alice")
    for index in range(4):
        contract.issue(US, "alice", 100, ref=f"d{index}")
    sweeper = PaymentSweeper(us.services)

    assert sweeper.sweep()["supply_changes_folded"] == 0  # four changes: below the threshold
    assert _changes(contract) == 4

    contract.issue(US, "alice", 7, ref="d4")
    before = _supply(contract)
    seen_by_regulator = regulator.ok("/v1/supply")

    assert sweeper.sweep()["supply_changes_folded"] == 5
    assert _changes(contract) == 1
    assert _supply(contract) == before
    assert regulator.ok("/v1/supply") == seen_by_regulator
    contract.assert_conserved()
    assert sweeper.sweep()["supply_changes_folded"] == 0  # one change left: nothing to fold


def test_a_fold_the_peer_cannot_take_is_left_for_the_next_pass(contract: Ledger, make_gateway: GatewayFactory) -> None:
    us = make_gateway(US)
    contract.open(US, "alice")
    for index in range(3):
        contract.issue(US, "alice", 100, ref=f"d{index}")
    us.ledger.down = True

    assert supply_fold.fold_supply(us.ledger, ["USD"], threshold=2) == {}  # logged, nothing raised
    us.ledger.down = False
    assert supply_fold.fold_supply(us.ledger, ["USD"], threshold=2) == {"USD": 3}
    assert _changes(contract) == 1
    contract.assert_conserved()


def test_the_classes_folded_are_the_banks_own() -> None:
    reference = {"banks": [{"msp_id": US, "currencies": ["USD", "EUR"]},
                           {"msp_id": "HKBankMSP", "currencies": ["HKD"]}]}  # fmt: skip
    assert supply_fold.issued_currencies(reference, US) == ["EUR", "USD"]
    assert supply_fold.issued_currencies(reference, "RegulatorMSP") == []
    assert supply_fold.issued_currencies({"banks": None}, US) == []
