"""Schemathesis on the regulator gateway's /openapi.json (the contract in memory): no 5xx, answers as documented."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from gateway.bank_api.app import create_app
from tests.unit.bank_api.test_bank_api_schemathesis import CHECKS
from tests.unit.contract.conftest import HK, REG, US, new_ledger
from tests.unit.regulator.channel_ledger import ChannelLedger


def _build_app() -> tuple[Any, str]:
    folder = Path(tempfile.mkdtemp(prefix="regulator-schemathesis-"))
    contract = new_ledger()
    contract.open(US, "payer", "US")
    contract.open(HK, "payee", "HK")
    contract.issue(US, "payer", 10_000)
    request = {"idempotency_key": "k", "payer_account": "payer", "payee_bank": HK, "payee_account": "payee",
               "currency": "USD", "amount": 100, "pending_credits": contract.pending(US, "payer")}  # fmt: skip
    payment_id = contract.submit(US, "InitiatePayment", request)["payment_id"]
    contract.submit(HK, "CompletePayment", {"payment_id": payment_id})
    contract.submit(HK, "OpenSettlementCycle", args=["cycle-1"])
    app = create_app(
        {
            "msp_id": REG,
            "role": "regulator",
            "database_url": f"sqlite:///{folder / 'db.sqlite'}",
            "operator_key_file": str(folder / "operator.key"),
        },
        ledger=ChannelLedger(contract.channel, REG),
    )
    return app, (folder / "operator.key").read_text().strip()


APP, KEY = _build_app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)

FUZZ_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@schema.parametrize()
@FUZZ_SETTINGS
def test_regulator_api_with_the_operator_key(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_regulator_api_without_a_key(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
