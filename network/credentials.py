"""An org replaces a compromised key on the running network: new certificate first, then revocation.

``rotate_client``: the org enrolls a fresh certificate for its gateway's client user, restarts
its gateway on it, revokes the old certificate at its own signing CA and publishes the CA's CRL
in its MSP in the channel config (a config update only the org itself needs to sign, since each
org's MSP is modified under the org's own Admins policy). From the block carrying the update on,
every peer refuses proposals and transactions signed with the old certificate. Doing it in this
order means the gateway never signs with a revoked key, so no payment fails on the way.

``rotate_peer_tls``: a new TLS server certificate for the org's peer from the org's TLS CA; the
peer restarts on it (the other nodes, which trust the org's TLS root, carry on).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from network import channel_config, processes
from network.consortium import Consortium, NetworkError
from network.org import CLIENT, node_sans
from network.topology import Org


@dataclass(frozen=True)
class Rotation:
    old_serial: str
    new_serial: str
    update_dir: Path
    crl_committed_at: float  # time.monotonic() when every peer had the block with the CRL


def _serial(cert_pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")


def _require_ca(net: Consortium) -> None:
    if net.topology.crypto != "ca":
        raise NetworkError("revoking certificates needs each org's own CA (network.crypto: ca in the topology)")


def reissue_client(net: Consortium, org: Org, user: str = CLIENT) -> bytes:
    """A fresh signing certificate and key for ``user`` from the org's own CA; returns the certificate."""
    _require_ca(net)
    home = net.home(org)
    net.org_cas(org).enroll_user(user, "client", home.user_dir(user), force=True)
    return home.user_cert(user).read_bytes()


def restart_gateway(net: Consortium, org: Org) -> None:
    home, name = net.home(org), f"gateway.{org.msp_id}"
    spec = next((s for s in processes.load_specs(home.root) if s.name == name), None)
    if spec is None or processes.running_pid(home.root, name) is None:
        return
    processes.stop(home.root, name)
    processes.start(home.root, spec)
    processes.wait_healthy(home.root, [spec], timeout=60)


def publish_crl(net: Consortium, org: Org, crl_pem: bytes, description: str) -> Path:
    """The org's MSP in the channel config (application and ordering side) carries ``crl_pem``.

    Both sides hold the same MSP and Fabric requires the two to be identical, so one update
    changes both. Signed and submitted by the org alone.
    """
    updates = net.consortium_dir / "updates"
    work = updates / f".work-crl-{org.msp_id}"
    config_bytes, config = channel_config.current_config(net, org, work)
    updated = channel_config.edited(config)
    encoded = base64.b64encode(crl_pem).decode()
    for section in ("Application", "Orderer"):
        group = updated["channel_group"]["groups"].get(section, {}).get("groups", {}).get(org.msp_id)
        if group is not None:
            group["values"]["MSP"]["value"]["config"]["revocation_list"] = [encoded]
    update_dir = updates / f"crl-{org.msp_id}-{time.strftime('%Y%m%dT%H%M%S')}"
    channel_config.propose(update_dir, config_bytes, config, updated, net.topology.channel, description)
    channel_config.sign_as_org(net, update_dir, org)
    before = net.peer_height(org.msp_id) or 0
    channel_config.submit(net, update_dir, org)
    net.wait_peer_heights(minimum=before + 1)
    return update_dir


def revoke(net: Consortium, org: Org, cert_pem: bytes, reason: str = "keycompromise") -> tuple[Path, float]:
    """Revoke one of the org's certificates and publish the CRL; returns the update and when it was committed."""
    _require_ca(net)
    revoked = net.home(org).root / "revoked" / f"{_serial(cert_pem)}.pem"
    revoked.parent.mkdir(parents=True, exist_ok=True)
    revoked.write_bytes(cert_pem)
    t = net.step(f"{org.name} revokes certificate {_serial(cert_pem)} at its CA and publishes the CRL in its MSP")
    crl = net.org_cas(org).revoke(revoked, reason)
    update_dir = publish_crl(net, org, crl, f"{org.msp_id} revokes certificate {_serial(cert_pem)} ({reason})")
    committed = time.monotonic()
    net.done(t, "committed on every peer")
    return update_dir, committed


def rotate_client(net: Consortium, org: Org) -> Rotation:
    """Fresh certificate for the org's gateway, gateway restarted on it, then the old one revoked."""
    old = net.home(org).user_cert(CLIENT).read_bytes()
    t = net.step(f"{org.name} enrolls a fresh client certificate and restarts its gateway on it")
    new = reissue_client(net, org)
    restart_gateway(net, org)
    net.done(t)
    update_dir, committed = revoke(net, org, old)
    return Rotation(_serial(old), _serial(new), update_dir, committed)


def rotate_peer_tls(net: Consortium, org: Org) -> str:
    """A new TLS server certificate for the org's peer; the peer restarts on it. Returns the new serial."""
    _require_ca(net)
    home = net.home(org)
    t = net.step(f"{org.name} renews its peer's TLS certificate and restarts the peer on it")
    net.org_cas(org).renew_tls("peer0", "peer", node_sans(org, org.peer_host), home.peer_dir)
    name = f"peer.{org.msp_id}"
    spec = next(s for s in processes.load_specs(home.root) if s.name == name)
    processes.stop(home.root, name)
    processes.start(home.root, spec)
    processes.wait_healthy(home.root, [spec], timeout=60)
    net.wait_gossip_membership()
    net.done(t)
    return _serial((home.peer_dir / "tls" / "server.crt").read_bytes())
