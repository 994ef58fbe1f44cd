from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fabric_client import (
    ChaincodeEvent,
    Checkpointer,
    FileCheckpointer,
    InMemoryCheckpointer,
    SqliteCheckpointer,
)

EVENT = ChaincodeEvent(
    block_number=9, transaction_id="tx-9b", chaincode_name="deposit_token", event_name="Paid", payload=b"{}"
)


def factories(tmp_path: Path) -> dict[str, Callable[[], Checkpointer]]:
    return {
        "memory": InMemoryCheckpointer,
        "file": lambda: FileCheckpointer(tmp_path / "cp" / "events.json"),
        "sqlite": lambda: SqliteCheckpointer(tmp_path / "cp.db", name="payments"),
    }


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_checkpoint_semantics(tmp_path: Path, kind: str) -> None:
    checkpointer = factories(tmp_path)[kind]()
    assert isinstance(checkpointer, Checkpointer)
    assert (checkpointer.block_number, checkpointer.transaction_id) == (None, None)

    checkpointer.checkpoint_transaction(4, "tx-4a")
    assert (checkpointer.block_number, checkpointer.transaction_id) == (4, "tx-4a")

    checkpointer.checkpoint_block(4)  # block 4 fully handled: resume at 5 from its first event
    assert (checkpointer.block_number, checkpointer.transaction_id) == (5, None)

    checkpointer.checkpoint_chaincode_event(EVENT)
    assert (checkpointer.block_number, checkpointer.transaction_id) == (9, "tx-9b")


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_durable_checkpoint_survives_restart(tmp_path: Path, kind: str) -> None:
    make = factories(tmp_path)[kind]
    first = make()
    first.checkpoint_chaincode_event(EVENT)
    if isinstance(first, SqliteCheckpointer):
        first.close()

    restarted = make()

    assert (restarted.block_number, restarted.transaction_id) == (9, "tx-9b")


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_bad_checkpoints_are_refused_and_change_nothing(tmp_path: Path, kind: str) -> None:
    checkpointer = factories(tmp_path)[kind]()
    checkpointer.checkpoint_transaction(3, "tx-3")
    for bad in (-1, True, "7"):
        with pytest.raises(ValueError, match="block number"):
            checkpointer.checkpoint_block(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transaction id"):
        checkpointer.checkpoint_transaction(4, "")
    assert (checkpointer.block_number, checkpointer.transaction_id) == (3, "tx-3")


def test_file_checkpoint_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    checkpointer = FileCheckpointer(path)
    for block in range(5):
        checkpointer.checkpoint_transaction(block, f"tx-{block}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.json"]  # no temporary files left
    assert FileCheckpointer(path).block_number == 4


def test_corrupt_checkpoint_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        FileCheckpointer(path)


def test_sqlite_checkpointers_are_kept_apart_by_name(tmp_path: Path) -> None:
    db = tmp_path / "cp.db"
    SqliteCheckpointer(db, name="a").checkpoint_transaction(1, "tx-a")
    SqliteCheckpointer(db, name="b").checkpoint_block(6)
    assert SqliteCheckpointer(db, name="a").transaction_id == "tx-a"
    assert SqliteCheckpointer(db, name="b").block_number == 7


def test_sqlite_checkpoint_commits_application_writes_atomically(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "app.db")
    connection.execute("CREATE TABLE handled (tx_id TEXT PRIMARY KEY)")
    connection.commit()
    checkpointer = SqliteCheckpointer(connection, name="listener")

    connection.execute("INSERT INTO handled VALUES (?)", (EVENT.transaction_id,))
    checkpointer.checkpoint_chaincode_event(EVENT)
    connection.execute("INSERT INTO handled VALUES ('never-checkpointed')")
    connection.close()  # closing without commit drops the second insert

    reopened = sqlite3.connect(tmp_path / "app.db")
    assert reopened.execute("SELECT tx_id FROM handled").fetchall() == [("tx-9b",)]
    assert SqliteCheckpointer(reopened, name="listener").transaction_id == "tx-9b"
