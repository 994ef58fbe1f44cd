"""Overload in the bench, without a network: refusals are counted apart from failures, a refused
operation backs off and is tried again, and the overload figure is the step after the peak."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fabric_client import Overloaded

from bench.load import CLIENT_ERROR, OK, REFUSED, VALID, Later, StepRun, Tracker, _bind, backoff, error_outcome
from bench.report import overload_figure, peak_step, summarize_step, table


def _refusal(hint: float = 0.5) -> Overloaded:
    return Overloaded("full", limit=64, in_flight=64, retry_after=hint)


def test_refused_operations_are_not_failures() -> None:
    tracker = Tracker()
    t0 = 1000.0
    for i in range(6):
        tracker.begin()
        tracker.transaction(VALID)
        tracker.finish(OK, t0 + i, t0 + i + 0.2)
    for _ in range(3):
        tracker.begin()
        tracker.finish(REFUSED, t0, t0 + 0.01, "refused: overloaded")
    tracker.begin()
    tracker.finish(CLIENT_ERROR, t0, t0 + 0.1, "endorse: boom")
    tracker.freeze()
    run = StepRun(1.0, 10.0, tracker, t0, 10, t0 + 10, t0 + 11, True)
    step = summarize_step(run, 1, {}, (1, 6))
    assert (step["failure_rate"], step["refused_rate"]) == (0.1, 0.3)
    assert step["outcomes"][REFUSED] == 3
    assert error_outcome(_refusal()) == (REFUSED, "refused: overloaded")


def test_a_refused_operation_backs_off_then_runs_again() -> None:
    tracker = Tracker()
    tracker.begin()
    attempts: list[float] = []
    waits: list[float] = []
    later: list[Callable[[], None]] = []

    def operation(tracker: Tracker, due: float) -> None:
        attempts.append(due)
        if len(attempts) < 3:
            raise _refusal(0.5)
        tracker.finish(OK, due, due + 1)

    def run_after(delay: float, job: Callable[[], None]) -> None:
        waits.append(delay)
        later.append(job)

    job = _bind(operation, tracker, time.time(), run_after)
    job()
    while later:
        later.pop()()
    assert len(attempts) == 3 and waits == [0.5, 1.0]  # the hint, doubled on the second refusal
    assert tracker.outcomes[OK] == 1 and tracker.extra["refused attempts"] == 2


def test_an_operation_refused_past_its_patience_ends_refused() -> None:
    tracker = Tracker()
    tracker.begin()

    def operation(tracker: Tracker, due: float) -> None:
        raise _refusal(5.0)

    def run_after(delay: float, job: Callable[[], None]) -> None:
        raise AssertionError("an operation due long ago is not tried again")

    _bind(operation, tracker, 0.0, run_after)()  # due at the epoch: far past its patience
    assert tracker.outcomes[REFUSED] == 1 and tracker.finished == 1


def test_backoff_is_bounded() -> None:
    assert backoff(_refusal(0.5), 1) == 0.5
    assert backoff(_refusal(0.5), 3) == 2.0
    assert backoff(_refusal(3.0), 10) == 8.0


def _step(offered: float, tx_per_s: float, kind: str = "ladder") -> dict[str, Any]:
    return {
        "offered_rate": offered,
        "committed_tx_per_s": tx_per_s,
        "throughput_ops": tx_per_s,
        "kind": kind,
        "failure_rate": 0.0,
        "refused_rate": 0.25,
        "drained": True,
        "latency_ms": {"p50": 900.0, "p95": 1500.0, "p99": 2000.0},
        "mvcc_conflict_rate": 0.0,
        "cpu_ms_per_tx": {},
    }


def test_the_overload_figure_is_the_step_after_the_peak() -> None:
    steps = [_step(30, 29.5), _step(60, 58.0), _step(120, 55.1), _step(240, 30.0), _step(29, 28.8, "half_peak")]
    peak = peak_step(steps)
    assert peak is not None and peak["offered_rate"] == 60
    figure = overload_figure(steps, peak)
    assert figure is not None
    assert (figure["offered_rate"], figure["ratio"], figure["refused_rate"]) == (120, 0.95, 0.25)


def test_the_overload_step_counts_when_the_ladder_stopped_at_its_peak() -> None:
    steps = [_step(30, 29.5), _step(60, 40.0), _step(120, 38.0, "overload")]
    peak = peak_step(steps)
    assert peak is not None and peak["offered_rate"] == 60  # the overload step is never the peak
    figure = overload_figure(steps, peak)
    assert figure is not None and figure["ratio"] == 0.95
    assert overload_figure(steps[:2], peak) is None  # nothing offered past the peak: no figure
    text = table({"transfer": {"peak": peak, "overload": figure, "steps": steps}})
    assert " 0.95 " in text


def test_later_makes_its_calls_in_the_order_they_fall_due_on_one_thread() -> None:
    made: list[str] = []
    threads: set[str] = set()
    done = threading.Event()

    def call(name: str) -> Callable[[], None]:
        def make() -> None:
            threads.add(threading.current_thread().name)
            made.append(name)
            if name == "third":
                done.set()

        return make

    later = Later()
    try:
        later.after(0.06, call("third"))
        later.after(0.0, call("first"))
        later.after(0.03, call("second"))
        assert done.wait(10)
        assert made == ["first", "second", "third"]
        assert threads == {"bench-later"}, "back-offs must not start a thread each"
    finally:
        later.close()


def test_later_survives_a_failing_call_and_drops_what_is_due_when_closed() -> None:
    made: list[int] = []
    done = threading.Event()
    later = Later()
    later.after(0.0, lambda: 1 / 0)  # type: ignore[func-returns-value]
    later.after(0.01, lambda: (made.append(1), done.set()))  # type: ignore[func-returns-value]
    assert done.wait(10) and made == [1]
    later.after(30, lambda: made.append(2))
    later.close()
    later._thread.join(10)
    assert not later._thread.is_alive() and made == [1]
