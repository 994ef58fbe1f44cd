"""submit_idempotent: a transaction lost with its orderer is found out in bounded time and run again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from client_test_keys import Credentials
from fabric_client import CommitError, CommitStatusError, EndorseError, Gateway, SubmitError, submit_idempotent
from fabric_protos.peer import transaction_pb2
from fake_gateway import FakeGateway, connected
from google.rpc import code_pb2

WAIT = 0.3  # the commit wait of these tests, in seconds: short, so that they run fast


@pytest.fixture
def recovering(credentials: Credentials) -> Iterator[tuple[FakeGateway, Gateway]]:
    fake = FakeGateway(ledger_codes={}, result_with_tx_id=True)
    with connected(fake, credentials) as gateway:
        yield fake, gateway


def _submit(gateway: Gateway, **options: object) -> bytes:
    contract = gateway.get_network("tokens").get_contract("deposit_token")
    settings: dict[str, object] = {"commit_wait": WAIT, "deadline": 10.0, "sleep": lambda _: None, **options}
    return submit_idempotent(contract, "CompletePayment", "p-1", **settings)  # type: ignore[arg-type]


def _tx(result: bytes) -> str:
    return result.rsplit(b"@", 1)[1].decode()


def test_a_transaction_lost_with_its_orderer_is_run_again(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.lose_next = 1
    result = _submit(gateway)
    first, second = fake.submitted
    assert first != second  # a new transaction id...
    assert [p["args"] for p in fake.endorsed] == [[b"CompletePayment", b"p-1"]] * 2  # ...for the same request
    assert _tx(result) == second
    looked_up = [p["args"][2].decode() for p in fake.evaluated if p["args"][0] == b"GetTransactionByID"]
    assert first in looked_up  # it was looked up before being given up as lost


def test_a_late_commit_is_found_on_the_ledger_and_not_run_again(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.commit_late_next = 1
    result = _submit(gateway)
    assert len(fake.endorsed) == 1 and _tx(result) == fake.submitted[0]


def test_a_refused_rerun_returns_the_earlier_attempt_that_committed_meanwhile(
    recovering: tuple[FakeGateway, Gateway],
) -> None:
    fake, gateway = recovering
    fake.lose_next = 1

    def first_commits_now(fake: FakeGateway, transaction_id: str) -> None:
        if len(fake.endorsed) == 2:  # the rerun: the lost one turns up, so the contract refuses a repeat
            assert fake.ledger_codes is not None
            fake.ledger_codes[fake.submitted[0]] = transaction_pb2.VALID
            refusal = ("p", "USBankMSP", "chaincode response 409, [invalid_state] done")
            fake.endorse_error = (code_pb2.ABORTED, "failed to endorse", [refusal])

    fake.on_endorse = first_commits_now
    result = _submit(gateway)
    assert _tx(result) == fake.submitted[0]


def test_a_conflict_with_the_earlier_attempt_returns_its_result(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.lose_next = 1

    def first_commits_now(fake: FakeGateway, transaction_id: str) -> None:
        if len(fake.endorsed) == 2:  # both endorsed on the same state: the rerun loses the conflict
            assert fake.ledger_codes is not None
            fake.ledger_codes[fake.submitted[0]] = transaction_pb2.VALID
            fake.commit_code = transaction_pb2.MVCC_READ_CONFLICT

    fake.on_endorse = first_commits_now
    result = _submit(gateway)
    assert len(fake.endorsed) == 2 and _tx(result) == fake.submitted[0]


def test_submits_refused_during_an_election_are_sent_again(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.unavailable_submits = 3
    result = _submit(gateway)
    assert fake.submit_calls == 4 and len(fake.endorsed) == 1  # the same signed transaction each time
    assert _tx(result) == fake.submitted[0]


def test_an_ordering_service_that_never_takes_it_gives_submit_error(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.unavailable_submits = 10_000
    with pytest.raises(SubmitError) as caught:
        _submit(gateway, deadline=1.0, sleep=_short_sleep)
    assert caught.value.grpc_code == grpc.StatusCode.UNAVAILABLE
    assert fake.submitted == []


def _short_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.05))  # the backoff really passes, or the deadline would never come


def test_unknown_to_the_end_gives_commit_status_error(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.lose_next = 10_000
    with pytest.raises(CommitStatusError):
        _submit(gateway, deadline=1.2)
    assert len(fake.endorsed) >= 2  # run again while time was left


def test_read_conflicts_use_up_the_attempts(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.commit_code = transaction_pb2.MVCC_READ_CONFLICT
    with pytest.raises(CommitError) as caught:
        _submit(gateway, attempts=3)
    assert caught.value.code_name == "MVCC_READ_CONFLICT"
    assert len(fake.endorsed) == 3


def test_a_refusal_with_nothing_committed_is_raised(recovering: tuple[FakeGateway, Gateway]) -> None:
    fake, gateway = recovering
    fake.endorse_error = (code_pb2.ABORTED, "failed to endorse", [("p", "USBankMSP", "chaincode response 409, [x] no")])
    with pytest.raises(EndorseError) as caught:
        _submit(gateway)
    assert caught.value.chaincode_status == 409


def test_settings_are_checked(recovering: tuple[FakeGateway, Gateway]) -> None:
    _, gateway = recovering
    with pytest.raises(ValueError):
        _submit(gateway, commit_wait=0)
    with pytest.raises(ValueError):
        _submit(gateway, attempts=0)
