"""The Fabric client installed alone: its wheel, in an empty virtual environment, evaluates, submits
with transient data and resumes a chaincode-event listener from a checkpoint on the real network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.client_package import installed_client

pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]

SCRIPT = Path(__file__).with_name("standalone_client_script.py")


def test_installed_wheel_evaluates_submits_and_resumes_events(network: dict[str, Any], profile_path: Path) -> None:
    client = installed_client()

    result = client.run(str(SCRIPT), str(profile_path), str(client.workdir), timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events"] == {"first_life": 1, "second_life": 2}
    # the library ran from the venv, not from the project tree
    assert str(client.python.parents[1]) in summary["fabric_client"]
