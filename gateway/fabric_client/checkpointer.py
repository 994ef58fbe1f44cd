"""Checkpointers: remember how far an event listener got, so a restarted listener resumes exactly there.

A checkpoint is a block number plus, optionally, the id of the last transaction handled in that block.
Resuming from (block, transaction id) asks the peer to start at that block and to skip every event up to
and including that transaction, so an event handled before the restart is not delivered again, and one
that was not yet handled is. The listener checkpoints *after* handling each event; see
``Network.get_chaincode_events``.

Three stores share the ``Checkpointer`` protocol: ``InMemoryCheckpointer`` (one process lifetime),
``FileCheckpointer`` (a JSON file replaced atomically) and ``SqliteCheckpointer`` (a row in a SQLite
table; other databases can implement the same protocol).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .chaincode_events import ChaincodeEvent

__all__ = ["Checkpointer", "FileCheckpointer", "InMemoryCheckpointer", "SqliteCheckpointer"]


@runtime_checkable
class Checkpointer(Protocol):
    """Where an event listener is up to."""

    @property
    def block_number(self) -> int | None:
        """The block to resume from, or ``None`` when nothing was checkpointed yet."""
        ...

    @property
    def transaction_id(self) -> str | None:
        """The last transaction already handled within ``block_number``, if any."""
        ...

    def checkpoint_block(self, block_number: int) -> None:
        """Every event of ``block_number`` is handled: resume at the next block."""
        ...

    def checkpoint_transaction(self, block_number: int, transaction_id: str) -> None:
        """Every event up to and including ``transaction_id`` in ``block_number`` is handled."""
        ...

    def checkpoint_chaincode_event(self, event: ChaincodeEvent) -> None:
        """``event`` is handled (same as ``checkpoint_transaction`` with its block and transaction)."""
        ...


class _CheckpointState:
    """Shared bookkeeping; subclasses persist the state in ``_save``."""

    def __init__(self) -> None:
        self._block_number: int | None = None
        self._transaction_id: str | None = None
        self._lock = threading.Lock()

    @property
    def block_number(self) -> int | None:
        return self._block_number

    @property
    def transaction_id(self) -> str | None:
        return self._transaction_id

    def checkpoint_block(self, block_number: int) -> None:
        self._set(_check_block(block_number) + 1, None)

    def checkpoint_transaction(self, block_number: int, transaction_id: str) -> None:
        if not transaction_id:
            raise ValueError("checkpoint needs a transaction id; use checkpoint_block for a whole block")
        self._set(_check_block(block_number), transaction_id)

    def checkpoint_chaincode_event(self, event: ChaincodeEvent) -> None:
        self.checkpoint_transaction(event.block_number, event.transaction_id)

    def _set(self, block_number: int, transaction_id: str | None) -> None:
        with self._lock:
            # Persist first: if saving fails, memory must not run ahead of what a restart would see.
            self._save(block_number, transaction_id)
            self._block_number = block_number
            self._transaction_id = transaction_id

    def _save(self, block_number: int, transaction_id: str | None) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(block_number={self._block_number}, transaction_id={self._transaction_id!r})"


def _check_block(block_number: int) -> int:
    if isinstance(block_number, bool) or not isinstance(block_number, int) or block_number < 0:
        raise ValueError(f"block number must be a non-negative integer, got {block_number!r}")
    return block_number


class InMemoryCheckpointer(_CheckpointState):
    """Keeps the checkpoint in memory: resumes a stream within one process (for example after a
    dropped connection), not across restarts."""

    def _save(self, block_number: int, transaction_id: str | None) -> None:
        return None


class FileCheckpointer(_CheckpointState):
    """Keeps the checkpoint in a JSON file. Each checkpoint writes a temporary file, flushes it to disk
    and renames it over the old one, so a crash leaves either the old or the new checkpoint, never a
    torn file."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            if text.strip():
                try:
                    state = json.loads(text)
                    block = state.get("blockNumber")
                    tx_id = state.get("transactionId")
                    self._block_number = None if block is None else _check_block(int(block))
                    self._transaction_id = str(tx_id) if tx_id else None
                except (ValueError, TypeError, AttributeError) as error:
                    raise ValueError(f"checkpoint file {self.path} is not a valid checkpoint") from error

    def _save(self, block_number: int, transaction_id: str | None) -> None:
        data = json.dumps({"blockNumber": block_number, "transactionId": transaction_id})
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self.path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        # The rename itself is durable only once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class SqliteCheckpointer(_CheckpointState):
    """Keeps checkpoints as rows of table ``fabric_checkpoints`` (one row per listener ``name``).

    Pass a path, or an open ``sqlite3.Connection`` of the application: each checkpoint commits that
    connection, so an application that writes the effect of an event and then checkpoints on the same
    connection gets both in one transaction (exactly-once handling even across crashes).
    """

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS fabric_checkpoints ("
        "name TEXT PRIMARY KEY, block_number INTEGER NOT NULL, transaction_id TEXT)"
    )

    def __init__(self, database: str | Path | sqlite3.Connection, name: str = "default") -> None:
        super().__init__()
        if not name:
            raise ValueError("checkpointer name must not be empty")
        self.name = name
        if isinstance(database, sqlite3.Connection):
            self._connection = database
            self._owns_connection = False
        else:
            # Checkpoints may be written from a listener thread; the lock in _CheckpointState serialises use.
            self._connection = sqlite3.connect(str(database), check_same_thread=False)
            self._owns_connection = True
        with self._connection:
            self._connection.execute(self._SCHEMA)
        row = self._connection.execute(
            "SELECT block_number, transaction_id FROM fabric_checkpoints WHERE name = ?", (name,)
        ).fetchone()
        if row is not None:
            self._block_number = int(row[0])
            self._transaction_id = row[1] or None

    def _save(self, block_number: int, transaction_id: str | None) -> None:
        with self._connection:
            self._connection.execute(
                "INSERT INTO fabric_checkpoints (name, block_number, transaction_id) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET block_number = excluded.block_number, "
                "transaction_id = excluded.transaction_id",
                (self.name, block_number, transaction_id),
            )

    def close(self) -> None:
        """Close the database connection if this checkpointer opened it (one passed in stays open)."""
        if self._owns_connection:
            self._connection.close()
