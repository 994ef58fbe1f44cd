"""Fixtures: a real chaincode server on 127.0.0.1 and scripted peers that dial it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from chaincode.conformance.contract import ConformanceContract
from chaincode.shim.contract import Contract, ContractRouter
from chaincode.shim.scripted_peer import Ledger, ScriptedPeer
from chaincode.shim.server import ChaincodeServer, ServerConfig

CHAINCODE_ID = "conformance_1.0:0123abcd"

ServerFactory = Callable[..., ChaincodeServer]
PeerFactory = Callable[..., ScriptedPeer]


@pytest.fixture
def start_server() -> Iterator[ServerFactory]:
    servers: list[ChaincodeServer] = []

    def start(contracts: Sequence[Contract] | None = None, **config: Any) -> ChaincodeServer:
        settings: dict[str, Any] = {
            "chaincode_id": CHAINCODE_ID,
            "address": "127.0.0.1:0",
            "peer_msp_id": "USBankMSP",
        }
        settings.update(config)
        server = ChaincodeServer(ServerConfig(**settings), ContractRouter(contracts or [ConformanceContract()]))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=1.0)


@pytest.fixture
def server(start_server: ServerFactory) -> ChaincodeServer:
    return start_server()


@pytest.fixture
def connect() -> Iterator[PeerFactory]:
    peers: list[ScriptedPeer] = []

    def make(server: ChaincodeServer, *, handshake: bool = True, **options: Any) -> ScriptedPeer:
        options.setdefault("chaincode_id", CHAINCODE_ID)
        peer = ScriptedPeer(f"127.0.0.1:{server.port}", **options)
        if handshake:
            peer.connect()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        if not peer.ended:
            peer.close()


@pytest.fixture(params=[True, False], ids=["batching", "no-batching"])
def batching(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def peer(server: ChaincodeServer, connect: PeerFactory, batching: bool) -> ScriptedPeer:
    """A peer that announces v3 batching, or one that does not (both variants run)."""
    return connect(server, use_write_batch=batching, use_get_multiple_keys=batching, ledger=Ledger())
