"""The hfc connection profile: what fabric-sdk-py reads, pointing at each org's own files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from network.consortium import Consortium
from network.hfc_profile import CREDENTIAL_STORE, HFC_PROFILE, build_hfc_profile, write_hfc_profile
from network.topology import load_topology

BASE = 23000


@pytest.fixture
def net(tmp_path: Path) -> Consortium:
    return Consortium(load_topology(), tmp_path / "state", BASE, progress=lambda _m: None)


def test_every_org_has_its_peer_users_and_orderers_by_name(net: Consortium) -> None:
    profile = build_hfc_profile(net)
    orgs = profile["organizations"]
    assert list(orgs) == ["USBank", "HKBank", "SGBank", "Regulator"]
    us = orgs["USBank"]
    assert us["mspid"] == "USBankMSP"
    assert us["peers"] == ["peer0.usbank.example.com"]
    assert us["orderers"] == ["orderer0.usbank.example.com"]
    assert set(profile["orderers"]) == {f"orderer0.{o.lower()}.example.com" for o in orgs}
    assert set(profile["channels"]["tokens"]["peers"]) == set(profile["peers"])
    assert profile["channels"]["tokens"]["orderers"] == list(profile["orderers"])


def test_peers_and_orderers_are_dialled_on_the_orgs_own_host_with_its_tls_name(net: Consortium) -> None:
    profile = build_hfc_profile(net)
    peer = profile["peers"]["peer0.hkbank.example.com"]
    # a bare host:port: hfc passes the url to gRPC as the target
    assert peer["url"] == f"127.0.0.3:{BASE + 120}"
    assert peer["grpcOptions"] == {"grpc.ssl_target_name_override": "peer0.hkbank.example.com"}
    assert peer["tlsCACerts"]["path"] == str(net.home("HKBankMSP").tls_ca)
    orderer = profile["orderers"]["orderer0.sgbank.example.com"]
    assert orderer["url"] == f"127.0.0.4:{BASE + 20}"
    assert orderer["grpcOptions"]["grpc.ssl_target_name_override"] == "orderer0.sgbank.example.com"
    # another org's TLS root comes from its published definition, not from its folder
    assert orderer["tlsCACerts"]["path"] == str(net.org_tls_ca("SGBankMSP"))
    ca = profile["certificateAuthorities"]["ca.regulator.example.com"]
    assert ca["url"] == f"https://127.0.0.5:{BASE + 160 + 6}"
    assert ca["caName"] == "ca.regulator"


def test_each_orgs_users_are_files_in_that_orgs_own_folder(net: Consortium) -> None:
    for name, org in build_hfc_profile(net)["organizations"].items():
        home = net.home(org["mspid"])
        assert set(org["users"]) == {"Admin", "User1"}, name
        for user, files in org["users"].items():
            assert files == {"cert": str(home.user_cert(user)), "private_key": str(home.user_key(user))}
            assert Path(files["private_key"]).is_relative_to(home.root)


def test_written_next_to_the_network_profile_with_a_private_credential_store(net: Consortium) -> None:
    net.state_dir.mkdir(parents=True)
    path = write_hfc_profile(net)
    assert path == net.state_dir / HFC_PROFILE
    written: dict[str, Any] = json.loads(path.read_text())
    assert written == build_hfc_profile(net)
    store = Path(written["client"]["credentialStore"]["path"])
    assert store == net.state_dir / CREDENTIAL_STORE
    # hfc keeps a copy of every user's key there
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
