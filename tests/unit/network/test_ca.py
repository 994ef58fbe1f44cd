"""The pure parts of network/ca.py: MSP config.yaml, server settings, certificate checks."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from network import ca


def spec(role: str = "sign", **kw: object) -> ca.CASpec:
    args: dict[str, object] = {
        "org": "USBank",
        "role": role,
        "name": "ca.usbank",
        "home": Path("/srv/usbank/ca/sign"),
        "host": "127.0.0.2",
        "port": 27903,
        "operations_port": 27904,
        "dns_names": ("ca.usbank.example.com",),
    }
    args.update(kw)
    return ca.CASpec(**args)  # type: ignore[arg-type]


def test_node_ous_config_pins_all_four_types_to_the_fixed_root_file() -> None:
    config = yaml.safe_load(ca.node_ous_config())["NodeOUs"]
    assert config["Enable"] is True
    for ou in ("client", "peer", "admin", "orderer"):
        ident = config[f"{ou.capitalize()}OUIdentifier"]
        assert ident == {"Certificate": "cacerts/ca.pem", "OrganizationalUnitIdentifier": ou}


def test_spec_url_name_and_role_check() -> None:
    s = spec()
    assert s.url == "https://127.0.0.2:27903"
    assert s.node_name == "ca.sign.USBank"
    assert s.tls_hosts == ["127.0.0.2", "ca.usbank.example.com"]
    with pytest.raises(ValueError):
        spec(role="root")


def test_server_env_sets_every_address_and_only_a_given_key_file() -> None:
    env = ca.server_env(spec(), Path("/x/server.crt"), Path("/x/server.key"))
    assert env["FABRIC_CA_SERVER_OPERATIONS_LISTENADDRESS"] == "127.0.0.2:27904"
    assert env["FABRIC_CA_SERVER_ADDRESS"] == "127.0.0.2"
    assert env["FABRIC_CA_SERVER_PORT"] == "27903"
    assert env["FABRIC_CA_SERVER_CSR_HOSTS"] == "127.0.0.2,ca.usbank.example.com"
    assert env["FABRIC_CA_SERVER_TLS_KEYFILE"] == "/x/server.key"
    self_issued = ca.server_env(spec("tls", name="tlsca.usbank"), Path("/x/tls-cert.pem"), None)
    assert "FABRIC_CA_SERVER_TLS_KEYFILE" not in self_issued
    assert not any("BOOT" in k for k in env)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, ou: str = ""
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, subject)]
    if ou:
        names.insert(0, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("peer0"), x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _save(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def test_credential_ok_checks_issuer_signature_key_ou_and_hosts(tmp_path: Path) -> None:
    root_key, impostor_key, leaf_key = _key(), _key(), _key()
    _save(tmp_path / "root.pem", _cert("ca.usbank", root_key, "ca.usbank", root_key))
    # same issuer name, other key: a name match alone must not pass
    _save(tmp_path / "impostor.pem", _cert("ca.usbank", impostor_key, "ca.usbank", impostor_key))
    _save(tmp_path / "leaf.pem", _cert("peer0", leaf_key, "ca.usbank", root_key, ou="peer"), leaf_key)
    leaf, key = tmp_path / "leaf.pem", tmp_path / "leaf.key"

    assert ca.credential_ok(leaf, key, tmp_path / "root.pem", ou="peer", hosts=["peer0", "127.0.0.2"])
    assert not ca.credential_ok(leaf, key, tmp_path / "impostor.pem")
    assert not ca.credential_ok(leaf, key, tmp_path / "root.pem", ou="admin")
    assert not ca.credential_ok(leaf, key, tmp_path / "root.pem", hosts=["peer1"])
    _save(tmp_path / "other.pem", _cert("x", _key(), "x", root_key), _key())
    assert not ca.credential_ok(leaf, tmp_path / "other.key", tmp_path / "root.pem")
    assert not ca.credential_ok(tmp_path / "missing.pem", key, tmp_path / "root.pem")
