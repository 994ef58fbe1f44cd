"""The bound on submissions in flight: over it a submission is refused at once, before anything is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from client_test_keys import Credentials
from fabric_client import (
    DEFAULT_MAX_IN_FLIGHT,
    FOLLOW_UP_WAIT,
    EndorseError,
    Gateway,
    GatewayError,
    Overloaded,
    SubmissionLimit,
    submit_idempotent,
)
from fabric_client.inflight import Slot
from fake_gateway import FakeGateway, connected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_submission_over_the_limit_is_refused_with_a_hint() -> None:
    limit = SubmissionLimit(2)
    first, _ = limit.acquire(), limit.acquire()

    with pytest.raises(Overloaded) as caught:
        limit.acquire()

    refused = caught.value
    assert (refused.limit, refused.in_flight) == (2, 2)
    assert refused.retry_after > 0 and refused.is_retryable
    assert isinstance(refused, GatewayError) and refused.grpc_code is None
    assert limit.refused == 1 and limit.in_flight == 2
    first.release()
    limit.acquire()
    assert limit.in_flight == 2


def test_a_place_is_given_back_once_however_often_it_is_released() -> None:
    limit = SubmissionLimit(1)
    slot = limit.acquire()
    slot.release()
    slot.release()  # a commit reported twice must not free a place another submission holds
    held = limit.acquire()
    assert limit.in_flight == 1 and slot.released and not held.released
    with pytest.raises(Overloaded):
        limit.acquire()


def test_the_context_manager_gives_the_place_back_on_failure() -> None:
    limit = SubmissionLimit(1)
    with pytest.raises(RuntimeError), limit.slot():
        raise RuntimeError("endorsement failed")
    assert limit.in_flight == 0


def test_the_hint_follows_how_long_submissions_hold_their_place() -> None:
    clock = Clock()
    limit = SubmissionLimit(1, clock=clock)
    assert limit.retry_after() == 1.0  # nothing measured yet
    for _ in range(60):
        slot = limit.acquire()
        clock.now += 0.3
        slot.release()
    assert 0.29 < limit.retry_after() < 0.35
    for _ in range(60):
        slot = limit.acquire()
        clock.now += 120.0  # a stuck commit: the hint stays within bounds
        slot.release()
    assert limit.retry_after() == 10.0


def test_a_waiting_submission_takes_the_place_that_comes_free() -> None:
    limit = SubmissionLimit(1, wait=30.0)
    held = limit.acquire()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limit.acquire()))
    waiter.start()
    held.release()
    waiter.join()
    assert len(got) == 1 and limit.in_flight == 1


def test_no_limit_and_bad_settings() -> None:
    unlimited = SubmissionLimit(None)
    for _ in range(DEFAULT_MAX_IN_FLIGHT * 2):
        unlimited.acquire()
    assert unlimited.in_flight == DEFAULT_MAX_IN_FLIGHT * 2
    with pytest.raises(ValueError):
        SubmissionLimit(0)
    with pytest.raises(ValueError):
        SubmissionLimit(1, wait=-1)


# -- on a gateway connection --------------------------------------------------------------------


@pytest.fixture
def gateway(fake: FakeGateway, credentials: Credentials) -> Iterator[Gateway]:
    with connected(fake, credentials, max_in_flight=1) as gw:
        yield gw


def test_the_gateway_default_bound(fake: FakeGateway, credentials: Credentials) -> None:
    with connected(fake, credentials) as gw:
        assert gw.submissions.limit == DEFAULT_MAX_IN_FLIGHT
    with connected(fake, credentials, max_in_flight=None) as gw:
        assert gw.submissions.limit is None


def test_over_the_bound_nothing_is_endorsed_or_sent(gateway: Gateway, fake: FakeGateway) -> None:
    contract = gateway.get_network("tokens").get_contract("deposit_token")
    held = gateway.submissions.acquire()

    for submit in (
        lambda: contract.submit_transaction("Issue", "1"),
        lambda: contract.submit_async("Issue", "1"),
        lambda: submit_idempotent(contract, "Issue", "1"),
    ):
        with pytest.raises(Overloaded):
            submit()
    assert fake.endorsed == [] and fake.submitted == []

    held.release()
    assert contract.submit_transaction("Issue", "1") == b"endorsed:Issue|1"
    assert submit_idempotent(contract, "Issue", "2") == b"endorsed:Issue|2"
    assert gateway.submissions.in_flight == 0


def test_a_submission_holds_its_place_until_the_commit_is_known(gateway: Gateway, fake: FakeGateway) -> None:
    seen: list[int] = []
    fake.on_endorse = lambda _fake, _tx: seen.append(gateway.submissions.in_flight)
    contract = gateway.get_network("tokens").get_contract("deposit_token")

    contract.submit_transaction("Issue", "1")
    submit_idempotent(contract, "Issue", "2")

    assert seen == [1, 1] and gateway.submissions.in_flight == 0


def test_a_failed_submission_gives_its_place_back(gateway: Gateway, fake: FakeGateway) -> None:
    fake.endorse_error = (10, "failed to endorse", [("peer0:7051", "USBankMSP", "chaincode response 409, [x] no")])
    contract = gateway.get_network("tokens").get_contract("deposit_token")
    with pytest.raises(EndorseError):
        contract.submit_transaction("Issue", "1")
    assert gateway.submissions.in_flight == 0


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    """Poll ``condition()`` (a thread reaching its wait) without asserting anything about time."""
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)


def test_a_follow_up_waits_for_a_place_and_new_work_is_refused_meanwhile() -> None:
    limit = SubmissionLimit(1)
    held = limit.acquire()
    taken: list[object] = []
    follow_up = threading.Thread(target=lambda: taken.append(limit.acquire(wait=30, follow_up=True)))
    follow_up.start()
    _wait_for(lambda: limit._follow_ups_waiting == 1)
    assert limit._follow_ups_waiting == 1
    with pytest.raises(Overloaded, match="follow-ups wait for places"):
        limit.acquire()  # refused, and told why

    held.release()
    # The place given back is the follow-up's: a new submission, even one willing to wait, gets none.
    with pytest.raises(Overloaded):
        limit.acquire(wait=0.05)
    follow_up.join(10)
    assert len(taken) == 1 and limit.in_flight == 1


def test_new_work_waiting_for_a_place_yields_it_to_a_follow_up() -> None:
    limit = SubmissionLimit(1)
    held = limit.acquire()
    order: list[str] = []
    places: list[Slot] = []

    def take(name: str, follow_up: bool) -> None:
        places.append(limit.acquire(wait=30, follow_up=follow_up))
        order.append(name)

    new = threading.Thread(target=take, args=("new", False))
    new.start()
    follow_up = threading.Thread(target=take, args=("follow-up", True))
    follow_up.start()
    _wait_for(lambda: limit._follow_ups_waiting == 1)

    held.release()
    follow_up.join(10)
    assert order == ["follow-up"], "the follow-up must get the place first"
    places[0].release()  # the follow-up committed: the new submission that waited gets the place
    new.join(10)
    assert order == ["follow-up", "new"] and limit.in_flight == 1


def test_a_follow_up_with_free_places_is_not_held_back() -> None:
    limit = SubmissionLimit(2)
    limit.acquire()
    limit.acquire(follow_up=True)
    assert limit.in_flight == 2
    with pytest.raises(Overloaded) as caught:
        limit.acquire(wait=0, follow_up=True)  # a follow-up too is refused once its own wait is over
    assert caught.value.limit == 2


def test_a_follow_up_waits_at_least_its_default_wait() -> None:
    clock = Clock()
    limit = SubmissionLimit(1, clock=clock)
    limit.acquire()
    waited: list[float] = []
    original = limit._free.wait

    def wait(timeout: float | None = None) -> bool:
        waited.append(float(timeout or 0))
        clock.now += float(timeout or 0)  # time passes, nobody gives a place back
        return original(0)

    limit._free.wait = wait  # type: ignore[method-assign]
    with pytest.raises(Overloaded):
        limit.acquire(follow_up=True)
    assert sum(waited) >= FOLLOW_UP_WAIT
    assert limit._follow_ups_waiting == 0
