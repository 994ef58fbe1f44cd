"""Chaincode events: a resumable stream of the events emitted by one chaincode's valid transactions.

The peer sends, block by block, the events of the transactions that committed successfully, in block
order. A stream can start at the next block to commit, at a given block, or just after a given
transaction (within its block), which is how a ``Checkpointer`` resumes without missing or repeating.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = [
    "ChaincodeEvent",
    "ChaincodeEventStream",
    "ChaincodeEventsRequest",
    "build_chaincode_events_request",
    "seek_position",
]


@dataclass(frozen=True)
class ChaincodeEvent:
    """One event emitted by a transaction function."""

    block_number: int
    transaction_id: str
    chaincode_name: str
    event_name: str
    payload: bytes


def seek_position(start_block: int | None) -> Any:
    """``orderer.SeekPosition``: a given block, or the next block to be committed."""
    if start_block is None:
        return ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
    if isinstance(start_block, bool) or not isinstance(start_block, int) or start_block < 0:
        raise ValueError(f"start block must be a non-negative integer, got {start_block!r}")
    return ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))


def build_chaincode_events_request(
    *,
    channel_name: str,
    chaincode_name: str,
    creator: bytes,
    start_block: int | None,
    after_transaction_id: str | None,
) -> Any:
    """The unsigned ``gateway.SignedChaincodeEventsRequest``."""
    request = gateway_pb2.ChaincodeEventsRequest(
        channel_id=channel_name,
        chaincode_id=chaincode_name,
        identity=creator,
        start_position=seek_position(start_block),
        after_transaction_id=after_transaction_id or "",
    )
    return gateway_pb2.SignedChaincodeEventsRequest(request=request.SerializeToString())


class ChaincodeEventStream:
    """Iterator of ``ChaincodeEvent``; ``close()`` (or leaving a ``with`` block) ends it, also from
    another thread, after which iteration stops without error. A broken connection raises
    ``GatewayError``; resume with a checkpointer."""

    def __init__(self, gateway: Gateway, call: Any) -> None:
        self._call = call
        self._events = self._generate(gateway, call)

    @staticmethod
    def _generate(gateway: Gateway, call: Any) -> Iterator[ChaincodeEvent]:
        responses = gateway.client.iterate(call, "chaincode events")
        for response in responses:
            for event in response.events:
                yield ChaincodeEvent(
                    block_number=int(response.block_number),
                    transaction_id=str(event.tx_id),
                    chaincode_name=str(event.chaincode_id),
                    event_name=str(event.event_name),
                    payload=bytes(event.payload),
                )

    def __iter__(self) -> ChaincodeEventStream:
        return self

    def __next__(self) -> ChaincodeEvent:
        return next(self._events)

    def close(self) -> None:
        """End the stream (also from another thread); iteration then stops without error. Never raises."""
        self._call.cancel()

    def __enter__(self) -> ChaincodeEventStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ChaincodeEventsRequest:
    """A signable request for a chaincode event stream (off-line: ``bytes()``/``digest()`` out,
    ``Gateway.new_signed_chaincode_events_request(bytes, signature)`` in)."""

    def __init__(self, gateway: Gateway, signed_request: Any) -> None:
        self._gateway = gateway
        self._signed_request = signed_request

    def bytes(self) -> builtins.bytes:
        """Serialised request (a ``gateway.SignedChaincodeEventsRequest``) to carry to an off-line signer."""
        return bytes(self._signed_request.SerializeToString())

    def digest(self) -> builtins.bytes:
        """What must be signed: the gateway's hash of the request bytes."""
        return self._gateway.hash(self._signed_request.request)

    def is_signed(self) -> bool:
        """True once a signature is attached."""
        return bool(self._signed_request.signature)

    def set_signature(self, signature: builtins.bytes) -> None:
        """Attach a signature made elsewhere over ``digest()``; the peer checks it when the stream opens."""
        self._signed_request.signature = signature

    def events(self, timeout: float | None = None) -> ChaincodeEventStream:
        """Open the stream (``timeout`` bounds its whole life; default: the gateway's, usually none)."""
        if not self.is_signed():
            self.set_signature(self._gateway.sign(self.digest(), "chaincode events request"))
        return ChaincodeEventStream(
            self._gateway, self._gateway.client.chaincode_events(self._signed_request, timeout)
        )
