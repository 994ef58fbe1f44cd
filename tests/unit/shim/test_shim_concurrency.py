"""Many transactions in flight on one stream, and on several streams at once."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from chaincode.shim.contract import Context, Contract, transaction
from chaincode.shim.scripted_peer import Ledger

from .conftest import PeerFactory, ServerFactory

IN_FLIGHT = 12


class Rendezvous(Contract):
    """Each transaction reads, waits until all are in flight, then reads and writes again."""

    name = "rendezvous"
    barrier = threading.Barrier(IN_FLIGHT, timeout=30)

    @transaction
    def meet(self, ctx: Context, key: str) -> str:
        first = ctx.stub.get_state(key)
        self.barrier.wait()
        second = ctx.stub.get_state(key + "-twin")
        ctx.stub.put_state(key, first + b"+" + second)
        return ctx.stub.get_tx_id()


def test_interleaved_transactions_on_one_stream(start_server: ServerFactory, connect: PeerFactory) -> None:
    Rendezvous.barrier.reset()
    server = start_server([Rendezvous()], transaction_workers=IN_FLIGHT)
    peer = connect(server, use_write_batch=False)
    for index in range(IN_FLIGHT):
        peer.ledger.state[("", f"k{index}")] = f"a{index}".encode()
        peer.ledger.state[("", f"k{index}-twin")] = f"b{index}".encode()

    def run(index: int) -> tuple[int, str, str]:
        result = peer.invoke("Meet", f"k{index}", tx_id=f"tx{index:02d}" + "0" * 60)
        return index, result.text, ",".join(result.requests)

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        results = list(pool.map(run, range(IN_FLIGHT)))
    # Every transaction reached the barrier, so all were in flight on the stream together,
    # and each got its own replies back.
    for index, tx_id, requests in results:
        assert tx_id == f"tx{index:02d}" + "0" * 60
        assert requests == "GET_STATE,GET_STATE,PUT_STATE"
        assert peer.ledger.state[("", f"k{index}")] == f"a{index}+b{index}".encode()
    assert peer.violations == []


def test_many_concurrent_transactions_over_three_streams(start_server: ServerFactory, connect: PeerFactory) -> None:
    server = start_server()
    peers = [connect(server, ledger=Ledger()) for _ in range(3)]

    def run(index: int) -> tuple[int, list[int]]:
        peer = peers[index % 3]
        result = peer.invoke("BumpCounters", f"n{index},m{index},o{index}")
        assert result.status == 200, result.message
        return index, json.loads(result.payload)

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(run, range(150)))
    assert all(values == [1, 1, 1] for _, values in results)
    for offset, peer in enumerate(peers):
        mine = {index for index in range(150) if index % 3 == offset}
        assert {k for (_, k) in peer.ledger.state if k.startswith("n")} == {f"n{i}" for i in mine}
        assert peer.violations == []
