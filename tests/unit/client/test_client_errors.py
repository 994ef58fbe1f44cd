from __future__ import annotations

from typing import Any

import grpc
import pytest
from fabric_client.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    GatewayError,
    SubmitError,
    validation_code_name,
)
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2


class FakeRpcError(grpc.RpcError):
    """Shaped like the error a grpc call raises, with the rich status in trailing metadata."""

    def __init__(self, code: grpc.StatusCode, message: str, details: list[Any] | None = None) -> None:
        self._code = code
        self._message = message
        status = status_pb2.Status(code=code.value[0], message=message)
        for detail in details or []:
            packed = any_pb2.Any()
            packed.Pack(detail)
            status.details.append(packed)
        self._metadata = (("grpc-status-details-bin", status.SerializeToString()),) if details else ()

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> Any:
        return self._metadata


def test_endorse_error_unpacks_every_peer_detail() -> None:
    rpc = FakeRpcError(
        grpc.StatusCode.ABORTED,
        "failed to collect enough transaction endorsements, see attached details for more info",
        [
            gateway_pb2.ErrorDetail(
                address="peer0.usbank:7051",
                msp_id="USBankMSP",
                message="chaincode response 403, [FORBIDDEN] not your token",
            ),
            gateway_pb2.ErrorDetail(address="peer0.hkbank:7051", msp_id="HKBankMSP", message="timeout"),
        ],
    )

    error = EndorseError.from_rpc_error(rpc, transaction_id="abc")

    assert isinstance(error, GatewayError)
    assert error.grpc_code == grpc.StatusCode.ABORTED
    assert error.transaction_id == "abc"
    assert [(d.address, d.msp_id, d.message) for d in error.details] == [
        ("peer0.usbank:7051", "USBankMSP", "chaincode response 403, [FORBIDDEN] not your token"),
        ("peer0.hkbank:7051", "HKBankMSP", "timeout"),
    ]
    assert (error.chaincode_status, error.chaincode_message, error.reason) == (
        403,
        "[FORBIDDEN] not your token",
        "FORBIDDEN",
    )
    text = str(error)
    assert text.startswith("endorse failed (transaction abc): ABORTED: failed to collect")
    assert "peer0.hkbank:7051 (HKBankMSP): timeout" in text


def test_chaincode_status_parsed_from_message_without_reason() -> None:
    rpc = FakeRpcError(
        grpc.StatusCode.UNKNOWN, "evaluate call to endorser returned error: chaincode response 500, boom"
    )
    error = GatewayError.from_rpc_error(rpc)
    assert (error.chaincode_status, error.chaincode_message, error.reason) == (500, "boom", None)
    assert error.reason_message == "boom"
    assert error.details == ()


def test_lowercase_reason_of_deposit_token_refusals() -> None:
    rpc = FakeRpcError(
        grpc.StatusCode.ABORTED,
        "failed to endorse transaction, see attached details for more info",
        [
            gateway_pb2.ErrorDetail(
                message="chaincode response 409, [insufficient_funds] balance is 120, need 500"
            )
        ],
    )
    error = EndorseError.from_rpc_error(rpc)
    assert (error.chaincode_status, error.reason) == (409, "insufficient_funds")
    assert error.reason_message == "balance is 120, need 500"


def test_non_chaincode_failure_has_no_chaincode_status() -> None:
    error = SubmitError.from_rpc_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "no orderers could successfully process transaction"),
        transaction_id="t1",
        endpoint="127.0.0.1:23001",
    )
    assert error.chaincode_status is None and not error.is_chaincode_error
    assert "127.0.0.1:23001" in str(error)
    assert not error.is_retryable


def test_error_detail_of_other_type_is_skipped() -> None:
    other = status_pb2.Status(code=code_pb2.INTERNAL, message="not an ErrorDetail")
    error = CommitStatusError.from_rpc_error(
        FakeRpcError(grpc.StatusCode.ABORTED, "x", [other]), transaction_id="t"
    )
    assert error.details == ()


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (transaction_pb2.MVCC_READ_CONFLICT, True),
        (transaction_pb2.PHANTOM_READ_CONFLICT, True),
        (transaction_pb2.ENDORSEMENT_POLICY_FAILURE, False),
        (transaction_pb2.DUPLICATE_TXID, False),
        (transaction_pb2.BAD_PROPOSAL_TXID, False),
    ],
)
def test_commit_error_retryable_only_for_read_conflicts(code: int, retryable: bool) -> None:
    error = CommitError(transaction_id="tx9", code=code, block_number=12)
    assert error.is_retryable is retryable
    assert error.code_name == transaction_pb2.TxValidationCode.Name(code)
    assert error.grpc_code is None
    assert f"{error.code_name} ({code})" in str(error) and "tx9" in str(error)


def test_unknown_validation_code_is_named() -> None:
    assert validation_code_name(9999) == "UNKNOWN(9999)"
    assert validation_code_name(11) == "MVCC_READ_CONFLICT"


def test_a_malformed_rich_status_leaves_the_error_without_details() -> None:
    rpc = FakeRpcError(grpc.StatusCode.ABORTED, "endorse failed")
    rpc._metadata = (("grpc-status-details-bin", b"\xff\xff not a status"),)

    error = EndorseError.from_rpc_error(rpc)

    assert error.details == ()
    assert error.grpc_code is grpc.StatusCode.ABORTED


def test_details_of_other_types_are_skipped() -> None:
    rpc = FakeRpcError(
        grpc.StatusCode.ABORTED,
        "endorse failed",
        [
            transaction_pb2.ProcessedTransaction(validationCode=1),
            gateway_pb2.ErrorDetail(address="peer0:7051", msp_id="USBankMSP", message="no"),
        ],
    )

    error = EndorseError.from_rpc_error(rpc)

    assert [detail.msp_id for detail in error.details] == ["USBankMSP"]
