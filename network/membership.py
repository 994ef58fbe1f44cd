"""A bank joins the running channel: no restart, no ledger thrown away, payments flowing.

The steps, in order (each one is what a real party would run, and each can be re-run):

1. ``prepare``  the new bank: its own CAs and identities, its definition exported and
                 published into the consortium folder, and the consortium's live topology
                 (``<state>/topology.yaml``) gains the bank under ``joined_banks``;
2. ``propose``  any member: the config update that adds the bank's org (application group
                 with its anchor peer, and its ordering org and consenter when it runs one);
3. ``sign``     each member org's admin, in its own folder (network.channel_config);
4. ``submit``   one signing member, once the signatures meet the channel's Admins policies;
5. ``join``     the new bank: starts its nodes; its ordering node joins with the latest config
                 block, its peer with the channel's genesis block (or a ledger snapshot), and
                 catches up;
6. ``chaincode`` every org: the definition moves to the next sequence with the new bank's
                 collections (its supply and its disclosures; its books are its org's implicit
                 collection, which needs no entry);
                 the new bank installs, starts its chaincode server and approves; the other
                 orgs' chaincode servers keep serving;
7. ``register`` the regulator: the bank and its currencies enter the reference data;
8. ``gateway``  the new bank starts its REST gateway; the profile lists it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from network import channel_config, processes
from network.channel_config import JSON, ConfigUpdateError
from network.consortium import Consortium, NetworkError
from network.definition import OrgDefinition, load_definition, write_channel_msp
from network.material import MaterialError, application_org, orderer_org, print_org
from network.nodes import admin_env, fabric_bin
from network.org import run_in
from network.topology import Org, Topology, TopologyError, load_topology, parse_topology

LIVE_TOPOLOGY = "topology.yaml"


@dataclass(frozen=True)
class NewBank:
    name: str
    msp_id: str
    jurisdiction: str
    currencies: tuple[str, ...]
    host: str
    orderers: int = 0
    new_currencies: tuple[tuple[str, int], ...] = ()  # currencies the consortium does not know yet

    def as_topology_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "msp_id": self.msp_id,
            "jurisdiction": self.jurisdiction,
            "currencies": list(self.currencies),
            "host": self.host,
            "orderers": self.orderers,
        }


# -- the live topology -------------------------------------------------------------


def live_topology_file(state_dir: Path) -> Path:
    return state_dir / LIVE_TOPOLOGY


def running_topology(state_dir: Path, fallback: Path) -> Path:
    """The topology of the consortium in ``state_dir``: its live copy once banks have joined."""
    live = live_topology_file(state_dir)
    return live if live.exists() else fallback


def with_bank(topology: Topology, bank: NewBank) -> tuple[Topology, dict[str, Any]]:
    """The topology plus ``bank`` under ``joined_banks``; refused (TopologyError) as the file would be."""
    raw = yaml.safe_load(topology.source.read_text())
    for org in topology.peer_orgs:
        if org.msp_id == bank.msp_id or org.name.lower() == bank.name.lower():
            raise NetworkError(f"{bank.name} ({bank.msp_id}) is already a member of the consortium as {org.name}")
    for code, exponent in bank.new_currencies:
        known = raw["currencies"].get(code)
        if known is not None and known != exponent:
            raise NetworkError(f"currency {code} already has exponent {known}, not {exponent}")
        raw["currencies"][code] = exponent
    raw.setdefault("joined_banks", []).append(bank.as_topology_entry())
    try:
        extended = parse_topology(raw, source=topology.source)
    except TopologyError as exc:
        raise NetworkError(f"the new bank does not fit the topology: {exc}") from exc
    return extended, raw


def write_live_topology(state_dir: Path, raw: dict[str, Any]) -> Path:
    path = live_topology_file(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# The running consortium's topology: the founding file plus the banks that joined since.\n"
        + yaml.safe_dump(raw, sort_keys=False)
    )
    tmp.replace(path)
    return path


def remember_topology(state_dir: Path, path: Path) -> None:
    """Record in the network's settings which topology file describes it now."""
    settings = state_dir / "network-settings.json"
    data = json.loads(settings.read_text()) if settings.exists() else {}
    data["topology"] = str(path)
    settings.write_text(json.dumps(data, indent=2))


# -- the config update ---------------------------------------------------------------


def _b64(pem: str) -> str:
    import base64

    return base64.b64encode(pem.encode()).decode()


def config_with_org(net: Consortium, config: JSON, definition: OrgDefinition, work: Path) -> JSON:
    """The channel config with the org added: application org, and ordering org and consenters if it runs nodes."""
    groups = config["channel_group"]["groups"]
    if definition.msp_id in groups["Application"]["groups"]:
        raise ConfigUpdateError(f"{definition.msp_id} is already a member of channel '{net.topology.channel}'")
    updated = channel_config.edited(config)
    msp_dir = write_channel_msp(definition, net.consortium_dir / "msp" / definition.msp_id)
    configtxgen = fabric_bin("configtxgen")
    updated_groups = updated["channel_group"]["groups"]
    updated_groups["Application"]["groups"][definition.msp_id] = print_org(
        work / "application", application_org(definition, msp_dir), configtxgen
    )
    if definition.orderers:
        orderer = updated_groups["Orderer"]
        orderer["groups"][definition.msp_id] = print_org(
            work / "orderer", orderer_org(definition, msp_dir), configtxgen
        )
        consensus = orderer["values"]["ConsensusType"]["value"]
        for node in definition.orderers:
            if consensus["type"] == "etcdraft":
                consensus["metadata"]["consenters"].append(
                    {"host": node.host, "port": node.port,
                     "client_tls_cert": _b64(node.tls_cert_pem), "server_tls_cert": _b64(node.tls_cert_pem)}
                )  # fmt: skip
            else:
                mapping = orderer["values"]["Orderers"]["value"]["consenter_mapping"]
                mapping.append(
                    {"id": node.consenter_id, "host": node.host, "port": node.port, "msp_id": definition.msp_id,
                     "identity": _b64(node.identity_pem), "client_tls_cert": _b64(node.tls_cert_pem),
                     "server_tls_cert": _b64(node.tls_cert_pem)}
                )  # fmt: skip
        if consensus["type"] == "BFT":
            orderer["policies"]["BlockValidation"]["policy"]["value"] = bft_block_validation(
                orderer["values"]["Orderers"]["value"]["consenter_mapping"]
            )
    return updated


def bft_block_validation(mapping: list[JSON]) -> JSON:
    """The BlockValidation policy SmartBFT requires for a consenter set: a quorum of the consenters'
    own signatures (ceil((n + f + 1) / 2), f = (n - 1) // 3), one identity per consenter in mapping
    order. The orderer refuses a config whose policy differs from this one."""
    n = len(mapping)
    f = (n - 1) // 3
    quorum = -(-(n + f + 1) // 2)
    return {
        "identities": [
            {"principal": {"mspid": c["msp_id"], "id_bytes": c["identity"]}, "principal_classification": "IDENTITY"}
            for c in mapping
        ],
        "rule": {"n_out_of": {"n": quorum, "rules": [{"signed_by": i} for i in range(n)]}},
        "version": 0,
    }


# -- the whole join ----------------------------------------------------------------


class BankJoin:
    """Adds ``bank`` to the consortium running in ``state_dir``, step by step."""

    def __init__(self, topology: Topology, state_dir: Path, base_port: int, bank: NewBank,
                 progress: Any = None, resume: bool = False) -> None:  # fmt: skip
        self.bank_request = bank
        self.state_dir = state_dir.resolve()
        if any(org.msp_id == bank.msp_id for org in topology.peer_orgs):
            if not resume:
                raise NetworkError(
                    f"{bank.name} ({bank.msp_id}) is already a member of the consortium (see {topology.source}); "
                    "to finish an interrupted join, run add-bank again with --resume"
                )
            extended = topology
        else:
            extended, raw = with_bank(topology, bank)
            write_live_topology(self.state_dir, raw)
            extended = load_topology(live_topology_file(self.state_dir))
            remember_topology(self.state_dir, extended.source)
        kwargs = {"progress": progress} if progress is not None else {}
        self.net = Consortium(extended, self.state_dir, base_port, **kwargs)
        self.bank: Org = extended.org(bank.msp_id)
        self.members = [org for org in extended.peer_orgs if org.msp_id != bank.msp_id]
        self.update_dir = self.net.consortium_dir / "updates" / f"add-{bank.msp_id}"

    # the member that fetches the config and submits the update; the regulator coordinates admissions
    @property
    def coordinator(self) -> Org:
        return self.net.topology.regulator

    def is_member(self) -> bool:
        _bytes, config = channel_config.current_config(self.net, self.coordinator, self.update_dir.parent / ".probe")
        return self.bank.msp_id in config["channel_group"]["groups"]["Application"]["groups"]

    # 1
    def prepare(self) -> None:
        t = self.net.step(f"{self.bank.name}: its own CAs and identities; its definition published")
        self.net.init_org(self.bank)
        self.net.publish_definition(self.bank)
        self.net.save_node_specs(self.bank)
        self.net.done(t)

    # 2
    def propose(self) -> JSON:
        t = self.net.step(f"{self.coordinator.name} proposes the config update adding {self.bank.msp_id}")
        work = self.update_dir.parent / f".work-{self.bank.msp_id}"
        config_bytes, config = channel_config.current_config(self.net, self.coordinator, work)
        definition = load_definition(self.net.definitions_dir / f"{self.bank.msp_id}.json")
        updated = config_with_org(self.net, config, definition, work)
        summary = channel_config.propose(
            self.update_dir, config_bytes, config, updated, self.net.topology.channel,
            f"add {self.bank.name} ({self.bank.msp_id}, {self.bank.jurisdiction}, issuing "
            f"{', '.join(self.bank.currencies)})" + (f" with {len(definition.orderers)} ordering node(s)"
                                                     if definition.orderers else ""),
        )  # fmt: skip
        needs = "; ".join(sorted({r["policy"] for r in summary["requirements"]}))
        self.net.done(t, f"update in {self.update_dir}; it needs {needs}")
        return summary

    # 3
    def sign(self, orgs: list[Org] | None = None) -> None:
        chosen = self.members if orgs is None else orgs
        t = self.net.step(f"Each member's admin signs in its own folder ({', '.join(o.name for o in chosen)})")
        self.net.for_each_org(lambda org: channel_config.sign_as_org(self.net, self.update_dir, org), chosen)
        self.net.done(t)

    # 4
    def submit(self, submitter: Org | None = None) -> None:
        submitter = submitter or self.coordinator
        t = self.net.step(f"{submitter.name} submits the update (signatures checked against the Admins policies first)")
        before = self.net.peer_height(submitter.msp_id) or 0
        signers = channel_config.submit(self.net, self.update_dir, submitter)
        self.net.progress(f"    signed by {', '.join(s.msp_id for s in signers)}")
        self._wait_members_at(before + 1)
        self.net.done(t, "committed on every member's peer")

    def _wait_members_at(self, height: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        heights: dict[str, int | None] = {}
        while time.monotonic() < deadline:
            heights = {org.msp_id: self.net.peer_height(org.msp_id) for org in self.members}
            if all(h is not None and h >= height for h in heights.values()):
                return
            time.sleep(0.5)
        raise NetworkError(f"the members' peers did not reach block {height} within {timeout:.0f}s: {heights}")

    # 5
    def join(self, from_snapshot: bool = False) -> None:
        home = self.net.home(self.bank)
        specs = [(home, spec) for spec in processes.load_specs(home.root) if spec.kind in ("orderer", "peer")]
        self.net.start_nodes(specs, fresh=True)
        if self.net.topology.orderers_of(self.bank):
            t = self.net.step(f"{self.bank.name} joins its ordering node with the latest config block")
            block = channel_config.fetch_config_block(
                self.net, self.coordinator, self.update_dir / "latest_config_block.pb"
            )
            for node in self.net.topology.orderers_of(self.bank):
                out = self.net.osnadmin(node, "join", "--channelID", self.net.topology.channel,
                                        "--config-block", str(block))  # fmt: skip
                if "201" not in out and "already exists" not in out:
                    raise NetworkError(f"osnadmin join on {node.name} answered unexpectedly: {out.strip()}")
            self.net.wait_orderers_in_step()
            self.net.done(t)
        if from_snapshot:
            t = self.net.step(f"{self.bank.name} joins its peer from a ledger snapshot of "
                              f"{self.coordinator.name}'s peer and catches up")  # fmt: skip
            self.join_by_snapshot(self.take_snapshot())
        else:
            t = self.net.step(f"{self.bank.name} joins its peer with the channel's genesis block and catches up")
            self.net.join_peer(self.bank)
        target = max(self.net.peer_height(org.msp_id) or 0 for org in self.members)
        self.net.wait_peer_heights(minimum=target, timeout=120)
        self.net.wait_gossip_membership()
        self.net.done(t, f"at block {target}; every peer knows every other")

    def take_snapshot(self, timeout: float = 120) -> Path:
        """A ledger snapshot of the coordinator's peer, taken now (after the config update that added
        the bank), copied into the new bank's folder as a file tree; returns the copy."""
        source = self.coordinator
        env = admin_env(self.net.home(source), self.net.ports)
        peer = self.net.ports.peers[source.msp_id]
        completed = self.net.home(source).data(f"peer.{source.msp_id}") / "snapshots" / "completed"
        completed = completed / self.net.topology.channel
        before = {p.name for p in completed.iterdir()} if completed.exists() else set()
        run_in(source, [str(fabric_bin("peer")), "snapshot", "submitrequest", "-c", self.net.topology.channel,
                        "-b", "0", "--peerAddress", peer.address, "--tlsRootCertFile",
                        str(self.net.home(source).tls_ca)], "peer snapshot submitrequest", env=env)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # the peer writes the snapshot elsewhere and renames it into completed/ when it is whole
            done = [p for p in completed.iterdir() if p.name not in before] if completed.exists() else []
            if done:
                snapshot = max(done, key=lambda p: int(p.name))
                target = self.net.home(self.bank).root / "snapshots" / self.net.topology.channel / snapshot.name
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(snapshot, target)
                self.net.progress(f"    snapshot at block {snapshot.name} copied to {target}")
                return target
            time.sleep(0.5)
        raise NetworkError(f"{source.name}'s peer did not complete a snapshot within {timeout:.0f}s")

    def join_by_snapshot(self, snapshot: Path, timeout: float = 120) -> None:
        env = admin_env(self.net.home(self.bank), self.net.ports)
        peer = str(fabric_bin("peer"))
        try:
            run_in(self.bank, [peer, "channel", "joinbysnapshot", "--snapshotpath", str(snapshot)],
                   "peer channel joinbysnapshot", env=env)  # fmt: skip
        except MaterialError as exc:
            if "already exists" not in str(exc):
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = run_in(self.bank, [peer, "channel", "joinbysnapshotstatus"], "joinbysnapshotstatus", env=env)
            if "No joinbysnapshot operation is in progress" in out:
                return
            time.sleep(0.5)
        raise NetworkError(f"{self.bank.name}'s peer did not finish joining from the snapshot within {timeout:.0f}s")

    # 6
    def chaincode(self) -> None:
        from network.deploy import committed_definition, deploy_chaincode

        for cc in self.net.topology.chaincodes:
            if committed_definition(self.net, cc.name, self.coordinator) is None:
                continue  # not deployed on this network (e.g. a test-only chaincode)
            deploy_chaincode(self.net, cc, restart_servers=False)

    # 7
    def register(self) -> None:
        from network.deploy import invoke

        for cc in self.net.topology.chaincodes:
            if not cc.init_function:
                continue
            t = self.net.step(f"The regulator adds {self.bank.msp_id} and its currencies to the reference data")
            invoke(self.net, cc.name, self.net.topology.regulator, cc.init_function,
                   [json.dumps(self.net.topology.reference_data())])  # fmt: skip
            # the new bank acts through its own peer: it must have the block that registers it
            height = self.net.peer_height(self.net.topology.regulator.msp_id) or 0
            self.net.wait_peer_heights(minimum=height)
            self.net.done(t)

    # 8
    def gateway(self) -> None:
        from network.gateways import start_gateways

        start_gateways(self.net, banks=[self.bank])
        self.net.write_profile()

    def run(self, from_snapshot: bool = False) -> float:
        """Every step in order; returns the seconds it took."""
        begin = time.monotonic()
        self.prepare()
        if self.is_member():
            self.net.progress(f"==> {self.bank.msp_id} is already a member of the channel: resuming after the update")
        else:
            self.propose()
            self.sign()
            self.submit()
        self.join(from_snapshot)
        self.chaincode()
        self.register()
        self.gateway()
        elapsed = time.monotonic() - begin
        self.net.progress(f"{self.bank.name} joined the running consortium in {elapsed:.1f}s")
        return elapsed
