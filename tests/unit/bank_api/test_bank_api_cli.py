"""The command line: configuration errors and the operator-key command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.bank_api.__main__ import main


def _profile(tmp_path: Path) -> Path:
    key_file = tmp_path / "gateways" / "USBankMSP" / "operator.key"
    profile = {
        "channel": "tokens",
        "state_dir": str(tmp_path),
        "orgs": {"USBankMSP": {"kind": "bank", "gateway_url": "http://127.0.0.1:27103",
                               "operator_key_file": str(key_file)}},
    }  # fmt: skip
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    return path


def test_operator_key_is_created_once_and_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = _profile(tmp_path)
    assert main(["operator-key", "--profile", str(profile), "--msp", "USBankMSP"]) == 0
    key_file = Path(capsys.readouterr().out.strip())
    first = key_file.read_text()
    assert first.startswith("dtk_")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert main(["operator-key", "--profile", str(profile), "--msp", "USBankMSP"]) == 0
    assert key_file.read_text() == first
    key_file.unlink()
    assert main(["operator-key", "--profile", str(profile), "--msp", "USBankMSP"]) == 0
    assert key_file.read_text() != first


def test_configuration_errors_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BANK_API_PROFILE", "BANK_API_MSP", "BANK_API_MSP_ID", "BANK_API_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve"]) == 2
    assert "no bank given" in capsys.readouterr().err
    assert main(["serve", "--profile", str(_profile(tmp_path))]) == 2
    assert "--msp is required" in capsys.readouterr().err
    assert main(["migrate", "--profile", str(tmp_path / "missing.json"), "--msp", "USBankMSP"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_variables_apply_over_the_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As config.py documents: the profile first, then BANK_API_* variables (here: the database)."""
    database = tmp_path / "elsewhere.sqlite"
    monkeypatch.setenv("BANK_API_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("BANK_API_MSP", "SGBankMSP")  # the command line names the bank, not this
    assert main(["migrate", "--profile", str(_profile(tmp_path)), "--msp", "USBankMSP"]) == 0
    assert database.exists()
    assert not (tmp_path / "gateways" / "USBankMSP" / "bank_api.sqlite").exists()
