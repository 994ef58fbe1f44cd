"""The schema the migrations build is the one the models declare, and the hot queries use their indexes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects import sqlite

from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import Base
from gateway.bank_api.workers import _DUE


def _migrated(folder: Path) -> Database:
    db = Database(f"sqlite:///{folder / 'bank_api.sqlite'}")
    db.migrate()
    return db


def test_the_migrations_build_the_schema_the_models_declare(tmp_path: Path) -> None:
    db = _migrated(tmp_path)
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_the_dispatcher_finds_due_tasks_by_the_state_and_time_index(tmp_path: Path) -> None:
    # Done tasks stay for days: a plan that walked the table, or the time index alone, would read them all.
    db = _migrated(tmp_path)
    compiled = _DUE.compile(dialect=sqlite.dialect())
    params = compiled.construct_params({"now": datetime.now(UTC), "limit": 5})
    values = [params[name] for name in compiled.positiontup or []]
    with db.engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(_plain(v) for v in values)).all()
    details = " ".join(str(row[-1]) for row in plan)
    assert "ix_payment_tasks_state_due" in details, details
    assert "SCAN payment_tasks" not in details, details


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
