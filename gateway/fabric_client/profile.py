"""Connect as an organisation's user from the network profile (``<state-dir>/profile.json``) that
``python -m network up`` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from .client import Deadlines
from .gateway import Gateway
from .identity import Identity
from .inflight import DEFAULT_MAX_IN_FLIGHT
from .signer import ECDSASigner

__all__ = ["connect_org", "load_profile"]


def load_profile(profile_path: str | Path) -> dict[str, Any]:
    """Read a network profile. Raises ``ValueError`` when it is missing, not JSON, or has no ``orgs``."""
    path = Path(profile_path)
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"network profile {path} does not exist (is the network up?)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"network profile {path} is not valid JSON: {error}") from None
    if not isinstance(profile, dict) or "orgs" not in profile:
        raise ValueError(f"network profile {path} has no 'orgs' section")
    return profile


def connect_org(
    profile_path: str | Path,
    msp_id: str,
    user: Literal["client", "admin"] = "client",
    *,
    deadlines: Deadlines | None = None,
    max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
    in_flight_wait: float = 0.0,
) -> Gateway:
    """A ``Gateway`` to ``msp_id``'s own peer, signing as its client user (or admin).

    Uses the peer's TLS CA and host name from the profile, and mutual TLS when the profile gives the
    user a TLS certificate and key. ``max_in_flight``/``in_flight_wait``: see ``Gateway``."""
    profile = load_profile(profile_path)
    orgs: dict[str, Any] = profile["orgs"]
    if msp_id not in orgs:
        raise ValueError(f"organisation {msp_id} is not in the profile (known: {', '.join(sorted(orgs))})")
    org = orgs[msp_id]
    if user not in ("client", "admin"):
        raise ValueError(f"user must be 'client' or 'admin', got {user!r}")
    credentials = org.get(user)
    if not credentials:
        raise ValueError(f"the profile has no {user} credentials for {msp_id}")
    peer = org["peer"]
    identity = Identity.from_cert_file(msp_id, credentials["cert"])
    signer = ECDSASigner.from_key_file(credentials["key"])
    client_cert = client_key = None
    if credentials.get("tls_cert") and credentials.get("tls_key"):
        client_cert = Path(credentials["tls_cert"]).read_bytes()
        client_key = Path(credentials["tls_key"]).read_bytes()
    return Gateway.connect(
        identity=identity,
        signer=signer,
        endpoint=peer["address"],
        tls_root_cert=Path(peer["tls_ca"]).read_bytes(),
        host_override=peer.get("host_override") or None,
        client_cert=client_cert,
        client_key=client_key,
        deadlines=deadlines,
        max_in_flight=max_in_flight,
        in_flight_wait=in_flight_wait,
    )
