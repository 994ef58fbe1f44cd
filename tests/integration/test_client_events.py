"""Chaincode event streams on the real network: a listener restarted from its checkpoint neither misses
nor repeats an event."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fabric_client import (
    ChaincodeEvent,
    Checkpointer,
    FileCheckpointer,
    Gateway,
    SqliteCheckpointer,
)
from fabric_client.profile import connect_org

from tests.integration.client_helpers import CHAINCODE, profile_path_for, unique

pytestmark = pytest.mark.network

# A missed event would leave a listener waiting for ever; the stream deadline turns that into a failure.
STREAM_LIMIT = 120.0


@pytest.fixture(scope="module")
def client_profile(request: pytest.FixtureRequest) -> Path:
    return profile_path_for(request)


def emit(gateway: Gateway, name: str, payloads: list[str]) -> list[tuple[str, int]]:
    """Submit one event per payload, all in flight at once (so several share a block); return
    (transaction id, block) sorted by block."""
    contract = gateway.get_network("tokens").get_contract(CHAINCODE)
    submitted = [contract.submit_async("EmitEvent", name, payload) for payload in payloads]
    statuses = [s.status() for s in submitted]
    assert all(status.successful for status in statuses)
    return sorted(((s.transaction_id, s.block_number) for s in statuses), key=lambda t: t[1])


def take(events: Iterator[ChaincodeEvent], name: str, count: int) -> list[ChaincodeEvent]:
    """The next ``count`` events called ``name`` (other tests emit events on the same chaincode)."""
    found: list[ChaincodeEvent] = []
    for event in events:
        if event.event_name == name:
            found.append(event)
            if len(found) == count:
                break
    return found


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_listener_restart_resumes_without_miss_or_repeat(
    client_profile: Path, tmp_path: Path, store: str
) -> None:
    make_checkpointer: Callable[[], Checkpointer] = {
        "file": lambda: FileCheckpointer(tmp_path / "listener.json"),
        "sqlite": lambda: SqliteCheckpointer(tmp_path / "listener.db", name="payments"),
    }[store]
    name = unique("client-evt")
    producer = connect_org(client_profile, "USBankMSP")
    try:
        first = emit(producer, name, ["p0", "p1", "p2", "p3"])
        start_block = first[0][1]

        # First life of the listener: handles two events, checkpointing each, then "crashes".
        handled: list[ChaincodeEvent] = []
        listener = connect_org(client_profile, "HKBankMSP")
        checkpointer = make_checkpointer()
        with listener.get_network("tokens").get_chaincode_events(
            CHAINCODE, start_block=start_block, checkpointer=checkpointer, timeout=STREAM_LIMIT
        ) as events:
            for event in take(events, name, 2):
                handled.append(event)
                checkpointer.checkpoint_chaincode_event(event)
        listener.close()
        if isinstance(checkpointer, SqliteCheckpointer):
            checkpointer.close()

        # Events keep coming while nobody listens.
        later = emit(producer, name, ["p4", "p5"])

        # Second life: a new process would build the checkpointer from the same store.
        restarted = make_checkpointer()
        assert (restarted.block_number, restarted.transaction_id) == (
            handled[-1].block_number,
            handled[-1].transaction_id,
        )
        listener = connect_org(client_profile, "HKBankMSP")
        with listener.get_network("tokens").get_chaincode_events(
            CHAINCODE, start_block=0, checkpointer=restarted, timeout=STREAM_LIMIT
        ) as events:
            for event in take(events, name, 4):
                handled.append(event)
                restarted.checkpoint_chaincode_event(event)
        listener.close()
    finally:
        producer.close()

    # Exactly the six transactions, each once (their order inside one block is the orderer's choice).
    handled_ids = [event.transaction_id for event in handled]
    assert len(handled_ids) == 6
    assert set(handled_ids) == {tx_id for tx_id, _ in first + later}
    assert sorted(event.payload for event in handled) == [b"p0", b"p1", b"p2", b"p3", b"p4", b"p5"]
    assert all(event.chaincode_name == CHAINCODE for event in handled)
    blocks = [event.block_number for event in handled]
    assert blocks == sorted(blocks)


def test_after_transaction_id_skips_up_to_that_transaction(client_profile: Path) -> None:
    name = unique("client-after")
    with connect_org(client_profile, "SGBankMSP") as gateway:
        [(first_tx, _)] = emit(gateway, name, ["a"])  # committed before the others are sent
        later = emit(gateway, name, ["b", "c"])
        with gateway.get_network("tokens").get_chaincode_events(
            CHAINCODE, after_transaction_id=first_tx, timeout=STREAM_LIMIT
        ) as events:
            rest = take(events, name, 2)
    assert {event.transaction_id for event in rest} == {tx_id for tx_id, _ in later}
    assert sorted(event.payload for event in rest) == [b"b", b"c"]


def test_stream_from_next_commit_sees_new_events(client_profile: Path) -> None:
    name = unique("client-live")
    with connect_org(client_profile, "USBankMSP") as gateway:
        network = gateway.get_network("tokens")
        contract = network.get_contract(CHAINCODE)
        height_block = contract.submit_async("EmitEvent", unique("client-marker"), "").status().block_number
        with network.get_chaincode_events(
            CHAINCODE, start_block=height_block + 1, timeout=STREAM_LIMIT
        ) as events:
            tx_id = contract.submit_transaction("EmitEvent", name, "live").decode()
            [event] = take(events, name, 1)
    assert (event.transaction_id, event.payload) == (tx_id, b"live")
