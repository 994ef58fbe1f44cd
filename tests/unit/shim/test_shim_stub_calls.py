"""Every stub call, driven through the conformance contract, with and without v3 batching."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from chaincode.shim.endorsement import orgs_must_endorse
from chaincode.shim.scripted_peer import ScriptedPeer, make_identity

BOOKS = "books-USBankMSP"
BILATERAL = "bilateral-HKBankMSP-USBankMSP"


def _json(peer: ScriptedPeer, function: str, *args: str, **kwargs: object) -> object:
    result = peer.invoke(function, *args, **kwargs)  # type: ignore[arg-type]
    assert result.status == 200, result.message or result.error
    return json.loads(result.payload)


def test_put_get_delete_state(peer: ScriptedPeer) -> None:
    assert peer.invoke("PutState", "colour", "blue").status == 200
    assert peer.invoke("GetState", "colour").text == "blue"
    assert peer.invoke("DelState", "colour").status == 200
    assert peer.invoke("GetState", "colour").payload == b""
    assert ("", "colour") not in peer.ledger.state


def test_get_state_multiple_keeps_order_and_absent_keys(peer: ScriptedPeer, batching: bool) -> None:
    peer.invoke("PutState", "k1", "one")
    peer.invoke("PutState", "k3", "three")
    result = peer.invoke("GetStateMultiple", "k3,k2,k1")
    assert json.loads(result.payload) == ["three", "", "one"]
    assert result.requests == (["GET_STATE_MULTIPLE"] if batching else ["GET_STATE"] * 3)


def test_reads_never_see_the_transactions_own_writes(peer: ScriptedPeer) -> None:
    peer.invoke("PutState", "balance", "old")
    assert _json(peer, "WriteThenRead", "balance", "new") == {"read_after_write": "old"}
    assert peer.invoke("GetState", "balance").text == "new"


def test_private_put_get_delete_via_transient(peer: ScriptedPeer) -> None:
    put = peer.invoke("PutPrivate", BOOKS, "acct-1", transient={"value": b"alice:100"})
    assert put.status == 200
    assert peer.ledger.state[(BOOKS, "acct-1")] == b"alice:100"
    assert peer.invoke("GetPrivate", BOOKS, "acct-1").text == "alice:100"
    assert peer.invoke("DelPrivate", BOOKS, "acct-1").status == 200
    assert peer.invoke("GetPrivate", BOOKS, "acct-1").payload == b""


def test_private_value_missing_from_transient_is_a_400(peer: ScriptedPeer) -> None:
    result = peer.invoke("PutPrivate", BOOKS, "acct-1")
    assert result.status == 400
    assert "transient" in result.message
    assert (BOOKS, "acct-1") not in peer.ledger.state


def test_private_multiple_and_hash(peer: ScriptedPeer, batching: bool) -> None:
    peer.invoke("PutPrivate", BILATERAL, "p1", transient={"value": b"details-1"})
    peer.invoke("PutPrivate", BILATERAL, "p2", transient={"value": b"details-2"})
    multiple = peer.invoke("GetPrivateMultiple", BILATERAL, "p2,p1,p9")
    assert json.loads(multiple.payload) == ["details-2", "details-1", ""]
    assert multiple.requests == (["GET_STATE_MULTIPLE"] if batching else ["GET_STATE"] * 3)
    assert peer.invoke("GetPrivateHash", BILATERAL, "p1").text == hashlib.sha256(b"details-1").hexdigest()
    assert peer.invoke("GetPrivateHash", BILATERAL, "absent").text == ""


def test_purge_private_data(peer: ScriptedPeer, batching: bool) -> None:
    peer.invoke("PutPrivate", BOOKS, "gone", transient={"value": b"v"})
    result = peer.invoke("PurgePrivate", BOOKS, "gone")
    assert result.status == 200
    assert result.requests == (["WRITE_BATCH_STATE"] if batching else ["PURGE_PRIVATE_DATA"])
    assert (BOOKS, "gone") not in peer.ledger.state


def test_range_query_walks_every_batch(peer: ScriptedPeer) -> None:
    peer.query_batch = 4
    peer.invoke("PutMany", "r", "10")
    peer.invoke("PutState", "s", "outside")
    result = peer.invoke("GetRange", "r000", "r999")
    rows = json.loads(result.payload)
    assert [row["key"] for row in rows] == [f"r{i:03d}" for i in range(10)]
    assert [row["value"] for row in rows] == [str(i) for i in range(10)]
    # 10 results in batches of 4: the first comes with the query, two more with QUERY_STATE_NEXT.
    assert result.requests == ["GET_STATE_BY_RANGE", "QUERY_STATE_NEXT", "QUERY_STATE_NEXT"]


def test_range_query_with_empty_start(peer: ScriptedPeer) -> None:
    peer.invoke("PutState", "a", "1")
    peer.invoke("PutComposite", "acct", "x", "composite")
    rows = json.loads(peer.invoke("GetRange", "", "").payload)
    # The composite key (in the U+0000 namespace) is not part of a simple-key range.
    assert [row["key"] for row in rows] == ["a"]


def test_paginated_range_with_bookmark(peer: ScriptedPeer) -> None:
    peer.invoke("PutMany", "p", "7")
    first = _json(peer, "GetRangePage", "p000", "p999", "3")
    assert isinstance(first, dict)
    assert [row["key"] for row in first["results"]] == ["p000", "p001", "p002"]
    assert first["count"] == 3
    assert first["bookmark"] == "p003"
    second = _json(peer, "GetRangePage", "p000", "p999", "3", first["bookmark"])
    assert isinstance(second, dict)
    assert [row["key"] for row in second["results"]] == ["p003", "p004", "p005"]
    last = _json(peer, "GetRangePage", "p000", "p999", "3", second["bookmark"])
    assert isinstance(last, dict)
    assert [row["key"] for row in last["results"]] == ["p006"]
    assert last["bookmark"] == ""


def test_partial_composite_key_query_and_split(peer: ScriptedPeer) -> None:
    for attrs, value in (("USD,alice", "1"), ("USD,bob", "2"), ("HKD,carol", "3")):
        assert peer.invoke("PutComposite", "balance", attrs, value).status == 200
    rows = _json(peer, "GetByPartialKey", "balance", "USD")
    assert rows == [
        {"object_type": "balance", "attributes": ["USD", "alice"], "value": "1"},
        {"object_type": "balance", "attributes": ["USD", "bob"], "value": "2"},
    ]
    everything = _json(peer, "GetByPartialKey", "balance", "")
    assert isinstance(everything, list) and len(everything) == 3


def test_partial_composite_key_pagination(peer: ScriptedPeer) -> None:
    for name in ("a", "b", "c"):
        peer.invoke("PutComposite", "owner", f"USD,{name}", "x")
    page = _json(peer, "GetByPartialKeyPage", "owner", "USD", "2")
    assert page == {
        "attributes": [["USD", "a"], ["USD", "b"]],
        "count": 2,
        "bookmark": "\x00owner\x00USD\x00c\x00",
    }


def test_composite_round_trip(peer: ScriptedPeer) -> None:
    assert _json(peer, "CompositeRoundTrip", "payment", "USBankMSP,42") == {
        "key": "|payment|USBankMSP|42|",
        "object_type": "payment",
        "attributes": ["USBankMSP", "42"],
    }


def test_history_for_key(peer: ScriptedPeer) -> None:
    first = peer.invoke("PutState", "h", "v1", tx_id="a" * 64)
    second = peer.invoke("PutState", "h", "v2", tx_id="b" * 64)
    deleted = peer.invoke("DelState", "h", tx_id="c" * 64)
    assert first.status == second.status == deleted.status == 200
    history = _json(peer, "GetHistory", "h")
    assert isinstance(history, list)
    assert [(m["tx_id"][0], m["value"], m["is_delete"]) for m in history] == [
        ("c", "", True),
        ("b", "v2", False),
        ("a", "v1", False),
    ]
    assert all(dt.datetime.fromisoformat(m["timestamp"]).tzinfo is not None for m in history)


def test_private_range_and_partial_key(peer: ScriptedPeer) -> None:
    for key in ("k1", "k2"):
        peer.invoke("PutPrivate", BOOKS, key, transient={"value": key.encode()})
    peer.invoke("PutPrivateComposite", BOOKS, "acct", "USD,1", transient={"value": b"x"})
    rows = _json(peer, "GetPrivateRange", BOOKS, "k", "l")
    assert rows == [{"key": "k1", "value": "k1"}, {"key": "k2", "value": "k2"}]
    assert _json(peer, "GetPrivateByPartialKey", BOOKS, "acct", "USD") == [["USD", "1"]]


def test_state_based_endorsement_round_trip(peer: ScriptedPeer, batching: bool) -> None:
    peer.invoke("PutState", "payment-1", "initiated")
    result = peer.invoke("SetKeyEndorsers", "payment-1", "USBankMSP,HKBankMSP")
    assert result.status == 200
    assert result.requests == (["WRITE_BATCH_STATE"] if batching else ["PUT_STATE_METADATA"])
    stored = peer.ledger.metadata[("", "payment-1")]["VALIDATION_PARAMETER"]
    assert stored == orgs_must_endorse(["HKBankMSP", "USBankMSP"])
    assert _json(peer, "GetKeyEndorsers", "payment-1") == {
        "n": 2,
        "msp_ids": ["HKBankMSP", "USBankMSP"],
        "role": "peer",
    }
    assert _json(peer, "GetKeyEndorsers", "no-policy") == {"n": 0, "msp_ids": []}


def test_private_key_endorsement_round_trip(peer: ScriptedPeer) -> None:
    peer.invoke("PutPrivate", BOOKS, "acct", transient={"value": b"x"})
    assert peer.invoke("SetPrivateKeyEndorsers", BOOKS, "acct", "USBankMSP").status == 200
    assert _json(peer, "GetPrivateKeyEndorsers", BOOKS, "acct") == ["USBankMSP"]


def test_set_key_endorsers_with_bad_input_changes_nothing(peer: ScriptedPeer) -> None:
    result = peer.invoke("SetKeyEndorsers", "payment-1", "USBankMSP", "3")
    assert result.status == 400
    assert "n must be between 1 and 1" in result.message
    assert ("", "payment-1") not in peer.ledger.metadata


def test_transient_echo(peer: ScriptedPeer) -> None:
    assert _json(peer, "TransientEcho", transient={"b": b"2", "a": b"1"}) == {"a": "1", "b": "2"}


def test_creator_details(peer: ScriptedPeer) -> None:
    identity = make_identity("HKBankMSP", "Admin@hkbank.example.com", ("admin", "ops"))
    creator = _json(peer, "Creator", identity=identity)
    assert isinstance(creator, dict)
    assert creator["msp_id"] == "HKBankMSP"
    assert creator["common_name"] == "Admin@hkbank.example.com"
    assert creator["organizational_units"] == ["admin", "ops"]
    assert creator["subject"].startswith("CN=Admin@hkbank.example.com")
    assert creator["id"] == f"x509::{creator['subject']}::{creator['issuer']}"
    assert creator["has_certificate"] is True


def test_tx_info(peer: ScriptedPeer) -> None:
    before = dt.datetime.now(dt.UTC)
    info = _json(peer, "TxInfo", tx_id="f" * 64, channel_id="tokens")
    assert isinstance(info, dict)
    assert info["tx_id"] == "f" * 64
    assert info["channel_id"] == "tokens"
    assert info["peer_msp_id"] == "USBankMSP"
    assert info["function"] == "TxInfo" and info["parameter_count"] == 0
    assert len(bytes.fromhex(info["binding"])) == 32
    stamp = dt.datetime.fromisoformat(info["timestamp"])
    assert before - dt.timedelta(minutes=1) <= stamp <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)


def test_event_rides_on_completed(peer: ScriptedPeer) -> None:
    result = peer.invoke("EmitEvent", "PaymentInitiated", '{"id":"p1"}')
    assert result.status == 200
    assert result.event_name == "PaymentInitiated"
    assert result.event_payload == b'{"id":"p1"}'


def test_no_event_on_failure(peer: ScriptedPeer) -> None:
    result = peer.invoke("EmitEvent", "", "x")
    assert result.status == 500
    assert result.event_name == ""


def test_typed_arguments(peer: ScriptedPeer) -> None:
    assert peer.invoke("Add", "40", "2").text == "42"
    assert peer.invoke("Add", "-5", "2", "true").text == "3"
    assert peer.invoke("Add", "1", "2", "FALSE").text == "3"
