"""Alembic environment: runs on the connection handed over by ``Database.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gateway.bank_api.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # Plain `alembic -x ...` use: open our own connection from the configured URL.
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
        with engine.begin() as own_connection:
            context.configure(connection=own_connection, target_metadata=target_metadata)
            context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()


run_migrations()
