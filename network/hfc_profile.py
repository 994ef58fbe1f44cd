"""The connection profile for fabric-sdk-py (hfc) applications (``<state>/hfc-profile.json``).

hfc reads the Fabric 1.4 "common connection profile": every peer and ordering node with its
address, TLS root and TLS host name, and every organisation with its users' certificate and key
files. Written next to ``profile.json`` so an hfc application needs no hand-made profile; what
works with hfc and how to install it is in docs/hfc.md. Like ``profile.json`` it is the
one-machine view: it points into every org's own folder and is never copied between hosts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from network.org import ADMIN, CLIENT

if TYPE_CHECKING:
    from network.consortium import Consortium

HFC_PROFILE = "hfc-profile.json"
CREDENTIAL_STORE = "hfc-credential-store"


def _node(address: str, tls_ca: Path, host_name: str) -> dict[str, Any]:
    # hfc dials ``url`` as a bare gRPC target ("grpcs://" would be taken for a host name), and
    # reads exactly the key "grpc.ssl_target_name_override": without it hfc skips the node's
    # settings quietly and dials its default, localhost:7051, without TLS
    return {
        "url": address,
        "grpcOptions": {"grpc.ssl_target_name_override": host_name},
        "tlsCACerts": {"path": str(tls_ca)},
    }


def build_hfc_profile(net: Consortium) -> dict[str, Any]:
    """Peers, ordering nodes, signing CAs and organisations (keyed by org name) with Admin and User1."""
    topology, ports = net.topology, net.ports
    peers: dict[str, Any] = {}
    orderers: dict[str, Any] = {}
    cas: dict[str, Any] = {}
    organizations: dict[str, Any] = {}
    for org in topology.peer_orgs:
        home = net.home(org)
        peers[org.peer_host] = _node(ports.peers[org.msp_id].address, home.tls_ca, org.peer_host)
        sign_ca = net.org_cas(org).sign
        cas[org.ca_host] = {
            "url": sign_ca.url,
            "caName": sign_ca.name,
            # the CA server's TLS certificate comes from the org's TLS CA
            "tlsCACerts": {"path": str(home.tls_ca)},
        }
        organizations[org.name] = {
            "mspid": org.msp_id,
            "peers": [org.peer_host],
            "orderers": [node.dns_name for node in topology.orderers_of(org)],
            "certificateAuthorities": [org.ca_host],
            "users": {
                user: {"cert": str(home.user_cert(user)), "private_key": str(home.user_key(user))}
                for user in (ADMIN, CLIENT)
            },
        }
    for node in topology.orderers:
        orderers[node.dns_name] = _node(
            ports.orderers[node.name].address, net.org_tls_ca(node.org.msp_id), node.dns_name
        )
    return {
        "name": f"deposit-token-{topology.channel}",
        "description": "Every org's peer, ordering nodes, signing CA and users, for fabric-sdk-py (docs/hfc.md)",
        "version": "1.0",
        "client": {
            # hfc's user objects need a key-value store and keep a copy of each user's key in it
            "credentialStore": {"path": str(net.state_dir / CREDENTIAL_STORE)},
        },
        "channels": {
            topology.channel: {
                "orderers": list(orderers),
                "peers": {
                    name: {"endorsingPeer": True, "chaincodeQuery": True, "ledgerQuery": True, "eventSource": True}
                    for name in peers
                },
            }
        },
        "organizations": organizations,
        "orderers": orderers,
        "peers": peers,
        "certificateAuthorities": cas,
    }


def write_hfc_profile(net: Consortium) -> Path:
    """Write the hfc profile and create its credential store readable by the owner only."""
    store = net.state_dir / CREDENTIAL_STORE
    # hfc writes the store with the default mode; made first, it stays private to the owner
    store.mkdir(mode=0o700, exist_ok=True)
    path = net.state_dir / HFC_PROFILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(build_hfc_profile(net), indent=2))
    tmp.replace(path)
    return path
