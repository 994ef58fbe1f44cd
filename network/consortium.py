"""Bring the consortium network up, report on it, and take it down.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from network import processes
from network.material import Layout, MaterialError, generate_crypto, run, write_genesis_block
from network.nodes import (
    admin_env,
    copy_sampleconfig,
    fabric_bin,
    orderer_spec,
    peer_spec,
)
from network.ports import HOST, PortPlan, plan_ports, port_in_use, taken_ports
from network.topology import Topology

ROOT = Path(__file__).resolve().parent.parent


class NetworkError(RuntimeError):
    """A clear, user-facing failure of the network tool."""


Progress = Callable[[str], None]


def _print(message: str) -> None:
    print(message, flush=True)


@dataclass
class Consortium:
    topology: Topology
    state_dir: Path
    base_port: int
    progress: Progress = _print

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.layout = Layout(self.state_dir, self.topology)
        self.ports: PortPlan = plan_ports(self.topology, self.base_port)

    # -- helpers ---------------------------------------------------------
    def step(self, message: str) -> float:
        self.progress(f"==> {message}")
        return time.monotonic()

    def done(self, started: float, message: str = "done") -> None:
        self.progress(f"    {message} in {time.monotonic() - started:.1f}s")

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "network-settings.json"

    def node_specs(self) -> list[processes.NodeSpec]:
        return processes.load_specs(self.state_dir)

    def running_nodes(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for spec in self.node_specs():
            pid = processes.running_pid(self.state_dir, spec.name)
            if pid is not None:
                result[spec.name] = pid
        return result

    # -- up --------------------------------------------------------------
    def up(self, with_test_chaincodes: bool = False, deploy: bool = True, gateways: bool = True) -> None:
        begin = time.monotonic()
        self._check_settings()
        specs = self.node_specs()
        running = self.running_nodes()
        fabric_nodes = [s for s in specs if s.kind in ("orderer", "peer")]
        if fabric_nodes and all(s.name in running for s in fabric_nodes):
            self.progress(f"Network already running in {self.state_dir} (base port {self.base_port}): reusing it.")
        elif fabric_nodes and (self.state_dir / "channel" / ".joined").exists():
            self.progress(f"Found a stopped network in {self.state_dir}: starting its nodes again.")
            self._start_fabric_nodes(fabric_nodes, fresh=False)
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
        t = self.step(f"Generating crypto material for {len(self.topology.peer_orgs)} peer orgs and the orderer org")
        generate_crypto(self.layout, fabric_bin("cryptogen"))
        copy_sampleconfig(self.layout)
        self.done(t)
        t = self.step(f"Writing the genesis block of channel '{self.topology.channel}' (V3_0, etcdraft)")
        write_genesis_block(self.layout, self.ports, fabric_bin("configtxgen"))
        self.done(t)
        specs = [orderer_spec(self.layout, self.ports, n) for n in self.topology.orderer.nodes]
        specs += [peer_spec(self.layout, self.ports, org) for org in self.topology.peer_orgs]
        processes.save_specs(self.state_dir, specs)
        self._start_fabric_nodes(specs, fresh=True)
        t = self.step("Joining the orderers to the channel (osnadmin) and waiting for a Raft leader")
        self._join_orderers()
        self.done(t)
        t = self.step("Joining every peer to the channel")
        self._join_peers()
        (self.state_dir / "channel" / ".joined").write_text("")
        self.done(t)
        t = self.step("Waiting until every peer knows every other org's peer (gossip, for private data)")
        self.wait_gossip_membership()
        self.done(t)

    def _start_fabric_nodes(self, specs: list[processes.NodeSpec], fresh: bool) -> None:
        if not fresh:
            for spec in specs:
                if processes.running_pid(self.state_dir, spec.name) is not None:
                    continue
                for port in spec.ports:
                    if port_in_use(port):
                        raise NetworkError(f"port {port} needed by {spec.name} is already in use")
        t = self.step(f"Starting {len(specs)} nodes (3 Raft orderers, peers) as native processes")
        for spec in specs:
            processes.start(self.state_dir, spec)
        processes.wait_healthy(self.state_dir, specs, timeout=90, progress=lambda m: self.progress(f"    {m}"))
        self.done(t, "all nodes answer /healthz")

    def _osnadmin(self, node: str, *args: str, timeout: float = 120) -> str:
        """Run ``osnadmin channel <args>`` against ``node``'s admin endpoint with its mutual-TLS files."""
        tls = self.layout.orderer_dir(node) / "tls"
        command = [
            str(fabric_bin("osnadmin")), "channel", *args,
            "--channelID", self.topology.channel,
            "-o", f"{HOST}:{self.ports.orderers[node].admin}",
            "--ca-file", str(tls / "ca.crt"),
            "--client-cert", str(tls / "server.crt"),
            "--client-key", str(tls / "server.key"),
        ]  # fmt: skip
        return run(
            command,
            f"osnadmin channel {args[0]} on {node}",
            timeout=timeout,
        )

    def _join_orderers(self) -> None:
        for node in self.topology.orderer.nodes:
            out = self._osnadmin(node, "join", "--config-block", str(self.layout.genesis_block))
            if "201" not in out and "already exists" not in out:
                raise NetworkError(f"osnadmin join on {node} answered unexpectedly: {out.strip()}")
        self.wait_raft_leader()

    def orderer_channel_info(self, node: str) -> dict[str, Any]:
        out = self._osnadmin(node, "list", timeout=15)
        body = out[out.index("{") :] if "{" in out else "{}"
        info: dict[str, Any] = json.loads(body)
        return info

    def raft_leader(self) -> str | None:
        """The orderer that currently leads the Raft cluster, from the orderers' own metrics."""
        for node in self.topology.orderer.nodes:
            if processes.running_pid(self.state_dir, node) is None:
                continue
            for line in _metrics(self.ports.orderers[node].operations):
                if line.startswith("consensus_etcdraft_is_leader{") and line.rstrip().endswith(" 1"):
                    return node
        return None

    def wait_raft_leader(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.raft_leader()
            if leader:
                return leader
            time.sleep(0.3)
        raise NetworkError(f"no Raft leader was elected within {timeout:.0f}s")

    def _join_peers(self) -> None:
        peer = str(fabric_bin("peer"))

        def join(org_index: int) -> None:
            org = self.topology.peer_orgs[org_index]
            env = admin_env(self.layout, self.ports, org)
            for attempt in range(20):
                try:
                    run(
                        [peer, "channel", "join", "-b", str(self.layout.genesis_block)],
                        f"peer channel join ({org.name})",
                        env=env,
                    )
                    return
                except MaterialError as exc:
                    if "already exists" in str(exc):
                        return
                    if attempt == 19:
                        raise
                    time.sleep(0.5)

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(join, range(len(self.topology.peer_orgs))))
        self.wait_peer_heights(minimum=1)

    def peers_known(self, msp_id: str) -> int:
        """How many other peers of the channel this peer knows through gossip (its own metric)."""
        prefix = f'gossip_membership_total_peers_known{{channel="{self.topology.channel}"}}'
        for line in _metrics(self.ports.peers[msp_id].operations):
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
        env = admin_env(self.layout, self.ports, org)
        try:
            out = run(
                [str(fabric_bin("peer")), "channel", "getinfo", "-c", self.topology.channel],
                "peer channel getinfo",
                env=env,
                timeout=15,
            )
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
        specs = self.node_specs()
        nodes = []
        for spec in specs:
            pid = processes.running_pid(self.state_dir, spec.name)
            nodes.append(
                {
                    "name": spec.name,
                    "kind": spec.kind,
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
            "nodes": nodes,
            "raft_leader": self.raft_leader() if specs else None,
        }

    # -- down ------------------------------------------------------------
    def down(self, keep_data: bool = False) -> list[str]:
        stopped: list[str] = []
        specs = self.node_specs()
        # gateways and chaincode servers first, so nothing logs errors about vanished peers
        order = {"gateway": 0, "chaincode": 1, "peer": 2, "orderer": 3}
        for spec in sorted(specs, key=lambda s: order.get(s.kind, 9)):
            if processes.stop(self.state_dir, spec.name):
                stopped.append(spec.name)
        self._stop_strays()
        if not keep_data and self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        return stopped

    def _stop_strays(self) -> None:
        """Stop any process still holding a pid file in our state folder (e.g. from a crashed ``up``)."""
        run_dir = self.state_dir / "run"
        if not run_dir.exists():
            return
        for pid_path in run_dir.glob("*.pid"):
            name = pid_path.stem
            if processes.running_pid(self.state_dir, name) is not None:
                processes.stop(self.state_dir, name)

    # -- single-node control (used by tests and operators) ---------------
    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        if not processes.stop(self.state_dir, name, timeout=10, sig=sig):
            raise NetworkError(f"{name} is not running")

    def start_node(self, name: str, timeout: float = 60) -> None:
        spec = next((s for s in self.node_specs() if s.name == name), None)
        if spec is None:
            raise NetworkError(f"no node named {name!r} in {self.state_dir}")
        processes.start(self.state_dir, spec)
        processes.wait_healthy(self.state_dir, [spec], timeout=timeout)

    # -- profile ---------------------------------------------------------
    def write_profile(self) -> Path:
        from network.profile import build_profile

        profile = build_profile(self)
        path = self.state_dir / "profile.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(profile, indent=2))
        tmp.replace(path)
        return path


def _metrics(operations_port: int) -> list[str]:
    """The Prometheus lines of a node's operations endpoint; none if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{operations_port}/metrics", timeout=2) as resp:
            return str(resp.read().decode()).splitlines()
    except OSError:
        return []


def default_state_dir(base_port: int) -> Path:
    env = os.environ.get("NETWORK_STATE_DIR")
    if env:
        return Path(env)
    return ROOT / ".state" / ("demo" if base_port == 7000 else f"net-{base_port}")
