"""Org definitions: what an org exports, and what importing one refuses (file and field named)."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from network.definition import FORMAT, DefinitionError, load_definition, load_definitions

NOW = datetime.datetime.now(datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, ca: bool) -> tuple[
    x509.Certificate, ec.EllipticCurvePrivateKey
]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (_name(cn), key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def good() -> dict[str, Any]:
    root = _cert("ca.usbank", None, ca=True)
    tls_root = _cert("tlsca.usbank", None, ca=True)
    identity, _ = _cert("orderer0", root, ca=False)
    tls, _ = _cert("orderer0", tls_root, ca=False)
    other_tls_root = _cert("tlsca.hkbank", None, ca=True)
    foreign_tls, _ = _cert("orderer0", other_tls_root, ca=False)
    return {
        "definition": {
            "format": FORMAT,
            "name": "USBank",
            "msp_id": "USBankMSP",
            "kind": "bank",
            "host": "127.0.0.2",
            "node_ous": True,
            "root_certs": [_pem(root[0])],
            "tls_root_certs": [_pem(tls_root[0])],
            "peer": {"address": "127.0.0.2:7100", "tls_name": "peer0.usbank.example.com"},
            "anchor_peers": [{"host": "127.0.0.2", "port": 7100}],
            "orderers": [
                {
                    "name": "orderer0.USBankMSP",
                    "address": "127.0.0.2:7000",
                    "admin_address": "127.0.0.2:7001",
                    "tls_name": "orderer0.usbank.example.com",
                    "consenter_id": 1,
                    "identity": _pem(identity),
                    "tls_cert": _pem(tls),
                }
            ],
        },
        "foreign_tls": _pem(foreign_tls),
        "leaf": _pem(identity),
    }


def _write(tmp_path: Path, data: Any, name: str = "USBankMSP.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_a_well_formed_definition_loads(tmp_path: Path, good: dict[str, Any]) -> None:
    d = load_definition(_write(tmp_path, good["definition"]))
    assert d.msp_id == "USBankMSP"
    assert d.orderers[0].host == "127.0.0.2" and d.orderers[0].port == 7000
    assert json.loads(json.dumps(d.to_json())) == good["definition"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d, g: d.update(format="something/2"), "format"),
        (lambda d, g: d.pop("msp_id"), "msp_id"),
        (lambda d, g: d.update(msp_id="usbank\n"), "msp_id"),
        (lambda d, g: d.update(kind="exchange"), "kind"),
        (lambda d, g: d.update(node_ous=False), "node_ous"),
        (lambda d, g: d.update(root_certs=["not a certificate"]), "root_certs[0]"),
        (lambda d, g: d.update(root_certs=[g["leaf"]]), "root_certs[0]"),  # not a CA
        (lambda d, g: d.update(tls_root_certs=d["root_certs"]), "tls_root_certs[0]"),  # one CA for both roles
        (lambda d, g: d["orderers"][0].update(tls_cert=g["foreign_tls"]), "orderers[0].tls_cert"),  # wrong chain
        (lambda d, g: d["orderers"][0].update(identity=d["orderers"][0]["tls_cert"]), "orderers[0].identity"),
        (lambda d, g: d["orderers"][0].update(name="orderer0.HKBankMSP"), "orderers[0].name"),
        (lambda d, g: d["orderers"][0].update(consenter_id=True), "orderers[0].consenter_id"),
        (lambda d, g: d["orderers"][0].update(address="127.0.0.2:70000000"), "orderers[0]"),
        (lambda d, g: d.update(anchor_peers=[{"host": "x", "port": 0}]), "anchor_peers[0]"),
        (lambda d, g: d.update(peer="127.0.0.2:7100"), "peer"),
    ],
)
def test_a_malformed_definition_is_refused_naming_file_and_field(
    tmp_path: Path, good: dict[str, Any], mutate: Any, field: str
) -> None:
    data = copy.deepcopy(good["definition"])
    mutate(data, good)
    path = _write(tmp_path, data)
    with pytest.raises(DefinitionError) as refused:
        load_definition(path)
    assert str(path) in str(refused.value)
    assert field in str(refused.value), str(refused.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "[" * 5000, '"text"'])
def test_a_file_that_is_not_a_definition_is_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DefinitionError, match=str(path)):
        load_definition(path)


def test_two_definitions_of_one_msp_are_refused(tmp_path: Path, good: dict[str, Any]) -> None:
    _write(tmp_path, good["definition"], "a.json")
    _write(tmp_path, good["definition"], "b.json")
    with pytest.raises(DefinitionError, match="already defined"):
        load_definitions(tmp_path)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no org definitions"):
        load_definitions(tmp_path)
