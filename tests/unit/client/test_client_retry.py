from __future__ import annotations

from typing import Any

import grpc
import pytest
from fabric_client import CommitError, EndorseError, submit_with_retry
from fabric_protos.peer import transaction_pb2


class ScriptedContract:
    """Fails submit_transaction with the scripted errors in turn, then succeeds."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def qualified_name(self, name: str) -> str:
        return name

    def submit_transaction(self, name: str, *args: Any, **kwargs: Any) -> bytes:
        self.calls.append((name, args, kwargs))
        if self.failures:
            raise self.failures.pop(0)
        return b"done"


def conflict(code: int = transaction_pb2.MVCC_READ_CONFLICT) -> CommitError:
    return CommitError(transaction_id="t", code=code, block_number=3)


def test_retries_read_conflicts_then_succeeds() -> None:
    contract = ScriptedContract([conflict(), conflict(transaction_pb2.PHANTOM_READ_CONFLICT)])
    sleeps: list[float] = []

    result = submit_with_retry(
        contract,  # type: ignore[arg-type]
        "Transfer",
        "a",
        7,
        transient={"k": "v"},
        attempts=3,
        backoff=0.1,
        sleep=sleeps.append,
    )

    assert result == b"done"
    assert len(contract.calls) == 3
    assert all(call == ("Transfer", ("a", 7), contract.calls[0][2]) for call in contract.calls)
    assert contract.calls[0][2]["transient"] == {"k": "v"}
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2


def test_gives_up_after_attempts_with_last_conflict() -> None:
    contract = ScriptedContract([conflict(), conflict(), conflict()])
    with pytest.raises(CommitError) as caught:
        submit_with_retry(contract, "Transfer", attempts=2, sleep=lambda _: None)  # type: ignore[arg-type]
    assert caught.value.code_name == "MVCC_READ_CONFLICT"
    assert len(contract.calls) == 2


def test_never_retries_chaincode_error() -> None:
    refusal = EndorseError(
        "failed to endorse transaction: chaincode response 409, [INSUFFICIENT_FUNDS] balance too low",
        grpc_code=grpc.StatusCode.ABORTED,
    )
    contract = ScriptedContract([refusal])
    with pytest.raises(EndorseError):
        submit_with_retry(contract, "Transfer", sleep=lambda _: None)  # type: ignore[arg-type]
    assert len(contract.calls) == 1


def test_never_retries_other_invalid_commits() -> None:
    contract = ScriptedContract([conflict(transaction_pb2.ENDORSEMENT_POLICY_FAILURE)])
    with pytest.raises(CommitError):
        submit_with_retry(contract, "Transfer", sleep=lambda _: None)  # type: ignore[arg-type]
    assert len(contract.calls) == 1


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        submit_with_retry(ScriptedContract([]), "Transfer", attempts=0)  # type: ignore[arg-type]
