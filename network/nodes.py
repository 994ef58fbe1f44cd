"""Process specifications for orderers and peers, and the admin CLI environment.

Settings come from Fabric's sampleconfig (copied from the module cache by
``make fabric``) with environment overrides: every node listens on and advertises its org's
host, every port comes from the port plan, TLS is on, every writable path is in the org's own
folder, and there is no Docker (``CORE_VM_ENDPOINT`` empty, our CCaaS builder configured).
An org with a network namespace runs its processes inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from network.binaries import fabric_bin, fabric_home
from network.org import ADMIN, OrgHome, base_env, netns_prefix
from network.ports import PPROF_OFFSET, PortPlan
from network.processes import NodeSpec
from network.topology import OrdererNode, Org

ROOT = Path(__file__).resolve().parent.parent

# The Gateway service inside every peer dials orderers (to submit) and other orgs' peers (to endorse)
# with a gRPC client config that sets no keep-alive (fabric internal/pkg/gateway/endpoint.go), and
# grpc-go raises a keep-alive time of 0 to its 10 s minimum: those connections ping every 10 s, even
# when idle. Peers (peer.keepalive.minInterval) and orderers (General.Keepalive.ServerMinInterval)
# accept a ping at most every 60 s by default, count faster ones as strikes and, after the third,
# close the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings": logged by every bank's peer
# about 40 s after its gateway first dialled, then again on every redial. Accepting pings every 10 s
# matches what those clients send; other clients still ping at 60 s and are unaffected.
KEEPALIVE_MIN_INTERVAL = "10s"
BUILDER_DIR = Path(__file__).resolve().parent / "builders" / "ccaas"


__all__ = ["admin_env", "fabric_bin", "fabric_home", "orderer_cli_args", "orderer_spec", "peer_spec"]


def orderer_spec(home: OrgHome, ports: PortPlan, node: OrdererNode) -> NodeSpec:
    p = ports.orderers[node.name]
    node_dir = home.orderer_dir(node)
    tls = node_dir / "tls"
    data = home.data(node.name)
    env = {
        "FABRIC_CFG_PATH": str(home.fabric_config),
        "FABRIC_LOGGING_SPEC": "info:grpc=error",
        "ORDERER_GENERAL_LISTENADDRESS": p.host,
        "ORDERER_GENERAL_LISTENPORT": str(p.listen),
        "ORDERER_GENERAL_LOCALMSPID": home.org.msp_id,
        "ORDERER_GENERAL_LOCALMSPDIR": str(node_dir / "msp"),
        "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
        "ORDERER_GENERAL_TLS_ENABLED": "true",
        "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_TLS_ROOTCAS": f"[{tls / 'ca.crt'}]",
        # the other orgs' TLS roots come from the channel configuration once the node has joined
        "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_CLUSTER_ROOTCAS": f"[{tls / 'ca.crt'}]",
        "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
        "ORDERER_ADMIN_LISTENADDRESS": f"{p.host}:{p.admin}",
        "ORDERER_ADMIN_TLS_ENABLED": "true",
        "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_ADMIN_TLS_ROOTCAS": f"[{tls / 'ca.crt'}]",
        # only this org's admins (TLS client certificates from its own TLS CA) administer its node
        "ORDERER_ADMIN_TLS_CLIENTROOTCAS": f"[{home.tls_ca}]",
        "ORDERER_OPERATIONS_LISTENADDRESS": f"{p.host}:{p.operations}",
        "ORDERER_METRICS_PROVIDER": "prometheus",
        # Peers' Gateway services ping the orderers every 10 s (see KEEPALIVE_MIN_INTERVAL).
        "ORDERER_GENERAL_KEEPALIVE_SERVERMININTERVAL": KEEPALIVE_MIN_INTERVAL,
        "ORDERER_FILELEDGER_LOCATION": str(data / "ledger"),
        "ORDERER_CONSENSUS_WALDIR": str(data / "wal"),
        "ORDERER_CONSENSUS_SNAPDIR": str(data / "snapshot"),
    }
    return NodeSpec(
        name=node.name,
        kind="orderer",
        command=[*netns_prefix(home.org), str(fabric_bin("orderer"))],
        env=env,
        cwd=str(home.root),
        health_url=f"http://{p.host}:{p.operations}/healthz",
        ports=[p.listen, p.admin, p.operations],
        host=p.host,
    )


def peer_spec(home: OrgHome, ports: PortPlan, org: Org) -> NodeSpec:
    p = ports.peers[org.msp_id]
    tls = home.peer_dir / "tls"
    data = home.data(f"peer.{org.msp_id}")
    builders = f"[{{name: ccaas, path: {BUILDER_DIR}}}]"
    address = f"{p.host}:{p.listen}"
    env = {
        "FABRIC_CFG_PATH": str(home.fabric_config),
        "FABRIC_LOGGING_SPEC": "info:grpc=error:gossip=warn:gossip.privdata=info",
        "CORE_PEER_ID": org.peer_host,
        "CORE_PEER_LOCALMSPID": org.msp_id,
        "CORE_PEER_MSPCONFIGPATH": str(home.peer_dir / "msp"),
        "CORE_PEER_LISTENADDRESS": address,
        "CORE_PEER_ADDRESS": address,
        "CORE_PEER_CHAINCODELISTENADDRESS": f"{p.host}:{p.chaincode}",
        "CORE_PEER_CHAINCODEADDRESS": f"{p.host}:{p.chaincode}",
        "CORE_PEER_GOSSIP_BOOTSTRAP": address,
        # the only address other orgs (and discovery) learn: it must be dialable from their hosts
        "CORE_PEER_GOSSIP_EXTERNALENDPOINT": address,
        "CORE_PEER_GOSSIP_ENDPOINT": address,
        # A peer's first dial of another org's anchor fails until both have joined the channel
        # (it cannot yet verify the other org's TLS CA); the default 25 s before the next try
        # made a fresh network wait half a minute for cross-org gossip.
        "CORE_PEER_GOSSIP_RECONNECTINTERVAL": "3s",
        # Private data a peer missed at commit (its sender was unreachable) is fetched by the
        # reconciler; its default pass of once a minute left a peer's view of another bank's
        # supply behind for minutes after a member change.
        "CORE_PEER_GOSSIP_PVTDATA_RECONCILESLEEPINTERVAL": "10s",
        # How long a peer holds up a block's commit pulling private data it was not handed at
        # endorsement (default 60 s, per block). A payee bank's peer catching up after an outage
        # would stall a minute on every block whose payer peer is unreachable; the reconciler
        # fetches what is still missing afterwards (decision 0031).
        "CORE_PEER_GOSSIP_PVTDATA_PULLRETRYTHRESHOLD": "5s",
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_CERT_FILE": str(tls / "server.crt"),
        "CORE_PEER_TLS_KEY_FILE": str(tls / "server.key"),
        "CORE_PEER_TLS_ROOTCERT_FILE": str(tls / "ca.crt"),
        "CORE_PEER_FILESYSTEMPATH": str(data),
        "CORE_LEDGER_SNAPSHOTS_ROOTDIR": str(data / "snapshots"),
        "CORE_OPERATIONS_LISTENADDRESS": f"{p.host}:{p.operations}",
        "CORE_METRICS_PROVIDER": "prometheus",
        "CORE_PEER_GATEWAY_ENABLED": "true",
        "CORE_VM_ENDPOINT": "",
        "CORE_CHAINCODE_EXTERNALBUILDERS": builders,
        "CORE_CHAINCODE_EXECUTETIMEOUT": "30s",
        "CORE_PEER_PROFILE_ENABLED": "false",
        # Other peers' Gateway services ping this one every 10 s (see KEEPALIVE_MIN_INTERVAL).
        "CORE_PEER_KEEPALIVE_MININTERVAL": KEEPALIVE_MIN_INTERVAL,
    }
    if os.environ.get("DT_PEER_PPROF") == "1":
        # Go's pprof endpoints, for performance work only: never on by default, the org's host only.
        env["CORE_PEER_PROFILE_ENABLED"] = "true"
        env["CORE_PEER_PROFILE_LISTENADDRESS"] = f"{p.host}:{p.listen + PPROF_OFFSET}"
    return NodeSpec(
        name=f"peer.{org.msp_id}",
        kind="peer",
        command=[*netns_prefix(org), str(fabric_bin("peer")), "node", "start"],
        env=env,
        cwd=str(home.root),
        health_url=f"http://{p.host}:{p.operations}/healthz",
        ports=[p.listen, p.chaincode, p.operations],
        host=p.host,
    )


def admin_env(home: OrgHome, ports: PortPlan, user: str = ADMIN) -> dict[str, str]:
    """Environment for the ``peer`` CLI acting as ``user`` of the org against its own peer."""
    org = home.org
    return {
        **base_env(),
        "FABRIC_CFG_PATH": str(home.fabric_config),
        "FABRIC_LOGGING_SPEC": "warn",
        "CORE_PEER_LOCALMSPID": org.msp_id,
        "CORE_PEER_MSPCONFIGPATH": str(home.user_dir(user) / "msp"),
        "CORE_PEER_ADDRESS": ports.peers[org.msp_id].address,
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_ROOTCERT_FILE": str(home.tls_ca),
    }


def orderer_cli_args(address: str, tls_ca: Path) -> list[str]:
    return ["-o", address, "--tls", "--cafile", str(tls_ca)]
