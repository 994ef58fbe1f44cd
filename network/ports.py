"""The port plan: every port is the base port plus a fixed offset.

Two networks with base ports at least 600 apart never collide, which is how the test
network (17000) and the demo network (7000) run side by side.

    orderer k (0-based)      base + 10k + 0 (cluster+client), +1 (admin), +2 (operations)
    peer org i (banks first,  base + 100 + 20i + 0 (peer), +1 (chaincode callback),
    then the regulator)          +2 (operations), +3 (REST gateway), +4 (Go pprof, only with
                                 DT_PEER_PPROF=1), +10+j (chaincode server j)
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from network.topology import Topology

HOST = "127.0.0.1"
PORT_SPAN = 600
PPROF_OFFSET = 4


@dataclass(frozen=True)
class OrdererPorts:
    listen: int
    admin: int
    operations: int


@dataclass(frozen=True)
class PeerPorts:
    listen: int
    chaincode: int
    operations: int
    gateway: int
    chaincode_servers: dict[str, int]


@dataclass(frozen=True)
class PortPlan:
    orderers: dict[str, OrdererPorts]
    peers: dict[str, PeerPorts]  # by MSP id

    def all_ports(self) -> list[tuple[int, str]]:
        ports: list[tuple[int, str]] = []
        for name, o in self.orderers.items():
            ports += [(o.listen, f"{name} listen"), (o.admin, f"{name} admin"), (o.operations, f"{name} ops")]
        for msp, p in self.peers.items():
            ports += [
                (p.listen, f"{msp} peer"),
                (p.chaincode, f"{msp} peer chaincode"),
                (p.operations, f"{msp} peer ops"),
                (p.gateway, f"{msp} REST gateway"),
            ]
            ports += [(port, f"{msp} chaincode server {cc}") for cc, port in p.chaincode_servers.items()]
        return ports


def plan_ports(topology: Topology, base_port: int | None = None) -> PortPlan:
    base = topology.base_port if base_port is None else base_port
    if not 1024 <= base <= 65535 - PORT_SPAN:
        raise ValueError(f"base port {base} must be between 1024 and {65535 - PORT_SPAN}")
    orderers = {
        node: OrdererPorts(listen=base + 10 * k, admin=base + 10 * k + 1, operations=base + 10 * k + 2)
        for k, node in enumerate(topology.orderer.nodes)
    }
    peers: dict[str, PeerPorts] = {}
    for i, org in enumerate(topology.peer_orgs):
        start = base + 100 + 20 * i
        peers[org.msp_id] = PeerPorts(
            listen=start,
            chaincode=start + 1,
            operations=start + 2,
            gateway=start + 3,
            chaincode_servers={cc.name: start + 10 + j for j, cc in enumerate(topology.chaincodes)},
        )
    return PortPlan(orderers=orderers, peers=peers)


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like the servers themselves: connections lingering in TIME_WAIT do not make a port busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def taken_ports(plan: PortPlan) -> list[tuple[int, str]]:
    return [(port, what) for port, what in plan.all_ports() if port_in_use(port)]
