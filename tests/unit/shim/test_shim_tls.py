"""TLS and mutual TLS, as ``connection.json`` asks of a chaincode server."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaincode.shim.scripted_peer import PeerError
from chaincode.shim.server import ConfigError, ServerConfig

from .conftest import PeerFactory, ServerFactory


def _issue(
    name: str, issuer_key: ec.EllipticCurvePrivateKey | None = None, issuer: x509.Name | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer_key is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca = _issue("tlsca.example.com")
    server_key, server = _issue("cc.usbank.example.com", ca_key, ca.subject)
    client_key, client = _issue("peer0.usbank.example.com", ca_key, ca.subject)
    other_ca_key, other_ca = _issue("rogue-ca")
    rogue_key, rogue = _issue("rogue", other_ca_key, other_ca.subject)
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "server_cert": server.public_bytes(serialization.Encoding.PEM),
        "server_key": _pem(server_key),
        "client_cert": client.public_bytes(serialization.Encoding.PEM),
        "client_key": _pem(client_key),
        "rogue_cert": rogue.public_bytes(serialization.Encoding.PEM),
        "rogue_key": _pem(rogue_key),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


def test_tls_server(pki: dict[str, Path], start_server: ServerFactory, connect: PeerFactory) -> None:
    server = start_server(tls_cert_file=str(pki["server_cert"]), tls_key_file=str(pki["server_key"]))
    credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    peer = connect(server, credentials=credentials)
    assert peer.invoke("Add", "20", "22").text == "42"
    plain = connect(server, handshake=False, timeout=5)
    with pytest.raises(PeerError):
        plain.connect()


def test_mutual_tls(pki: dict[str, Path], start_server: ServerFactory, connect: PeerFactory) -> None:
    server = start_server(
        tls_cert_file=str(pki["server_cert"]),
        tls_key_file=str(pki["server_key"]),
        tls_client_ca_file=str(pki["ca"]),
    )
    trusted = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["client_key"].read_bytes(),
        certificate_chain=pki["client_cert"].read_bytes(),
    )
    assert connect(server, credentials=trusted).invoke("Add", "1", "1").text == "2"
    no_cert = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    with pytest.raises(PeerError):
        connect(server, handshake=False, credentials=no_cert, timeout=5).connect()
    rogue = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["rogue_key"].read_bytes(),
        certificate_chain=pki["rogue_cert"].read_bytes(),
    )
    with pytest.raises(PeerError):
        connect(server, handshake=False, credentials=rogue, timeout=5).connect()


def test_tls_configuration_from_env(pki: dict[str, Path]) -> None:
    config = ServerConfig.from_env(
        {
            "CHAINCODE_ID": "cc:1",
            "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:9999",
            "CORE_PEER_LOCALMSPID": "USBankMSP",
            "CHAINCODE_TLS_CERT_FILE": str(pki["server_cert"]),
            "CHAINCODE_TLS_KEY_FILE": str(pki["server_key"]),
            "CHAINCODE_TLS_CLIENT_CA_FILE": str(pki["ca"]),
        }
    )
    assert config.tls and config.tls_client_ca_file == str(pki["ca"])
    assert config.peer_msp_id == "USBankMSP"


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"CHAINCODE_TLS_CERT_FILE": "{server_cert}"}, "must be set together"),
        ({"CHAINCODE_TLS_CLIENT_CA_FILE": "{ca}"}, "needs CHAINCODE_TLS_CERT_FILE"),
        ({"CHAINCODE_TLS_CERT_FILE": "/nope.pem", "CHAINCODE_TLS_KEY_FILE": "{server_key}"}, "not found"),
        ({"CHAINCODE_SERVER_ADDRESS": "nocolon"}, "host:port"),
    ],
)
def test_bad_tls_configuration(pki: dict[str, Path], env: dict[str, str], complaint: str) -> None:
    values = {"CHAINCODE_ID": "cc:1", "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:1"}
    values.update({k: v.format(**{n: str(p) for n, p in pki.items()}) for k, v in env.items()})
    with pytest.raises(ConfigError, match=complaint):
        ServerConfig.from_env(values)
