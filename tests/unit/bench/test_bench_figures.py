"""The bench's arithmetic, without a network: percentiles, step summaries, Fabric histograms."""

from __future__ import annotations

import pytest

from bench.load import CLIENT_ERROR, MVCC, OK, VALID, Account, AccountPool, StepRun, Tracker
from bench.metrics import FabricMetrics, parse_histograms
from bench.report import percentile, summarize_step
from bench.testbed import BlockCutting

MVCC_CODE = 11  # TxValidationCode MVCC_READ_CONFLICT


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def _run(tracker: Tracker, rate: float, duration: float, sent: int, t0: float = 1000.0) -> StepRun:
    return StepRun(rate, duration, tracker, t0, sent, t0 + duration, t0 + duration + 1, True)


def test_step_summary_counts_only_valid_commits_over_the_window() -> None:
    tracker = Tracker()
    t0 = 1000.0
    for i in range(8):
        tracker.begin()
        tracker.transaction(VALID)
        tracker.finish(OK, t0 + i, t0 + i + 0.2)
    tracker.begin()
    tracker.transaction(MVCC_CODE)
    tracker.finish(MVCC, t0, t0 + 0.3)
    tracker.begin()
    tracker.finish(CLIENT_ERROR, t0, t0 + 0.1, "endorse: insufficient_funds")
    tracker.freeze()
    cpu = {"peer": 0.8, "client": 0.08, "validator": 0.2, "gateway": 0.5, "oversight_gateway": 0.04}
    step = summarize_step(_run(tracker, 1.0, 10.0, 10), 1, cpu, (4, 10))
    # 8 good operations over the 10 s step (the last commit came before the step ended)
    assert step["throughput_ops"] == 0.8
    assert step["committed_tx"] == 8
    assert step["failure_rate"] == 0.2
    assert step["mvcc_conflicts"] == 1
    assert step["mvcc_conflict_rate"] == pytest.approx(1 / 9, abs=1e-4)
    assert step["latency_ms"]["p50"] == pytest.approx(200.0)
    assert step["cpu_ms_per_tx"]["peer"] == 100.0
    assert step["cpu_ms_per_tx"]["orderer"] == 0.0
    # the validating peer is also a peer: reported beside the kinds, not as one more of them
    assert step["validator_cpu_ms_per_tx"] == 25.0
    assert "validator" not in step["cpu_ms_per_tx"]
    # the regulator's gateway likewise, per transaction and per good operation
    assert (step["oversight_gateway_cpu_ms_per_tx"], step["oversight_gateway_cpu_ms_per_operation"]) == (5.0, 5.0)
    assert step["cpu_ms_per_tx"]["gateway"] == 62.5 and "oversight_gateway" not in step["cpu_ms_per_tx"]
    assert step["transactions_per_block"] == 2.5
    assert step["errors"] == {"endorse: insufficient_funds": 1}


def test_a_backlog_that_drains_late_lowers_throughput() -> None:
    tracker = Tracker()
    t0 = 1000.0
    for i in range(10):
        tracker.begin()
        tracker.transaction(VALID)
        tracker.finish(OK, t0 + i, t0 + 19.0)  # everything committed 9 s after the step ended
    tracker.freeze()
    step = summarize_step(_run(tracker, 1.0, 10.0, 10, t0), 1, {}, (1, 10))
    assert step["window_s"] == 19.0
    assert step["throughput_ops"] == pytest.approx(10 / 19.0, abs=0.01)


def test_a_frozen_tracker_ignores_late_callbacks() -> None:
    tracker = Tracker()
    tracker.begin()
    tracker.freeze()
    tracker.transaction(VALID)
    tracker.finish(OK, 0.0, 1.0)
    assert tracker.transactions_valid == 0
    assert tracker.outcomes[OK] == 0


def test_account_pool_hands_each_account_to_one_debit_at_a_time() -> None:
    pool = AccountPool([Account("USBankMSP", "a"), Account("USBankMSP", "b")])
    first, second = pool.take(0.01), pool.take(0.01)
    assert {first.account_id if first else None, second.account_id if second else None} == {"a", "b"}
    assert pool.take(0.01) is None
    assert first is not None
    pool.give_back(first)
    assert pool.take(0.01) == first


EXPOSITION = """\
# HELP endorser_proposal_duration The time to complete a proposal.
# TYPE endorser_proposal_duration histogram
endorser_proposal_duration_bucket{chaincode="deposit_token",le="0.005"} 3
endorser_proposal_duration_sum{chaincode="deposit_token",success="true"} 0.5
endorser_proposal_duration_count{chaincode="deposit_token",success="true"} 10
endorser_proposal_duration_sum{chaincode="conformance",success="true"} 0.25
endorser_proposal_duration_count{chaincode="conformance",success="true"} 5
chaincode_shim_request_duration_sum{chaincode="deposit_token",type="GET_STATE"} 0.07
chaincode_shim_request_duration_count{chaincode="deposit_token",type="GET_STATE"} 70
chaincode_shim_request_duration_sum{chaincode="deposit_token",type="WRITE_BATCH_STATE"} 0.01
chaincode_shim_request_duration_count{chaincode="deposit_token",type="WRITE_BATCH_STATE"} 10
ledger_transaction_count{channel="tokens"} 99
"""


def test_histograms_are_summed_over_labels_except_the_breakdown_label() -> None:
    totals = parse_histograms(EXPOSITION, ["endorser_proposal_duration", "chaincode_shim_request_duration"])
    assert totals["endorser_proposal_duration"] == (0.75, 15.0)
    assert totals["chaincode_shim_request_duration[GET_STATE]"] == (0.07, 70.0)
    assert totals["chaincode_shim_request_duration[WRITE_BATCH_STATE]"] == (0.01, 10.0)
    assert "ledger_transaction" not in " ".join(totals)


def test_stage_summary_is_the_mean_of_the_change_and_its_count_per_transaction() -> None:
    before = {"peer.endorser_proposal_duration": (1.0, 100.0)}
    after = {"peer.endorser_proposal_duration": (1.5, 110.0), "peer.idle": (0.0, 0.0)}
    summary = FabricMetrics.summarize(before, after, committed=10)
    assert summary == {"peer.endorser_proposal_duration": {"mean_ms": 50.0, "per_tx": 1.0}}


@pytest.mark.parametrize(("text", "ms"), [("250ms", 250.0), ("2s", 2000.0), ("1.5s", 1500.0)])
def test_batch_timeout_in_milliseconds(text: str, ms: float) -> None:
    assert BlockCutting(text, 200, "2 MB").batch_timeout_ms == ms
