"""The chaincode runtime on the real network: every stub call from a real Fabric v3.1 peer.

Runs on the shared test network of ``conftest.py`` (the ``conformance`` chaincode is
deployed with the deposit-token collections). Run alone with its own ports::

    DT_TEST_BASE_PORT=21000 DT_TEST_STATE_DIR=.state/shim .venv/bin/pytest tests/integration/test_shim_*.py
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fabric_client import CommitError, Contract, EndorseError, Gateway, GatewayError
from fabric_client.profile import connect_org

pytestmark = pytest.mark.network

CHAINCODE = "conformance"
BANKS = ("USBankMSP", "HKBankMSP", "SGBankMSP")
# USBank's implicit collection (its books): only USBank's peer holds it and only its endorsement
# writes it, but Fabric turns neither memberOnlyRead nor memberOnlyWrite on for it.
BOOKS_US = "_implicit_org_USBankMSP"
# An explicit collection of USBank and the regulator, with memberOnlyRead and memberOnlyWrite.
SHARED_US_REG = "disclosure-USBankMSP"
REGULATOR = "RegulatorMSP"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def gateways(profile_path: Path) -> Iterator[dict[str, Gateway]]:
    connected = {msp: connect_org(profile_path, msp) for msp in (*BANKS, REGULATOR)}
    yield connected
    for gateway in connected.values():
        gateway.close()


def cc(gateways: dict[str, Gateway], msp: str = "USBankMSP") -> Contract:
    return gateways[msp].get_network("tokens").get_contract(CHAINCODE)


def as_json(raw: bytes) -> Any:
    return json.loads(raw)


def on_other_peer(read: Callable[[], bytes], expected: bytes, attempts: int = 60) -> bytes:
    """Read from another org's peer, which commits the block a moment after the submitter's."""
    value = read()
    for _ in range(attempts):
        if value == expected:
            break
        time.sleep(0.5)
        value = read()
    return value


# -- public state -----------------------------------------------------------------------


def test_put_get_delete_state(gateways: dict[str, Gateway]) -> None:
    key = unique("state")
    cc(gateways).submit_transaction("PutState", key, "v1")
    for msp in BANKS:
        read = partial(cc(gateways, msp).evaluate_transaction, "GetState", key)
        assert on_other_peer(read, b"v1") == b"v1"
    cc(gateways, "HKBankMSP").submit_transaction("DelState", key)
    assert on_other_peer(lambda: cc(gateways).evaluate_transaction("GetState", key), b"") == b""


def test_get_state_multiple_and_three_reads_three_writes(gateways: dict[str, Gateway]) -> None:
    keys = [unique("counter") for _ in range(3)]
    cc(gateways).submit_transaction("PutState", keys[0], "41")
    # On a v3 peer this is one GET_STATE_MULTIPLE and one WRITE_BATCH_STATE.
    assert as_json(cc(gateways).submit_transaction("BumpCounters", ",".join(keys))) == [42, 1, 1]
    assert as_json(cc(gateways).evaluate_transaction("GetStateMultiple", ",".join([*keys, "absent"]))) == [
        "42",
        "1",
        "1",
        "",
    ]


def test_reads_do_not_see_own_writes(gateways: dict[str, Gateway]) -> None:
    key = unique("raw")
    cc(gateways).submit_transaction("PutState", key, "committed")
    result = cc(gateways).submit_transaction("WriteThenRead", key, "pending")
    assert as_json(result) == {"read_after_write": "committed"}
    assert cc(gateways).evaluate_transaction("GetState", key) == b"pending"


def test_query_function_may_not_write(gateways: dict[str, Gateway]) -> None:
    key = unique("sneaky")
    with pytest.raises(EndorseError) as caught:
        cc(gateways).submit_transaction("SneakyWrite", key)
    assert caught.value.chaincode_status == 500
    assert "is a query and may not write" in str(caught.value.chaincode_message)
    assert cc(gateways).evaluate_transaction("GetState", key) == b""


# -- queries ------------------------------------------------------------------------------


def test_range_query_and_pagination_with_bookmark(gateways: dict[str, Gateway]) -> None:
    prefix = unique("range") + "-"
    cc(gateways).submit_transaction("PutMany", prefix, 7)
    rows = as_json(cc(gateways).evaluate_transaction("GetRange", prefix, prefix + "~"))
    assert [row["key"] for row in rows] == [f"{prefix}{i:03d}" for i in range(7)]

    seen: list[str] = []
    bookmark = ""
    pages = 0
    while True:
        page = as_json(cc(gateways).evaluate_transaction("GetRangePage", prefix, prefix + "~", 3, bookmark))
        pages += 1
        seen += [row["key"] for row in page["results"]]
        assert page["count"] == len(page["results"])
        bookmark = page["bookmark"]
        if not bookmark:
            break
        assert pages < 10
    assert seen == [f"{prefix}{i:03d}" for i in range(7)]
    assert pages == 3


def test_partial_composite_key_query(gateways: dict[str, Gateway]) -> None:
    kind = unique("kind").replace("-", "")
    for attributes, value in (("USD,a", "1"), ("USD,b", "2"), ("HKD,c", "3")):
        cc(gateways).submit_transaction("PutComposite", kind, attributes, value)
    rows = as_json(cc(gateways).evaluate_transaction("GetByPartialKey", kind, "USD"))
    assert rows == [
        {"object_type": kind, "attributes": ["USD", "a"], "value": "1"},
        {"object_type": kind, "attributes": ["USD", "b"], "value": "2"},
    ]
    page = as_json(cc(gateways).evaluate_transaction("GetByPartialKeyPage", kind, "", 2))
    assert page["attributes"] == [["HKD", "c"], ["USD", "a"]]
    assert page["bookmark"] != ""
    assert as_json(cc(gateways).evaluate_transaction("CompositeRoundTrip", kind, "x,y")) == {
        "key": f"|{kind}|x|y|",
        "object_type": kind,
        "attributes": ["x", "y"],
    }


def test_history_for_key(gateways: dict[str, Gateway]) -> None:
    key = unique("history")
    first = cc(gateways).submit_async("PutState", key, "v1")
    first.status()
    second = cc(gateways).submit_async("PutState", key, "v2")
    second.status()
    history = as_json(cc(gateways).evaluate_transaction("GetHistory", key))
    assert [(m["tx_id"], m["value"], m["is_delete"]) for m in history] == [
        (second.transaction_id, "v2", False),
        (first.transaction_id, "v1", False),
    ]


# -- private data -------------------------------------------------------------------------


def test_private_write_member_read_and_non_member_hash(gateways: dict[str, Gateway]) -> None:
    key = unique("acct")
    value = b"holder:Jane Customer;balance:100"
    cc(gateways).submit_transaction(
        "PutPrivate", SHARED_US_REG, key, transient={"value": value}, endorsing_organizations=["USBankMSP"]
    )
    assert cc(gateways).evaluate_transaction("GetPrivate", SHARED_US_REG, key) == value
    assert as_json(cc(gateways).evaluate_transaction("GetPrivateMultiple", SHARED_US_REG, f"{key},nope")) == [
        value.decode(),
        "",
    ]
    # Another bank's client may not read the collection, but may compare its hash.
    with pytest.raises(GatewayError) as caught:
        cc(gateways, "HKBankMSP").evaluate_transaction("GetPrivate", SHARED_US_REG, key)
    assert "does not have read access permission" in str(caught.value)
    expected = hashlib.sha256(value).hexdigest().encode()
    hk = cc(gateways, "HKBankMSP")
    assert on_other_peer(lambda: hk.evaluate_transaction("GetPrivateHash", SHARED_US_REG, key), expected) == expected


def test_implicit_collection_holds_the_orgs_books(gateways: dict[str, Gateway]) -> None:
    """What the contract relies on for a bank's books (docs/decisions/0036), on real peers."""
    key = unique("books")
    value = b"holder:Jane Customer;balance:100"
    cc(gateways).submit_transaction(
        "PutPrivate", BOOKS_US, key, transient={"value": value}, endorsing_organizations=["USBankMSP"]
    )
    assert cc(gateways).evaluate_transaction("GetPrivate", BOOKS_US, key) == value
    # Another bank's peer holds only the hash...
    hk = cc(gateways, "HKBankMSP")
    expected = hashlib.sha256(value).hexdigest().encode()
    assert on_other_peer(lambda: hk.evaluate_transaction("GetPrivateHash", BOOKS_US, key), expected) == expected
    with pytest.raises(GatewayError):
        hk.evaluate_transaction("GetPrivate", BOOKS_US, key)
    # ...but its client is not refused by USBank's peer: memberOnlyRead is off for implicit
    # collections, which is why the deposit-token contract checks every caller itself.
    assert hk.evaluate_transaction("GetPrivate", BOOKS_US, key, endorsing_organizations=["USBankMSP"]) == value
    # A write endorsed by another bank's peer alone is simulated, then fails validation.
    with pytest.raises(CommitError) as caught:
        hk.submit_transaction(
            "PutPrivate", BOOKS_US, unique("forged"), transient={"value": b"x"}, endorsing_organizations=["HKBankMSP"]
        )
    assert caught.value.code_name == "ENDORSEMENT_POLICY_FAILURE"


def test_bilateral_collection_and_private_queries(gateways: dict[str, Gateway]) -> None:
    kind = unique("pay").replace("-", "")
    cc(gateways).submit_transaction(
        "PutPrivateComposite",
        SHARED_US_REG,
        kind,
        "USD,1",
        transient={"value": b"remittance"},
        endorsing_organizations=["USBankMSP"],
    )
    # The other member reads it from its own peer.
    regulator = cc(gateways, REGULATOR)
    rows = on_other_peer(
        lambda: regulator.evaluate_transaction("GetPrivateByPartialKey", SHARED_US_REG, kind, ""), b'[["USD","1"]]'
    )
    assert as_json(rows) == [["USD", "1"]]
    with pytest.raises(GatewayError):
        cc(gateways, "SGBankMSP").evaluate_transaction("GetPrivateByPartialKey", SHARED_US_REG, kind, "")


def test_private_range_query(gateways: dict[str, Gateway]) -> None:
    prefix = unique("prange") + "-"
    for suffix in ("a", "b"):
        cc(gateways).submit_transaction(
            "PutPrivate",
            BOOKS_US,
            prefix + suffix,
            transient={"value": suffix.encode()},
            endorsing_organizations=["USBankMSP"],
        )
    rows = as_json(cc(gateways).evaluate_transaction("GetPrivateRange", BOOKS_US, prefix, prefix + "~"))
    assert rows == [{"key": prefix + "a", "value": "a"}, {"key": prefix + "b", "value": "b"}]


def test_private_delete_and_purge(gateways: dict[str, Gateway]) -> None:
    for function in ("DelPrivate", "PurgePrivate"):
        key = unique(function.lower())
        cc(gateways).submit_transaction(
            "PutPrivate", BOOKS_US, key, transient={"value": b"x"}, endorsing_organizations=["USBankMSP"]
        )
        cc(gateways).submit_transaction(function, BOOKS_US, key, endorsing_organizations=["USBankMSP"])
        assert cc(gateways).evaluate_transaction("GetPrivate", BOOKS_US, key) == b""
        assert cc(gateways).evaluate_transaction("GetPrivateHash", BOOKS_US, key) == b""


def test_non_member_private_write_is_refused(gateways: dict[str, Gateway]) -> None:
    key = unique("intruder")
    with pytest.raises(EndorseError) as caught:
        cc(gateways, "SGBankMSP").submit_transaction(
            "PutPrivate", SHARED_US_REG, key, transient={"value": b"x"}, endorsing_organizations=["SGBankMSP"]
        )
    assert "write access permission" in str(caught.value)


# -- state-based endorsement ----------------------------------------------------------------


def test_key_level_endorsement_makes_a_single_org_write_invalid(gateways: dict[str, Gateway]) -> None:
    key = unique("sbe")
    cc(gateways).submit_transaction("PutState", key, "initiated")
    cc(gateways).submit_transaction("SetKeyEndorsers", key, "USBankMSP,HKBankMSP")
    assert as_json(cc(gateways).evaluate_transaction("GetKeyEndorsers", key)) == {
        "n": 2,
        "msp_ids": ["HKBankMSP", "USBankMSP"],
        "role": "peer",
    }
    # Endorsed by one of the two orgs: the chaincode policy (any org) is met, the key's is not.
    with pytest.raises(CommitError) as caught:
        cc(gateways).submit_transaction("PutState", key, "moved", endorsing_organizations=["USBankMSP"])
    assert caught.value.code_name == "ENDORSEMENT_POLICY_FAILURE"
    assert cc(gateways).evaluate_transaction("GetState", key) == b"initiated"
    # Endorsed by both: valid.
    cc(gateways).submit_transaction("PutState", key, "moved", endorsing_organizations=["USBankMSP", "HKBankMSP"])
    assert cc(gateways).evaluate_transaction("GetState", key) == b"moved"


# -- transaction context and events ---------------------------------------------------------


def test_transient_creator_and_tx_info(gateways: dict[str, Gateway]) -> None:
    assert as_json(cc(gateways).evaluate_transaction("TransientEcho", transient={"k": b"v"})) == {"k": "v"}
    creator = as_json(cc(gateways, "HKBankMSP").evaluate_transaction("Creator"))
    assert creator["msp_id"] == "HKBankMSP"
    assert creator["common_name"] == "User1"  # the enrollment id at HKBank's own CA
    assert "client" in creator["organizational_units"]
    for msp in BANKS:
        info = as_json(cc(gateways, msp).evaluate_transaction("TxInfo"))
        assert info["channel_id"] == "tokens"
        assert info["peer_msp_id"] == msp  # each org's peer runs its own org's chaincode server
        assert len(info["tx_id"]) == 64


def test_metadata(gateways: dict[str, Gateway]) -> None:
    metadata = as_json(cc(gateways).evaluate_transaction("org.hyperledger.fabric:GetMetadata"))
    names = {tx["name"] for tx in metadata["contracts"]["conformance"]["transactions"]}
    assert {"PutState", "GetPrivateHash", "SetKeyEndorsers", "EmitEvent"} <= names


def test_event_reaches_a_client(gateways: dict[str, Gateway]) -> None:
    name = unique("Evt")
    submitted = cc(gateways).submit_async("EmitEvent", name, '{"payment":"p-1"}')
    status = submitted.status()
    assert status.successful
    network = gateways["SGBankMSP"].get_network("tokens")
    with network.get_chaincode_events(CHAINCODE, start_block=status.block_number, timeout=60) as events:
        for event in events:
            if event.transaction_id == submitted.transaction_id:
                break
    assert event.event_name == name
    assert event.payload == b'{"payment":"p-1"}'
    assert event.block_number == status.block_number


def test_contract_errors_reach_the_client(gateways: dict[str, Gateway]) -> None:
    with pytest.raises(GatewayError) as unknown:
        cc(gateways).evaluate_transaction("NoSuchFunction")
    assert unknown.value.chaincode_status == 400
    assert "'NoSuchFunction'" in str(unknown.value.chaincode_message)
    with pytest.raises(GatewayError) as bad_int:
        cc(gateways).evaluate_transaction("Add", "one", "2")
    assert bad_int.value.chaincode_status == 400
    assert "argument 'a' must be an integer" in str(bad_int.value.chaincode_message)
    with pytest.raises(GatewayError) as crash:
        cc(gateways).evaluate_transaction("Crash")
    assert crash.value.chaincode_status == 500
    assert "secret" not in str(crash.value)
