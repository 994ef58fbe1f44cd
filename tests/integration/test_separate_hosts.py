"""The consortium on separate hosts: each org in its own network namespace, ordering by SmartBFT.

Each org's CAs, orderer, peer, chaincode servers and gateway run inside the org's namespace
and listen only on its own address; they reach the other orgs over a bridge, as separate
machines on a LAN. The ordering service is BFT with one consenter per org (4 nodes, one may
fail). On this network: the whole payment story, a bank cut off while payments flow and then
healed, an ordering node stopped (the leader too) and one partitioned while commits go on,
and a certificate from another org's CA refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from network.binaries import fabric_bin
from network.consortium import Consortium
from network.topology import load_topology
from tests.integration.bank_api_support import gateways_of, unique, wait_for
from tests.integration.deposit_token_support import Consortium as Clients
from tests.integration.hosts_support import Hosts, can_create_namespaces, separate_hosts

ROOT = Path(__file__).resolve().parents[2]
BASE = 18200
ORGS = ["USBank", "HKBank", "SGBank", "Regulator"]

pytestmark = pytest.mark.network


def _per_host_commands(cli: list[str], state: Path) -> None:
    """Build the consortium as separate banks would: each org's own commands, then the shared steps.

    Every org's processes and CLI calls run inside its namespace (the topology's ``netns``);
    what crosses between orgs is the definition files and the genesis block in ``consortium/``.
    """
    public = state / "consortium"

    def run(*args: str) -> str:
        result = subprocess.run([*cli, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    for org in ORGS:  # each org, on its own host; it sends only its definition file
        run("org", "init", "--org", org, "--home", str(state / "orgs" / org),
            "--out", str(public / "definitions" / f"{org}.json"))  # fmt: skip
    run("consortium", "genesis", "--consortium", str(public))
    for org in ORGS:
        run("org", "start", "--org", org, "--home", str(state / "orgs" / org), "--consortium", str(public))
    for org in ORGS:
        run("org", "deploy", "--org", org, "--home", str(state / "orgs" / org), "--consortium", str(public),
            "--with-test-chaincodes")  # fmt: skip
    run("consortium", "commit", "--org", "Regulator", "--home", str(state / "orgs" / "Regulator"),
        "--consortium", str(public), "--with-test-chaincodes")  # fmt: skip
    for org in ORGS[:3]:
        run("org", "gateway", "--org", org, "--home", str(state / "orgs" / org), "--consortium", str(public))


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hosts, Consortium]]:
    able, why = can_create_namespaces()
    if not able:
        pytest.skip(f"separate-host tests need network namespaces: {why}")
    state = tmp_path_factory.mktemp("hosts") / "net"
    with separate_hosts(ORGS) as h:
        topology_file = h.topology(state.parent / "topology.yaml", consensus="BFT", base_port=BASE)
        cli = [sys.executable, "-m", "network", "--topology", str(topology_file), "--base-port", str(BASE)]
        net = Consortium(load_topology(topology_file), state, BASE, progress=lambda _m: None)
        try:
            _per_host_commands(cli, state)
            # the test's own view of the whole consortium (every org's folder is on this one machine)
            net.wait_gossip_membership()
            net.write_profile()
            yield h, net
        finally:
            net.down()


def profile_of(net: Consortium) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((net.state_dir / "profile.json").read_text())
    return data


def test_every_node_listens_only_on_its_orgs_own_address(hosts: tuple[Hosts, Consortium]) -> None:
    h, net = hosts
    for home, spec in net.located_specs():
        assert spec.host == h.addresses[home.org.name], spec.name
        assert spec.command[:4] == ["ip", "netns", "exec", h.namespaces[home.org.name]], spec.command
    # from inside USBank's namespace, HKBank's peer answers on HKBank's address only
    hk = net.ports.peers["HKBankMSP"]
    probe = f"import socket; socket.create_connection(('{hk.host}', {hk.operations}), timeout=3).close()"
    reach = subprocess.run(["ip", "netns", "exec", h.namespaces["USBank"], sys.executable, "-c", probe],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert reach.returncode == 0, reach.stderr
    loop = f"import socket; socket.create_connection(('127.0.0.1', {hk.operations}), timeout=3).close()"
    not_here = subprocess.run(["ip", "netns", "exec", h.namespaces["USBank"], sys.executable, "-c", loop],
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert not_here.returncode != 0, "HKBank's node must not be reachable on USBank's own loopback"


def test_the_ordering_service_is_bft_with_a_consenter_per_org(hosts: tuple[Hosts, Consortium]) -> None:
    _h, net = hosts
    assert net.topology.orderer.consensus == "BFT"
    for node in net.topology.orderers:
        info = net.orderer_channel_info(node.name)
        assert info["consensusRelation"] == "consenter" and info["status"] == "active", info


def test_the_payment_story_across_hosts(hosts: tuple[Hosts, Consortium]) -> None:
    from demo.scenario import run_scenario

    _h, net = hosts
    outcome = run_scenario(net.state_dir / "profile.json", say=lambda _m: None)
    assert outcome.cycle.get("status") == "settled", outcome.cycle
    clients = Clients(net.state_dir / "profile.json")
    try:
        clients.assert_conserved()
    finally:
        clients.close()


def test_a_bank_cut_off_while_payments_flow_catches_up_and_nothing_is_lost(hosts: tuple[Hosts, Consortium]) -> None:
    h, net = hosts
    banks = gateways_of(profile_of(net))
    us, hk, sg = banks["USBankMSP"], banks["HKBankMSP"], banks["SGBankMSP"]
    payer = us.open_account(unique("payer"), "US")
    payee = hk.open_account(unique("payee"), "HK")
    elsewhere = sg.open_account(unique("payee"), "SG")
    us.issue(payer.account_id, "USD", "1000.00")

    def pay(bank: str, account: str, amount: str) -> str:
        """A REST payment; its id when the payer's bank accepted it, else ''."""
        try:
            response = us.pay(payer, bank, account, "USD", amount, f"cut-{uuid.uuid4().hex[:10]}")
        except requests.RequestException:
            return ""
        return str(response.json().get("payment_id", "")) if response.status_code == 201 else ""

    before = pay("HKBankMSP", payee.account_id, "1.00")
    assert before, "a payment before the partition must be accepted"
    h.cut("HKBank")
    try:
        # HKBank's peer, orderer and gateway are unreachable; the other three consenters go on ordering
        during = [pay("HKBankMSP", payee.account_id, f"{2 + i}.00") for i in range(3)]
        to_sg = [pay("SGBankMSP", elsewhere.account_id, f"{5 + i}.00") for i in range(3)]
        assert all(to_sg), f"payments between the connected banks must go on during the partition: {to_sg}"
        for payment_id in to_sg:
            assert wait_for(lambda pid=payment_id: us.payment(pid)["status"] == "completed", timeout=120), (
                f"payment {payment_id} to SGBank did not complete while HKBank was cut off"
            )
        behind = (net.peer_height("USBankMSP") or 0) - (net.peer_height("HKBankMSP") or 0)
    finally:
        healed_at = time.monotonic()
        h.heal("HKBank")

    def caught_up() -> bool:
        heights = {org.msp_id: net.peer_height(org.msp_id) for org in net.topology.peer_orgs}
        return len(set(heights.values())) == 1 and None not in heights.values()

    assert wait_for(caught_up, timeout=180), "HKBank's peer did not catch up after the partition healed"
    took = time.monotonic() - healed_at
    sys.stderr.write(f"partition: HKBank {behind} blocks behind, heal to caught-up {took:.1f}s\n")
    for payment_id in [before, *(pid for pid in during if pid), *to_sg]:
        final = wait_for(
            lambda pid=payment_id: us.payment(pid)["status"] in ("completed", "refunded") and us.payment(pid),
            timeout=180,
        )
        assert final, f"payment {payment_id} is still in flight after the partition healed: {us.payment(payment_id)}"
    clients = Clients(net.state_dir / "profile.json")
    try:
        clients.assert_conserved()
    finally:
        clients.close()


def test_commits_go_on_with_any_one_orderer_stopped_including_the_leader(hosts: tuple[Hosts, Consortium]) -> None:
    _h, net = hosts
    from network.deploy import invoke

    leader = net.wait_raft_leader(timeout=60)
    for victim in [leader, next(n.name for n in net.topology.orderers if n.name != leader)]:
        net.kill_node(victim)
        try:
            for bank in net.topology.banks:
                survivor = next(n.name for n in net.topology.orderers if n.name != victim)
                key = f"bft-{victim}-{bank.msp_id}-{time.time_ns()}"
                out = invoke(net, "conformance", bank, "PutState", [key, "v"], orderer=survivor, wait=90)
                assert "committed with status (VALID)" in out, out
        finally:
            net.start_node(victim)
            net.wait_orderers_in_step()


def test_commits_go_on_with_one_consenter_partitioned(hosts: tuple[Hosts, Consortium]) -> None:
    """SGBank's host is cut off (its orderer and peer with it); USBank still commits through the others."""
    h, net = hosts
    from network.deploy import invoke

    net.wait_orderers_in_step()
    h.cut("SGBank")
    try:
        survivor = next(n.name for n in net.topology.orderers if n.org.name == "USBank")
        key = f"bft-partition-{time.time_ns()}"
        out = invoke(net, "conformance", net.topology.org("USBankMSP"), "PutState", [key, "v"], orderer=survivor,
                     wait=90)  # fmt: skip
        assert "committed with status (VALID)" in out, out
    finally:
        h.heal("SGBank")


def test_a_certificate_from_another_orgs_ca_is_refused(hosts: tuple[Hosts, Consortium]) -> None:
    """An identity claiming USBankMSP with HKBank's certificate, and HKBank's admin on USBank's orderer."""
    from fabric_client import ECDSASigner, Gateway, GatewayError, Identity

    _h, net = hosts
    hk = net.home("HKBankMSP")
    us_peer = net.ports.peers["USBankMSP"]
    impostor = Gateway.connect(
        identity=Identity.from_cert_file("USBankMSP", str(hk.user_cert("User1"))),
        signer=ECDSASigner.from_key_file(str(hk.user_key("User1"))),
        endpoint=us_peer.address,
        tls_root_cert=net.home("USBankMSP").tls_ca.read_bytes(),
        host_override=net.topology.org("USBankMSP").peer_host,
    )
    try:
        with pytest.raises(GatewayError) as refused:
            impostor.get_network(net.topology.channel).get_contract("deposit_token").evaluate_transaction("GetSupply")
        assert "access denied" in str(refused.value).lower() or "permission" in str(refused.value).lower() or (
            "not valid" in str(refused.value).lower()
        ), str(refused.value)
    finally:
        impostor.close()
    # the orderer's admin endpoint accepts only its own org's TLS client certificates
    us_orderer = next(n for n in net.topology.orderers if n.org.name == "USBank")
    p = net.ports.orderers[us_orderer.name]
    hk_admin_tls = hk.user_dir("Admin") / "tls"
    result = subprocess.run(
        ["ip", "netns", "exec", str(net.topology.org("HKBankMSP").netns), str(fabric_bin("osnadmin")),
         "channel", "list", "-o", f"{p.host}:{p.admin}", "--ca-file", str(net.home("USBankMSP").tls_ca),
         "--client-cert", str(hk_admin_tls / "client.crt"), "--client-key", str(hk_admin_tls / "client.key")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode != 0 or "Status: 200" not in result.stdout, result.stdout
