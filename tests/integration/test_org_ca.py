"""One org's own CAs for real: a TLS CA and a signing CA on 127.0.0.2, every identity enrolled from them.

Checks with the ``cryptography`` library what Fabric relies on: the OU the CA forces (NodeOUs),
which root issued what (enrollment certs from the signing root, TLS certs from the TLS root and
never the other), the SANs, the ecert attribute extension, and that keys match certs. Does not
need the shared test network; it starts and stops its own two servers.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from network import ca, processes
from network.nodes import fabric_home

pytestmark = pytest.mark.network

HOST = "127.0.0.2"
BIN = fabric_home() / "bin"
MISSING = [b for b in ("fabric-ca-server", "fabric-ca-client") if not (BIN / b).exists()]


@pytest.fixture
def org(tmp_path: Path) -> Iterator[ca.OrgCAs]:
    if MISSING:
        pytest.skip(f"{', '.join(MISSING)} missing in {BIN}: run 'make fabric' (network/install-fabric.sh) first")
    home = tmp_path / "USBank"
    tls = ca.CASpec("USBank", "tls", "tlsca.usbank", home / "ca" / "tls", HOST, 27901, 27902, ("localhost",))
    sign = ca.CASpec(
        "USBank", "sign", "ca.usbank", home / "ca" / "sign", HOST, 27903, 27904, ("ca.usbank.example.com",)
    )
    cas = ca.OrgCAs(tls, sign, home, progress=lambda m: sys.stderr.write(m + "\n"))
    try:
        yield cas
    finally:
        for spec in (sign, tls):  # by pid file, even when start failed half-way
            processes.stop(cas.state_dir, spec.node_name)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ous(c: x509.Certificate) -> list[str]:
    return [str(a.value) for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]


def sans(c: x509.Certificate) -> set[str]:
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def assert_enrollment(msp: Path, ou: str, org: ca.OrgCAs) -> x509.Certificate:
    signcert = cert(msp / "signcerts" / "cert.pem")
    assert ou in ous(signcert)
    assert ca.issued_by(signcert, cert(org.sign_root_cert))
    assert not ca.issued_by(signcert, cert(org.tls_root_cert))
    key = msp / "keystore" / ca.KEY_FILE
    assert ca.credential_ok(msp / "signcerts" / "cert.pem", key, org.sign_root_cert, ou=ou)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in (msp / "keystore").iterdir()] == [ca.KEY_FILE]
    assert (msp / "cacerts" / "ca.pem").read_bytes() == org.sign_root_cert.read_bytes()
    assert (msp / "tlscacerts" / "ca.pem").read_bytes() == org.tls_root_cert.read_bytes()
    assert (msp / "config.yaml").read_text() == ca.node_ous_config()
    return signcert


def assert_tls(crt: Path, key: Path, hosts: list[str], org: ca.OrgCAs) -> None:
    tlscert = cert(crt)
    assert ca.issued_by(tlscert, cert(org.tls_root_cert))
    assert not ca.issued_by(tlscert, cert(org.sign_root_cert))
    assert set(hosts) <= sans(tlscert)
    eku = tlscert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert ca.credential_ok(crt, key, org.tls_root_cert, hosts=hosts)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (crt.parent / "ca.crt").read_bytes() == org.tls_root_cert.read_bytes()


def test_org_cas_issue_every_identity(org: ca.OrgCAs, tmp_path: Path) -> None:
    out = tmp_path / "crypto"
    peer_hosts = [HOST, "peer0.usbank.example.com"]
    orderer_hosts = [HOST, "orderer0.usbank.example.com"]
    cc_hosts = [HOST, "cc.deposit_token.usbank"]

    t0 = time.monotonic()
    org.start()
    t_started = time.monotonic()
    ca.run_parallel(
        [
            lambda: org.enroll_node("peer0", "peer", peer_hosts, out / "peer0"),
            lambda: org.enroll_node("orderer0", "orderer", orderer_hosts, out / "orderer0"),
            lambda: org.enroll_user("orgadmin", "admin", out / "admin", tls=True),
            lambda: org.enroll_user("gw1", "client", out / "gw1", attrs={"dt.role": "operator"}),
            lambda: org.enroll_user("gw2", "client", out / "gw2", tls=True),
            lambda: org.enroll_tls_only("cc.deposit_token", cc_hosts, out / "cc"),
        ]
    )
    t_enrolled = time.monotonic()
    org.write_channel_msp(out / "channel-msp")
    rss = ca.rss_kib(org)
    sys.stderr.write(
        f"\n[ca] init+start both CAs {t_started - t0:.2f}s; 6 identities {t_enrolled - t_started:.2f}s; RSS KiB {rss}\n"
    )

    # the two roots are different self-signed CAs
    tls_root, sign_root = cert(org.tls_root_cert), cert(org.sign_root_cert)
    assert tls_root.public_key() != sign_root.public_key()
    assert ca.issued_by(tls_root, tls_root) and ca.issued_by(sign_root, sign_root)
    assert not ca.issued_by(sign_root, tls_root)

    # the signing CA's own server certificate comes from the TLS CA
    assert_tls(org.sign.home / "tls" / "server.crt", org.sign.home / "tls" / "server.key", org.sign.tls_hosts, org)

    assert_enrollment(out / "peer0" / "msp", "peer", org)
    assert_tls(out / "peer0" / "tls" / "server.crt", out / "peer0" / "tls" / "server.key", peer_hosts, org)
    assert_enrollment(out / "orderer0" / "msp", "orderer", org)
    assert_tls(out / "orderer0" / "tls" / "server.crt", out / "orderer0" / "tls" / "server.key", orderer_hosts, org)
    assert_enrollment(out / "admin" / "msp", "admin", org)
    assert_tls(out / "admin" / "tls" / "client.crt", out / "admin" / "tls" / "client.key", [], org)
    gw1 = assert_enrollment(out / "gw1" / "msp", "client", org)
    ext = gw1.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")).value
    assert isinstance(ext, x509.UnrecognizedExtension)
    assert json.loads(ext.value)["attrs"]["dt.role"] == "operator"
    assert not (out / "gw1" / "tls").exists()
    assert_enrollment(out / "gw2" / "msp", "client", org)
    assert_tls(out / "cc" / "server.crt", out / "cc" / "server.key", cc_hosts, org)

    channel = out / "channel-msp"
    assert sorted(str(p.relative_to(channel)) for p in channel.rglob("*") if p.is_file()) == [
        "cacerts/ca.pem",
        "config.yaml",
        "tlscacerts/ca.pem",
    ]

    # secrets are kept 0600 in the CA homes, never handed out
    for spec in (org.tls, org.sign):
        assert stat.S_IMODE(spec.home.stat().st_mode) == 0o700
        for secret in (spec.home / "secrets").iterdir():
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert sorted(rss) == ["ca.sign.USBank", "ca.tls.USBank"] and all(v > 0 for v in rss.values())

    # a second start and second enrollments are no-ops: same servers, same certificates
    pids = org.pids()
    before = {p: p.read_bytes() for p in out.rglob("*.pem")} | {p: p.read_bytes() for p in out.rglob("*.crt")}
    org.start()
    org.enroll_node("peer0", "peer", peer_hosts, out / "peer0")
    org.enroll_user("gw1", "client", out / "gw1", attrs={"dt.role": "operator"})
    org.enroll_tls_only("cc.deposit_token", cc_hosts, out / "cc")
    assert org.pids() == pids
    assert {p: p.read_bytes() for p in before} == before

    # forced re-enrollment reuses the stored secret (maxenrollments -1): a new cert, still valid
    old = (out / "peer0" / "msp" / "signcerts" / "cert.pem").read_bytes()
    org.enroll_node("peer0", "peer", peer_hosts, out / "peer0", force=True)
    assert (out / "peer0" / "msp" / "signcerts" / "cert.pem").read_bytes() != old
    assert_enrollment(out / "peer0" / "msp", "peer", org)

    # stopped servers come back with the same roots and serve enrollments again
    roots = org.tls_root_cert.read_bytes(), org.sign_root_cert.read_bytes()
    org.stop()
    assert all(pid is None for pid in org.pids().values())
    org.start()
    assert (org.tls_root_cert.read_bytes(), org.sign_root_cert.read_bytes()) == roots
    org.enroll_user("gw3", "client", out / "gw3")
    assert_enrollment(out / "gw3" / "msp", "client", org)


def test_errors_name_the_ca_and_hide_secrets(org: ca.OrgCAs, tmp_path: Path) -> None:
    org.start()
    with pytest.raises(ValueError):
        org.enroll_node("bad name", "peer", [HOST], tmp_path / "x")
    with pytest.raises(ValueError):
        org.enroll_user("u", "peer", tmp_path / "x")
    # a wrong secret: the CA refuses; the message names the CA and the command, not the secret
    (org.sign.home / "secrets" / "mallory.secret").write_text("not-the-real-one\n")
    os.chmod(org.sign.home / "secrets" / "mallory.secret", 0o600)
    org.enroll_user("mallory", "client", tmp_path / "mallory")  # registered now with the stored secret
    (org.sign.home / "secrets" / "mallory.secret").write_text("changed-afterwards\n")
    with pytest.raises(ca.CAError) as err:
        org.enroll_user("mallory", "client", tmp_path / "mallory", force=True)
    message = str(err.value)
    sys.stderr.write(f"\n{message}\n")
    assert "ca.usbank" in message and "enroll" in message
    assert "changed-afterwards" not in message and "not-the-real-one" not in message
