"""The ledger as one transaction sees it: JSON records, unique ids, time, the one event.

Every transaction function builds one :class:`Ledger` over its stub. It keeps the
details the money rules should not repeat: canonical JSON (identical bytes on every
endorser), ids unique within the channel (transaction id plus a counter), the
transaction's timestamp, and Fabric's limit of one event per transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from chaincode.shim.api import KV, Stub
from chaincode.shim.endorsement import orgs_must_endorse

Record = dict[str, Any]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ORDER_SPAN = 10**20


def encode(record: Record | list[Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(raw: bytes) -> Record | None:
    if not raw:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("a stored record is not a JSON object")
    return value


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def micros(moment: dt.datetime) -> int:
    return (moment.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)


def newest_first(moment: dt.datetime) -> str:
    """A key part that sorts later moments first (range scans run in ascending key order)."""
    return f"{_ORDER_SPAN - micros(moment):020d}"


class Ledger:
    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self.tx_id = stub.get_tx_id()
        timestamp = stub.get_tx_timestamp()
        self.now = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=dt.UTC)
        self._counter = 0
        self._event: str | None = None
        # Supply changes of this transaction, reported in its event (see ``emit``).
        self._supply_changes: list[Record] = []
        # Committed values read so far, by (collection, key); "" is public state.
        self._read: dict[tuple[str, str], bytes] = {}
        # Inside ``grouped``: the group's writes by (collection, key) (b"" deletes) and its new
        # key-level policies, held back until the group ends; ``None`` outside a group.
        self._held: dict[tuple[str, str], bytes] | None = None
        self._held_policies: dict[str, bytes] = {}

    # -- identity of what this transaction writes --------------------------
    def unique_id(self) -> str:
        """An id no other write in the channel uses: this transaction's id and a counter."""
        self._counter += 1
        return f"{self.tx_id}.{self._counter}"

    @property
    def now_iso(self) -> str:
        return iso(self.now)

    # -- groups: several requests in one transaction -------------------------
    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Several requests of one kind in this transaction, each seeing the ones before it.

        A transaction reads committed state, not its own writes, so two requests of a group that
        touch one key (two debits of one account, two payments counted against one corridor cap)
        would each see the state before both. Inside this block writes are held here and later
        reads of those keys answer from them, so the group ends in the state the same requests
        would reach one transaction after another. Each request runs in ``group_item``, which
        drops its writes when it is refused. The held writes reach the stub when the block ends
        without an error. Range scans do not see held writes (writing transactions do not scan
        private data, and no grouped request scans public state).
        """
        if self._held is not None:
            raise RuntimeError("a group inside a group")
        self._held, self._held_policies = {}, {}
        try:
            yield
            held, policies = self._held, self._held_policies
        finally:
            self._held, self._held_policies = None, {}
        for (collection, key), value in held.items():
            self._store(collection, key, value)
        for key, policy in policies.items():
            self.stub.set_state_validation_parameter(key, policy)

    @contextmanager
    def group_item(self) -> Iterator[None]:
        """One request of a group: if it raises, its writes and supply changes are undone, so the
        requests after it see the state as if it had never been made."""
        if self._held is None:
            raise RuntimeError("group_item outside grouped")
        held, policies, supply = dict(self._held), dict(self._held_policies), len(self._supply_changes)
        try:
            yield
        except BaseException:
            self._held, self._held_policies = held, policies
            del self._supply_changes[supply:]
            raise

    def _store(self, collection: str, key: str, value: bytes) -> None:
        """Write ``value`` under (collection, key), ``b""`` to delete ("" is public state): held while
        in a group, else sent to the stub now."""
        if self._held is not None:
            self._held[(collection, key)] = value
        elif collection and value:
            self.stub.put_private_data(collection, key, value)
        elif collection:
            self.stub.del_private_data(collection, key)
        elif value:
            self.stub.put_state(key, value)
        else:
            self.stub.del_state(key)

    def _written(self, collection: str, key: str) -> bytes | None:
        return None if self._held is None else self._held.get((collection, key))

    # -- public state --------------------------------------------------------
    def get(self, key: str) -> Record | None:
        held = self._written("", key)
        if held is not None:
            return decode(held)
        cached = self._read.get(("", key))
        if cached is None:
            cached = self._read[("", key)] = self.stub.get_state(key)
        return decode(cached)

    def prefetch(self, keys_: Sequence[str]) -> None:
        """Read these public keys in one request; later ``get`` calls answer from memory.

        Only for keys the transaction reads anyway: every key read joins the read set.
        """
        missing = [key for key in dict.fromkeys(keys_) if ("", key) not in self._read]
        if missing:
            for key, raw in zip(missing, self.stub.get_state_multiple(missing), strict=True):
                self._read[("", key)] = raw

    def put(self, key: str, record: Record) -> None:
        self._store("", key, encode(record))

    def put_marker(self, key: str) -> None:
        """An index entry whose presence is the information (Fabric deletes empty values)."""
        self._store("", key, b"1")

    def delete(self, key: str) -> None:
        self._store("", key, b"")

    def scan(self, object_type: str, *attributes: str) -> Iterator[tuple[str, bytes]]:
        """Every key under a partial composite key, with its raw value."""
        yield from _raw(self.stub.get_state_by_partial_composite_key(object_type, list(attributes)))

    def scan_records(self, object_type: str, *attributes: str) -> Iterator[tuple[str, Record | None]]:
        for key, raw in self.scan(object_type, *attributes):
            yield key, decode(raw)

    def scan_range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        """A range of simple keys."""
        yield from _raw(self.stub.get_state_by_range(start, end))

    def require_endorsers(self, key: str, msp_ids: Iterable[str], n: int | None = None) -> None:
        """State-based endorsement: from now on, writing ``key`` needs these orgs' peers."""
        policy = orgs_must_endorse(msp_ids, n=n)
        if self._held is not None:
            self._held_policies[key] = policy
        else:
            self.stub.set_state_validation_parameter(key, policy)

    # -- private data --------------------------------------------------------
    def get_private(self, collection: str, key: str) -> Record | None:
        held = self._written(collection, key)
        if held is not None:
            return decode(held)
        cached = self._read.get((collection, key))
        if cached is None:
            cached = self._read[(collection, key)] = self.stub.get_private_data(collection, key)
        return decode(cached)

    def prefetch_private(self, collection: str, keys_: Sequence[str]) -> None:
        """Read these private keys in one request (only keys the transaction reads anyway)."""
        missing = [key for key in dict.fromkeys(keys_) if (collection, key) not in self._read]
        if missing:
            for key, raw in zip(missing, self.stub.get_private_data_multiple(collection, missing), strict=True):
                self._read[(collection, key)] = raw

    def get_private_many(self, collection: str, keys_: Sequence[str]) -> list[Record | None]:
        self.prefetch_private(collection, keys_)
        return [self.get_private(collection, key) for key in keys_]

    def put_private(self, collection: str, key: str, record: Record) -> None:
        self._store(collection, key, encode(record))

    def delete_private(self, collection: str, key: str) -> None:
        self._store(collection, key, b"")

    def scan_private(self, collection: str, object_type: str, *attributes: str) -> Iterator[tuple[str, Record | None]]:
        """Only in queries: Fabric refuses private-data range scans in a transaction that writes."""
        iterator = self.stub.get_private_data_by_partial_composite_key(collection, object_type, list(attributes))
        yield from _decoded(iterator)

    def scan_private_range(self, collection: str, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        """A range of simple keys; only in queries."""
        yield from _raw(self.stub.get_private_data_by_range(collection, start, end))

    # -- events --------------------------------------------------------------
    def report_supply_change(self, issuer: str, currency: str, delta: int) -> None:
        """Note a supply change for the transaction's event.

        Supply lives in collections, so the event is how everyone else (the regulator's monitor
        first) learns of each change; one made after the event is set would go unreported.
        """
        if self._event is not None:
            raise RuntimeError(f"a supply change after the event {self._event} would go unreported")
        self._supply_changes.append({"issuer": issuer, "currency": currency, "delta": delta})

    def emit(self, name: str, payload: Record) -> None:
        """Set the transaction's event. Fabric keeps one per transaction, so a second is a bug.

        The transaction's supply changes go with it under ``supply`` (docs/contract-api.md).
        """
        if self._event is not None:
            raise RuntimeError(f"a transaction has one event; {self._event} is already set")
        self._event = name
        if self._supply_changes:
            payload = {**payload, "supply": {"at": self.now_iso, "changes": list(self._supply_changes)}}
        self.stub.set_event(name, encode(payload))


def _raw(iterator: Iterator[KV]) -> Iterator[tuple[str, bytes]]:
    try:
        for kv in iterator:
            yield kv.key, kv.value
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _decoded(iterator: Iterator[KV]) -> Iterator[tuple[str, Record | None]]:
    for key, raw in _raw(iterator):
        yield key, decode(raw)
