"""The chaincode runtime under load and failure on the real network.

200 concurrent invocations over three peers, a chaincode server killed and restarted,
and (marked ``slow``) a peer connection left idle for more than five minutes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from fabric_client import Contract, Gateway
from fabric_client.profile import connect_org

from tests.integration.conftest import network_cli
from tests.integration.deposit_token_support import org_home

pytestmark = pytest.mark.network

CHAINCODE = "conformance"
BANKS = ("USBankMSP", "HKBankMSP", "SGBankMSP")


@pytest.fixture(scope="module")
def gateways(profile_path: Path) -> Iterator[dict[str, Gateway]]:
    connected = {msp: connect_org(profile_path, msp) for msp in BANKS}
    yield connected
    for gateway in connected.values():
        gateway.close()


def cc(gateways: dict[str, Gateway], msp: str = "USBankMSP") -> Contract:
    return gateways[msp].get_network("tokens").get_contract(CHAINCODE)


def _eventually(read: Callable[[], bytes], expected: bytes, attempts: int = 60) -> bytes:
    """Another org's peer commits each block a moment after the submitter's."""
    value = read()
    for _ in range(attempts):
        if value == expected:
            break
        time.sleep(0.5)
        value = read()
    return value


def server_log(state_dir: Path, msp: str) -> list[dict[str, object]]:
    path = org_home(state_dir, msp) / "logs" / f"cc.{CHAINCODE}.{msp}.log"
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def count(entries: list[dict[str, object]], message: str) -> int:
    return sum(1 for entry in entries if entry.get("msg") == message)


def test_200_concurrent_invocations_over_three_peers(gateways: dict[str, Gateway]) -> None:
    run = uuid.uuid4().hex[:8]

    def invoke(index: int) -> tuple[int, list[int]]:
        contract = cc(gateways, BANKS[index % 3])
        keys = ",".join(f"{run}-{index}-{part}" for part in "abc")
        return index, json.loads(contract.submit_transaction("BumpCounters", keys))

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = dict(pool.map(invoke, range(200)))
    assert len(results) == 200
    assert all(values == [1, 1, 1] for values in results.values())
    keys = [f"{run}-{index}-{part}" for index in range(200) for part in "abc"]
    # Read back on the one peer that ran a third of them, once it has every block.
    for start in range(0, len(keys), 150):
        chunk = ",".join(keys[start : start + 150])
        expected = json.dumps(["1"] * len(keys[start : start + 150]), separators=(",", ":")).encode()
        values = _eventually(
            partial(cc(gateways, "HKBankMSP").evaluate_transaction, "GetStateMultiple", chunk), expected
        )
        assert values == expected


def test_chaincode_server_killed_and_restarted(gateways: dict[str, Gateway], state_dir: Path) -> None:
    node = f"cc.{CHAINCODE}.USBankMSP"
    assert cc(gateways).evaluate_transaction("Add", 1, 1) == b"2"
    network_cli("kill-node", node)
    network_cli("start-node", node)
    connected_before = count(server_log(state_dir, "USBankMSP"), "peer connected")
    # The first invocation after the restart succeeds: the peer dials the new server.
    assert cc(gateways).evaluate_transaction("Add", 2, 3) == b"5"
    key = f"restart-{uuid.uuid4().hex[:8]}"
    cc(gateways).submit_transaction("PutState", key, "after-restart", endorsing_organizations=["USBankMSP"])
    sg = cc(gateways, "SGBankMSP")
    assert _eventually(lambda: sg.evaluate_transaction("GetState", key), b"after-restart") == b"after-restart"
    assert count(server_log(state_dir, "USBankMSP"), "peer connected") > connected_before


@pytest.mark.slow
def test_connection_idle_for_more_than_five_minutes(gateways: dict[str, Gateway], state_dir: Path) -> None:
    assert cc(gateways, "SGBankMSP").evaluate_transaction("Add", 1, 2) == b"3"
    before = server_log(state_dir, "SGBankMSP")
    time.sleep(330)  # past the peer's keepalive pings at 60 s and gRPC's too_many_pings threshold
    assert cc(gateways, "SGBankMSP").evaluate_transaction("Add", 2, 2) == b"4"
    after = server_log(state_dir, "SGBankMSP")
    # The same stream served both calls: no disconnect, no reconnect in between.
    assert count(after, "peer stream closed") == count(before, "peer stream closed")
    assert count(after, "peer connected") == count(before, "peer connected")
