"""Commit status: how a submitted transaction was validated, and in which block."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from .errors import CommitError, validation_code_name

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["Commit", "Status", "build_commit_status_request"]


@dataclass(frozen=True)
class Status:
    """Validation outcome of a committed transaction (``code`` is a ``TxValidationCode``)."""

    code: int
    code_name: str
    block_number: int
    transaction_id: str
    successful: bool

    def raise_for_status(self) -> None:
        """Raise ``CommitError`` unless the transaction is valid."""
        if not self.successful:
            raise CommitError(
                transaction_id=self.transaction_id, code=self.code, block_number=self.block_number
            )


def build_commit_status_request(*, transaction_id: str, channel_name: str, creator: bytes) -> Any:
    """The unsigned ``gateway.SignedCommitStatusRequest`` for one transaction."""
    request = gateway_pb2.CommitStatusRequest(
        transaction_id=transaction_id, channel_id=channel_name, identity=creator
    )
    return gateway_pb2.SignedCommitStatusRequest(request=request.SerializeToString())


class Commit:
    """Access to the commit status of one transaction. The request is signed with the gateway's signer
    unless it already has a signature (off-line: ``bytes()``/``digest()`` out,
    ``Gateway.new_signed_commit(bytes, signature)`` in)."""

    def __init__(self, gateway: Gateway, signed_request: Any, transaction_id: str) -> None:
        self._gateway = gateway
        self._signed_request = signed_request
        self.transaction_id = transaction_id

    def bytes(self) -> builtins.bytes:
        """Serialised request (a ``gateway.SignedCommitStatusRequest``) to carry to an off-line signer."""
        return bytes(self._signed_request.SerializeToString())

    def digest(self) -> builtins.bytes:
        """What must be signed: the gateway's hash of the request bytes."""
        return self._gateway.hash(self._signed_request.request)

    def is_signed(self) -> bool:
        """True once a signature is attached."""
        return bool(self._signed_request.signature)

    def set_signature(self, signature: builtins.bytes) -> None:
        """Attach a signature made elsewhere over ``digest()``; the peer checks it on ``status()``."""
        self._signed_request.signature = signature

    def status(self, timeout: float | None = None) -> Status:
        """Wait until the transaction is in a block (at most ``timeout`` seconds, else the gateway's
        commit-status deadline) and return its validation status. Raises ``CommitStatusError`` when the
        status cannot be obtained in time; an invalid transaction is *not* an error here (see
        ``Status.successful``)."""
        if not self.is_signed():
            self.set_signature(self._gateway.sign(self.digest(), "commit status request"))
        response = self._gateway.client.commit_status(self._signed_request, self.transaction_id, timeout)
        code = int(response.result)
        return Status(
            code=code,
            code_name=validation_code_name(code),
            block_number=int(response.block_number),
            transaction_id=self.transaction_id,
            successful=code == transaction_pb2.VALID,
        )

    # The official clients call it getStatus/Status; both spellings are offered.
    get_status = status
