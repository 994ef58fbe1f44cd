"""Crypto material (cryptogen) and the channel genesis block (configtxgen).

Paths of the generated material follow cryptogen's layout; :class:`Layout` is the one
place that knows it, so nothing else builds such paths by hand.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from network.ports import HOST, PortPlan
from network.topology import Org, Topology


class MaterialError(RuntimeError):
    pass


@dataclass(frozen=True)
class Layout:
    state_dir: Path
    topology: Topology

    @property
    def crypto(self) -> Path:
        return self.state_dir / "crypto"

    # -- orderer org ---------------------------------------------------------
    @property
    def orderer_org_dir(self) -> Path:
        return self.crypto / "ordererOrganizations" / self.topology.orderer.domain

    def orderer_dir(self, node: str) -> Path:
        return self.orderer_org_dir / "orderers" / self.topology.orderer.host(node)

    @property
    def orderer_tls_ca(self) -> Path:
        return self.orderer_org_dir / "tlsca" / f"tlsca.{self.topology.orderer.domain}-cert.pem"

    @property
    def orderer_admin_dir(self) -> Path:
        return self.orderer_org_dir / "users" / f"Admin@{self.topology.orderer.domain}"

    # -- peer orgs -----------------------------------------------------------
    def org_dir(self, org: Org) -> Path:
        return self.crypto / "peerOrganizations" / org.domain

    def peer_dir(self, org: Org) -> Path:
        return self.org_dir(org) / "peers" / org.peer_host

    def chaincode_tls_dir(self, org: Org) -> Path:
        return self.org_dir(org) / "peers" / f"chaincode.{org.domain}" / "tls"

    def tls_ca(self, org: Org) -> Path:
        return self.org_dir(org) / "tlsca" / f"tlsca.{org.domain}-cert.pem"

    def user_dir(self, org: Org, user: str) -> Path:
        return self.org_dir(org) / "users" / f"{user}@{org.domain}"

    def user_cert(self, org: Org, user: str) -> Path:
        return self.user_dir(org, user) / "msp" / "signcerts" / f"{user}@{org.domain}-cert.pem"

    def user_key(self, org: Org, user: str) -> Path:
        return self.user_dir(org, user) / "msp" / "keystore" / "priv_sk"

    # -- channel -------------------------------------------------------------
    @property
    def genesis_block(self) -> Path:
        return self.state_dir / "channel" / f"{self.topology.channel}.block"


def generate_crypto(layout: Layout, cryptogen: Path) -> None:
    topology = layout.topology
    sans = ["localhost", HOST]
    config = {
        "OrdererOrgs": [
            {
                "Name": topology.orderer.name,
                "Domain": topology.orderer.domain,
                "EnableNodeOUs": True,
                "Specs": [{"Hostname": node, "SANS": sans} for node in topology.orderer.nodes],
            }
        ],
        "PeerOrgs": [
            {
                "Name": org.name,
                "Domain": org.domain,
                "EnableNodeOUs": True,
                "Template": {"Count": 1, "SANS": sans},
                # the org's chaincode servers get a TLS identity of their own
                "Specs": [{"Hostname": "chaincode", "SANS": sans}],
                "Users": {"Count": 1},
            }
            for org in topology.peer_orgs
        ],
    }
    config_path = layout.state_dir / "config" / "crypto-config.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run([str(cryptogen), "generate", f"--config={config_path}", f"--output={layout.crypto}"], "cryptogen")


def _org_policies(msp_id: str, include_endorsement: bool) -> dict[str, Any]:
    policies: dict[str, Any] = {
        "Readers": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin', '{msp_id}.peer', '{msp_id}.client')"},
        "Writers": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin', '{msp_id}.client')"},
        "Admins": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin')"},
    }
    if include_endorsement:
        policies["Endorsement"] = {"Type": "Signature", "Rule": f"OR('{msp_id}.peer')"}
    else:
        policies["Readers"]["Rule"] = f"OR('{msp_id}.member')"
        policies["Writers"]["Rule"] = f"OR('{msp_id}.member')"
    return policies


def _implicit(rule: str) -> dict[str, str]:
    return {"Type": "ImplicitMeta", "Rule": rule}


def write_configtx(layout: Layout, ports: PortPlan) -> Path:
    topology = layout.topology
    orderer = topology.orderer
    orderer_org = {
        "Name": orderer.msp_id,
        "ID": orderer.msp_id,
        "MSPDir": str(layout.orderer_org_dir / "msp"),
        "Policies": _org_policies(orderer.msp_id, include_endorsement=False),
        "OrdererEndpoints": [f"{HOST}:{ports.orderers[n].listen}" for n in orderer.nodes],
    }
    peer_orgs = [
        {
            "Name": org.msp_id,
            "ID": org.msp_id,
            "MSPDir": str(layout.org_dir(org) / "msp"),
            "Policies": _org_policies(org.msp_id, include_endorsement=True),
            "AnchorPeers": [{"Host": HOST, "Port": ports.peers[org.msp_id].listen}],
        }
        for org in topology.peer_orgs
    ]
    consenters = [
        {
            "Host": HOST,
            "Port": ports.orderers[node].listen,
            "ClientTLSCert": str(layout.orderer_dir(node) / "tls" / "server.crt"),
            "ServerTLSCert": str(layout.orderer_dir(node) / "tls" / "server.crt"),
        }
        for node in orderer.nodes
    ]
    profile = {
        "Policies": {
            "Readers": _implicit("ANY Readers"),
            "Writers": _implicit("ANY Writers"),
            "Admins": _implicit("MAJORITY Admins"),
        },
        "Capabilities": {"V3_0": True},
        "Orderer": {
            "OrdererType": "etcdraft",
            "BatchTimeout": orderer.batch_timeout,
            "BatchSize": {
                "MaxMessageCount": orderer.max_message_count,
                "AbsoluteMaxBytes": "99 MB",
                "PreferredMaxBytes": orderer.preferred_max_bytes,
            },
            "EtcdRaft": {
                "Consenters": consenters,
                "Options": {
                    "TickInterval": "500ms",
                    "ElectionTick": 10,
                    "HeartbeatTick": 1,
                    "MaxInflightBlocks": 5,
                    "SnapshotIntervalSize": "16 MB",
                },
            },
            "Organizations": [orderer_org],
            "Policies": {
                "Readers": _implicit("ANY Readers"),
                "Writers": _implicit("ANY Writers"),
                "Admins": _implicit("MAJORITY Admins"),
                "BlockValidation": _implicit("ANY Writers"),
            },
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": peer_orgs,
            "Policies": {
                "Readers": _implicit("ANY Readers"),
                "Writers": _implicit("ANY Writers"),
                "Admins": _implicit("MAJORITY Admins"),
                "LifecycleEndorsement": _implicit("MAJORITY Endorsement"),
                "Endorsement": _implicit("MAJORITY Endorsement"),
            },
            # V2_5 is what enables private-data purge
            "Capabilities": {"V2_5": True},
        },
    }
    config_dir = layout.state_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "configtx.yaml"
    path.write_text(yaml.safe_dump({"Profiles": {"DepositTokenChannel": profile}}, sort_keys=False))
    return path


def write_genesis_block(layout: Layout, ports: PortPlan, configtxgen: Path) -> Path:
    configtx = write_configtx(layout, ports)
    layout.genesis_block.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            str(configtxgen),
            "-configPath",
            str(configtx.parent),
            "-profile",
            "DepositTokenChannel",
            "-channelID",
            layout.topology.channel,
            "-outputBlock",
            str(layout.genesis_block),
        ],
        "configtxgen",
    )
    return layout.genesis_block


def run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MaterialError(f"{what} did not finish within {timeout:.0f}s") from exc
    if result.returncode != 0:
        output = (result.stderr or "") + (result.stdout or "")
        raise MaterialError(f"{what} failed (exit {result.returncode}):\n{output.strip()[-3000:]}")
    return result.stdout + result.stderr
