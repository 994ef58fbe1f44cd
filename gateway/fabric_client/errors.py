"""Typed errors raised by the client.

A caller tells "retry" from "give up" from the type and a few attributes, never by parsing text:

- ``EndorseError``: the proposal was not endorsed (chaincode refused it, policy not met, peer down).
  Nothing reached the orderer; the transaction id is dead.
- ``SubmitError``: the endorsed transaction did not reach the orderer. It may still not be committed.
- ``CommitStatusError``: the commit status could not be read (timeout, peer down). The transaction may
  or may not commit later; ask again with the same transaction id.
- ``CommitError``: the transaction was ordered and validated but marked invalid (``code``/``code_name``);
  ``is_retryable`` is true for read conflicts, which a fresh run of the whole flow may clear.
- ``Overloaded``: refused by this client before anything was signed or sent, because the connection
  already has as many submissions in flight as it allows (``inflight.py``); ``retry_after`` says when
  to try again. Nothing happened, so the same request may simply be sent again.

All are ``GatewayError`` subclasses that carry the transaction id, the gRPC status code, the message and
per-peer ``details`` unpacked from ``google.rpc.Status``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

__all__ = [
    "RETRYABLE_VALIDATION_CODES",
    "CommitError",
    "CommitStatusError",
    "EndorseError",
    "ErrorDetail",
    "GatewayError",
    "Overloaded",
    "SubmitError",
    "validation_code_name",
]

# Validation codes a new run of the same request can clear: another transaction changed what this one read.
RETRYABLE_VALIDATION_CODES: frozenset[int] = frozenset(
    {transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT}
)

# The gateway reports a chaincode failure as "chaincode response <status>, <message>" ([F] apiutils.go).
_CHAINCODE_RESPONSE = re.compile(r"chaincode response (\d{3}), (.*)", re.DOTALL)
# Contracts of this project prefix their messages with a machine-readable reason: "[CODE] text".
_REASON = re.compile(r"\[([A-Za-z0-9_.-]+)\]\s*(.*)", re.DOTALL)


def validation_code_name(code: int) -> str:
    """Name of a ``TxValidationCode`` value, or ``"UNKNOWN(<n>)"`` for a value this proto does not know."""
    try:
        return str(transaction_pb2.TxValidationCode.Name(code))
    except ValueError:
        return f"UNKNOWN({code})"


@dataclass(frozen=True)
class ErrorDetail:
    """What one Fabric node (peer or orderer) said about a failed request."""

    address: str
    msp_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.address} ({self.msp_id}): {self.message}"


class GatewayError(Exception):
    """A Gateway call failed.

    ``grpc_code`` is the ``grpc.StatusCode`` (``None`` for ``CommitError``, which is not a gRPC failure),
    ``details`` the per-node details, ``transaction_id`` the id of the transaction concerned ("" when
    none). For a chaincode refusal, ``chaincode_status`` and ``chaincode_message`` hold the status and
    message the contract returned, ``reason`` the ``[code]`` prefix of that message if it has one, and
    ``reason_message`` the message without that prefix.
    """

    operation = "gateway call"

    def __init__(
        self,
        message: str,
        *,
        grpc_code: grpc.StatusCode | None = None,
        details: tuple[ErrorDetail, ...] = (),
        transaction_id: str = "",
        cause: BaseException | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        if operation:
            self.operation = operation
        self.message = message
        self.grpc_code = grpc_code
        self.details = details
        self.transaction_id = transaction_id
        self.cause = cause
        self.chaincode_status, self.chaincode_message = _chaincode_response(message, details)
        self.reason: str | None = None
        self.reason_message: str | None = self.chaincode_message
        if self.chaincode_message is not None:
            reason = _REASON.match(self.chaincode_message)
            if reason:
                self.reason, self.reason_message = reason.group(1), reason.group(2)

    @property
    def is_retryable(self) -> bool:
        """True when a new run of the whole flow (new transaction id) may succeed. Base errors: never."""
        return False

    @property
    def is_chaincode_error(self) -> bool:
        """True when the contract itself refused the request (its answer will not change on retry)."""
        return self.chaincode_status is not None

    def __str__(self) -> str:
        parts = [f"{self.operation} failed"]
        if self.transaction_id:
            parts.append(f" (transaction {self.transaction_id})")
        if self.grpc_code is not None:
            parts.append(f": {self.grpc_code.name}")
        parts.append(f": {self.message}")
        text = "".join(parts)
        if self.details:
            text += "".join(f"\n  - {detail}" for detail in self.details)
        return text

    @classmethod
    def from_rpc_error(
        cls,
        error: grpc.RpcError,
        *,
        transaction_id: str = "",
        endpoint: str = "",
        operation: str | None = None,
    ) -> GatewayError:
        """Build this error type from a failed gRPC call, unpacking ``gateway.ErrorDetail``s."""
        code: grpc.StatusCode | None = _call_attr(error, "code")
        message: str = _call_attr(error, "details") or str(error)
        details = _error_details(error)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and endpoint:
            # gRPC's own text ("failed to connect to all addresses") does not say which peer; name it.
            message = f"{message} [gateway peer {endpoint}]"
        return cls(
            message,
            grpc_code=code,
            details=details,
            transaction_id=transaction_id,
            cause=error,
            operation=operation,
        )


class EndorseError(GatewayError):
    """The transaction proposal was not endorsed; nothing was sent to the orderer."""

    operation = "endorse"


class SubmitError(GatewayError):
    """The endorsed transaction was not accepted by the ordering service."""

    operation = "submit"


class CommitStatusError(GatewayError):
    """The commit status of a submitted transaction could not be obtained; it may still commit."""

    operation = "commit status"


class CommitError(GatewayError):
    """The transaction was ordered into a block but failed validation, so it changed nothing."""

    operation = "commit"

    def __init__(self, *, transaction_id: str, code: int, block_number: int) -> None:
        self.code = code
        self.code_name = validation_code_name(code)
        self.block_number = block_number
        super().__init__(
            f"transaction {transaction_id} in block {block_number} is invalid: {self.code_name} ({code})",
            transaction_id=transaction_id,
        )

    @property
    def is_retryable(self) -> bool:
        """True for read conflicts (``MVCC_READ_CONFLICT``, ``PHANTOM_READ_CONFLICT``): a new run may pass."""
        return self.code in RETRYABLE_VALIDATION_CODES

    def __str__(self) -> str:
        return self.message


class Overloaded(GatewayError):
    """Refused at once: the connection has ``limit`` submissions in flight. No call was made (so
    ``grpc_code`` is ``None``) and nothing reached the peer; try again after ``retry_after`` seconds."""

    operation = "submit"

    def __init__(self, message: str, *, limit: int, in_flight: int, retry_after: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.in_flight = in_flight
        self.retry_after = retry_after

    @property
    def is_retryable(self) -> bool:
        """Always: nothing was done, the same request may run once a place is free."""
        return True


def _call_attr(error: grpc.RpcError, name: str) -> Any:
    method = getattr(error, name, None)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:  # a half-built call object must not hide the original failure
        return None


# The rich status of a failed call travels in this trailing metadata entry as a serialised google.rpc.Status.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_DETAIL_TYPE = "gateway.ErrorDetail"


def _rpc_status_class() -> Any:
    """A message class with the wire layout of ``google.rpc.Status`` (code 1, message 2, details 3 as
    ``google.protobuf.Any``: type_url 1, value 2).

    Built in a private descriptor pool so that the client needs neither ``grpcio-status`` nor
    ``googleapis-common-protos``, and cannot clash with them when an application loads them too."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="fabric_client/rpc_status.proto", package="fabric_client.rpc", syntax="proto3"
    )
    packed = file.message_type.add(name="PackedAny")
    packed.field.add(name="type_url", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    packed.field.add(name="value", number=2, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    status = file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    status.field.add(
        name="details",
        number=3,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".fabric_client.rpc.PackedAny",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fabric_client.rpc.Status"))


_RpcStatus = _rpc_status_class()


def _error_details(error: grpc.RpcError) -> tuple[ErrorDetail, ...]:
    metadata = _call_attr(error, "trailing_metadata")
    if not metadata:
        return ()
    details: list[ErrorDetail] = []
    try:
        for key, value in metadata:
            if key != _STATUS_DETAILS_KEY:
                continue
            status = _RpcStatus.FromString(value)
            for packed in status.details:
                if str(packed.type_url).rsplit("/", 1)[-1] != _ERROR_DETAIL_TYPE:
                    continue
                detail = gateway_pb2.ErrorDetail.FromString(packed.value)
                details.append(
                    ErrorDetail(address=detail.address, msp_id=detail.msp_id, message=detail.message)
                )
    except (DecodeError, ValueError, TypeError):
        # A malformed status must not hide the original failure.
        return tuple(details)
    return tuple(details)


def _chaincode_response(message: str, details: tuple[ErrorDetail, ...]) -> tuple[int | None, str | None]:
    for text in (message, *(detail.message for detail in details)):
        found = _CHAINCODE_RESPONSE.search(text)
        if found:
            return int(found.group(1)), found.group(2)
    return None, None
