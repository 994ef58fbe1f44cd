"""Channel membership through the peer's discovery service: which peers of which organisations the
gateway's peer currently sees on a channel, with their ledger heights.

The official clients use discovery inside the Gateway service and do not expose it; the ``peer
discover`` CLI does. This is its peer-membership query, for health checks: a peer that has just
restarted answers calls at once but knows no other organisation's peer until gossip has found them,
and until then it cannot hand private data to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fabric_protos.discovery import protocol_pb2
from fabric_protos.gossip import message_pb2

from .errors import GatewayError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["ChannelPeer", "build_peer_membership_request", "channel_peers"]


@dataclass(frozen=True)
class ChannelPeer:
    """One peer on the channel as the gateway's peer sees it through gossip."""

    msp_id: str
    endpoint: str
    ledger_height: int | None  # None until the peer's channel state has reached the gateway's peer
    chaincodes: tuple[str, ...]


def build_peer_membership_request(gateway: Gateway, channel_name: str) -> protocol_pb2.SignedRequest:
    """The signed ``discovery.SignedRequest`` for the channel's peer membership."""
    request = protocol_pb2.Request(
        authentication=protocol_pb2.AuthInfo(
            client_identity=gateway.identity.creator(), client_tls_cert_hash=gateway.tls_cert_hash
        ),
        queries=[protocol_pb2.Query(channel=channel_name, peer_query=protocol_pb2.PeerMembershipQuery())],
    )
    payload = request.SerializeToString()
    return protocol_pb2.SignedRequest(
        payload=payload, signature=gateway.sign(gateway.hash(payload), "discovery request")
    )


def channel_peers(gateway: Gateway, channel_name: str, timeout: float | None = None) -> list[ChannelPeer]:
    """Every peer of the channel the gateway's peer knows of (itself included), by organisation.

    Raises ``GatewayError`` when the peer cannot be reached or refuses the query (the caller must be a
    member of the channel)."""
    response = gateway.client.discover(build_peer_membership_request(gateway, channel_name), timeout)
    found: list[ChannelPeer] = []
    for result in response.results:
        if result.HasField("error"):
            raise GatewayError(f"discovery refused: {result.error.content}", operation="discover")
        for msp_id, peers in result.members.peers_by_org.items():
            for peer in peers.peers:
                alive = message_pb2.GossipMessage.FromString(peer.membership_info.payload)
                height: int | None = None
                chaincodes: tuple[str, ...] = ()
                if peer.state_info.payload:
                    state = message_pb2.GossipMessage.FromString(peer.state_info.payload).state_info
                    height = int(state.properties.ledger_height)
                    chaincodes = tuple(c.name for c in state.properties.chaincodes)
                found.append(
                    ChannelPeer(str(msp_id), str(alive.alive_msg.membership.endpoint), height, chaincodes)
                )
    return found
