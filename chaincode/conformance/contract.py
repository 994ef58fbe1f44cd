"""A contract that exercises every stub call, for the runtime's own tests.

Deployed next to the deposit-token contract under the name ``conformance``, with the
same collections (``supply-<MSP>`` and ``disclosure-<MSP>`` per bank, and every org's implicit
``_implicit_org_<MSP>``), so
tests can drive each ledger call from a real peer. Public values travel as arguments
(they are test data); private values travel in the transient map under ``value``, as
real contracts must do. Lists of keys or org ids are comma-separated arguments.
"""

from __future__ import annotations

from typing import Any

from chaincode.shim.api import KV
from chaincode.shim.contract import Context, Contract, ContractError, query, transaction
from chaincode.shim.endorsement import orgs_must_endorse, read_key_endorsers

TRANSIENT_VALUE = "value"


def _csv(text: str) -> list[str]:
    return [part for part in text.split(",") if part] if text else []


def _kv(kv: KV) -> dict[str, str]:
    return {"key": kv.key, "value": kv.value.decode("utf-8", errors="replace")}


def _private_value(ctx: Context) -> bytes:
    value = ctx.stub.get_transient().get(TRANSIENT_VALUE)
    if value is None:
        raise ContractError(f"the private value goes in the transient map under '{TRANSIENT_VALUE}'")
    return value


class ConformanceContract(Contract):
    name = "conformance"
    title = "Chaincode runtime conformance contract"
    version = "1.0.0"

    # -- public state --------------------------------------------------------
    @transaction
    def put_state(self, ctx: Context, key: str, value: str) -> None:
        ctx.stub.put_state(key, value.encode())

    @query
    def get_state(self, ctx: Context, key: str) -> str:
        return ctx.stub.get_state(key).decode("utf-8", errors="replace")

    @transaction
    def del_state(self, ctx: Context, key: str) -> None:
        ctx.stub.del_state(key)

    @query
    def get_state_multiple(self, ctx: Context, keys: str) -> list[str]:
        return [value.decode("utf-8", errors="replace") for value in ctx.stub.get_state_multiple(_csv(keys))]

    @transaction
    def put_many(self, ctx: Context, prefix: str, count: int) -> int:
        """Write keys prefix000..prefixNNN with their index as value (for range tests)."""
        if not 0 < count <= 1000:
            raise ContractError("count must be between 1 and 1000")
        for index in range(count):
            ctx.stub.put_state(f"{prefix}{index:03d}", str(index).encode())
        return count

    @transaction
    def bump_counters(self, ctx: Context, keys: str) -> list[int]:
        """Read every key in one call, then write each back plus one: n reads and n writes."""
        names = _csv(keys)
        values = ctx.stub.get_state_multiple(names)
        bumped = [int(value or b"0") + 1 for value in values]
        for key, value in zip(names, bumped, strict=True):
            ctx.stub.put_state(key, str(value).encode())
        return bumped

    @transaction
    def write_then_read(self, ctx: Context, key: str, value: str) -> dict[str, str]:
        """Fabric's reads never see the transaction's own writes: this returns the committed value."""
        ctx.stub.put_state(key, value.encode())
        return {"read_after_write": ctx.stub.get_state(key).decode("utf-8", errors="replace")}

    @query
    def sneaky_write(self, ctx: Context, key: str) -> None:
        """A query that tries to write: the stub must refuse."""
        ctx.stub.put_state(key, b"written by a query")

    # -- queries -------------------------------------------------------------
    @query
    def get_range(self, ctx: Context, start_key: str, end_key: str) -> list[dict[str, str]]:
        return [_kv(kv) for kv in ctx.stub.get_state_by_range(start_key, end_key)]

    @query
    def get_range_page(
        self, ctx: Context, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> dict[str, Any]:
        page = ctx.stub.get_state_by_range_with_pagination(start_key, end_key, page_size, bookmark)
        return {
            "results": [_kv(kv) for kv in page.results],
            "count": page.fetched_records_count,
            "bookmark": page.bookmark,
        }

    @query
    def get_history(self, ctx: Context, key: str) -> list[dict[str, Any]]:
        return [
            {
                "tx_id": mod.tx_id,
                "value": mod.value.decode("utf-8", errors="replace"),
                "is_delete": mod.is_delete,
                "timestamp": mod.timestamp.isoformat(),
            }
            for mod in ctx.stub.get_history_for_key(key)
        ]

    # -- composite keys ------------------------------------------------------
    @transaction
    def put_composite(self, ctx: Context, object_type: str, attributes: str, value: str) -> str:
        key = ctx.stub.create_composite_key(object_type, _csv(attributes))
        ctx.stub.put_state(key, value.encode())
        return key.replace("\x00", "|")

    @query
    def get_by_partial_key(self, ctx: Context, object_type: str, attributes: str) -> list[dict[str, Any]]:
        results = []
        for kv in ctx.stub.get_state_by_partial_composite_key(object_type, _csv(attributes)):
            kind, parts = ctx.stub.split_composite_key(kv.key)
            results.append(
                {
                    "object_type": kind,
                    "attributes": parts,
                    "value": kv.value.decode("utf-8", errors="replace"),
                }
            )
        return results

    @query
    def get_by_partial_key_page(
        self, ctx: Context, object_type: str, attributes: str, page_size: int, bookmark: str = ""
    ) -> dict[str, Any]:
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination(
            object_type, _csv(attributes), page_size, bookmark
        )
        return {
            "attributes": [ctx.stub.split_composite_key(kv.key)[1] for kv in page.results],
            "count": page.fetched_records_count,
            "bookmark": page.bookmark,
        }

    @query
    def composite_round_trip(self, ctx: Context, object_type: str, attributes: str) -> dict[str, Any]:
        key = ctx.stub.create_composite_key(object_type, _csv(attributes))
        kind, parts = ctx.stub.split_composite_key(key)
        return {"key": key.replace("\x00", "|"), "object_type": kind, "attributes": parts}

    # -- private data --------------------------------------------------------
    @transaction
    def put_private(self, ctx: Context, collection: str, key: str) -> None:
        ctx.stub.put_private_data(collection, key, _private_value(ctx))

    @query
    def get_private(self, ctx: Context, collection: str, key: str) -> str:
        return ctx.stub.get_private_data(collection, key).decode("utf-8", errors="replace")

    @query
    def get_private_multiple(self, ctx: Context, collection: str, keys: str) -> list[str]:
        values = ctx.stub.get_private_data_multiple(collection, _csv(keys))
        return [value.decode("utf-8", errors="replace") for value in values]

    @query
    def get_private_hash(self, ctx: Context, collection: str, key: str) -> str:
        return ctx.stub.get_private_data_hash(collection, key).hex()

    @transaction
    def del_private(self, ctx: Context, collection: str, key: str) -> None:
        ctx.stub.del_private_data(collection, key)

    @transaction
    def purge_private(self, ctx: Context, collection: str, key: str) -> None:
        ctx.stub.purge_private_data(collection, key)

    @query
    def get_private_range(self, ctx: Context, collection: str, start_key: str, end_key: str) -> list[dict[str, str]]:
        return [_kv(kv) for kv in ctx.stub.get_private_data_by_range(collection, start_key, end_key)]

    @transaction
    def put_private_composite(self, ctx: Context, collection: str, object_type: str, attributes: str) -> None:
        key = ctx.stub.create_composite_key(object_type, _csv(attributes))
        ctx.stub.put_private_data(collection, key, _private_value(ctx))

    @query
    def get_private_by_partial_key(
        self, ctx: Context, collection: str, object_type: str, attributes: str
    ) -> list[list[str]]:
        return [
            ctx.stub.split_composite_key(kv.key)[1]
            for kv in ctx.stub.get_private_data_by_partial_composite_key(collection, object_type, _csv(attributes))
        ]

    # -- state-based endorsement ---------------------------------------------
    @transaction
    def set_key_endorsers(self, ctx: Context, key: str, msp_ids: str, n: int = 0) -> None:
        """From now on, writes to ``key`` need endorsements from ``n`` (default all) of these orgs."""
        try:
            policy = orgs_must_endorse(_csv(msp_ids), n or None)
        except ValueError as exc:
            raise ContractError(str(exc)) from exc
        ctx.stub.set_state_validation_parameter(key, policy)

    @query
    def get_key_endorsers(self, ctx: Context, key: str) -> dict[str, Any]:
        endorsers = read_key_endorsers(ctx.stub.get_state_validation_parameter(key))
        if endorsers is None:
            return {"n": 0, "msp_ids": []}
        return {"n": endorsers.n, "msp_ids": list(endorsers.msp_ids), "role": endorsers.role}

    @transaction
    def set_private_key_endorsers(self, ctx: Context, collection: str, key: str, msp_ids: str) -> None:
        try:
            policy = orgs_must_endorse(_csv(msp_ids))
        except ValueError as exc:
            raise ContractError(str(exc)) from exc
        ctx.stub.set_private_data_validation_parameter(collection, key, policy)

    @query
    def get_private_key_endorsers(self, ctx: Context, collection: str, key: str) -> list[str]:
        endorsers = read_key_endorsers(ctx.stub.get_private_data_validation_parameter(collection, key))
        return list(endorsers.msp_ids) if endorsers else []

    # -- transaction context -------------------------------------------------
    @query
    def transient_echo(self, ctx: Context) -> dict[str, str]:
        """Query only: a submitted response would put the transient values into a block."""
        return {key: value.decode("utf-8", errors="replace") for key, value in sorted(ctx.stub.get_transient().items())}

    @query
    def creator(self, ctx: Context) -> dict[str, Any]:
        identity = ctx.client_identity
        return {
            "msp_id": identity.msp_id,
            "subject": identity.subject,
            "issuer": identity.issuer,
            "common_name": identity.common_name,
            "organizational_units": list(identity.organizational_units),
            "id": identity.id,
            "has_certificate": identity.certificate_pem.startswith(b"-----BEGIN CERTIFICATE-----"),
        }

    @query
    def tx_info(self, ctx: Context) -> dict[str, Any]:
        function, parameters = ctx.stub.get_function_and_parameters()
        return {
            "tx_id": ctx.stub.get_tx_id(),
            "channel_id": ctx.stub.get_channel_id(),
            "timestamp": ctx.stub.get_tx_timestamp().isoformat(),
            "peer_msp_id": ctx.stub.get_peer_msp_id(),
            "binding": ctx.stub.get_binding().hex(),
            "function": function,
            "parameter_count": len(parameters),
        }

    @transaction
    def emit_event(self, ctx: Context, name: str, payload: str) -> str:
        ctx.stub.set_event(name, payload.encode())
        return ctx.stub.get_tx_id()

    # -- contract layer behaviour --------------------------------------------
    @query
    def add(self, ctx: Context, a: int, b: int, negate: bool = False) -> int:
        total = a + b
        return -total if negate else total

    @query
    def fail(self, ctx: Context, status: int, message: str) -> None:
        raise ContractError(message, status)

    @query
    def crash(self, ctx: Context) -> None:
        raise RuntimeError("secret-customer-data must never reach a log line")
