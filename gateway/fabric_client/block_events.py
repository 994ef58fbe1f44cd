"""Block events through the peer's Deliver service: whole blocks, or filtered blocks (transaction ids and
validation codes only). Useful for auditing and for listeners that need every transaction's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from google.protobuf import timestamp_pb2

from .chaincode_events import seek_position
from .errors import GatewayError
from .proposal import TransactionContext

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["BlockEventStream", "build_seek_envelope"]

_MAX_BLOCK = 2**64 - 1


def build_seek_envelope(
    *, channel_name: str, creator: bytes, start_block: int | None, tls_cert_hash: bytes = b""
) -> Any:
    """The unsigned ``common.Envelope`` (DELIVER_SEEK_INFO) asking for blocks from ``start_block`` on.

    With mutual TLS the peer checks that ``tls_cert_hash`` is the hash of the client's TLS certificate."""
    context = TransactionContext.new(creator)
    timestamp = timestamp_pb2.Timestamp()
    timestamp.GetCurrentTime()
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.DELIVER_SEEK_INFO,
        channel_id=channel_name,
        tx_id=context.transaction_id,
        timestamp=timestamp,
        tls_cert_hash=tls_cert_hash,
    )
    seek_info = ab_pb2.SeekInfo(
        start=seek_position(start_block),
        stop=ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=_MAX_BLOCK)),
        behavior=ab_pb2.SeekInfo.BLOCK_UNTIL_READY,
    )
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=context.signature_header(),
        ),
        data=seek_info.SerializeToString(),
    )
    return common_pb2.Envelope(payload=payload.SerializeToString())


class BlockEventStream:
    """Iterator of ``common.Block`` (or ``peer.FilteredBlock`` when filtered); ``close()`` ends it."""

    def __init__(self, gateway: Gateway, call: Any, *, filtered: bool) -> None:
        self._call = call
        self._blocks = self._generate(gateway, call, filtered)

    @staticmethod
    def _generate(gateway: Gateway, call: Any, filtered: bool) -> Iterator[Any]:
        responses = gateway.client.iterate(call, "block events")
        for response in responses:
            kind = response.WhichOneof("Type")
            if kind == "status":
                if response.status == common_pb2.SUCCESS:
                    return
                raise GatewayError(
                    f"peer ended the block stream with status {common_pb2.Status.Name(response.status)}",
                    operation="block events",
                )
            yield response.filtered_block if filtered else response.block

    def __iter__(self) -> BlockEventStream:
        return self

    def __next__(self) -> Any:
        return next(self._blocks)

    def close(self) -> None:
        """End the stream (also from another thread); iteration then stops without error. Never raises."""
        self._call.cancel()

    def __enter__(self) -> BlockEventStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
