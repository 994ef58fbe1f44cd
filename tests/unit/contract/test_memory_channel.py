"""The in-memory channel keeps the Fabric semantics the contract's unit tests rely on."""

from __future__ import annotations

import hashlib

import pytest

from chaincode.deposit_token.testing import (
    ENDORSEMENT_POLICY_FAILURE,
    MVCC_READ_CONFLICT,
    PHANTOM_READ_CONFLICT,
    VALID,
    MemoryChannel,
    parse_policy,
)
from chaincode.shim.contract import Context, Contract, ContractError, query, transaction
from chaincode.shim.endorsement import orgs_must_endorse

A, B, C = "AMSP", "BMSP", "CMSP"
COLLECTIONS = [
    {
        "name": "a-only",
        "policy": "OR('AMSP.member')",
        "memberOnlyRead": True,
        "memberOnlyWrite": True,
        "endorsementPolicy": {"signaturePolicy": "OR('AMSP.peer')"},
    },
    {
        "name": "a-and-b",
        "policy": "OR('AMSP.member', 'BMSP.member')",
        "memberOnlyRead": False,
        "memberOnlyWrite": False,
    },
]


class Probe(Contract):
    name = "probe"

    @transaction
    def put(self, ctx: Context, key: str, value: str) -> str:
        before = ctx.stub.get_state(key)
        ctx.stub.put_state(key, value.encode())
        return ctx.stub.get_state(key).decode() + "|" + before.decode()

    @transaction
    def delete(self, ctx: Context, key: str) -> None:
        ctx.stub.del_state(key)

    @transaction
    def guard(self, ctx: Context, key: str, orgs: str) -> None:
        ctx.stub.set_state_validation_parameter(key, orgs_must_endorse(orgs.split(",")))

    @transaction
    def put_private(self, ctx: Context, collection: str, key: str, value: str) -> None:
        ctx.stub.put_private_data(collection, key, value.encode())

    @query
    def get_private(self, ctx: Context, collection: str, key: str) -> str:
        return ctx.stub.get_private_data(collection, key).decode()

    @query
    def private_hash(self, ctx: Context, collection: str, key: str) -> str:
        return ctx.stub.get_private_data_hash(collection, key).hex()

    @transaction
    def scan_then_write(self, ctx: Context, collection: str) -> None:
        list(ctx.stub.get_private_data_by_range(collection, "", ""))
        ctx.stub.put_private_data(collection, "after", b"x")

    @transaction
    def write_then_scan(self, ctx: Context, collection: str) -> None:
        ctx.stub.put_private_data(collection, "before", b"x")
        list(ctx.stub.get_private_data_by_range(collection, "", ""))

    @transaction
    def page_then_write(self, ctx: Context) -> None:
        ctx.stub.get_state_by_range_with_pagination("", "", 10)
        ctx.stub.put_state("after", b"x")

    @transaction
    def count(self, ctx: Context, target: str) -> int:
        total = sum(1 for _ in ctx.stub.get_state_by_range("k", "l"))
        ctx.stub.put_state(target, str(total).encode())
        return total

    @transaction
    def two_events(self, ctx: Context) -> None:
        ctx.stub.set_event("first", b"1")
        ctx.stub.set_event("second", b"2")

    @transaction
    def composite_range(self, ctx: Context) -> None:
        try:
            list(ctx.stub.get_state_by_range("\x00x\x00", "\x00y\x00"))
        except ValueError as exc:
            raise ContractError(str(exc)) from None


@pytest.fixture
def channel() -> MemoryChannel:
    return MemoryChannel(Probe(), [A, B, C], COLLECTIONS)


def test_reads_do_not_see_the_transactions_own_writes(channel: MemoryChannel) -> None:
    assert channel.invoke(A, "Put", ["k1", "one"]).payload == b"|"
    assert channel.invoke(A, "Put", ["k1", "two"]).payload == b"one|one"


def test_mvcc_conflict_and_phantom_read(channel: MemoryChannel) -> None:
    channel.invoke(A, "Put", ["k1", "v"])
    first, second = channel.simulate(A, "Put", ["k1", "a"]), channel.simulate(B, "Put", ["k1", "b"])
    assert channel.commit([first, second]) == [VALID, MVCC_READ_CONFLICT]
    counting = channel.simulate(A, "Count", ["total"])
    inserting = channel.simulate(B, "Put", ["k2", "new"])
    assert channel.commit([inserting, counting]) == [VALID, PHANTOM_READ_CONFLICT]


def test_collection_membership(channel: MemoryChannel) -> None:
    assert channel.invoke(A, "PutPrivate", ["a-only", "k", "secret"]).ok
    assert channel.query(A, "GetPrivate", ["a-only", "k"]).payload == b"secret"
    refused = channel.query(B, "GetPrivate", ["a-only", "k"])
    assert refused.status == 500 and "read access" in refused.message
    expected = hashlib.sha256(b"secret").hexdigest().encode()
    assert channel.query(B, "PrivateHash", ["a-only", "k"]).payload == expected
    # memberOnlyRead off: the creator may ask, but C's peer does not hold the value.
    assert channel.invoke(A, "PutPrivate", ["a-and-b", "k", "shared"]).ok
    assert channel.query(B, "GetPrivate", ["a-and-b", "k"]).payload == b"shared"
    assert channel.query(C, "GetPrivate", ["a-and-b", "k"]).payload == b""
    write = channel.simulate(B, "PutPrivate", ["a-only", "k", "x"])
    assert write.status == 500 and "write access" in write.message


def test_private_range_scans_and_paginated_queries_only_in_read_only_transactions(
    channel: MemoryChannel,
) -> None:
    assert "Writes are not allowed" in channel.simulate(A, "ScanThenWrite", ["a-only"]).message
    assert "read-only transaction" in channel.simulate(A, "WriteThenScan", ["a-only"]).message
    assert "paginated query" in channel.simulate(A, "PageThenWrite").message
    assert "composite-key namespace" in channel.simulate(A, "CompositeRange").message


def test_collection_endorsement_policy_and_state_based_endorsement(channel: MemoryChannel) -> None:
    forged = channel.simulate(A, "PutPrivate", ["a-only", "k", "v"])
    forged.endorsers = {B}
    assert channel.commit([forged]) == [ENDORSEMENT_POLICY_FAILURE]
    channel.invoke(A, "Put", ["guarded", "v"])
    assert channel.invoke(A, "Guard", ["guarded", "AMSP"]).ok
    assert channel.commit([channel.simulate(B, "Put", ["guarded", "b"])]) == [ENDORSEMENT_POLICY_FAILURE]
    assert channel.commit([channel.simulate(B, "Guard", ["guarded", "BMSP"])]) == [ENDORSEMENT_POLICY_FAILURE]
    # A value-only write keeps the policy; a delete drops it.
    assert channel.commit([channel.simulate(A, "Put", ["guarded", "a"])]) == [VALID]
    assert channel.commit([channel.simulate(B, "Put", ["guarded", "b"])]) == [ENDORSEMENT_POLICY_FAILURE]
    assert channel.commit([channel.simulate(A, "Delete", ["guarded"])]) == [VALID]
    assert channel.commit([channel.simulate(B, "Put", ["guarded", "b"])]) == [VALID]
    # Endorsed by several orgs: every peer simulates, and the policy counts them all.
    channel.invoke(A, "Guard", ["guarded", "AMSP,BMSP"])
    assert channel.commit([channel.simulate(A, "Put", ["guarded", "x"])]) == [ENDORSEMENT_POLICY_FAILURE]
    both = channel.simulate(A, "Put", ["guarded", "y"], endorsing_orgs=[A, B])
    assert channel.commit([both]) == [VALID]


def test_a_policy_changed_earlier_in_the_block_invalidates_later_writes(channel: MemoryChannel) -> None:
    channel.invoke(A, "Put", ["k", "v"])
    guard = channel.simulate(A, "Guard", ["k", "AMSP"])
    write = channel.simulate(A, "Delete", ["k"])
    assert channel.commit([guard, write]) == [VALID, ENDORSEMENT_POLICY_FAILURE]


def test_one_event_per_transaction_the_last_wins(channel: MemoryChannel) -> None:
    channel.invoke(A, "TwoEvents")
    assert [(event.name, event.payload) for event in channel.events] == [("second", b"2")]


def test_policy_language() -> None:
    policy = parse_policy("OutOf(2, 'A.peer', AND('B.peer', 'C.member'), 'D.peer')")
    assert policy.satisfied_by({"A", "D"})
    assert policy.satisfied_by({"B", "C", "A"})
    assert not policy.satisfied_by({"B", "A"})
    assert parse_policy("OR('A.peer')").satisfied_by({"A"})
    with pytest.raises(ValueError):
        parse_policy("OR('A.peer'")
