"""Process specifications for orderers and peers, and the admin CLI environment.

Settings come from Fabric's sampleconfig (copied from the module cache by
``make fabric``) with environment overrides: every listen address is on 127.0.0.1,
every port comes from the port plan, TLS is on, every writable path is in the state
folder, and there is no Docker (``CORE_VM_ENDPOINT`` empty, our CCaaS builder configured).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from network.material import Layout
from network.ports import HOST, PPROF_OFFSET, PortPlan
from network.processes import NodeSpec
from network.topology import Org

ROOT = Path(__file__).resolve().parent.parent
BUILDER_DIR = Path(__file__).resolve().parent / "builders" / "ccaas"


def fabric_home() -> Path:
    import os

    return Path(os.environ.get("FABRIC_HOME", ROOT / ".cache" / "fabric"))


def fabric_bin(name: str) -> Path:
    path = fabric_home() / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"Fabric binary {path} is missing: run 'make fabric' first")
    return path


def copy_sampleconfig(layout: Layout) -> Path:
    """Copy core.yaml and orderer.yaml into the state folder (module-cache files are read-only)."""
    target = layout.state_dir / "config" / "fabric"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("core.yaml", "orderer.yaml"):
        source = fabric_home() / "config" / name
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing: run 'make fabric' first")
        shutil.copyfile(source, target / name)
        (target / name).chmod(0o644)
    return target


def orderer_spec(layout: Layout, ports: PortPlan, node: str) -> NodeSpec:
    p = ports.orderers[node]
    node_dir = layout.orderer_dir(node)
    tls = node_dir / "tls"
    data = layout.state_dir / "data" / node
    env = {
        "FABRIC_CFG_PATH": str(layout.state_dir / "config" / "fabric"),
        "FABRIC_LOGGING_SPEC": "info:grpc=error",
        "ORDERER_GENERAL_LISTENADDRESS": HOST,
        "ORDERER_GENERAL_LISTENPORT": str(p.listen),
        "ORDERER_GENERAL_LOCALMSPID": layout.topology.orderer.msp_id,
        "ORDERER_GENERAL_LOCALMSPDIR": str(node_dir / "msp"),
        "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
        "ORDERER_GENERAL_TLS_ENABLED": "true",
        "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_TLS_ROOTCAS": f"[{tls / 'ca.crt'}]",
        "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_CLUSTER_ROOTCAS": f"[{tls / 'ca.crt'}]",
        "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
        "ORDERER_ADMIN_LISTENADDRESS": f"{HOST}:{p.admin}",
        "ORDERER_ADMIN_TLS_ENABLED": "true",
        "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_ADMIN_TLS_ROOTCAS": f"[{tls / 'ca.crt'}]",
        "ORDERER_ADMIN_TLS_CLIENTROOTCAS": f"[{tls / 'ca.crt'}]",
        "ORDERER_OPERATIONS_LISTENADDRESS": f"{HOST}:{p.operations}",
        "ORDERER_METRICS_PROVIDER": "prometheus",
        "ORDERER_FILELEDGER_LOCATION": str(data / "ledger"),
        "ORDERER_CONSENSUS_WALDIR": str(data / "etcdraft" / "wal"),
        "ORDERER_CONSENSUS_SNAPDIR": str(data / "etcdraft" / "snapshot"),
    }
    return NodeSpec(
        name=node,
        kind="orderer",
        command=[str(fabric_bin("orderer"))],
        env=env,
        cwd=str(layout.state_dir),
        health_url=f"http://{HOST}:{p.operations}/healthz",
        ports=[p.listen, p.admin, p.operations],
    )


def peer_spec(layout: Layout, ports: PortPlan, org: Org) -> NodeSpec:
    p = ports.peers[org.msp_id]
    peer_dir = layout.peer_dir(org)
    tls = peer_dir / "tls"
    data = layout.state_dir / "data" / f"peer.{org.msp_id}"
    builders = f"[{{name: ccaas, path: {BUILDER_DIR}}}]"
    env = {
        "FABRIC_CFG_PATH": str(layout.state_dir / "config" / "fabric"),
        "FABRIC_LOGGING_SPEC": "info:grpc=error:gossip=warn:gossip.privdata=info",
        "CORE_PEER_ID": org.peer_host,
        "CORE_PEER_LOCALMSPID": org.msp_id,
        "CORE_PEER_MSPCONFIGPATH": str(peer_dir / "msp"),
        "CORE_PEER_LISTENADDRESS": f"{HOST}:{p.listen}",
        "CORE_PEER_ADDRESS": f"{HOST}:{p.listen}",
        "CORE_PEER_CHAINCODELISTENADDRESS": f"{HOST}:{p.chaincode}",
        "CORE_PEER_CHAINCODEADDRESS": f"{HOST}:{p.chaincode}",
        "CORE_PEER_GOSSIP_BOOTSTRAP": f"{HOST}:{p.listen}",
        "CORE_PEER_GOSSIP_EXTERNALENDPOINT": f"{HOST}:{p.listen}",
        "CORE_PEER_GOSSIP_ENDPOINT": f"{HOST}:{p.listen}",
        # A peer's first dial of another org's anchor fails until both have joined the channel
        # (it cannot yet verify the other org's TLS CA); the default 25 s before the next try
        # made a fresh network wait half a minute for cross-org gossip.
        "CORE_PEER_GOSSIP_RECONNECTINTERVAL": "3s",
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_CERT_FILE": str(tls / "server.crt"),
        "CORE_PEER_TLS_KEY_FILE": str(tls / "server.key"),
        "CORE_PEER_TLS_ROOTCERT_FILE": str(tls / "ca.crt"),
        "CORE_PEER_FILESYSTEMPATH": str(data),
        "CORE_LEDGER_SNAPSHOTS_ROOTDIR": str(data / "snapshots"),
        "CORE_OPERATIONS_LISTENADDRESS": f"{HOST}:{p.operations}",
        "CORE_METRICS_PROVIDER": "prometheus",
        "CORE_PEER_GATEWAY_ENABLED": "true",
        "CORE_VM_ENDPOINT": "",
        "CORE_CHAINCODE_EXTERNALBUILDERS": builders,
        "CORE_CHAINCODE_EXECUTETIMEOUT": "30s",
        "CORE_PEER_PROFILE_ENABLED": "false",
    }
    if os.environ.get("DT_PEER_PPROF") == "1":
        # Go's pprof endpoints, for performance work only: never on by default, loopback only.
        env["CORE_PEER_PROFILE_ENABLED"] = "true"
        env["CORE_PEER_PROFILE_LISTENADDRESS"] = f"{HOST}:{p.listen + PPROF_OFFSET}"
    return NodeSpec(
        name=f"peer.{org.msp_id}",
        kind="peer",
        command=[str(fabric_bin("peer")), "node", "start"],
        env=env,
        cwd=str(layout.state_dir),
        health_url=f"http://{HOST}:{p.operations}/healthz",
        ports=[p.listen, p.chaincode, p.operations],
    )


def admin_env(layout: Layout, ports: PortPlan, org: Org, user: str = "Admin") -> dict[str, str]:
    """Environment for the ``peer`` CLI acting as ``user`` of ``org`` against its own peer."""
    import os

    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "FABRIC_CFG_PATH": str(layout.state_dir / "config" / "fabric"),
        "FABRIC_LOGGING_SPEC": "warn",
        "CORE_PEER_LOCALMSPID": org.msp_id,
        "CORE_PEER_MSPCONFIGPATH": str(layout.user_dir(org, user) / "msp"),
        "CORE_PEER_ADDRESS": f"{HOST}:{ports.peers[org.msp_id].listen}",
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_ROOTCERT_FILE": str(layout.tls_ca(org)),
    }


def orderer_cli_args(layout: Layout, ports: PortPlan, node: str | None = None) -> list[str]:
    node = node or layout.topology.orderer.nodes[0]
    return [
        "-o",
        f"{HOST}:{ports.orderers[node].listen}",
        "--tls",
        "--cafile",
        str(layout.orderer_tls_ca),
    ]
