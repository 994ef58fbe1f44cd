"""The gateway on PostgreSQL: migrations, idempotency races (the unique-constraint path), restart.

Runs when ``BANK_API_TEST_POSTGRES_URL`` names an empty database it may use, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/bank_api_test`` (needs the psycopg driver).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gateway.bank_api.app import create_app
from tests.unit.bank_api.fake_ledger import FakeNetwork

URL = os.environ.get("BANK_API_TEST_POSTGRES_URL", "")

pytestmark = pytest.mark.skipif(not URL, reason="set BANK_API_TEST_POSTGRES_URL to run against PostgreSQL")


@pytest.fixture
def clean_database() -> Iterator[str]:
    def wipe() -> None:
        engine = create_engine(URL)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()

    wipe()
    yield URL
    wipe()


def _app(network: FakeNetwork, msp: str, url: str, folder: Path) -> Any:
    app = create_app(
        {"msp_id": msp, "database_url": url, "operator_key_file": str(folder / f"{msp}.key")},
        ledger=network.ledger(msp),
    )
    return app


def test_gateway_on_postgres(clean_database: str, tmp_path: Path) -> None:
    network = FakeNetwork()
    us = _app(network, "USBankMSP", clean_database, tmp_path)
    op = {"Authorization": "Bearer " + (tmp_path / "USBankMSP.key").read_text().strip()}
    client = us.test_client()
    opened = client.post("/v1/accounts", json={"holder": "PG Co", "jurisdiction": "US", "kyc_ref": "k"}, headers=op)
    assert opened.status_code == 201
    account, key = opened.get_json()["account"]["account_id"], opened.get_json()["api_key"]
    network.accounts["HKBankMSP"] = {}
    network.ledger("HKBankMSP").open_account("acc-payee", "Payee", "HK", "k")
    issued = client.post(
        "/v1/issuances",
        json={"account_id": account, "currency": "USD", "amount": "50.00", "deposit_ref": "pg-1"},
        headers=op,
    )
    assert issued.status_code == 201

    barrier = threading.Barrier(20)

    def one(_: int) -> Any:
        barrier.wait()
        return us.test_client().post(
            "/v1/payments",
            json={"payee_bank": "HKBankMSP", "payee_account": "acc-payee", "currency": "USD", "amount": "5.00"},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "pg-burst"},
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(one, range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.get_data() for r in responses}) == 1
    assert len(network.payments) == 1
    assert network.balance("USBankMSP", account, "USD") == 4500

    us.extensions["bank_api"].db.dispose()
    restarted = _app(network, "USBankMSP", clean_database, tmp_path)  # migrations run again: no-op
    again = restarted.test_client().post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": "acc-payee", "currency": "USD", "amount": "5.00"},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "pg-burst"},
    )
    assert again.get_data() == responses[0].get_data()
    restarted.extensions["bank_api"].db.dispose()
