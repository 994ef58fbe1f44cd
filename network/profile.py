"""The network profile (``<state>/profile.json``): how clients, gateways and tests reach the network."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from network.org import ADMIN, CLIENT

if TYPE_CHECKING:
    from network.consortium import Consortium


def build_profile(net: Consortium) -> dict[str, Any]:
    """The one-machine view of the consortium: every org's own files, for its own gateway and for tests.

    Each org's entry points only into that org's folder (``home``); a bank's gateway reads its
    own entry and nothing else.
    """
    topology, ports = net.topology, net.ports
    # webhook targets the gateways may reach although private (a test's receiver on loopback)
    allowed = [t.strip() for t in os.environ.get("BANK_API_WEBHOOK_ALLOWED_TARGETS", "").split(",") if t.strip()]
    orgs: dict[str, Any] = {}
    for org in topology.peer_orgs:
        p = ports.peers[org.msp_id]
        home = net.home(org)
        client_dir = home.user_dir(CLIENT)
        orgs[org.msp_id] = {
            "name": org.name,
            "kind": org.kind,
            "msp_id": org.msp_id,
            "jurisdiction": org.jurisdiction,
            "currencies": list(org.currencies),
            "host": org.host,
            "netns": org.netns,
            "home": str(home.root),
            "peer": {
                "address": p.address,
                "tls_ca": str(home.tls_ca),
                "host_override": org.peer_host,
                "ops_address": f"{p.host}:{p.operations}",
            },
            "client": {
                "cert": str(home.user_cert(CLIENT)),
                "key": str(home.user_key(CLIENT)),
                "msp_dir": str(client_dir / "msp"),
                "tls_cert": str(client_dir / "tls" / "client.crt"),
                "tls_key": str(client_dir / "tls" / "client.key"),
            },
            "admin": {
                "cert": str(home.user_cert(ADMIN)),
                "key": str(home.user_key(ADMIN)),
                "msp_dir": str(home.user_dir(ADMIN) / "msp"),
            },
            "chaincode_servers": {cc: f"{p.host}:{port}" for cc, port in p.chaincode_servers.items()},
            "gateway_url": f"http://{p.host}:{p.gateway}",
            "operator_key_file": str(home.gateway_dir / "operator.key"),
        }
        if allowed:
            orgs[org.msp_id]["webhook_allowed_targets"] = allowed
    return {
        "channel": topology.channel,
        "state_dir": str(net.state_dir),
        "base_port": net.base_port,
        "consensus": topology.orderer.consensus,
        "currencies": dict(topology.currencies),
        "orderers": [
            {
                "name": node.name,
                "org": node.org.msp_id,
                "address": ports.orderers[node.name].address,
                "admin_address": f"{node.org.host}:{ports.orderers[node.name].admin}",
                "ops_address": f"{node.org.host}:{ports.orderers[node.name].operations}",
                "tls_ca": str(net.org_tls_ca(node.org.msp_id)),
                "host_override": node.dns_name,
            }
            for node in topology.orderers
        ],
        "chaincodes": {cc.name: {"contract": cc.contract, "version": cc.version} for cc in topology.chaincodes},
        "orgs": orgs,
    }
