"""Shared fixture: one real Fabric network for the whole integration test session.

The network is started by the project's own tool (``python -m network up``) with the
test chaincodes, on its own ports, and taken down at the end.

Environment:
- ``DT_TEST_BASE_PORT`` (default 17000) and ``DT_TEST_STATE_DIR`` (default .state/test):
  use your own pair when several people run tests on one machine at once.
- ``DT_TEST_KEEP_NETWORK=1``: leave the network running after the session (and reuse a
  running one), to iterate quickly on tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = int(os.environ.get("DT_TEST_BASE_PORT", "17000"))
STATE_DIR = Path(os.environ.get("DT_TEST_STATE_DIR", str(ROOT / ".state" / "test"))).resolve()
KEEP = os.environ.get("DT_TEST_KEEP_NETWORK") == "1"


def network_cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the network tool against the test network."""
    cmd = [
        sys.executable,
        "-m",
        "network",
        "--base-port",
        str(BASE_PORT),
        "--state-dir",
        str(STATE_DIR),
        *args,
    ]
    # the webhook tests' receivers listen on loopback, which the gateways refuse unless allowed
    env = {**os.environ, "BANK_API_WEBHOOK_ALLOWED_TARGETS": "127.0.0.1"}
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def network() -> Iterator[dict[str, Any]]:
    """Bring the test network up (or reuse it) and yield its profile."""
    result = network_cli("up", "--with-test-chaincodes")
    sys.stderr.write(result.stdout)
    profile: dict[str, Any] = json.loads((STATE_DIR / "profile.json").read_text())
    yield profile
    if not KEEP:
        network_cli("down", check=False)


@pytest.fixture(scope="session")
def profile_path(network: dict[str, Any]) -> Path:
    return STATE_DIR / "profile.json"


@pytest.fixture(scope="session")
def state_dir(network: dict[str, Any]) -> Path:
    return STATE_DIR
