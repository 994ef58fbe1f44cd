"""The gateway on PostgreSQL: migrations, idempotency races (the unique-constraint path), restart.

Uses ``BANK_API_TEST_POSTGRES_URL`` when it names an empty database it may use, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/bank_api_test``. Otherwise it starts a throw-away
PostgreSQL cluster of its own (``initdb`` in a temporary folder, run as the ``postgres`` system
user, listening on 127.0.0.1 only) and stops it afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from gateway.bank_api.app import create_app
from gateway.bank_api.storage.models import Base
from gateway.bank_api.workers import PaymentTasks, TaskSpec
from tests.unit.bank_api.fake_ledger import FakeNetwork

URL = os.environ.get("BANK_API_TEST_POSTGRES_URL", "")


def _postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    if URL:
        yield URL
        return
    bin_dir = _postgres_bin()
    try:
        pwd.getpwnam("postgres")
        import psycopg  # noqa: F401  (the driver the URL names)
    except (KeyError, ImportError):
        bin_dir = None
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed here: set BANK_API_TEST_POSTGRES_URL to a database to use")
    # not under pytest's private temporary folder, which the postgres user cannot enter
    folder = Path(tempfile.mkdtemp(prefix="bank-api-pg-"))
    data, port = folder / "data", _free_port()
    shutil.chown(folder, user="postgres")
    # PostgreSQL refuses to run as root, so the cluster belongs to the postgres system user.
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
    subprocess.run(
        [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"),
         "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE bank_api_test"))
        admin.dispose()
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/bank_api_test"
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def clean_database(database_url: str) -> Iterator[str]:
    def wipe() -> None:
        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()

    wipe()
    yield database_url
    wipe()


def _app(network: FakeNetwork, msp: str, url: str, folder: Path) -> Any:
    # The burst below sends twenty writes at once, more than the default cap on writes in flight
    # (12), which would refuse some of them as overloaded; this test is about the database.
    app = create_app(
        {
            "msp_id": msp,
            "database_url": url,
            "operator_key_file": str(folder / f"{msp}.key"),
            "max_concurrent_writes": 20,
        },
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


def test_a_dispatcher_on_postgres_passes_over_tasks_another_is_claiming(clean_database: str, tmp_path: Path) -> None:
    # Two gateways on one server database: a claim locks what it takes, and another claim at the
    # same moment passes over the locked rows (FOR UPDATE SKIP LOCKED) instead of waiting for them
    # and then taking them a second time.
    app = create_app(
        {
            "msp_id": "USBankMSP",
            "database_url": clean_database,
            "operator_key_file": str(tmp_path / "USBankMSP.key"),
            "follow_events": False,
            "deliver_webhooks": False,
        },
        ledger=FakeNetwork().ledger("USBankMSP"),
    )
    services = app.extensions["bank_api"]
    tasks = PaymentTasks(services)
    specs = [TaskSpec("notify", f"payment-{i}", "PaymentCompleted") for i in range(40)]
    assert tasks.queue(specs) == 40
    assert tasks.queue(specs[:5]) == 0  # already queued: left alone
    with services.db.engine.connect() as other, ThreadPoolExecutor(max_workers=1) as pool:
        other_claim = other.begin()  # another gateway, half-way through claiming the first ten
        held = set(other.scalars(text("SELECT id FROM payment_tasks ORDER BY id LIMIT 10 FOR UPDATE")).all())
        claiming = pool.submit(tasks._claim, 40)
        try:
            taken = {task.id for task in claiming.result(timeout=20)}
        finally:
            other_claim.rollback()
    assert len(held) == 10 and len(taken) == 30 and not held & taken
    assert {task.id for task in tasks._claim(40)} == held  # free once the other let go
    assert tasks._claim(40) == []  # every one is leased now
    with services.db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    services.db.dispose()
