"""Config updates without a network: which policies an update needs, whether signatures meet them,
and which signature files count.

The config and update documents are configtxlator's JSON, written here by hand in the shape the
tool decodes (``network.channel_config`` reads only the fields used below).
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from network import channel_config
from network.channel_config import ConfigUpdateError, Requirement, evaluate, requirements
from network.membership import bft_block_validation

ORGS = ("AMSP", "BMSP", "CMSP", "DMSP")


def _signature_policy(msp_id: str, role: str = "ADMIN") -> dict[str, Any]:
    return {
        "mod_policy": "Admins",
        "policy": {"type": 1, "value": {
            "identities": [{"principal": {"msp_identifier": msp_id, "role": role}, "principal_classification": "ROLE"}],
            "rule": {"n_out_of": {"n": 1, "rules": [{"signed_by": 0}]}},
        }},
    }  # fmt: skip


def _implicit(rule: str, sub: str = "Admins") -> dict[str, Any]:
    return {"mod_policy": "Admins", "policy": {"type": 3, "value": {"rule": rule, "sub_policy": sub}}}


def _org(msp_id: str, root_pem: bytes | None = None) -> dict[str, Any]:
    roots = [base64.b64encode(root_pem).decode()] if root_pem else []
    return {
        "mod_policy": "Admins", "version": "0",
        "policies": {"Admins": _signature_policy(msp_id)},
        "values": {"MSP": {"mod_policy": "Admins", "version": "0", "value": {"config": {"root_certs": roots}}}},
    }  # fmt: skip


def _config(roots: dict[str, bytes] | None = None) -> dict[str, Any]:
    roots = roots or {}
    return {"channel_group": {
        "mod_policy": "Admins", "version": "0", "policies": {"Admins": _implicit("MAJORITY")},
        "groups": {
            "Application": {
                "mod_policy": "Admins", "version": "1",
                "policies": {"Admins": _implicit("MAJORITY")},
                "groups": {msp: _org(msp, roots.get(msp)) for msp in ORGS},
            },
            "Orderer": {
                "mod_policy": "Admins", "version": "0",
                "policies": {"Admins": _implicit("MAJORITY")},
                "values": {"ConsensusType": {"mod_policy": "Admins", "version": "2"}},
                "groups": {msp: _org(msp, roots.get(msp)) for msp in ORGS[:2]},
            },
        },
    }}  # fmt: skip


def test_adding_an_org_needs_the_application_admins_only() -> None:
    update = {
        "read_set": {"version": "0", "groups": {"Application": {
            "version": "1", "groups": {m: {"version": "0"} for m in ORGS}}}},
        "write_set": {"version": "0", "groups": {"Application": {
            "version": "2", "mod_policy": "Admins",
            "groups": {**{m: {"version": "0"} for m in ORGS}, "EMSP": _org("EMSP")},
        }}},
    }  # fmt: skip
    assert requirements(update, _config()) == [Requirement("/Channel/Application/Admins", "/Channel/Application")]


def test_a_changed_value_needs_its_groups_policy_and_a_consenter_change_the_orderer_admins() -> None:
    update = {
        "read_set": {"groups": {"Application": {"groups": {"BMSP": {"version": "0"}}}, "Orderer": {"version": "0"}}},
        "write_set": {"groups": {
            "Application": {"groups": {"BMSP": {
                "version": "0", "values": {"MSP": {"version": "1", "mod_policy": "Admins"}}}}},
            "Orderer": {"version": "0", "values": {"ConsensusType": {"version": "3", "mod_policy": "Admins"}}},
        }},
    }  # fmt: skip
    assert requirements(update, _config()) == [
        Requirement("/Channel/Application/BMSP/Admins", "/Channel/Application/BMSP/MSP"),
        Requirement("/Channel/Orderer/Admins", "/Channel/Orderer/ConsensusType"),
    ]


def test_majority_of_four_needs_three_admins() -> None:
    config = _config()
    two = evaluate(config, "/Channel/Application/Admins", {"AMSP": {"admin"}, "BMSP": {"admin"}})
    assert not two.satisfied and two.needed == 3 and two.have == {"AMSP", "BMSP"}
    assert two.candidates == {"CMSP", "DMSP"}
    three = evaluate(config, "/Channel/Application/Admins", {m: {"admin"} for m in ORGS[:3]})
    assert three.satisfied
    # a client certificate is not an admin's: it does not count
    with_client = {"AMSP": {"admin"}, "BMSP": {"admin"}, "CMSP": {"client"}}
    clients = evaluate(config, "/Channel/Application/Admins", with_client)
    assert not clients.satisfied
    # the orderer group has two orgs: a majority is both
    assert not evaluate(config, "/Channel/Orderer/Admins", {"AMSP": {"admin"}}).satisfied
    assert evaluate(config, "/Channel/Orderer/Admins", {"AMSP": {"admin"}, "BMSP": {"admin"}}).satisfied
    with pytest.raises(ConfigUpdateError, match="no policy"):
        evaluate(config, "/Channel/Application/Writers", {})


def test_bft_block_validation_is_a_quorum_of_the_consenters() -> None:
    def mapping(n: int) -> list[dict[str, Any]]:
        return [{"msp_id": f"O{i}MSP", "identity": f"cert{i}"} for i in range(n)]

    assert [bft_block_validation(mapping(n))["rule"]["n_out_of"]["n"] for n in (4, 5, 6, 7)] == [3, 4, 4, 5]
    policy = bft_block_validation(mapping(5))
    assert [i["principal"]["mspid"] for i in policy["identities"]] == [f"O{i}MSP" for i in range(5)]
    assert policy["rule"]["n_out_of"]["rules"] == [{"signed_by": i} for i in range(5)]


# -- signatures -------------------------------------------------------------------------


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )  # fmt: skip


def _org_pki(tmp: Path, msp_id: str) -> tuple[bytes, Path, Path]:
    """A root CA and an admin certificate (OU admin) issued by it: (root PEM, cert file, key file)."""
    ca_key, admin_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _cert(_name(f"ca.{msp_id}"), ca_key, _name(f"ca.{msp_id}"), ca_key, ca=True)
    admin = _cert(_name("Admin", "admin"), admin_key, root.subject, ca_key, ca=False)
    folder = tmp / msp_id
    folder.mkdir()
    (folder / "cert.pem").write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(admin_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    return root.public_bytes(serialization.Encoding.PEM), folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, tuple[Path, Path]]]:
    pki = {msp: _org_pki(tmp_path, msp) for msp in ORGS}
    config = _config({msp: root for msp, (root, _c, _k) in pki.items()})
    update_dir = tmp_path / "update"
    update_dir.mkdir()
    (update_dir / channel_config.UPDATE_FILE).write_bytes(b"\x0a\x06tokens the update bytes")
    (update_dir / channel_config.SUMMARY_FILE).write_text(json.dumps(
        {"requirements": [{"policy": "/Channel/Application/Admins", "modifies": "/Channel/Application"}]}))  # fmt: skip
    return update_dir, config, {msp: (cert, key) for msp, (_r, cert, key) in pki.items()}


def test_signatures_are_counted_until_the_majority(signed: Any) -> None:
    update_dir, config, keys = signed
    for msp in ("AMSP", "BMSP"):
        channel_config.sign_update(update_dir, msp, *keys[msp])
    signers, problems = channel_config.check_signatures(update_dir, config)
    assert {s.msp_id for s in signers} == {"AMSP", "BMSP"}
    assert len(problems) == 1 and "1 more signature missing" in problems[0] and "CMSP, DMSP" in problems[0]
    channel_config.sign_update(update_dir, "AMSP", *keys["AMSP"])  # signing twice adds nothing
    assert len(channel_config.check_signatures(update_dir, config)[1]) == 1
    channel_config.sign_update(update_dir, "CMSP", *keys["CMSP"])
    assert channel_config.check_signatures(update_dir, config)[1] == []


def test_a_signature_over_other_bytes_is_refused_by_name(signed: Any) -> None:
    update_dir, config, keys = signed
    path = channel_config.sign_update(update_dir, "AMSP", *keys["AMSP"])
    (update_dir / channel_config.UPDATE_FILE).write_bytes(b"something else")
    with pytest.raises(ConfigUpdateError, match=r"AMSP\.sig: the signature of AMSP does not match"):
        channel_config.verified_signers(update_dir, config)
    assert path.exists()


def test_a_key_from_another_ca_is_refused(signed: Any, tmp_path: Path) -> None:
    update_dir, config, _keys = signed
    _root, cert, key = _org_pki(tmp_path, "Impostor")
    channel_config.sign_update(update_dir, "BMSP", cert, key)  # claims to be BMSP
    with pytest.raises(ConfigUpdateError, match="not issued by BMSP's CA in the channel config"):
        channel_config.verified_signers(update_dir, config)


def test_garbage_in_a_signature_file_is_refused(signed: Any) -> None:
    update_dir, config, _keys = signed
    (update_dir / channel_config.SIGNATURES).mkdir(exist_ok=True)
    (update_dir / channel_config.SIGNATURES / "CMSP.sig").write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(ConfigUpdateError, match=r"CMSP\.sig: not a config signature"):
        channel_config.verified_signers(update_dir, config)
