"""Support for the Fabric client integration tests (tests/integration/test_client_*.py).

The tests run on the shared test network of ``conftest.py``. ``DT_CLIENT_PROFILE=<profile.json>`` points
them at a network that is already running instead (for example one started with a topology that holds
only the ``conformance`` chaincode).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from fabric_client import Gateway
from fabric_client.profile import connect_org

CHAINCODE = "conformance"
BANKS = ("USBankMSP", "HKBankMSP", "SGBankMSP")
REGULATOR = "RegulatorMSP"


def profile_path_for(request: pytest.FixtureRequest) -> Path:
    override = os.environ.get("DT_CLIENT_PROFILE")
    if override:
        return Path(override)
    path: Path = request.getfixturevalue("profile_path")
    return path


def load(profile_path: Path) -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(profile_path.read_text())
    return profile


def connect_all(profile_path: Path) -> dict[str, Gateway]:
    return {msp_id: connect_org(profile_path, msp_id) for msp_id in (*BANKS, REGULATOR)}


def unique(prefix: str) -> str:
    """A key or name no other test run uses, so runs on a reused network do not interfere."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
