"""One organisation's own folder, and everything done with only what is in it.

An organisation (a bank or the regulator) is a folder and a host. Its folder holds its CAs'
databases and keys, its nodes' keys, ledgers and logs, its gateway's database, and the public
org definition it exports. Nothing here reads another org's folder: what an org needs of the
others (their CA certificates and endpoints) comes from their exported definitions, kept in
the consortium folder (:mod:`network.definition`).

    <home>/
      ca/tls, ca/sign          the org's TLS CA and signing (enrollment) CA: databases, keys
      msp/                     the org's public channel MSP (cacerts, tlscacerts, config.yaml)
      peers/peer0/{msp,tls}    the peer's identity and TLS keys
      orderers/ordererN/{msp,tls}
      users/Admin/{msp,tls}    the org admin (NodeOU admin) and its TLS client identity
      users/User1/{msp,tls}    the gateway's client identity
      chaincode-tls/           the TLS server identity of the org's chaincode servers
      config/fabric/           core.yaml and orderer.yaml
      data/<node>/             ledgers, Raft or BFT write-ahead logs
      chaincode/<cc>/          the org's chaincode packages
      gateway/                 the REST gateway's database and operator key
      export/org-definition.json
      logs/, run/, nodes.json  processes (network.processes)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from network import processes
from network.ca import OrgCAs, node_ous_config, run_parallel
from network.material import run
from network.topology import OrdererNode, Org, Topology

ROOT = Path(__file__).resolve().parent.parent

ADMIN = "Admin"
CLIENT = "User1"


@dataclass(frozen=True)
class OrgHome:
    """The paths of one org's folder; the one place that knows them."""

    root: Path
    org: Org

    @property
    def msp(self) -> Path:
        return self.root / "msp"

    @property
    def tls_ca(self) -> Path:
        """The org's TLS root certificate: every TLS connection to one of its nodes chains to it."""
        return self.msp / "tlscacerts" / "ca.pem"

    @property
    def sign_ca(self) -> Path:
        return self.msp / "cacerts" / "ca.pem"

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def peer_dir(self) -> Path:
        return self.root / "peers" / "peer0"

    def orderer_dir(self, node: OrdererNode) -> Path:
        return self.root / "orderers" / node.folder

    def user_dir(self, user: str) -> Path:
        return self.root / "users" / user

    def user_cert(self, user: str) -> Path:
        return self.user_dir(user) / "msp" / "signcerts" / "cert.pem"

    def user_key(self, user: str) -> Path:
        return self.user_dir(user) / "msp" / "keystore" / "priv_sk"

    @property
    def chaincode_tls_dir(self) -> Path:
        return self.root / "chaincode-tls"

    @property
    def fabric_config(self) -> Path:
        return self.root / "config" / "fabric"

    def data(self, node_name: str) -> Path:
        return self.root / "data" / node_name

    @property
    def chaincode_dir(self) -> Path:
        return self.root / "chaincode"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def definition_file(self) -> Path:
        return self.root / "export" / "org-definition.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def identities_done(self) -> Path:
        return self.root / ".identities"


def netns_prefix(org: Org) -> list[str]:
    """Run a command inside the org's network namespace, when the topology gives it one."""
    return processes.netns_prefix(org.netns)


def run_in(org: Org, command: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    """Run a CLI command on the org's own host (its namespace, if any)."""
    return run([*netns_prefix(org), *command], what, env=env, timeout=timeout)


def node_sans(org: Org, dns_name: str) -> list[str]:
    """The names a node's TLS certificate carries: every name another host may dial it by."""
    names = [dns_name, org.host]
    if org.host.startswith("127."):
        names.append("localhost")
    return names


# -- identities ------------------------------------------------------------------
def enroll_identities(home: OrgHome, topology: Topology, cas: OrgCAs) -> None:
    """Register and enroll every identity of the org from its own CAs, in parallel (see network.ca)."""
    org = home.org
    nodes = topology.orderers_of(org)
    jobs: list[Callable[[], None]] = [
        lambda: cas.enroll_node("peer0", "peer", node_sans(org, org.peer_host), home.peer_dir),
        lambda: cas.enroll_user(ADMIN, "admin", home.user_dir(ADMIN), tls=True),
        lambda: cas.enroll_user(CLIENT, "client", home.user_dir(CLIENT), tls=True),
        lambda: cas.enroll_tls_only("chaincode", node_sans(org, org.chaincode_host), home.chaincode_tls_dir),
    ]
    for node in nodes:
        jobs.append(
            lambda node=node: cas.enroll_node(  # type: ignore[misc]
                node.folder, "orderer", node_sans(org, node.dns_name), home.orderer_dir(node)
            )
        )
    run_parallel(jobs)
    cas.write_channel_msp(home.msp)


def cryptogen_identities(home: OrgHome, topology: Topology, cryptogen: Path) -> None:
    """The fast option: cryptogen makes the org's keys in its own folder, then they take our layout.

    cryptogen has one CA for both roles and gives every node under a peer org the ``peer``
    NodeOU, so an ordering node's certificate says ``peer``: fine for unit-level work, which is
    all this option is for.
    """
    org = home.org
    nodes = topology.orderers_of(org)
    specs = [{"Hostname": "peer0", "SANS": node_sans(org, org.peer_host)},
             {"Hostname": "chaincode", "SANS": node_sans(org, org.chaincode_host)}]  # fmt: skip
    specs += [{"Hostname": n.folder, "SANS": node_sans(org, n.dns_name)} for n in nodes]
    config = {
        "PeerOrgs": [
            {"Name": org.name, "Domain": org.domain, "EnableNodeOUs": True, "Specs": specs, "Users": {"Count": 1}}
        ]
    }
    work = home.root / "cryptogen"
    work.mkdir(parents=True, exist_ok=True)
    (work / "crypto-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = work / "out"
    run([str(cryptogen), "generate", f"--config={work / 'crypto-config.yaml'}", f"--output={out}"], "cryptogen")
    made = out / "peerOrganizations" / org.domain

    def take_msp(source: Path, target: Path, user: str | None = None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for sub in ("signcerts", "keystore"):
            if (source / sub).exists():
                (target / sub).mkdir(exist_ok=True)
                first = next((source / sub).iterdir())
                shutil.copyfile(first, target / sub / ("cert.pem" if sub == "signcerts" else "priv_sk"))
        (target / "cacerts").mkdir(exist_ok=True)
        shutil.copyfile(next((made / "ca").glob("*-cert.pem")), target / "cacerts" / "ca.pem")
        (target / "tlscacerts").mkdir(exist_ok=True)
        shutil.copyfile(next((made / "tlsca").glob("*-cert.pem")), target / "tlscacerts" / "ca.pem")
        (target / "config.yaml").write_text(node_ous_config())

    def take_tls(source: Path, target: Path, client: bool = False) -> None:
        target.mkdir(parents=True, exist_ok=True)
        prefix = "client" if client else "server"
        shutil.copyfile(source / f"{prefix}.crt", target / f"{prefix}.crt")
        shutil.copyfile(source / f"{prefix}.key", target / f"{prefix}.key")
        shutil.copyfile(source / "ca.crt", target / "ca.crt")

    peers = made / "peers"
    take_msp(peers / f"peer0.{org.domain}" / "msp", home.peer_dir / "msp")
    take_tls(peers / f"peer0.{org.domain}" / "tls", home.peer_dir / "tls")
    for node in nodes:
        take_msp(peers / f"{node.folder}.{org.domain}" / "msp", home.orderer_dir(node) / "msp")
        take_tls(peers / f"{node.folder}.{org.domain}" / "tls", home.orderer_dir(node) / "tls")
    take_tls(peers / f"chaincode.{org.domain}" / "tls", home.chaincode_tls_dir)
    for user in (ADMIN, CLIENT):
        source = made / "users" / f"{user}@{org.domain}"
        take_msp(source / "msp", home.user_dir(user) / "msp")
        take_tls(source / "tls", home.user_dir(user) / "tls", client=True)
    home.msp.mkdir(parents=True, exist_ok=True)
    for sub in ("cacerts", "tlscacerts"):
        (home.msp / sub).mkdir(exist_ok=True)
    shutil.copyfile(next((made / "ca").glob("*-cert.pem")), home.sign_ca)
    shutil.copyfile(next((made / "tlsca").glob("*-cert.pem")), home.tls_ca)
    (home.msp / "config.yaml").write_text(node_ous_config())
    # the private keys now live in the layout above; the generator's copy goes
    shutil.rmtree(out)
    for key in home.root.rglob("*.key"):
        key.chmod(0o600)
    for key in home.root.rglob("priv_sk"):
        key.chmod(0o600)


def copy_sampleconfig(home: OrgHome, fabric_home: Path) -> Path:
    """Copy core.yaml and orderer.yaml into the org's folder (module-cache files are read-only)."""
    target = home.fabric_config
    target.mkdir(parents=True, exist_ok=True)
    for name in ("core.yaml", "orderer.yaml"):
        source = fabric_home / "config" / name
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing: run 'make fabric' first")
        shutil.copyfile(source, target / name)
        (target / name).chmod(0o644)
    return target


def base_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
