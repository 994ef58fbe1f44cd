"""Bench across bank counts, without a network: the generated topologies and the figures."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.scaling import (
    bank_counts,
    plot_scaling,
    reference_rate,
    scaling_table,
    summarize_scaling,
    topology_with_banks,
    write_topology_with_banks,
)
from network.topology import DEFAULT_TOPOLOGY, TopologyError, parse_topology


@pytest.fixture
def raw() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    return document


# -- topologies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 5, 8, 20])
def test_a_generated_topology_has_that_many_banks_and_parses(raw: dict[str, Any], count: int) -> None:
    topology = parse_topology(topology_with_banks(raw, count))
    assert len(topology.banks) == count
    assert len({bank.msp_id for bank in topology.banks}) == count
    hosts = [org.host for org in topology.peer_orgs]
    assert len(set(hosts)) == len(hosts), "every org gets its own loopback address"
    assert all("USD" in bank.currencies for bank in topology.banks)


def test_the_topology_s_own_banks_come_first_and_unchanged(raw: dict[str, Any]) -> None:
    generated = topology_with_banks(raw, 8)
    assert generated["banks"][:3] == raw["banks"]
    assert [bank["orderers"] for bank in generated["banks"][3:]] == [0] * 5
    assert generated["regulator"] == raw["regulator"]
    assert generated["chaincodes"] == raw["chaincodes"]
    assert generated["orderer"] == raw["orderer"]


def test_adding_banks_keeps_the_orderer_set(raw: dict[str, Any]) -> None:
    three = parse_topology(topology_with_banks(raw, 3))
    eight = parse_topology(topology_with_banks(raw, 8))
    assert [node.name for node in eight.orderers] == [node.name for node in three.orderers]


def test_fewer_banks_than_the_file_keeps_the_first(raw: dict[str, Any]) -> None:
    two = topology_with_banks(raw, 2)
    assert [bank["msp_id"] for bank in two["banks"]] == ["USBankMSP", "HKBankMSP"]


def test_generated_banks_issue_their_home_currency_when_the_topology_lists_it(raw: dict[str, Any]) -> None:
    banks = {bank["jurisdiction"]: bank for bank in topology_with_banks(raw, 6)["banks"]}
    assert banks["DE"]["currencies"] == ["USD", "EUR"]
    assert banks["JP"]["currencies"] == ["USD", "JPY"]
    assert banks["GB"]["currencies"] == ["USD"]  # GBP is not in network.yaml's currencies


def test_joined_banks_are_left_out(raw: dict[str, Any]) -> None:
    with_joined = copy.deepcopy(raw)
    with_joined["joined_banks"] = [
        {"name": "GBBank", "msp_id": "GBBankMSP", "jurisdiction": "GB", "currencies": ["USD"], "host": "127.0.0.9"}
    ]
    generated = topology_with_banks(with_joined, 4)
    assert "joined_banks" not in generated
    assert len(parse_topology(generated).banks) == 4


def test_the_source_document_is_not_changed(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    topology_with_banks(raw, 8)
    assert raw == before


def test_a_topology_without_usd_is_refused(raw: dict[str, Any]) -> None:
    no_usd = copy.deepcopy(raw)
    del no_usd["currencies"]["USD"]
    with pytest.raises(ValueError, match="USD"):
        topology_with_banks(no_usd, 4)


def test_more_banks_than_the_port_plan_holds_is_refused(raw: dict[str, Any]) -> None:
    with pytest.raises((TopologyError, ValueError)):
        topology_with_banks(raw, 21)


def test_the_written_topology_is_what_the_network_tool_loads(raw: dict[str, Any], tmp_path: Path) -> None:
    path = write_topology_with_banks(DEFAULT_TOPOLOGY, tmp_path / "t", 5)
    assert path == tmp_path / "t" / "network.yaml"
    assert len(parse_topology(yaml.safe_load(path.read_text())).banks) == 5


@pytest.mark.parametrize(("text", "counts"), [("3,5,8", [3, 5, 8]), ("8, 3 ,8", [8, 3]), ("2", [2])])
def test_bank_counts(text: str, counts: list[int]) -> None:
    assert bank_counts(text) == counts


@pytest.mark.parametrize("text", ["", "1", "21", "3,x", ","])
def test_bad_bank_counts_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        bank_counts(text)


# -- figures ------------------------------------------------------------------------------------


def _step(
    rate: float,
    tx_per_s: float,
    peer_ms: float,
    *,
    drained: bool = True,
    per_op: int = 1,
    validator_ms: float | None = None,
) -> dict[str, Any]:
    return {
        "kind": "ladder",
        "offered_rate": rate,
        "throughput_ops": tx_per_s / per_op,
        "committed_tx_per_s": tx_per_s,
        "drained": drained,
        "cpu_ms_per_tx": {"peer": peer_ms, "orderer": 1.0, "chaincode": 0.5, "gateway": None, "client": 1.0},
        "validator_cpu_ms_per_tx": validator_ms,
    }


def _workload(steps: list[dict[str, Any]], ceiling_peak: float, per_op: int = 1) -> dict[str, Any]:
    peak = max(steps, key=lambda s: s["committed_tx_per_s"])
    return {
        "transactions_per_operation": per_op,
        "steps": steps,
        "peak": peak,
        "ratio_to_ceiling": round(peak["committed_tx_per_s"] / ceiling_peak, 3),
        "ratio_to_ceiling_ops": round(peak["throughput_ops"] / ceiling_peak, 3),
    }


def _document(
    banks: int, ceiling_ms: float, transfer_ms: float, transfer_top: float = 60, validator_ms: float = 2.0
) -> dict[str, Any]:
    """One run: the peer CPU figures are totals over the banks + 1 peers; one validating peer."""
    peers = banks + 1
    ceiling = [_step(30, 30, ceiling_ms * peers), _step(60, 60, ceiling_ms * peers)]
    transfer = [
        _step(30, 30, transfer_ms * peers, validator_ms=validator_ms),
        _step(60, transfer_top, transfer_ms * peers * 0.9, validator_ms=validator_ms),
    ]
    return {
        "run_id": f"run-{banks}",
        "network": {
            "banks": [f"B{i}MSP" for i in range(banks)],
            "node_counts": {"peer": peers, "orderer": 4, "validator": 1},
        },
        "workloads": {"ceiling": _workload(ceiling, 60), "transfer": _workload(transfer, 60)},
    }


def test_the_reference_rate_is_the_highest_every_run_carried() -> None:
    carried_by_both = [_step(30, 30, 1), _step(60, 60, 1)]
    one_falls_behind = [_step(30, 30, 1), _step(60, 40, 1)]  # 40 of 60 offered: under 80 %
    assert reference_rate([carried_by_both, carried_by_both]) == 60
    assert reference_rate([carried_by_both, one_falls_behind]) == 30
    assert reference_rate([[_step(30, 30, 1, drained=False)], carried_by_both]) is None


def test_cost_is_per_peer_at_the_reference_rate_and_relative_to_the_ceiling() -> None:
    summary = summarize_scaling([_document(3, 1.5, 3.0), _document(8, 1.5, 4.5)])
    transfer = summary["workloads"]["transfer"]
    assert transfer["reference_rate"] == 60
    three, eight = transfer["by_banks"]["3"], transfer["by_banks"]["8"]
    # the 60/s step's peer total is 0.9 x 3.0 x 4 peers: per peer 2.7 ms
    assert three["peer_cpu_ms_per_tx"] == pytest.approx(2.7)
    assert eight["peer_cpu_ms_per_tx"] == pytest.approx(4.05)
    assert three["cost_vs_ceiling"] == pytest.approx(1.8)
    assert three["all_cpu_ms_per_tx"] == pytest.approx(2.7 * 4 + 2.5)
    assert three["ratio_to_ceiling"] == 1.0
    assert transfer["growth"]["peer_cpu_per_tx"] == pytest.approx(0.5)
    assert transfer["growth"]["grows"] is True
    assert summary["workloads"]["ceiling"]["growth"]["grows"] is False
    assert summary["bank_counts"] == [3, 8]
    assert [run["peers"] for run in summary["runs"]] == [4, 9]


def test_growth_within_the_limit_is_flat() -> None:
    summary = summarize_scaling([_document(3, 1.5, 3.0), _document(8, 1.5, 3.3)])
    growth = summary["workloads"]["transfer"]["growth"]
    assert growth["peer_cpu_per_tx"] == pytest.approx(0.1)
    assert growth["grows"] is False


def test_repeated_runs_give_the_median_and_the_range() -> None:
    documents = [_document(3, 1.5, 3.0), _document(3, 1.5, 4.0), _document(3, 1.5, 3.5)]
    row = summarize_scaling(documents)["workloads"]["transfer"]["by_banks"]["3"]
    assert row["runs"] == 3
    assert row["peer_cpu_ms_per_tx"] == pytest.approx(3.5 * 0.9)
    assert row["peer_cpu_ms_per_tx_range"] == [pytest.approx(2.7), pytest.approx(3.6)]
    assert summarize_scaling(documents)["workloads"]["transfer"]["growth"] is None


def test_without_a_common_carried_rate_each_run_is_taken_at_its_peak() -> None:
    summary = summarize_scaling([_document(3, 1.5, 3.0, transfer_top=60), _document(8, 1.5, 3.0, transfer_top=20)])
    transfer = summary["workloads"]["transfer"]
    assert transfer["reference_rate"] == 30
    # 8 banks carried only 30/s; 30 is the common rate for both
    assert transfer["by_banks"]["8"]["offered_rate"] == 30
    lonely = copy.deepcopy(_document(5, 1.5, 3.0))
    for step in lonely["workloads"]["transfer"]["steps"]:
        step["drained"] = False
    fallback = summarize_scaling([lonely])["workloads"]["transfer"]["by_banks"]["5"]
    assert fallback["basis"] == "peak"


def test_the_table_names_growth_and_the_plot_is_written(tmp_path: Path) -> None:
    summary = summarize_scaling([_document(3, 1.5, 3.0), _document(8, 1.5, 4.5)])
    text = scaling_table(summary)
    assert "GROWS" in text and "+50 %" in text
    path = tmp_path / "banks.png"
    plot_scaling(path, summary, "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_validating_peer_that_grows_counts_even_when_the_average_does_not() -> None:
    # Endorsements spread over more peers keep the average flat while validation gets dearer.
    summary = summarize_scaling(
        [_document(3, 1.5, 3.0, validator_ms=2.0), _document(8, 1.5, 3.0, validator_ms=2.6)]
    )
    transfer = summary["workloads"]["transfer"]
    assert transfer["by_banks"]["8"]["validator_cpu_ms_per_tx"] == pytest.approx(2.6)
    assert transfer["growth"]["peer_cpu_per_tx"] == pytest.approx(0.0)
    assert transfer["growth"]["validator_cpu_per_tx"] == pytest.approx(0.3)
    assert transfer["growth"]["grows"] is True
    assert "validating peer +30 %" in scaling_table(summary)


def test_runs_without_a_validating_peer_are_judged_on_the_average() -> None:
    documents = [_document(3, 1.5, 3.0), _document(8, 1.5, 3.1)]
    for document in documents:
        document["network"]["node_counts"].pop("validator")
    growth = summarize_scaling(documents)["workloads"]["transfer"]["growth"]
    assert growth["validator_cpu_per_tx"] is None
    assert growth["grows"] is False


@pytest.mark.parametrize("option", ["--completion-group", "--initiation-group"])
def test_the_group_options_are_checked_before_anything_starts(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main, parser
    from bench.workloads import COMPLETION_GROUP, INITIATION_GROUP

    attribute = option.removeprefix("--").replace("-", "_")
    largest = COMPLETION_GROUP if option == "--completion-group" else INITIATION_GROUP
    assert getattr(parser().parse_args([]), attribute) == largest
    assert getattr(parser().parse_args([option, "1"]), attribute) == 1
    for wrong in ("0", str(largest + 1)):
        with pytest.raises(SystemExit) as stopped:
            main([option, wrong, "--smoke"])
        assert stopped.value.code == 2
        assert f"{option} must be 1 to {largest}" in capsys.readouterr().err


def test_the_benchs_initiation_groups_take_refused_items_out_and_fan_out_each_commit() -> None:
    """InitiationGroups as the payer bank's gateway groups: a group_refused names the refused items,
    the rest goes again; every item's watchers hear the commit of the transaction that carried it."""
    import json

    from fabric_client import EndorseError

    from bench.workloads import InitiationGroups, ItemRefused

    sent: list[tuple[str, Any]] = []

    class Driver:
        def submit(self, org: str, chaincode: str, function: str, *, request: Any, watch: Any) -> tuple[str, bytes]:
            sent.append((function, request))
            if function == "InitiatePayments" and len(request["payments"]) == 3:
                refused = {"refused": [{"position": 1, "code": "insufficient_funds", "message": "below"}]}
                raise EndorseError(f"chaincode response 409, [group_refused] {json.dumps(refused)}")
            for callback in watch.values():
                callback(0, 1.0)
            items = request["payments"] if function == "InitiatePayments" else [request]
            answers = [{"payment_id": item["idempotency_key"], "created": True} for item in items]
            return "tx", json.dumps(answers[0] if function == "InitiatePayment" else {"results": answers}).encode()

    heard: list[tuple[str, str]] = []
    groups = InitiationGroups(Driver(), ["US"])  # type: ignore[arg-type]
    items = [
        ({"idempotency_key": key}, {"US": lambda code, at, k=key: heard.append(("US", k)),
                                    "HK": lambda code, at, k=key: heard.append(("HK", k))})
        for key in ("a", "b", "c")
    ]  # fmt: skip
    outcomes = groups._submit("US", items)
    assert [function for function, _ in sent] == ["InitiatePayments", "InitiatePayments"]
    assert [item["idempotency_key"] for item in sent[1][1]["payments"]] == ["a", "c"]
    assert outcomes[0] == {"payment_id": "a", "created": True} and outcomes[2] == {"payment_id": "c", "created": True}
    assert isinstance(outcomes[1], ItemRefused) and outcomes[1].reason == "insufficient_funds"
    assert sorted(heard) == [("HK", "a"), ("HK", "c"), ("US", "a"), ("US", "c")]
    # One item alone is a plain InitiatePayment.
    assert groups._submit("US", items[:1]) == [{"payment_id": "a", "created": True}]
    assert sent[-1][0] == "InitiatePayment"
