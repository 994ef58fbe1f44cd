"""The stream protocol: handshake, READY parameters, keepalive, routing, several peers."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

import grpc
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_response_pb2,
)

from chaincode.shim.scripted_peer import Ledger, ScriptedPeer
from chaincode.shim.server import ChaincodeServer
from chaincode.shim.stub import PeerCapabilities

from .conftest import CHAINCODE_ID, PeerFactory, ServerFactory

Msg = chaincode_shim_pb2.ChaincodeMessage


def _wait_ready(server: ChaincodeServer, count: int = 1) -> list[PeerCapabilities]:
    """The capabilities each stream handler parsed from READY, once all are ready."""
    for _ in range(200):
        handlers = list(server._handlers)
        if len(handlers) >= count and all(h.ready.wait(0.05) for h in handlers):
            return [h.capabilities for h in handlers]
    raise AssertionError("streams did not become ready")


def test_register_carries_the_package_id(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, handshake=False)
    register = peer.connect()
    assert register.type == Msg.REGISTER
    assert chaincode_pb2.ChaincodeID.FromString(register.payload).name == CHAINCODE_ID


def test_ready_parameters_are_parsed(server: ChaincodeServer, connect: PeerFactory) -> None:
    connect(server, use_write_batch=True, max_size_write_batch=7, use_get_multiple_keys=True,
            max_size_get_multiple_keys=9)  # fmt: skip
    (caps,) = _wait_ready(server)
    assert caps == PeerCapabilities(True, 7, True, 9)


def test_ready_without_parameters_means_no_batching(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, send_ready_params=False)
    (caps,) = _wait_ready(server)
    assert not caps.use_write_batch and not caps.use_get_multiple_keys
    result = peer.invoke("BumpCounters", "a,b")
    assert result.status == 200
    assert result.requests == ["GET_STATE", "GET_STATE", "PUT_STATE", "PUT_STATE"]


def test_keepalive_is_echoed(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server)
    assert peer.send_keepalive().type == Msg.KEEPALIVE
    # The stream still serves transactions afterwards.
    assert peer.invoke("Add", "2", "3").text == "5"


def test_keepalive_before_ready_is_echoed(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, handshake=False)
    peer.connect()
    assert peer.send_keepalive().type == Msg.KEEPALIVE


def test_several_peers_share_one_server(server: ChaincodeServer, connect: PeerFactory) -> None:
    ledgers = [Ledger() for _ in range(3)]
    peers = [connect(server, ledger=ledger) for ledger in ledgers]
    for index, peer in enumerate(peers):
        assert peer.invoke("PutState", "bank", f"peer-{index}").status == 200
    # Each peer's transactions were answered from its own ledger: nothing crossed streams.
    for index, peer in enumerate(peers):
        assert peer.invoke("GetState", "bank").text == f"peer-{index}"
    assert server.stream_count == 3


def test_peer_disconnect_leaves_the_server_serving(server: ChaincodeServer, connect: PeerFactory) -> None:
    first = connect(server)
    assert first.invoke("Add", "1", "1").text == "2"
    first.close()
    assert first.ended
    second = connect(server)
    assert second.invoke("Add", "2", "2").text == "4"


def test_reply_for_unknown_transaction_is_ignored(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server)
    peer.send(Msg(type=Msg.RESPONSE, txid="not-running", channel_id="tokens", payload=b"x"))
    peer.send(Msg(type=Msg.ERROR, txid="not-running", channel_id="tokens", payload=b"boom"))
    assert peer.invoke("Add", "1", "2").text == "3"


def test_unexpected_message_type_gets_an_error(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server)
    peer.send(Msg(type=Msg.GET_STATE, txid="tx-odd", channel_id="tokens"))
    reply = peer.unrouted.get(timeout=10)
    assert reply.type == Msg.ERROR
    assert reply.txid == "tx-odd"
    assert b"GET_STATE" in reply.payload
    assert peer.invoke("Add", "1", "2").text == "3"


def test_unexpected_message_during_handshake_gets_an_error(server: ChaincodeServer) -> None:
    """A TRANSACTION before REGISTERED/READY is answered with ERROR, not run."""
    outbound: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage | None] = queue.SimpleQueue()

    def requests() -> Iterator[chaincode_shim_pb2.ChaincodeMessage]:
        while (msg := outbound.get()) is not None:
            yield msg

    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    responses = chaincode_shim_pb2_grpc.ChaincodeStub(channel).Connect(requests())
    assert next(responses).type == Msg.REGISTER
    outbound.put(Msg(type=Msg.TRANSACTION, txid="too-early", channel_id="tokens"))
    reply = next(responses)
    assert reply.type == Msg.ERROR
    assert b"created" in reply.payload
    outbound.put(None)
    channel.close()


def test_interleaved_raw_transactions_are_routed_by_txid(server: ChaincodeServer, connect: PeerFactory) -> None:
    """Two transactions on one stream, their requests answered out of order."""
    peer = connect(server)
    for txid in ("tx-one", "tx-two"):
        payload = chaincode_pb2.ChaincodeInput(args=[b"GetState", txid.encode()]).SerializeToString()
        peer.send(Msg(type=Msg.TRANSACTION, txid=txid, channel_id="tokens", payload=payload))
    requests = {}
    for _ in range(2):
        msg = peer.unrouted.get(timeout=10)
        assert msg.type == Msg.GET_STATE
        requests[msg.txid] = chaincode_shim_pb2.GetState.FromString(msg.payload).key
    assert requests == {"tx-one": "tx-one", "tx-two": "tx-two"}
    # Answer the second first; each must get its own value.
    for txid in ("tx-two", "tx-one"):
        peer.send(Msg(type=Msg.RESPONSE, txid=txid, channel_id="tokens", payload=f"value-of-{txid}".encode()))
    completed = {}
    for _ in range(2):
        msg = peer.unrouted.get(timeout=10)
        assert msg.type == Msg.COMPLETED
        completed[msg.txid] = proposal_response_pb2.Response.FromString(msg.payload).payload
    assert completed == {"tx-one": b"value-of-tx-one", "tx-two": b"value-of-tx-two"}


def test_same_txid_on_two_channels_are_separate_transactions(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server)
    payload = chaincode_pb2.ChaincodeInput(args=[b"GetState", b"k"]).SerializeToString()
    for channel in ("tokens", "other"):
        peer.send(Msg(type=Msg.TRANSACTION, txid="same", channel_id=channel, payload=payload))
    seen = set()
    for _ in range(2):
        msg = peer.unrouted.get(timeout=10)
        assert msg.type == Msg.GET_STATE
        seen.add(msg.channel_id)
        peer.send(Msg(type=Msg.RESPONSE, txid="same", channel_id=msg.channel_id, payload=msg.channel_id.encode()))
    assert seen == {"tokens", "other"}
    results = {}
    for _ in range(2):
        msg = peer.unrouted.get(timeout=10)
        results[msg.channel_id] = proposal_response_pb2.Response.FromString(msg.payload).payload
    assert results == {"tokens": b"tokens", "other": b"other"}


def test_duplicate_running_txid_is_refused(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server)
    payload = chaincode_pb2.ChaincodeInput(args=[b"GetState", b"k"]).SerializeToString()
    peer.send(Msg(type=Msg.TRANSACTION, txid="dup", channel_id="tokens", payload=payload))
    first = peer.unrouted.get(timeout=10)
    assert first.type == Msg.GET_STATE
    peer.send(Msg(type=Msg.TRANSACTION, txid="dup", channel_id="tokens", payload=payload))
    refusal = peer.unrouted.get(timeout=10)
    assert refusal.type == Msg.ERROR and b"already running" in refusal.payload
    peer.send(Msg(type=Msg.RESPONSE, txid="dup", channel_id="tokens", payload=b"v"))
    done = peer.unrouted.get(timeout=10)
    assert done.type == Msg.COMPLETED


def test_peer_closing_mid_transaction_does_not_break_the_server(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server)
    payload = chaincode_pb2.ChaincodeInput(args=[b"GetState", b"k"]).SerializeToString()
    peer.send(Msg(type=Msg.TRANSACTION, txid="orphan", channel_id="tokens", payload=payload))
    assert peer.unrouted.get(timeout=10).type == Msg.GET_STATE
    peer.close()
    for _ in range(200):
        if server.in_flight == 0:
            break
        threading.Event().wait(0.05)
    assert server.in_flight == 0
    assert connect(server).invoke("Add", "1", "1").text == "2"


def test_unanswered_request_times_out_with_a_500(start_server: ServerFactory, connect: PeerFactory) -> None:
    server = start_server(request_timeout=0.5)
    peer = connect(server)
    payload = chaincode_pb2.ChaincodeInput(args=[b"GetState", b"k"]).SerializeToString()
    peer.send(Msg(type=Msg.TRANSACTION, txid="silent", channel_id="tokens", payload=payload))
    assert peer.unrouted.get(timeout=10).type == Msg.GET_STATE
    done = peer.unrouted.get(timeout=30)
    assert done.type == Msg.COMPLETED
    response = proposal_response_pb2.Response.FromString(done.payload)
    assert response.status == 500
    assert "no reply from the peer to GET_STATE" in response.message


def test_metadata_answers_before_any_state(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer: ScriptedPeer = connect(server)
    result = peer.invoke("org.hyperledger.fabric:GetMetadata")
    assert result.status == 200
    assert "conformance" in json.loads(result.payload)["contracts"]
