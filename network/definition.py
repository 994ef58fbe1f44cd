"""Org definitions: the public file an org exports and the consortium imports.

An org definition carries everything the other orgs need and nothing secret: the MSP id, the
signing and TLS root certificates, that NodeOUs are on, the endpoints of its peer and ordering
nodes, and for each ordering node its enrollment and TLS certificates (what the channel's
consenter set names). Importing one checks every field and that every node certificate chains
to the org's own roots, so a definition whose certificates were swapped or mangled is refused
with the file and field named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from network.ca import issued_by, node_ous_config
from network.org import OrgHome
from network.ports import PortPlan
from network.topology import Topology

FORMAT = "deposit-token-org-definition/1"
_MSP_ID = re.compile(r"\A[A-Za-z][A-Za-z0-9]*MSP\Z")
_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9]{0,30}\Z")
_ADDRESS = re.compile(r"\A[A-Za-z0-9.-]{1,253}:[0-9]{1,5}\Z")
_NODE = re.compile(r"\Aorderer[0-9]\.[A-Za-z][A-Za-z0-9]*MSP\Z")


class DefinitionError(ValueError):
    """An org definition is malformed or its certificates do not chain; the message names file and field."""


@dataclass(frozen=True)
class OrdererEntry:
    name: str
    address: str
    admin_address: str
    tls_name: str
    consenter_id: int
    identity_pem: str
    tls_cert_pem: str

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


@dataclass(frozen=True)
class OrgDefinition:
    name: str
    msp_id: str
    kind: str
    host: str
    root_cert_pem: str
    tls_root_cert_pem: str
    peer_address: str
    peer_tls_name: str
    anchor_peers: tuple[tuple[str, int], ...]
    orderers: tuple[OrdererEntry, ...]
    source: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "msp_id": self.msp_id,
            "kind": self.kind,
            "host": self.host,
            "node_ous": True,
            "root_certs": [self.root_cert_pem],
            "tls_root_certs": [self.tls_root_cert_pem],
            "peer": {"address": self.peer_address, "tls_name": self.peer_tls_name},
            "anchor_peers": [{"host": h, "port": p} for h, p in self.anchor_peers],
            "orderers": [
                {
                    "name": o.name,
                    "address": o.address,
                    "admin_address": o.admin_address,
                    "tls_name": o.tls_name,
                    "consenter_id": o.consenter_id,
                    "identity": o.identity_pem,
                    "tls_cert": o.tls_cert_pem,
                }
                for o in self.orderers
            ],
        }


def export_definition(home: OrgHome, topology: Topology, ports: PortPlan) -> OrgDefinition:
    """The org's definition, from its own folder only; also written to ``home.definition_file``."""
    org = home.org
    peer = ports.peers[org.msp_id]
    orderers = []
    for node in topology.orderers_of(org):
        p = ports.orderers[node.name]
        folder = home.orderer_dir(node)
        orderers.append(
            OrdererEntry(
                name=node.name,
                address=f"{p.host}:{p.listen}",
                admin_address=f"{p.host}:{p.admin}",
                tls_name=node.dns_name,
                consenter_id=node.consenter_id,
                identity_pem=(folder / "msp" / "signcerts" / "cert.pem").read_text(),
                tls_cert_pem=(folder / "tls" / "server.crt").read_text(),
            )
        )
    definition = OrgDefinition(
        name=org.name,
        msp_id=org.msp_id,
        kind=org.kind,
        host=org.host,
        root_cert_pem=home.sign_ca.read_text(),
        tls_root_cert_pem=home.tls_ca.read_text(),
        peer_address=f"{peer.host}:{peer.listen}",
        peer_tls_name=org.peer_host,
        anchor_peers=((peer.host, peer.listen),),
        orderers=tuple(orderers),
    )
    home.definition_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = home.definition_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(definition.to_json(), indent=2))
    tmp.replace(home.definition_file)
    return definition


def load_definition(path: Path) -> OrgDefinition:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DefinitionError(f"{path}: org definition file does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DefinitionError(f"{path}: not a JSON org definition ({exc})") from exc
    return parse_definition(raw, path)


def parse_definition(raw: Any, source: Path) -> OrgDefinition:
    where = str(source)
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise DefinitionError(f"{where}: format: expected {FORMAT!r}, got {raw.get('format')!r}")
    name = _text(raw, "name", where, _NAME)
    msp_id = _text(raw, "msp_id", where, _MSP_ID)
    kind = raw.get("kind")
    if kind not in ("bank", "regulator"):
        raise DefinitionError(f"{where}: kind: expected 'bank' or 'regulator', got {kind!r}")
    host = _text(raw, "host", where, re.compile(r"\A[A-Za-z0-9.-]{1,253}\Z"))
    if raw.get("node_ous") is not True:
        raise DefinitionError(f"{where}: node_ous: must be true (roles come from the certificates' OUs)")
    root_pem = _single_pem(raw, "root_certs", where)
    tls_root_pem = _single_pem(raw, "tls_root_certs", where)
    root = _ca_cert(root_pem, f"{where}: root_certs[0]")
    tls_root = _ca_cert(tls_root_pem, f"{where}: tls_root_certs[0]")
    if root.public_key() == tls_root.public_key():
        raise DefinitionError(f"{where}: tls_root_certs[0]: the TLS CA must be a CA of its own, not the signing CA")
    peer = raw.get("peer")
    if not isinstance(peer, dict):
        raise DefinitionError(f"{where}: peer: expected an object with address and tls_name")
    peer_address = _text(peer, "address", f"{where}: peer", _ADDRESS)
    peer_tls_name = _text(peer, "tls_name", f"{where}: peer", re.compile(r"\A[A-Za-z0-9.-]{1,253}\Z"))
    anchors_raw = raw.get("anchor_peers")
    if not isinstance(anchors_raw, list) or not anchors_raw:
        raise DefinitionError(f"{where}: anchor_peers: expected a non-empty list")
    anchors: list[tuple[str, int]] = []
    for i, a in enumerate(anchors_raw):
        if (
            not isinstance(a, dict)
            or not isinstance(a.get("host"), str)
            or isinstance(a.get("port"), bool)
            or not isinstance(a.get("port"), int)
            or not 1 <= a["port"] <= 65535
        ):
            raise DefinitionError(f"{where}: anchor_peers[{i}]: expected {{host, port 1-65535}}")
        anchors.append((a["host"], a["port"]))
    orderers_raw = raw.get("orderers", [])
    if not isinstance(orderers_raw, list):
        raise DefinitionError(f"{where}: orderers: expected a list")
    orderers: list[OrdererEntry] = []
    for i, o in enumerate(orderers_raw):
        at = f"{where}: orderers[{i}]"
        if not isinstance(o, dict):
            raise DefinitionError(f"{at}: expected an object")
        consenter_id = o.get("consenter_id")
        if isinstance(consenter_id, bool) or not isinstance(consenter_id, int) or not 1 <= consenter_id <= 1000:
            raise DefinitionError(f"{at}.consenter_id: expected an integer from 1 to 1000")
        entry = OrdererEntry(
            name=_text(o, "name", at, _NODE),
            address=_text(o, "address", at, _ADDRESS),
            admin_address=_text(o, "admin_address", at, _ADDRESS),
            tls_name=_text(o, "tls_name", at, re.compile(r"\A[A-Za-z0-9.-]{1,253}\Z")),
            consenter_id=consenter_id,
            identity_pem=_text(o, "identity", at, re.compile(r"\A-----BEGIN CERTIFICATE-----", re.M)),
            tls_cert_pem=_text(o, "tls_cert", at, re.compile(r"\A-----BEGIN CERTIFICATE-----", re.M)),
        )
        _chains(entry.identity_pem, root, f"{at}.identity", "the org's signing CA (root_certs)")
        _chains(entry.tls_cert_pem, tls_root, f"{at}.tls_cert", "the org's TLS CA (tls_root_certs)")
        if not entry.name.endswith(f".{msp_id}"):
            raise DefinitionError(f"{at}.name: {entry.name!r} must end with the org's MSP id .{msp_id}")
        orderers.append(entry)
    return OrgDefinition(
        name=name,
        msp_id=msp_id,
        kind=kind,
        host=host,
        root_cert_pem=root_pem,
        tls_root_cert_pem=tls_root_pem,
        peer_address=peer_address,
        peer_tls_name=peer_tls_name,
        anchor_peers=tuple(anchors),
        orderers=tuple(orderers),
        source=source,
    )


def load_definitions(folder: Path) -> list[OrgDefinition]:
    """Every ``*.json`` definition in ``folder``; two definitions of one MSP id are refused."""
    definitions: list[OrgDefinition] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        d = load_definition(path)
        if d.msp_id in seen:
            raise DefinitionError(f"{path}: msp_id: {d.msp_id} is already defined by {seen[d.msp_id]}")
        seen[d.msp_id] = path
        definitions.append(d)
    if not definitions:
        raise DefinitionError(f"{folder}: no org definitions (*.json) found")
    return definitions


def write_channel_msp(definition: OrgDefinition, target: Path) -> Path:
    """The org's channel MSP folder (what configtxgen reads), from its definition alone."""
    (target / "cacerts").mkdir(parents=True, exist_ok=True)
    (target / "tlscacerts").mkdir(parents=True, exist_ok=True)
    (target / "cacerts" / "ca.pem").write_text(definition.root_cert_pem)
    (target / "tlscacerts" / "ca.pem").write_text(definition.tls_root_cert_pem)
    (target / "config.yaml").write_text(node_ous_config())
    return target


# -- checks ----------------------------------------------------------------------
def _text(raw: dict[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not pattern.search(value):
        shown = value if not isinstance(value, str) or len(value) < 60 else value[:57] + "..."
        raise DefinitionError(f"{where}: {key}: missing or malformed ({shown!r})")
    return value


def _single_pem(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
        raise DefinitionError(f"{where}: {key}: expected a list of one PEM certificate")
    return value[0]


def _load(pem: str, where: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError) as exc:
        raise DefinitionError(f"{where}: not a PEM X.509 certificate ({exc})") from exc


def _ca_cert(pem: str, where: str) -> x509.Certificate:
    cert = _load(pem, where)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise DefinitionError(f"{where}: not a CA certificate (basic constraints CA:TRUE missing)")
    if not issued_by(cert, cert):
        raise DefinitionError(f"{where}: a root certificate must be self-signed")
    return cert


def _chains(pem: str, issuer: x509.Certificate, where: str, issuer_name: str) -> None:
    if not issued_by(_load(pem, where), issuer):
        raise DefinitionError(f"{where}: does not chain to {issuer_name}")
