"""Transaction proposals: build, sign (here or off-line), evaluate or endorse.

A proposal is a ``peer.SignedProposal`` wrapped in a ``gateway.ProposedTransaction``. Its transaction id
is hex(sha256(nonce + creator)) with a fresh 24-byte nonce, the derivation the peer checks.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2
from google.protobuf import timestamp_pb2

from .signer import sha256

if TYPE_CHECKING:
    from .gateway import Gateway
    from .transaction import Transaction

__all__ = [
    "NONCE_SIZE",
    "Argument",
    "Proposal",
    "TransactionContext",
    "build_proposed_transaction",
    "derive_transaction_id",
]

NONCE_SIZE = 24

# Arguments are strings or raw bytes as in the official clients; ints are accepted for convenience and
# sent as their decimal text. Floats are refused: amounts are integer minor units.
Argument = str | bytes | int


def derive_transaction_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id: lower-case hex of sha256(nonce || serialised creator)."""
    return sha256(nonce + creator).hex()


@dataclass(frozen=True)
class TransactionContext:
    """The per-transaction values that go into the signature header."""

    transaction_id: str
    nonce: bytes
    creator: bytes

    @classmethod
    def new(cls, creator: bytes) -> TransactionContext:
        """A fresh random nonce and the transaction id derived from it and ``creator``."""
        nonce = os.urandom(NONCE_SIZE)
        return cls(derive_transaction_id(nonce, creator), nonce, creator)

    def signature_header(self) -> bytes:
        """Serialised ``common.SignatureHeader`` (creator and nonce)."""
        return bytes(common_pb2.SignatureHeader(creator=self.creator, nonce=self.nonce).SerializeToString())


def _as_bytes(value: Argument, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{what} must be str, bytes or int, not bool (say 'true'/'false' explicitly)")
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int):
        return str(value).encode("ascii")
    raise TypeError(f"{what} must be str, bytes or int, not {type(value).__name__}")


def build_proposed_transaction(
    *,
    context: TransactionContext,
    channel_name: str,
    chaincode_name: str,
    transaction_name: str,
    arguments: Sequence[Argument] = (),
    transient: Mapping[str, str | bytes] | None = None,
    endorsing_organizations: Iterable[str] | None = None,
) -> Any:
    """The unsigned ``gateway.ProposedTransaction`` for one chaincode invocation."""
    if not transaction_name:
        raise ValueError("transaction name must not be empty")
    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode_name)
    timestamp = timestamp_pb2.Timestamp()
    timestamp.GetCurrentTime()
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel_name,
        tx_id=context.transaction_id,
        timestamp=timestamp,
        epoch=0,
        extension=proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_id).SerializeToString(),
    )
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=context.signature_header(),
    )
    args = [transaction_name.encode("utf-8")]
    args.extend(_as_bytes(arg, f"argument {i + 1} of {transaction_name}") for i, arg in enumerate(arguments))
    invocation = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_id, input=chaincode_pb2.ChaincodeInput(args=args)
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(input=invocation.SerializeToString())
    for key, value in (transient or {}).items():
        payload.TransientMap[key] = _as_bytes(value, f"transient value {key!r}")
    proposal = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
    return gateway_pb2.ProposedTransaction(
        transaction_id=context.transaction_id,
        proposal=proposal_pb2.SignedProposal(proposal_bytes=proposal.SerializeToString()),
        endorsing_organizations=list(endorsing_organizations or ()),
    )


def channel_of_proposal(proposal_bytes: bytes) -> str:
    """The channel named in a serialised ``peer.Proposal``'s header."""
    proposal = proposal_pb2.Proposal.FromString(proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    return str(common_pb2.ChannelHeader.FromString(header.channel_header).channel_id)


class Proposal:
    """A transaction proposal. ``evaluate()`` runs it as a query; ``endorse()`` gets it endorsed for
    submission. Both sign it first with the gateway's signer unless it already carries a signature
    (off-line flow: ``bytes()``/``digest()`` out, ``Gateway.new_signed_proposal(bytes, signature)`` in)."""

    def __init__(self, gateway: Gateway, proposed: Any, channel_name: str) -> None:
        self._gateway = gateway
        self._proposed = proposed
        self.channel_name = channel_name

    @property
    def transaction_id(self) -> str:
        """The transaction id, known before anything is sent (sha256 of nonce and creator, hex)."""
        return str(self._proposed.transaction_id)

    @property
    def endorsing_organizations(self) -> list[str]:
        """The organisations asked to endorse (empty: the gateway plans endorsement itself)."""
        return list(self._proposed.endorsing_organizations)

    @property
    def signed_proposal(self) -> Any:
        """The ``peer.SignedProposal`` as it will be sent."""
        return self._proposed.proposal

    def bytes(self) -> builtins.bytes:
        """Serialised proposal (a ``gateway.ProposedTransaction``) to carry to an off-line signer."""
        return bytes(self._proposed.SerializeToString())

    def digest(self) -> builtins.bytes:
        """What must be signed: the hash of the proposal bytes."""
        return self._gateway.hash(self._proposed.proposal.proposal_bytes)

    def is_signed(self) -> bool:
        """True once a signature is attached."""
        return bool(self._proposed.proposal.signature)

    def set_signature(self, signature: builtins.bytes) -> None:
        """Attach a signature made elsewhere over ``digest()``."""
        self._proposed.proposal.signature = signature

    def _sign(self) -> None:
        if not self.is_signed():
            self.set_signature(self._gateway.sign(self.digest(), "proposal"))

    def evaluate(self, timeout: float | None = None) -> builtins.bytes:
        """Run the transaction function on one peer and return its result; nothing is written to the ledger.

        Raises ``GatewayError`` (with ``chaincode_status`` when the contract refused)."""
        self._sign()
        request = gateway_pb2.EvaluateRequest(
            transaction_id=self.transaction_id,
            channel_id=self.channel_name,
            proposed_transaction=self._proposed.proposal,
            target_organizations=self._proposed.endorsing_organizations,
        )
        response = self._gateway.client.evaluate(request, timeout)
        return bytes(response.result.payload)

    def endorse(self, timeout: float | None = None) -> Transaction:
        """Collect endorsements satisfying the policy; returns the transaction, ready to submit.

        Raises ``EndorseError``."""
        from .transaction import Transaction

        self._sign()
        request = gateway_pb2.EndorseRequest(
            transaction_id=self.transaction_id,
            channel_id=self.channel_name,
            proposed_transaction=self._proposed.proposal,
            endorsing_organizations=self._proposed.endorsing_organizations,
        )
        response = self._gateway.client.endorse(request, timeout)
        prepared = gateway_pb2.PreparedTransaction(
            transaction_id=self.transaction_id, envelope=response.prepared_transaction
        )
        return Transaction(self._gateway, prepared)
