"""fabric_client.GroupCommit: items ready while groups are in flight go to the ledger together."""

from __future__ import annotations

import threading
import time

import pytest
from fabric_client import GroupCommit


class Ledger:
    """A ``submit_group`` that holds each group until the test lets it go, and notes what it got."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def submit_group(self, items: list[int]) -> list[int | BaseException]:
        with self.lock:
            self.groups.append(list(items))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered.release()
        self.release.wait(10)
        with self.lock:
            self.in_flight -= 1
        return [ValueError(f"item {item} refused") if item < 0 else item * 10 for item in items]


def _run_all(group: GroupCommit[int, int], items: list[int]) -> tuple[dict[int, object], list[threading.Thread]]:
    outcomes: dict[int, object] = {}

    def one(item: int) -> None:
        try:
            outcomes[item] = group.run(item)
        except Exception as error:
            outcomes[item] = error

    threads = [threading.Thread(target=one, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return outcomes, threads


def _wait_for_waiting(group: GroupCommit[int, int], count: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._waiting) < count:
        assert time.monotonic() < deadline, "the items never queued"
        time.sleep(0.005)


def test_an_item_alone_goes_alone_and_gets_its_outcome() -> None:
    ledger = Ledger()
    ledger.release.set()
    group: GroupCommit[int, int] = GroupCommit(ledger.submit_group, max_group=50, in_flight=2)
    assert group.run(4) == 40
    assert ledger.groups == [[4]]


def test_items_ready_while_groups_are_in_flight_go_together() -> None:
    ledger = Ledger()
    sizes: list[int] = []
    group: GroupCommit[int, int] = GroupCommit(ledger.submit_group, max_group=50, in_flight=1, on_group=sizes.append)
    first, first_threads = _run_all(group, [1])
    assert ledger.entered.acquire(timeout=10)  # item 1 is being submitted, alone
    rest, rest_threads = _run_all(group, [2, 3, -4, 5])
    _wait_for_waiting(group, 4)
    assert ledger.groups == [[1]]  # nothing else started: one group in flight at most
    ledger.release.set()
    for thread in first_threads + rest_threads:
        thread.join(10)
    assert ledger.groups[0] == [1]
    assert sorted(ledger.groups[1]) == [-4, 2, 3, 5]
    assert len(ledger.groups) == 2 and sizes == [1, 4]
    assert first == {1: 10}
    assert {item: rest[item] for item in (2, 3, 5)} == {2: 20, 3: 30, 5: 50}
    # A refused item's caller alone gets the refusal.
    assert isinstance(rest[-4], ValueError) and str(rest[-4]) == "item -4 refused"
    assert ledger.most_in_flight == 1


def test_groups_hold_at_most_max_group_and_at_most_in_flight_run_at_once() -> None:
    ledger = Ledger()
    group: GroupCommit[int, int] = GroupCommit(ledger.submit_group, max_group=3, in_flight=2)
    started, started_threads = _run_all(group, [100])
    assert ledger.entered.acquire(timeout=10)
    second, second_threads = _run_all(group, [101])
    assert ledger.entered.acquire(timeout=10)  # two groups of one in flight: the limit
    started.update(second)
    started_threads += second_threads
    items = list(range(10))
    outcomes, threads = _run_all(group, items)
    _wait_for_waiting(group, 10)
    ledger.release.set()
    for thread in started_threads + threads:
        thread.join(10)
    started.update(second)
    assert outcomes == {item: item * 10 for item in items} and started == {100: 1000, 101: 1010}
    assert all(len(one) <= 3 for one in ledger.groups)
    assert sorted(item for one in ledger.groups for item in one) == [*items, 100, 101]
    assert ledger.most_in_flight == 2


def test_a_group_that_fails_fails_every_caller_in_it() -> None:
    def broken(items: list[int]) -> list[int | BaseException]:
        raise ConnectionError("the peer is down")

    group: GroupCommit[int, int] = GroupCommit(broken, max_group=5, in_flight=1)
    with pytest.raises(ConnectionError, match="the peer is down"):
        group.run(1)
    # An answer of the wrong length is a failure of the group, not a wrong outcome for someone.
    short: GroupCommit[int, int] = GroupCommit(lambda items: [], max_group=5, in_flight=1)
    with pytest.raises(RuntimeError, match="a group of 1 got 0 outcomes"):
        short.run(1)
    # The group is usable afterwards: nothing was left counted as in flight.
    assert group._submitting == 0 and short._submitting == 0


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        GroupCommit(lambda items: list(items), max_group=0, in_flight=1)
    with pytest.raises(ValueError):
        GroupCommit(lambda items: list(items), max_group=1, in_flight=0)
