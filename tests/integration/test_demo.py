"""`make demo`'s scenario, run as a test against the test network, with its outcome asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import BASE_PORT, ROOT, STATE_DIR

pytestmark = pytest.mark.network


def supply_by_class(profile: dict[str, Any]) -> dict[tuple[str, str], Decimal]:
    org = profile["orgs"]["USBankMSP"]
    key = Path(org["operator_key_file"]).read_text().strip()
    response = requests.get(
        f"{org['gateway_url']}/v1/supply", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return {(c["issuer"], c["currency"]): Decimal(c["supply"]) for c in response.json()["token_classes"]}


def test_demo_plays_the_trade_scenario_and_leaves_the_expected_books(
    network: dict[str, Any], tmp_path: Path
) -> None:
    before = supply_by_class(network)
    summary = tmp_path / "demo.json"
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--base-port", str(BASE_PORT), "--state-dir", str(STATE_DIR),
         "--summary-json", str(summary)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Reusing the network already running" in out
    for step in range(1, 8):
        assert f"\n{step}. " in out, f"step {step} missing from the demo output"
    assert "corridor_forbidden" in out
    assert "make down" in out

    outcome = json.loads(summary.read_text())
    buyer, supplier = outcome["accounts"]["buyer"], outcome["accounts"]["supplier"]
    # 250,000 issued; 120,000 and 20,000 paid away
    assert buyer["balances"] == {"USD": "110000.00"}
    # 120,000 received and 50,000 redeemed; 20,000 USD delivered as HKD at the locked rate
    fx = outcome["payments"]["fx"]
    rate = Decimal(fx["rate"])
    assert fx["status"] == "completed" and fx["payee_currency"] == "HKD"
    assert Decimal(fx["payee_amount"]) == (Decimal("20000.00") * rate).quantize(Decimal("0.01"))
    assert supplier["balances"]["USD"] == "70000.00"
    assert Decimal(supplier["balances"]["HKD"]) == Decimal(fx["payee_amount"])
    assert outcome["payments"]["usd"]["status"] == "completed"
    assert outcome["cycle"]["status"] == "settled"
    assert outcome["refusal"]["code"] == "corridor_forbidden"

    after = supply_by_class(network)
    delta = {k: after.get(k, Decimal(0)) - before.get(k, Decimal(0)) for k in after}
    assert delta[("USBankMSP", "USD")] == Decimal("110000.00")  # minted 250k, burned 140k paying out
    assert delta[("HKBankMSP", "USD")] == Decimal("70000.00")  # minted 120k crediting, burned 50k redeeming
    assert delta[("HKBankMSP", "HKD")] == Decimal(fx["payee_amount"])
    assert delta[("HKBankMSP", "CNH")] == Decimal("50000.00")  # the refused transfer moved nothing
    assert all(v == 0 for k, v in delta.items() if k[0] == "SGBankMSP")
