"""The port plan: every port is the base port plus a fixed offset.

Two networks with base ports at least 600 apart never collide, which is how the test
network (17000) and the demo network (7000) run side by side. Every org listens on its own
host (see the topology), so a port is only ever meaningful together with that host.

    orderer k (0-based,       base + 10k + 0 (client and cluster), +1 (osnadmin), +2 (operations)
    over the whole channel)
    peer org i (banks first,  base + 100 + 20i + 0 (peer), +1 (chaincode callback),
    then the regulator)          +2 (operations), +3 (REST gateway), +4 (Go pprof, only with
                                 DT_PEER_PPROF=1), +5 (TLS CA), +6 (signing CA), +7 and +8
                                 (their operations), +10+j (chaincode server j), +15+j (chaincode
                                 server j's second slot: a new version starts there while the
                                 current one keeps serving, see network/upgrade.py)

An org with ``port_block`` in the topology uses that instead of ``base + 100 + 20i`` (moved by
the same amount as the base port when ``--base-port`` differs from the file's).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import NamedTuple

from network.topology import Topology

HOST = "127.0.0.1"
PORT_SPAN = 600
PPROF_OFFSET = 4
CHAINCODE_SLOT_SHIFT = 5  # the second slot of chaincode server j is 5 ports above the first


class Listener(NamedTuple):
    host: str
    port: int
    what: str  # e.g. "HKBankMSP peer ops", "orderer0.HKBankMSP admin"
    org: str  # the MSP id of the org that runs it


@dataclass(frozen=True)
class OrdererPorts:
    host: str
    listen: int
    admin: int
    operations: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen}"


@dataclass(frozen=True)
class PeerPorts:
    host: str
    listen: int
    chaincode: int
    operations: int
    gateway: int
    chaincode_servers: dict[str, int]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen}"

    def chaincode_server(self, name: str, slot: int = 0) -> int:
        """The port of chaincode ``name``'s server in ``slot`` (0 or 1)."""
        return self.chaincode_servers[name] + CHAINCODE_SLOT_SHIFT * slot


@dataclass(frozen=True)
class CAPorts:
    host: str
    tls: int
    sign: int
    tls_operations: int
    sign_operations: int


@dataclass(frozen=True)
class PortPlan:
    orderers: dict[str, OrdererPorts]  # by node name, e.g. "orderer0.USBankMSP"
    peers: dict[str, PeerPorts]  # by MSP id
    cas: dict[str, CAPorts]  # by MSP id

    def listeners(self) -> list[Listener]:
        """Every address the network listens on, with what listens there and the org that runs it."""
        out: list[Listener] = []
        for name, o in self.orderers.items():
            org = name.split(".", 1)[1]
            out += [Listener(o.host, port, f"{name} {what}", org) for port, what in
                    ((o.listen, "listen"), (o.admin, "admin"), (o.operations, "ops"))]  # fmt: skip
        for msp, p in self.peers.items():
            c = self.cas[msp]
            named = [(p.listen, "peer"), (p.chaincode, "peer chaincode"), (p.operations, "peer ops"),
                     (p.gateway, "REST gateway"), (c.tls, "TLS CA"), (c.sign, "signing CA"),
                     (c.tls_operations, "TLS CA ops"), (c.sign_operations, "signing CA ops")]  # fmt: skip
            named += [(port, f"chaincode server {cc}") for cc, port in p.chaincode_servers.items()]
            named += [(port + CHAINCODE_SLOT_SHIFT, f"chaincode server {cc} (second slot)")
                      for cc, port in p.chaincode_servers.items()]  # fmt: skip
            out += [Listener(p.host, port, f"{msp} {what}", msp) for port, what in named]
        return out

    def all_ports(self) -> list[tuple[int, str]]:
        return [(listener.port, listener.what) for listener in self.listeners()]


def plan_ports(topology: Topology, base_port: int | None = None) -> PortPlan:
    base = topology.base_port if base_port is None else base_port
    if not 1024 <= base <= 65535 - PORT_SPAN:
        raise ValueError(f"base port {base} must be between 1024 and {65535 - PORT_SPAN}")
    shift = base - topology.base_port
    orderers = {
        node.name: OrdererPorts(
            host=node.org.host,
            listen=base + 10 * node.index,
            admin=base + 10 * node.index + 1,
            operations=base + 10 * node.index + 2,
        )
        for node in topology.orderers
    }
    peers: dict[str, PeerPorts] = {}
    cas: dict[str, CAPorts] = {}
    for i, org in enumerate(topology.peer_orgs):
        start = base + 100 + 20 * i if org.port_block is None else org.port_block + shift
        peers[org.msp_id] = PeerPorts(
            host=org.host,
            listen=start,
            chaincode=start + 1,
            operations=start + 2,
            gateway=start + 3,
            chaincode_servers={cc.name: start + 10 + j for j, cc in enumerate(topology.chaincodes)},
        )
        cas[org.msp_id] = CAPorts(
            host=org.host, tls=start + 5, sign=start + 6, tls_operations=start + 7, sign_operations=start + 8
        )
    return PortPlan(orderers=orderers, peers=peers, cas=cas)


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like the servers themselves: connections lingering in TIME_WAIT do not make a port busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            if exc.errno == errno.EADDRNOTAVAIL:
                # the host is another machine's (or a namespace's) address: not ours to check
                return False
            raise
    return False


def taken_ports(plan: PortPlan) -> list[tuple[int, str]]:
    return [(item.port, item.what) for item in plan.listeners() if port_in_use(item.port, item.host)]
