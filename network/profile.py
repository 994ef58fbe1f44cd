"""The network profile (``<state>/profile.json``): how clients, gateways and tests reach the network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from network.ports import HOST

if TYPE_CHECKING:
    from network.consortium import Consortium


def build_profile(net: Consortium) -> dict[str, Any]:
    topology, layout, ports = net.topology, net.layout, net.ports
    orgs: dict[str, Any] = {}
    for org in topology.peer_orgs:
        p = ports.peers[org.msp_id]
        client_dir = layout.user_dir(org, "User1")
        orgs[org.msp_id] = {
            "name": org.name,
            "kind": org.kind,
            "msp_id": org.msp_id,
            "jurisdiction": org.jurisdiction,
            "currencies": list(org.currencies),
            "peer": {
                "address": f"{HOST}:{p.listen}",
                "tls_ca": str(layout.tls_ca(org)),
                "host_override": org.peer_host,
                "ops_address": f"{HOST}:{p.operations}",
            },
            "client": {
                "cert": str(layout.user_cert(org, "User1")),
                "key": str(layout.user_key(org, "User1")),
                "msp_dir": str(client_dir / "msp"),
                "tls_cert": str(client_dir / "tls" / "client.crt"),
                "tls_key": str(client_dir / "tls" / "client.key"),
            },
            "admin": {
                "cert": str(layout.user_cert(org, "Admin")),
                "key": str(layout.user_key(org, "Admin")),
                "msp_dir": str(layout.user_dir(org, "Admin") / "msp"),
            },
            "chaincode_servers": {cc: f"{HOST}:{port}" for cc, port in p.chaincode_servers.items()},
            "gateway_url": f"http://{HOST}:{p.gateway}",
            "operator_key_file": str(net.state_dir / "gateways" / org.msp_id / "operator.key"),
        }
    return {
        "channel": topology.channel,
        "state_dir": str(net.state_dir),
        "base_port": net.base_port,
        "currencies": dict(topology.currencies),
        "orderers": [
            {
                "name": node,
                "address": f"{HOST}:{ports.orderers[node].listen}",
                "admin_address": f"{HOST}:{ports.orderers[node].admin}",
                "ops_address": f"{HOST}:{ports.orderers[node].operations}",
                "tls_ca": str(layout.orderer_tls_ca),
                "host_override": topology.orderer.host(node),
            }
            for node in topology.orderer.nodes
        ],
        "chaincodes": {cc.name: {"contract": cc.contract, "version": cc.version} for cc in topology.chaincodes},
        "orgs": orgs,
    }
