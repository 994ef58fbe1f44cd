"""v3 batching: messages and round trips per transaction, chunk sizes, last-write-wins."""

from __future__ import annotations

import json

from chaincode.shim.contract import Context, Contract, ContractError, transaction
from chaincode.shim.server import ChaincodeServer

from .conftest import PeerFactory, ServerFactory


def test_three_reads_three_writes_with_batching(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, use_write_batch=True, use_get_multiple_keys=True)
    peer.invoke("PutState", "c1", "10")
    result = peer.invoke("BumpCounters", "c1,c2,c3")
    assert json.loads(result.payload) == [11, 1, 1]
    assert result.requests == ["GET_STATE_MULTIPLE", "WRITE_BATCH_STATE"]
    assert result.round_trips == 3
    assert result.messages == 6
    assert {k: v for (c, k), v in peer.ledger.state.items() if not c} == {"c1": b"11", "c2": b"1", "c3": b"1"}


def test_three_reads_three_writes_without_batching(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, use_write_batch=False, use_get_multiple_keys=False)
    peer.invoke("PutState", "c1", "10")
    result = peer.invoke("BumpCounters", "c1,c2,c3")
    assert json.loads(result.payload) == [11, 1, 1]
    assert result.requests == ["GET_STATE"] * 3 + ["PUT_STATE"] * 3
    assert result.round_trips == 7
    assert result.messages == 14


def test_write_batch_respects_the_announced_size(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, use_write_batch=True, max_size_write_batch=4)
    result = peer.invoke("PutMany", "w", "10")
    assert result.status == 200
    assert result.requests == ["WRITE_BATCH_STATE"] * 3  # 4 + 4 + 2
    assert sorted(k for (c, k) in peer.ledger.state if not c) == [f"w{i:03d}" for i in range(10)]


def test_get_multiple_respects_the_announced_size(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, use_get_multiple_keys=True, max_size_get_multiple_keys=2)
    peer.invoke("PutMany", "g", "5")
    result = peer.invoke("GetStateMultiple", "g000,g001,g002,g003,g004")
    assert json.loads(result.payload) == ["0", "1", "2", "3", "4"]
    assert result.requests == ["GET_STATE_MULTIPLE"] * 3


def test_only_one_of_the_two_features(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, use_write_batch=False, use_get_multiple_keys=True)
    result = peer.invoke("BumpCounters", "x,y")
    assert result.requests == ["GET_STATE_MULTIPLE", "PUT_STATE", "PUT_STATE"]


class Rewrites(Contract):
    name = "rewrites"

    @transaction
    def rewrite(self, ctx: Context) -> None:
        ctx.stub.put_state("a", b"first")
        ctx.stub.put_state("b", b"kept")
        ctx.stub.put_state("a", b"second")
        ctx.stub.put_state("c", b"deleted later")
        ctx.stub.del_state("c")

    @transaction
    def fail_after_writing(self, ctx: Context) -> None:
        ctx.stub.put_state("never", b"x")
        raise ContractError("changed my mind", 409)


def test_batch_keeps_the_last_write_per_key(start_server: ServerFactory, connect: PeerFactory) -> None:
    peer = connect(start_server([Rewrites()]), use_write_batch=True)
    result = peer.invoke("Rewrite")
    assert result.requests == ["WRITE_BATCH_STATE"]
    assert peer.ledger.state == {("", "a"): b"second", ("", "b"): b"kept"}


def test_failed_transaction_does_not_send_its_batch(start_server: ServerFactory, connect: PeerFactory) -> None:
    peer = connect(start_server([Rewrites()]), use_write_batch=True)
    result = peer.invoke("FailAfterWriting")
    assert (result.status, result.message) == (409, "changed my mind")
    assert result.requests == []


def test_read_only_transaction_sends_no_batch(server: ChaincodeServer, connect: PeerFactory) -> None:
    peer = connect(server, use_write_batch=True)
    assert peer.invoke("GetState", "k").requests == ["GET_STATE"]
