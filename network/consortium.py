"""Bring the consortium network up, report on it, and take it down.

The consortium is a set of organisations, each with its own folder (``network.org``) and host.
``up`` runs, for every org, the same steps that org would run on its own machine (create its
CAs and identities, export its definition, start its nodes, join them), plus the consortium
steps that need only public material (the genesis block from the org definitions, the
chaincode definition). On one machine the orgs' folders sit under ``<state>/orgs/``.

``up`` is idempotent: on a running network it reuses it (and redeploys what changed);
on a stopped one whose data is still there it starts the nodes again; otherwise it
builds everything from nothing.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from network import processes
from network.ca import CASpec, OrgCAs
from network.definition import export_definition, load_definitions
from network.material import MaterialError, write_genesis_block
from network.nodes import admin_env, fabric_bin, fabric_home, orderer_spec, peer_spec
from network.org import (
    ADMIN,
    OrgHome,
    copy_sampleconfig,
    cryptogen_identities,
    enroll_identities,
    run_in,
)
from network.ports import PortPlan, plan_ports, port_in_use, taken_ports
from network.topology import OrdererNode, Org, Topology

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


class NetworkError(RuntimeError):
    """A clear, user-facing failure of the network tool."""


Progress = Callable[[str], None]


def _print(message: str) -> None:
    print(message, flush=True)


# the order processes stop in: nothing logs errors about a node that vanished under it
STOP_ORDER = {"gateway": 0, "chaincode": 1, "peer": 2, "orderer": 3, "ca": 4}


@dataclass
class Consortium:
    topology: Topology
    state_dir: Path
    base_port: int
    progress: Progress = _print
    org_homes: dict[str, Path] = field(default_factory=dict)  # MSP id -> folder, when not under <state>/orgs
    consortium_path: Path | None = None  # the public folder, when not <state>/consortium

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.ports: PortPlan = plan_ports(self.topology, self.base_port)
        self.homes: dict[str, OrgHome] = {
            org.msp_id: OrgHome(
                Path(self.org_homes.get(org.msp_id, self.state_dir / "orgs" / org.name)).resolve(), org
            )
            for org in self.topology.peer_orgs
        }

    # -- where things are ------------------------------------------------
    def home(self, org: Org | str) -> OrgHome:
        return self.homes[org if isinstance(org, str) else org.msp_id]

    @property
    def consortium_dir(self) -> Path:
        """Public material only: org definitions, the genesis block, the collections config."""
        return (self.consortium_path or self.state_dir / "consortium").resolve()

    @property
    def definitions_dir(self) -> Path:
        return self.consortium_dir / "definitions"

    @property
    def genesis_block(self) -> Path:
        return self.consortium_dir / f"{self.topology.channel}.block"

    def org_tls_ca(self, msp_id: str) -> Path:
        """Another org's TLS root, as its definition published it (never read from its folder)."""
        return self.consortium_dir / "msp" / msp_id / "tlscacerts" / "ca.pem"

    def orderer_endpoint(self, org: Org) -> tuple[str, Path]:
        """The ordering node an org's admin sends to: its own if it runs one, else the first of the channel."""
        node = (self.topology.orderers_of(org) or self.topology.orderers)[0]
        return self.ports.orderers[node.name].address, self.org_tls_ca(node.org.msp_id)

    # -- helpers ---------------------------------------------------------
    def step(self, message: str) -> float:
        self.progress(f"==> {message}")
        return time.monotonic()

    def done(self, started: float, message: str = "done") -> None:
        self.progress(f"    {message} in {time.monotonic() - started:.1f}s")

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "network-settings.json"

    def located_specs(self) -> list[tuple[OrgHome, processes.NodeSpec]]:
        return [(home, spec) for home in self.homes.values() for spec in processes.load_specs(home.root)]

    def node_specs(self) -> list[processes.NodeSpec]:
        return [spec for _home, spec in self.located_specs()]

    def locate(self, name: str) -> tuple[OrgHome, processes.NodeSpec]:
        for home, spec in self.located_specs():
            if spec.name == name:
                return home, spec
        raise NetworkError(f"no node named {name!r} in {self.state_dir}")

    def running_nodes(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for home, spec in self.located_specs():
            pid = processes.running_pid(home.root, spec.name)
            if pid is not None:
                result[spec.name] = pid
        return result

    def for_each_org(self, fn: Callable[[Org], T], orgs: Iterable[Org] | None = None) -> list[T]:
        """Run one step for every org at once, as each org would on its own host."""
        chosen = list(self.topology.peer_orgs if orgs is None else orgs)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
            return [f.result() for f in [pool.submit(fn, org) for org in chosen]]

    # -- up --------------------------------------------------------------
    def up(self, with_test_chaincodes: bool = False, deploy: bool = True, gateways: bool = True) -> None:
        begin = time.monotonic()
        self._check_settings()
        located = self.located_specs()
        running = self.running_nodes()
        fabric_nodes = [(h, s) for h, s in located if s.kind in ("orderer", "peer", "ca")]
        if fabric_nodes and all(s.name in running for _h, s in fabric_nodes):
            self.progress(f"Network already running in {self.state_dir} (base port {self.base_port}): reusing it.")
        elif fabric_nodes and (self.consortium_dir / ".joined").exists():
            self.progress(f"Found a stopped network in {self.state_dir}: starting its nodes again.")
            self.start_nodes(fabric_nodes, fresh=False)
            self.wait_gossip_membership()
        else:
            if self.state_dir.exists() and any(self.state_dir.iterdir()):
                if running:
                    raise NetworkError(
                        f"{self.state_dir} holds a partly started network ({', '.join(sorted(running))} running); "
                        f"run 'python -m network down --state-dir {self.state_dir}' first"
                    )
                self.progress(f"Removing incomplete network data in {self.state_dir}")
                shutil.rmtree(self.state_dir)
            self._create()
        if deploy:
            from network.deploy import deploy_all

            deploy_all(self, with_test_chaincodes=with_test_chaincodes)
        if gateways:
            from network.gateways import start_gateways

            start_gateways(self)
        self.write_profile()
        self.progress(f"Network up in {time.monotonic() - begin:.1f}s. Profile: {self.state_dir / 'profile.json'}")

    def _check_settings(self) -> None:
        if self.settings_file.exists():
            saved = json.loads(self.settings_file.read_text())
            if saved.get("base_port") != self.base_port:
                raise NetworkError(
                    f"{self.state_dir} holds a network on base port {saved.get('base_port')}, not {self.base_port}; "
                    "use that base port, or another --state-dir, or run 'down' first"
                )

    def _create(self) -> None:
        taken = taken_ports(self.ports)
        if taken:
            listing = ", ".join(f"{port} ({what})" for port, what in taken[:6])
            raise NetworkError(
                f"port {taken[0][0]} is already in use ({taken[0][1]}); taken: {listing}. "
                "Stop what uses it or pick another base port with --base-port."
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(
            json.dumps({"base_port": self.base_port, "topology": str(self.topology.source)}, indent=2)
        )
        source = "its own TLS CA and signing CA" if self.topology.crypto == "ca" else "cryptogen (fast option)"
        t = self.step(f"Each of {len(self.topology.peer_orgs)} orgs creates its identities from {source}")
        self.for_each_org(self.init_org)
        self.done(t)
        t = self.step("Each org exports its definition; the consortium gathers them")
        self.for_each_org(self.publish_definition)
        self.done(t)
        t = self.step(
            f"Writing the genesis block of channel '{self.topology.channel}' from the org definitions "
            f"(V3_0, {self.topology.orderer.consensus}, {len(self.topology.orderers)} ordering nodes "
            f"run by {len(self.topology.orderer_orgs)} orgs)"
        )
        self.create_genesis_block()
        self.done(t)
        specs = self.for_each_org(self.save_node_specs)
        self.start_nodes([item for org_specs in specs for item in org_specs], fresh=True)
        t = self.step("Each org joins its ordering nodes to the channel (osnadmin, its own admin)")
        self.for_each_org(self.join_orderers, self.topology.orderer_orgs)
        self.wait_ordering_service()
        self.done(t)
        t = self.step("Each org joins its peer to the channel")
        self.for_each_org(self.join_peer)
        self.wait_peer_heights(minimum=1)
        (self.consortium_dir / ".joined").write_text("")
        self.done(t)
        t = self.step("Waiting until every peer knows every other org's peer (gossip, for private data)")
        self.wait_gossip_membership()
        self.done(t)

    # -- one org's own steps (what a bank runs on its own host) ----------
    def init_org(self, org: Org) -> None:
        """Create the org's folder, CAs and identities; nothing here reads another org's folder."""
        home = self.home(org)
        home.root.mkdir(parents=True, exist_ok=True)
        copy_sampleconfig(home, fabric_home())
        if home.identities_done.exists():
            return
        if self.topology.crypto == "ca":
            cas = self.org_cas(org)
            processes.save_specs(home.root, cas.node_specs())  # so status, down and restarts see the CAs
            cas.start()
            enroll_identities(home, self.topology, cas)
        else:
            cryptogen_identities(home, self.topology, fabric_bin("cryptogen"))
        home.identities_done.write_text("")

    def org_cas(self, org: Org) -> OrgCAs:
        home = self.home(org)
        p = self.ports.cas[org.msp_id]
        dns = (org.ca_host, "localhost") if org.host.startswith("127.") else (org.ca_host,)
        short = org.name.lower()
        tls = CASpec(org=org.name, role="tls", name=f"tlsca.{short}", home=home.ca_dir / "tls", host=p.host,
                     port=p.tls, operations_port=p.tls_operations, dns_names=dns, netns=org.netns)  # fmt: skip
        sign = CASpec(org=org.name, role="sign", name=f"ca.{short}", home=home.ca_dir / "sign", host=p.host,
                      port=p.sign, operations_port=p.sign_operations, dns_names=dns, netns=org.netns)  # fmt: skip
        return OrgCAs(tls, sign, home.root, progress=lambda m: self.progress(f"    {org.name}: {m}"))

    def publish_definition(self, org: Org) -> Path:
        """The org exports its public definition; on one machine 'sending it' is a copy."""
        home = self.home(org)
        export_definition(home, self.topology, self.ports)
        target = self.definitions_dir / f"{org.msp_id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home.definition_file, target)
        return target

    def create_genesis_block(self) -> Path:
        """From the gathered definitions only (any one org, or a neutral party, can run this)."""
        definitions = load_definitions(self.definitions_dir)
        wanted = {org.msp_id for org in self.topology.peer_orgs}
        missing = wanted - {d.msp_id for d in definitions}
        if missing:
            raise NetworkError(f"no definition received from {', '.join(sorted(missing))} in {self.definitions_dir}")
        return write_genesis_block(
            self.consortium_dir, self.topology.channel, [d for d in definitions if d.msp_id in wanted],
            self.topology.orderer, fabric_bin("configtxgen"),
        )  # fmt: skip

    def save_node_specs(self, org: Org) -> list[tuple[OrgHome, processes.NodeSpec]]:
        home = self.home(org)
        specs = [orderer_spec(home, self.ports, n) for n in self.topology.orderers_of(org)]
        specs.append(peer_spec(home, self.ports, org))
        processes.save_specs(home.root, specs)
        return [(home, spec) for spec in specs]

    def osnadmin(self, node: OrdererNode, *args: str, timeout: float = 120) -> str:
        """``osnadmin channel <args>`` on one of the org's own nodes, as the org's admin (mutual TLS)."""
        home = self.home(node.org)
        admin_tls = home.user_dir(ADMIN) / "tls"
        ports = self.ports.orderers[node.name]
        command = [
            str(fabric_bin("osnadmin")), "channel", *args,
            "-o", f"{ports.host}:{ports.admin}",
            "--ca-file", str(home.tls_ca),
            "--client-cert", str(admin_tls / "client.crt"),
            "--client-key", str(admin_tls / "client.key"),
        ]  # fmt: skip
        return run_in(node.org, command, f"osnadmin channel {args[0]} on {node.name}", timeout=timeout)

    def join_orderers(self, org: Org) -> None:
        for node in self.topology.orderers_of(org):
            out = ""
            for attempt in range(20):
                try:
                    out = self.osnadmin(node, "join", "--channelID", self.topology.channel,
                                        "--config-block", str(self.genesis_block))  # fmt: skip
                except MaterialError as exc:
                    # the admin listener may come up a moment after the operations endpoint answers
                    if attempt == 19:
                        raise
                    out = str(exc)
                    time.sleep(0.5)
                    continue
                break
            if "201" not in out and "already exists" not in out:
                raise NetworkError(f"osnadmin join on {node.name} answered unexpectedly: {out.strip()}")

    def join_peer(self, org: Org) -> None:
        env = admin_env(self.home(org), self.ports)
        peer = str(fabric_bin("peer"))
        for attempt in range(20):
            try:
                run_in(org, [peer, "channel", "join", "-b", str(self.genesis_block)],
                       f"peer channel join ({org.name})", env=env)  # fmt: skip
                return
            except MaterialError as exc:
                if "already exists" in str(exc):
                    return
                if attempt == 19:
                    raise
                time.sleep(0.5)

    def start_nodes(self, specs: list[tuple[OrgHome, processes.NodeSpec]], fresh: bool) -> None:
        if not fresh:
            for home, spec in specs:
                if processes.running_pid(home.root, spec.name) is not None:
                    continue
                for port in spec.ports:
                    if port_in_use(port, spec.host):
                        raise NetworkError(f"port {spec.host}:{port} needed by {spec.name} is already in use")
        cas = [(h, s) for h, s in specs if s.kind == "ca"]
        others = [(h, s) for h, s in specs if s.kind != "ca"]
        for group in (cas, others):
            if not group:
                continue
            t = self.step(f"Starting {len(group)} nodes ({', '.join(sorted({s.kind for _h, s in group}))}) "
                          "as native processes, each on its org's host")  # fmt: skip
            for home, spec in group:
                processes.start(home.root, spec)
            for home, spec in group:
                processes.wait_healthy(home.root, [spec], timeout=90,
                                       progress=lambda m: self.progress(f"    {m}"))  # fmt: skip
            self.done(t, "all answer their health checks")

    # -- the ordering service ----------------------------------------------
    def orderer_channel_info(self, node: str) -> dict[str, Any]:
        out = self.osnadmin(self.topology.orderer_node(node), "list", "--channelID", self.topology.channel, timeout=15)
        body = out[out.index("{") :] if "{" in out else "{}"
        info: dict[str, Any] = json.loads(body)
        return info

    def raft_leader(self) -> str | None:
        """The orderer that currently leads the Raft cluster (or the BFT view), from the orderers' own metrics."""
        names = ("consensus_etcdraft_is_leader{", "consensus_BFT_is_leader{")
        for node in self.topology.orderers:
            home = self.home(node.org)
            if processes.running_pid(home.root, node.name) is None:
                continue
            p = self.ports.orderers[node.name]
            for line in _metrics(p.host, p.operations):
                if line.startswith(names) and line.rstrip().endswith(" 1"):
                    return node.name
        return None

    def wait_raft_leader(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.raft_leader()
            if leader:
                return leader
            time.sleep(0.3)
        raise NetworkError(f"no consensus leader was elected within {timeout:.0f}s")

    def wait_ordering_service(self, timeout: float = 90) -> None:
        """Every ordering node is an active consenter of the channel (and Raft has a leader)."""
        deadline = time.monotonic() + timeout
        pending = {n.name for n in self.topology.orderers}
        last: dict[str, Any] = {}
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                try:
                    info = self.orderer_channel_info(name)
                except MaterialError as exc:
                    last[name] = str(exc)[-200:]
                    continue
                last[name] = info
                if info.get("status") == "active" and info.get("consensusRelation") == "consenter":
                    pending.discard(name)
            if pending:
                time.sleep(0.5)
        if pending:
            raise NetworkError(f"ordering nodes did not become active consenters within {timeout:.0f}s: {last}")
        if self.topology.orderer.consensus == "etcdraft":
            self.wait_raft_leader(timeout=max(5.0, deadline - time.monotonic()))

    def wait_orderers_in_step(self, timeout: float = 120) -> dict[str, int]:
        """Every ordering node has the same chain height (a restarted node has caught up)."""
        deadline = time.monotonic() + timeout
        heights: dict[str, Any] = {}
        while time.monotonic() < deadline:
            for node in self.topology.orderers:
                try:
                    heights[node.name] = int(self.orderer_channel_info(node.name).get("height", -1))
                except (MaterialError, ValueError):
                    heights[node.name] = None
            if None not in heights.values() and len(set(heights.values())) == 1:
                return heights
            time.sleep(1)
        raise NetworkError(f"ordering nodes did not reach the same height within {timeout:.0f}s: {heights}")

    # -- peers ---------------------------------------------------------------
    def peers_known(self, msp_id: str) -> int:
        """How many other peers of the channel this peer knows through gossip (its own metric)."""
        prefix = f'gossip_membership_total_peers_known{{channel="{self.topology.channel}"}}'
        p = self.ports.peers[msp_id]
        for line in _metrics(p.host, p.operations):
            if line.startswith(prefix):
                return int(float(line.split()[-1]))
        return 0

    def wait_gossip_membership(self, timeout: float = 120) -> None:
        """Private data reaches another org only once the peers have found each other.

        Until then an endorsement that must disseminate to the counterparty fails with
        "know of only 0 eligible peers", so ``up`` waits for it instead of the first payment.
        """
        others = len(self.topology.peer_orgs) - 1
        deadline = time.monotonic() + timeout
        known: dict[str, int] = {}
        while time.monotonic() < deadline:
            known = {org.msp_id: self.peers_known(org.msp_id) for org in self.topology.peer_orgs}
            if all(n >= others for n in known.values()):
                return
            time.sleep(0.5)
        raise NetworkError(f"peers did not discover each other within {timeout:.0f}s (peers known: {known})")

    def peer_height(self, msp_id: str) -> int | None:
        org = self.topology.org(msp_id)
        env = admin_env(self.home(org), self.ports)
        try:
            out = run_in(org, [str(fabric_bin("peer")), "channel", "getinfo", "-c", self.topology.channel],
                         "peer channel getinfo", env=env, timeout=15)  # fmt: skip
        except MaterialError:
            return None
        text = out[out.index("{") :] if "{" in out else "{}"
        height = json.loads(text).get("height")
        return int(height) if height is not None else None

    def wait_peer_heights(self, minimum: int, timeout: float = 60) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        heights: dict[str, int | None] = {}
        while time.monotonic() < deadline:
            heights = {org.msp_id: self.peer_height(org.msp_id) for org in self.topology.peer_orgs}
            if all(h is not None and h >= minimum for h in heights.values()):
                return {k: int(v) for k, v in heights.items() if v is not None}
            time.sleep(0.5)
        raise NetworkError(f"peers did not reach block height {minimum} within {timeout:.0f}s: {heights}")

    # -- status ----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        located = self.located_specs()
        nodes = []
        for home, spec in located:
            pid = processes.running_pid(home.root, spec.name)
            nodes.append(
                {
                    "name": spec.name,
                    "kind": spec.kind,
                    "org": home.org.name,
                    "host": spec.host,
                    "pid": pid,
                    "running": pid is not None,
                    "healthy": pid is not None and processes.healthy(spec),
                    "rss_mib": round(processes.rss_kib(pid) / 1024, 1) if pid else 0,
                    "ports": spec.ports,
                }
            )
        return {
            "state_dir": str(self.state_dir),
            "base_port": self.base_port,
            "channel": self.topology.channel,
            "consensus": self.topology.orderer.consensus,
            "nodes": nodes,
            "raft_leader": self.raft_leader() if located else None,
        }

    # -- down ------------------------------------------------------------
    def stop(self, orgs: Iterable[Org] | None = None) -> list[str]:
        """Stop the orgs' processes (every org's by default), gateways first and CAs last; data stays."""
        homes = [self.home(org) for org in (self.topology.peer_orgs if orgs is None else orgs)]
        located = [(home, spec) for home in homes for spec in processes.load_specs(home.root)]
        stopped: list[str] = []
        for home, spec in sorted(located, key=lambda item: STOP_ORDER.get(item[1].kind, 9)):
            if processes.stop(home.root, spec.name):
                stopped.append(spec.name)
        return stopped

    def down(self, keep_data: bool = False) -> list[str]:
        stopped = self.stop()
        self._stop_strays()
        if not keep_data and self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            for home in self.homes.values():
                if home.root.exists():
                    shutil.rmtree(home.root)
        return stopped

    def _stop_strays(self) -> None:
        """Stop any process still holding a pid file in an org's folder (e.g. from a crashed ``up``)."""
        for home in self.homes.values():
            run_dir = home.root / "run"
            if not run_dir.exists():
                continue
            for pid_path in run_dir.glob("*.pid"):
                if processes.running_pid(home.root, pid_path.stem) is not None:
                    processes.stop(home.root, pid_path.stem)

    # -- single-node control (used by tests and operators) ---------------
    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        home, _spec = self.locate(name)
        if not processes.stop(home.root, name, timeout=10, sig=sig):
            raise NetworkError(f"{name} is not running")

    def start_node(self, name: str, timeout: float = 60) -> None:
        home, spec = self.locate(name)
        processes.start(home.root, spec)
        processes.wait_healthy(home.root, [spec], timeout=timeout)

    # -- profile ---------------------------------------------------------
    def write_profile(self) -> Path:
        from network.hfc_profile import write_hfc_profile
        from network.profile import build_profile

        profile = build_profile(self)
        path = self.state_dir / "profile.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(profile, indent=2))
        tmp.replace(path)
        write_hfc_profile(self)
        return path


def _metrics(host: str, operations_port: int) -> list[str]:
    """The Prometheus lines of a node's operations endpoint; none if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{operations_port}/metrics", timeout=2) as resp:
            return str(resp.read().decode()).splitlines()
    except OSError:
        return []


def default_state_dir(base_port: int) -> Path:
    env = os.environ.get("NETWORK_STATE_DIR")
    if env:
        return Path(env)
    return ROOT / ".state" / ("demo" if base_port == 7000 else f"net-{base_port}")
