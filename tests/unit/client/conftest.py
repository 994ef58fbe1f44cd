"""Fixtures for the Fabric client unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_test_keys import Credentials, make_credentials
from fake_gateway import FakeGateway


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return make_credentials()


@pytest.fixture
def msp_dir(tmp_path: Path, credentials: Credentials) -> Path:
    """An MSP folder laid out as cryptogen writes it."""
    msp = tmp_path / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    (msp / "signcerts" / "User1@bank.example.com-cert.pem").write_bytes(credentials.cert_pem)
    (msp / "keystore" / "priv_sk").write_bytes(credentials.key_pem)
    return msp


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway()
