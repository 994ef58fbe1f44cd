"""A channel seen through the gateway: its contracts and its event streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .block_events import BlockEventStream, build_seek_envelope
from .chaincode_events import ChaincodeEventsRequest, ChaincodeEventStream, build_chaincode_events_request
from .checkpointer import Checkpointer
from .contract import Contract
from .discovery import ChannelPeer, channel_peers
from .ledger import Ledger

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["Network"]


class Network:
    """One channel, reached through the gateway's peer: ``gateway.get_network("tokens")``. Cheap to
    create; holds no connection of its own."""

    def __init__(self, gateway: Gateway, name: str) -> None:
        if not name:
            raise ValueError("channel name must not be empty")
        self.gateway = gateway
        self.name = name

    def get_contract(self, chaincode_name: str, contract_name: str = "") -> Contract:
        """The chaincode ``chaincode_name`` (and, for a chaincode holding several, its contract
        ``contract_name``). Makes no call; raises ``ValueError`` for an empty name."""
        return Contract(self, chaincode_name, contract_name)

    def get_channel_peers(self, timeout: float | None = None) -> list[ChannelPeer]:
        """The channel's peers the gateway's peer sees through gossip (itself included), with their
        organisation and ledger height, from the peer's discovery service. Raises ``GatewayError``."""
        return channel_peers(self.gateway, self.name, timeout)

    def get_ledger(self) -> Ledger:
        """Block and transaction queries on this channel through the ``qscc`` system chaincode."""
        return Ledger(self)

    def new_chaincode_events_request(
        self,
        chaincode_name: str,
        *,
        start_block: int | None = None,
        after_transaction_id: str | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> ChaincodeEventsRequest:
        """An unsigned events request (see ``get_chaincode_events`` for the start position)."""
        if checkpointer is not None and checkpointer.block_number is not None:
            start_block = checkpointer.block_number
            after_transaction_id = checkpointer.transaction_id
        signed_request = build_chaincode_events_request(
            channel_name=self.name,
            chaincode_name=chaincode_name,
            creator=self.gateway.identity.creator(),
            start_block=start_block,
            after_transaction_id=after_transaction_id,
        )
        return ChaincodeEventsRequest(self.gateway, signed_request)

    def get_chaincode_events(
        self,
        chaincode_name: str,
        *,
        start_block: int | None = None,
        after_transaction_id: str | None = None,
        checkpointer: Checkpointer | None = None,
        timeout: float | None = None,
    ) -> ChaincodeEventStream:
        """Stream the events of ``chaincode_name``'s valid transactions.

        Start position, first match wins: the ``checkpointer``'s position if it has one; else
        ``after_transaction_id`` (the events after that transaction, from its block on); else
        ``start_block``; else the next block to be committed.

        The stream does not checkpoint by itself: call ``checkpointer.checkpoint_chaincode_event(event)``
        once the event is handled, so a crash in between replays that event instead of losing it::

            with network.get_chaincode_events("deposit_token", checkpointer=cp) as events:
                for event in events:
                    handle(event)
                    cp.checkpoint_chaincode_event(event)
        """
        request = self.new_chaincode_events_request(
            chaincode_name,
            start_block=start_block,
            after_transaction_id=after_transaction_id,
            checkpointer=checkpointer,
        )
        return request.events(timeout)

    def get_block_events(
        self,
        *,
        start_block: int | None = None,
        filtered: bool = False,
        checkpointer: Checkpointer | None = None,
        timeout: float | None = None,
    ) -> BlockEventStream:
        """Stream blocks of this channel from ``start_block`` (default: the next to be committed), or from
        the ``checkpointer``'s block when it has one (call ``checkpointer.checkpoint_block(n)`` once block
        ``n`` is handled).

        ``filtered=True`` gives ``peer.FilteredBlock`` (transaction ids and validation codes) and needs
        only the channel's block-event rights; otherwise ``common.Block``. Blocks come in order, each once,
        for as long as the stream is open; a broken connection raises ``GatewayError`` while iterating."""
        if checkpointer is not None and checkpointer.block_number is not None:
            start_block = checkpointer.block_number
        gateway = self.gateway
        envelope = build_seek_envelope(
            channel_name=self.name,
            creator=gateway.identity.creator(),
            start_block=start_block,
            tls_cert_hash=gateway.tls_cert_hash,
        )
        envelope.signature = gateway.sign(gateway.hash(envelope.payload), "block events request")
        call = gateway.client.block_events(envelope, filtered=filtered, timeout=timeout)
        return BlockEventStream(gateway, call, filtered=filtered)
