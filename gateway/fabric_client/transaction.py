"""Endorsed transactions: sign the envelope (here or off-line), submit to the orderer."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2

from .commit import Commit, Status, build_commit_status_request

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["SubmittedTransaction", "Transaction", "parse_envelope"]


def parse_envelope(envelope: Any) -> tuple[str, bytes]:
    """Channel name and chaincode result carried in an endorsed transaction envelope."""
    payload = common_pb2.Payload.FromString(envelope.payload)
    channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    transaction = transaction_pb2.Transaction.FromString(payload.data)
    for action in transaction.actions:
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
        response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
            action_payload.action.proposal_response_payload
        )
        chaincode_action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
        return str(channel_header.channel_id), bytes(chaincode_action.response.payload)
    raise ValueError("transaction envelope holds no chaincode action")


class Transaction:
    """An endorsed transaction. ``submit()`` signs it (unless already signed) and sends it for ordering."""

    def __init__(self, gateway: Gateway, prepared: Any) -> None:
        self._gateway = gateway
        self._prepared = prepared
        self.channel_name, self.result = parse_envelope(prepared.envelope)

    @property
    def transaction_id(self) -> str:
        """The transaction id, the same as the proposal's."""
        return str(self._prepared.transaction_id)

    @property
    def envelope(self) -> Any:
        """The endorsed ``common.Envelope`` as it will be sent to the orderer."""
        return self._prepared.envelope

    def bytes(self) -> builtins.bytes:
        """Serialised transaction (a ``gateway.PreparedTransaction``) to carry to an off-line signer."""
        return bytes(self._prepared.SerializeToString())

    def digest(self) -> builtins.bytes:
        """What must be signed: the gateway's hash of the envelope payload."""
        return self._gateway.hash(self._prepared.envelope.payload)

    def is_signed(self) -> bool:
        """True once a signature is attached."""
        return bool(self._prepared.envelope.signature)

    def set_signature(self, signature: builtins.bytes) -> None:
        """Attach a signature made elsewhere over ``digest()``."""
        self._prepared.envelope.signature = signature

    def submit(self, timeout: float | None = None) -> SubmittedTransaction:
        """Send the transaction to the ordering service; returns as soon as the orderer accepted it.

        Raises ``SubmitError``. Use the returned object's ``status()`` to wait for the commit."""
        if not self.is_signed():
            self.set_signature(self._gateway.sign(self.digest(), "transaction"))
        request = gateway_pb2.SubmitRequest(
            transaction_id=self.transaction_id,
            channel_id=self.channel_name,
            prepared_transaction=self._prepared.envelope,
        )
        self._gateway.client.submit(request, timeout)
        signed_request = build_commit_status_request(
            transaction_id=self.transaction_id,
            channel_name=self.channel_name,
            creator=self._gateway.identity.creator(),
        )
        return SubmittedTransaction(self._gateway, signed_request, self.transaction_id, self.result)


class SubmittedTransaction(Commit):
    """A transaction accepted by the orderer: its ``result`` is known, its commit status is awaited."""

    def __init__(self, gateway: Gateway, signed_request: Any, transaction_id: str, result: bytes) -> None:
        super().__init__(gateway, signed_request, transaction_id)
        self.result = result

    def wait(self, timeout: float | None = None) -> bytes:
        """Wait for the commit; return the result if valid, else raise ``CommitError``."""
        status: Status = self.status(timeout)
        status.raise_for_status()
        return self.result
