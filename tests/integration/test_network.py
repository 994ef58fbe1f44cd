"""The network itself: channel membership, Raft, chaincode definition, crash recovery.

Runs against the shared test network (tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from network.consortium import Consortium
from network.deploy import invoke
from network.nodes import admin_env, fabric_bin
from network.org import netns_prefix
from network.topology import load_topology
from tests.integration.conftest import BASE_PORT, STATE_DIR, network_cli

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def net(network: dict[str, Any]) -> Consortium:
    return Consortium(load_topology(), STATE_DIR, BASE_PORT, progress=lambda _m: None)


def peer_cli(net: Consortium, msp_id: str, *args: str) -> str:
    org = net.topology.org(msp_id)
    env = admin_env(net.home(org), net.ports)
    env["FABRIC_LOGGING_SPEC"] = "info:grpc=error"  # the invoke's "committed with status" line is INFO
    command = [*netns_prefix(org), str(fabric_bin("peer")), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"peer {' '.join(args)} failed: {result.stderr}"
    return result.stdout + result.stderr


def test_every_peer_joined_the_channel(net: Consortium) -> None:
    for org in net.topology.peer_orgs:
        out = peer_cli(net, org.msp_id, "channel", "list")
        assert net.topology.channel in out.split(), f"{org.name} has not joined: {out}"


def test_every_orgs_ordering_node_is_an_active_consenter(net: Consortium) -> None:
    # no single ordering operator: each bank and the regulator runs one of the consenters
    owners = [node.org.msp_id for node in net.topology.orderers]
    assert sorted(owners) == sorted(org.msp_id for org in net.topology.peer_orgs)
    for node in net.topology.orderers:
        info = net.orderer_channel_info(node.name)
        assert info["name"] == net.topology.channel
        assert info["consensusRelation"] == "consenter", info
        assert info["status"] == "active", info
    assert net.raft_leader() in {node.name for node in net.topology.orderers}


@pytest.mark.parametrize("chaincode", ["deposit_token", "conformance"])
def test_committed_definition_has_the_collections_config(net: Consortium, chaincode: str) -> None:
    out = peer_cli(
        net, "USBankMSP", "lifecycle", "chaincode", "querycommitted", "-C", net.topology.channel,
        "-n", chaincode, "-O", "json",
    )  # fmt: skip
    definition = json.loads(out[out.index("{") :])
    assert definition["sequence"] >= 1
    assert all(definition["approvals"][org.msp_id] for org in net.topology.peer_orgs)
    # querycommitted -O json carries the collections as a protobuf-JSON config
    names = {c["Payload"]["StaticCollectionConfig"]["name"] for c in definition["collections"]["config"]}
    banks = [b.msp_id for b in net.topology.banks]
    # A bank's books are its org's implicit collection, and no collection is shared by a pair of
    # banks (docs/decisions/0036): the definition grows by two entries per bank, not one per pair.
    assert not any(name.startswith(("books-", "bilateral-")) for name in names)
    assert {f"supply-{b}" for b in banks} <= names
    assert {f"disclosure-{b}" for b in banks} <= names
    assert f"regulator-{net.topology.regulator.msp_id}" in names
    # supply and disclosures per bank, and the regulator's own
    assert len(names) == 2 * len(banks) + 1


def put_through(net: Consortium, msp_id: str, key: str, orderer: str | None = None) -> str:
    """A blind write on the conformance chaincode, endorsed by ``msp_id``'s peer, waited for."""
    return invoke(net, "conformance", net.topology.org(msp_id), "PutState", [key, "v"], orderer=orderer)


def test_a_transaction_through_each_banks_peer_commits_valid(net: Consortium) -> None:
    for bank in net.topology.banks:
        out = put_through(net, bank.msp_id, f"net-test-{bank.msp_id}-{time.time_ns()}")
        assert "committed with status (VALID)" in out, out


def heights(net: Consortium) -> dict[str, int]:
    return {org.msp_id: net.peer_height(org.msp_id) or 0 for org in net.topology.peer_orgs}


def test_killed_peer_restarts_and_catches_up(net: Consortium) -> None:
    victim = "peer.SGBankMSP"
    net.kill_node(victim)  # SIGKILL
    # the rest of the network keeps committing while the peer is down
    for i in range(3):
        put_through(net, "USBankMSP", f"while-down-{i}-{time.time_ns()}")
    net.start_node(victim)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        h = heights(net)
        if len(set(h.values())) == 1:
            break
        time.sleep(0.5)
    assert len(set(h.values())) == 1, f"heights differ after restart: {h}"
    assert h["SGBankMSP"] >= 4


def test_stopping_an_orderer_including_the_leader_keeps_committing(net: Consortium) -> None:
    leader = net.wait_raft_leader()
    net.kill_node(leader)
    try:
        # the remaining two of three still form a majority and elect a new leader
        new_leader = net.wait_raft_leader(timeout=60)
        assert new_leader != leader
        for bank in net.topology.banks:
            survivor = next(n.name for n in net.topology.orderers if n.name != leader)
            out = put_through(net, bank.msp_id, f"leaderless-{time.time_ns()}", orderer=survivor)
            assert "committed with status (VALID)" in out, out
    finally:
        net.start_node(leader)


def test_up_twice_reuses_the_running_network(net: Consortium) -> None:
    pids_before = net.running_nodes()
    result = network_cli("up", "--with-test-chaincodes")
    assert "reusing it" in result.stdout
    after = net.running_nodes()
    fabric = [n for n in pids_before if n.startswith(("orderer", "peer."))]
    assert {n: after.get(n) for n in fabric} == {n: pids_before[n] for n in fabric}


def test_status_reports_every_node_healthy(net: Consortium) -> None:
    result = network_cli("status", "--json")
    info = json.loads(result.stdout)
    assert {n["name"] for n in info["nodes"] if n["kind"] in ("orderer", "peer")} == {
        *(node.name for node in net.topology.orderers),
        *(f"peer.{o.msp_id}" for o in net.topology.peer_orgs),
    }
    assert all(n["healthy"] for n in info["nodes"]), info


def test_each_node_has_its_pid_and_log_in_its_own_orgs_folder(net: Consortium) -> None:
    for home, spec in net.located_specs():
        assert spec.name.endswith(home.org.msp_id) or spec.name.endswith(home.org.name), spec.name
        assert (home.root / "logs" / f"{spec.name}.log").exists()
        assert (home.root / "run" / f"{spec.name}.pid").exists()


PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def _public_key(data: bytes) -> bytes | None:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return None
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificate_keys(folder: Path) -> set[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    keys: set[bytes] = set()
    for path in folder.rglob("*"):
        if not path.is_file() or path.stat().st_size > 64_000:
            continue
        data = path.read_bytes()
        if b"BEGIN CERTIFICATE" not in data:
            continue
        for cert in x509.load_pem_x509_certificates(data):
            keys.add(cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ))  # fmt: skip
    return keys


def test_no_org_holds_another_orgs_private_key(net: Consortium) -> None:
    """Every private key in an org's folder belongs to that org, and only public material is shared."""
    private: dict[str, list[tuple[Path, bytes]]] = {}
    for msp_id, home in net.homes.items():
        found = []
        for path in home.root.rglob("*"):
            if not path.is_file() or path.stat().st_size > 64_000 or b"PRIVATE KEY" not in path.read_bytes():
                continue
            # PEM blocks anywhere in the file, also inside JSON (a chaincode package's connection.json)
            text = path.read_bytes().decode("utf-8", "replace").replace("\\n", "\n")
            for block in PEM_KEY.findall(text):
                public = _public_key(block.encode())
                if public is None:
                    # the signing CA's own Idemix issuer keys: not X.509 keys, and only ever in its CA folder
                    assert path.is_relative_to(home.ca_dir), f"{path} holds a key that does not load"
                    continue
                found.append((path, public))
        assert len(found) >= 8, f"{msp_id}: expected the CAs', nodes' and users' keys, found {len(found)}"
        private[msp_id] = found
    own_certs = {msp_id: _certificate_keys(home.root / "msp") | _certificate_keys(home.root / "users")
                 | _certificate_keys(home.root / "peers") for msp_id, home in net.homes.items()}  # fmt: skip
    for msp_id, keys in private.items():
        for other, certs in own_certs.items():
            if other == msp_id:
                continue
            stolen = [str(path) for path, public in keys if public in certs]
            assert not stolen, f"{msp_id}'s folder holds keys of {other}'s identities: {stolen}"
    # what the consortium folder holds is public: no private key at all
    shared = [p for p in net.consortium_dir.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert shared == []
