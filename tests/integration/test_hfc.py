"""A fabric-sdk-py (hfc) application against the test network, in an environment of its own.

compat/hfc/venv.py builds the hfc environment (cached: a second run only checks its stamp) and
compat/hfc/app.py runs in it as a subprocess with the hfc profile the network tool wrote; the
tests read its JSON report, and our own client checks that what hfc wrote is on the ledger.
See docs/hfc.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fabric_client.profile import connect_org

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.network

HFC = ROOT / "compat" / "hfc"
NO_INTERPRETER = 3  # compat/hfc/venv.py: no Python that hfc runs on
BANK, BANK_MSP, OTHER_BANK = "USBank", "USBankMSP", "HKBank"


@pytest.fixture(scope="module")
def hfc_python() -> Path:
    result = subprocess.run(
        [sys.executable, str(HFC / "venv.py")], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode == NO_INTERPRETER:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, f"building the hfc environment failed:\n{result.stderr[-3000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def report(network: dict[str, Any], state_dir: Path, hfc_python: Path) -> dict[str, Any]:
    profile = state_dir / "hfc-profile.json"
    result = subprocess.run(
        [str(hfc_python), str(HFC / "app.py"), "--profile", str(profile), "--bank", BANK, "--other-bank", OTHER_BANK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["ok"] is True
    return data


def test_the_application_runs_hfc_in_its_own_environment(report: dict[str, Any]) -> None:
    assert report["versions"]["fabric-sdk-py"] == "1.0.0"
    # hfc's generated protobuf code needs 3.20; the project's environment has protobuf 5
    assert report["versions"]["protobuf"].startswith("3.20.")
    assert report["bank"] == {"org": BANK, "msp_id": BANK_MSP, "peer": "peer0.usbank.example.com"}


def test_query_reads_the_reference_data(report: dict[str, Any], network: dict[str, Any]) -> None:
    query = report["query"]
    banks = sorted(msp for msp, org in network["orgs"].items() if org["kind"] == "bank")
    assert query["banks"] == banks
    assert query["regulator"] == "RegulatorMSP"
    assert query["payment_timeout_seconds"] > 0


def test_invoke_commits_as_the_regulator(report: dict[str, Any]) -> None:
    invoke = report["invoke"]
    assert invoke["org"] == "Regulator"
    assert len(invoke["tx_id"]) == 64
    assert invoke["result"] == {"payment_timeout_seconds": report["query"]["payment_timeout_seconds"]}


def test_invoke_with_transient_data_opens_an_account_that_reads_back(report: dict[str, Any]) -> None:
    opened = report["transient_invoke"]
    assert opened["result"] == {"status": "active", "opened": True}
    sent, read_back = opened["sent"], opened["read_back"]
    assert read_back["account_id"] == sent["account_id"]
    assert read_back["holder"] == sent["holder"]
    assert read_back["jurisdiction"] == sent["jurisdiction"]
    assert read_back["status"] == "active"
    assert opened["tx_id"] != report["invoke"]["tx_id"]


def test_what_hfc_committed_is_on_the_ledger_for_our_own_client(report: dict[str, Any], profile_path: Path) -> None:
    sent = report["transient_invoke"]["sent"]
    gateway = connect_org(profile_path, BANK_MSP)
    try:
        contract = gateway.get_network(report["channel"]).get_contract("deposit_token")
        raw = contract.evaluate_transaction(
            "GetAccount",
            transient={"request": json.dumps({"account_id": sent["account_id"]}).encode()},
            endorsing_organizations=[BANK_MSP],
        )
    finally:
        gateway.close()
    assert json.loads(raw)["holder"] == sent["holder"]


def test_the_listener_sees_the_committed_transaction(report: dict[str, Any]) -> None:
    event = report["event"]
    assert event["tx_id"] == report["transient_invoke"]["tx_id"]
    assert event["name"] == "AccountOpened"
    assert event["status"] == "VALID"
    assert event["payload"] == {"bank": BANK_MSP}
    assert event["block"] >= report["height_before"]


def test_a_refused_endorsement_is_an_error(report: dict[str, Any]) -> None:
    refusal = report["refusal"]
    # the contract serves a bank only on the bank's own peer
    assert refusal["error"] == "Refused"
    assert refusal["peer"] == "peer0.hkbank.example.com"
    assert "[not_authorized]" in refusal["message"]


def test_a_refused_query_raises(report: dict[str, Any]) -> None:
    refusal = report["query_refusal"]
    assert refusal["error"] == "Exception"
    # the account the refused invoke tried to open does not exist
    assert any(message.startswith("[unknown_account]") for message in refusal["messages"]), refusal
