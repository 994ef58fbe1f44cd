"""Schemathesis against /openapi.json on the app (fake ledger): no 5xx, every answer as documented."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.bank_api.app import create_app
from tests.unit.bank_api.fake_ledger import FakeNetwork

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _build_app() -> tuple[Any, dict[str, str]]:
    """One app for the whole module: Schemathesis needs the schema when tests are collected."""
    folder = Path(tempfile.mkdtemp(prefix="bank-api-schemathesis-"))
    network = FakeNetwork()
    app = create_app(
        {
            "msp_id": "USBankMSP",
            "database_url": f"sqlite:///{folder / 'db.sqlite'}",
            "operator_key_file": str(folder / "operator.key"),
            "idempotency_wait_seconds": 1,
        },
        ledger=network.ledger("USBankMSP"),
    )
    operator_key = (folder / "operator.key").read_text().strip()
    client = app.test_client()
    opened = client.post(
        "/v1/accounts",
        json={"holder": "Fuzz Co", "jurisdiction": "US", "kyc_ref": "K", "account_id": "acc-fuzz"},
        headers={"Authorization": f"Bearer {operator_key}"},
    ).get_json()
    client.post(
        "/v1/issuances",
        json={"account_id": "acc-fuzz", "currency": "USD", "amount": "1000.00", "deposit_ref": "seed"},
        headers={"Authorization": f"Bearer {operator_key}"},
    )
    return app, {"operator": operator_key, "merchant": opened["api_key"]}


APP, KEYS = _build_app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_operator(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEYS['operator']}"}, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_merchant(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEYS['merchant']}"}, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_without_a_key(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
