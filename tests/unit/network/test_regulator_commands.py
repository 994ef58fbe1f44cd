"""The regulator's commands without a network: arguments, what is submitted, how refusals read.

``tests/integration/test_bank_suspension.py`` runs them against the real network.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from network.__main__ import main
from network.material import MaterialError
from network.regulator_commands import Refused, describe, submit

# What the peer CLI prints when the chaincode refuses an invoke (Fabric 2.5).
PEER_REFUSAL = (
    "invoke SuspendBank on deposit_token failed (exit 1):\n"
    'Error: endorsement failure during invoke. response: status:409 message:"[invalid_state] HKBankMSP is '
    'already suspended since 2025-01-06T09:00:00.000000Z (reason: \\"AML\\" review)"'
)


# Just what ``submit`` reads of a Consortium.
NET: Any = SimpleNamespace(topology=SimpleNamespace(regulator="RegulatorOrg"))


def test_a_contract_refusal_is_reported_with_its_code_and_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def refusing(*_: Any, **__: Any) -> str:
        raise MaterialError(PEER_REFUSAL)

    monkeypatch.setattr("network.deploy.invoke", refusing)
    with pytest.raises(Refused) as refused:
        submit(NET, "SuspendBank", ["HKBankMSP", "again"])
    assert str(refused.value) == (
        '[invalid_state] HKBankMSP is already suspended since 2025-01-06T09:00:00.000000Z (reason: "AML" review)'
    )


def test_other_failures_are_not_mistaken_for_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*_: Any, **__: Any) -> str:
        raise MaterialError("invoke failed (exit 1):\nError: error getting endorser client: connection refused")

    monkeypatch.setattr("network.deploy.invoke", unreachable)
    with pytest.raises(MaterialError, match="connection refused"):
        submit(NET, "ReinstateBank", ["HKBankMSP"])


def test_the_regulator_submits_the_named_function_and_waits_for_a_valid_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []

    def recording(net: Any, cc: str, org: Any, function: str, args: list[str]) -> str:
        calls.append((cc, org, function, args))
        return "Chaincode invoke successful. result: status:200\ntxid [ab] committed with status (VALID) at peer"

    monkeypatch.setattr("network.deploy.invoke", recording)
    submit(NET, "SuspendBank", ["HKBankMSP", "AML review"])
    assert calls == [("deposit_token", "RegulatorOrg", "SuspendBank", ["HKBankMSP", "AML review"])]

    monkeypatch.setattr("network.deploy.invoke", lambda *_: "txid [ab] committed with status (MVCC_READ_CONFLICT)")
    with pytest.raises(Refused, match=r"SuspendBank was not committed as valid"):
        submit(NET, "SuspendBank", ["HKBankMSP", "AML review"])


def test_banks_are_described_one_line_each() -> None:
    assert describe({"msp_id": "USBankMSP", "status": "active", "status_reason": None, "status_since": None}) == (
        "USBankMSP        active    "
    )
    suspended = {
        "msp_id": "HKBankMSP",
        "status": "suspended",
        "status_reason": "AML review",
        "status_since": "2025-01-06T09:00:00.000000Z",
    }
    assert describe(suspended) == "HKBankMSP        suspended  since 2025-01-06T09:00:00.000000Z  reason: AML review"
    # A record from before suspensions existed has no status: active.
    assert describe({"msp_id": "SGBankMSP"}).split() == ["SGBankMSP", "active"]


def test_the_command_line_asks_for_a_bank_and_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["regulator", "suspend-bank", "--bank", "HKBankMSP"])
    assert "--reason" in capsys.readouterr().err


def test_without_a_running_network_the_command_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--state-dir", str(tmp_path / "none"), "regulator", "reinstate-bank", "--bank", "HKBankMSP"])
    assert code == 1
    assert "no network is running" in capsys.readouterr().err
