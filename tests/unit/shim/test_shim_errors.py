"""Failures: ERROR replies from the peer, refused collections, bad input, contract exceptions."""

from __future__ import annotations

import logging

import pytest
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2

from chaincode.shim.contract import Context, Contract, transaction
from chaincode.shim.scripted_peer import ScriptedPeer

from .conftest import PeerFactory, ServerFactory

Msg = chaincode_shim_pb2.ChaincodeMessage
BOOKS_US = "books-USBankMSP"
BOOKS_HK = "books-HKBankMSP"


def test_peer_error_on_read_becomes_a_500_with_the_peers_message(peer: ScriptedPeer) -> None:
    peer.fail_requests[Msg.GET_STATE] = "ledger is on fire"
    result = peer.invoke("GetState", "k")
    assert result.status == 500
    assert "ledger is on fire" in result.message
    assert "GetState" in result.message


def test_peer_error_on_write_fails_the_transaction(peer: ScriptedPeer, batching: bool) -> None:
    peer.fail_requests[Msg.WRITE_BATCH_STATE if batching else Msg.PUT_STATE] = "write refused"
    result = peer.invoke("PutState", "k", "v")
    assert result.status == 500
    assert "write refused" in result.message
    assert ("", "k") not in peer.ledger.state


def test_non_member_cannot_read_but_can_hash(server: object, connect: PeerFactory) -> None:
    owner = connect(server)
    owner.invoke("PutPrivate", BOOKS_HK, "acct", transient={"value": b"secret"})
    outsider = connect(server, ledger=owner.ledger, readable_collections={BOOKS_US})
    denied = outsider.invoke("GetPrivate", BOOKS_HK, "acct")
    assert denied.status == 500
    assert "does not have read access permission" in denied.message
    hashed = outsider.invoke("GetPrivateHash", BOOKS_HK, "acct")
    assert hashed.status == 200
    assert hashed.text == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"


def test_non_member_write_is_refused(server: object, connect: PeerFactory, batching: bool) -> None:
    outsider = connect(server, readable_collections={BOOKS_US}, use_write_batch=batching)
    result = outsider.invoke("PutPrivate", BOOKS_HK, "acct", transient={"value": b"x"})
    assert result.status == 500
    assert "write access permission" in result.message
    assert (BOOKS_HK, "acct") not in outsider.ledger.state


def test_unknown_function_is_a_400_naming_it(peer: ScriptedPeer) -> None:
    result = peer.invoke("TransferEverything")
    assert result.status == 400
    assert "'TransferEverything'" in result.message
    unknown_contract = peer.invoke("ghost:PutState", "k", "v")
    assert unknown_contract.status == 400
    assert "'ghost'" in unknown_contract.message
    unknown_system = peer.invoke("org.hyperledger.fabric:Shutdown")
    assert unknown_system.status == 400


def test_empty_and_undecodable_function_names(peer: ScriptedPeer) -> None:
    assert peer.invoke("").status == 400
    result = peer.invoke("\udcff".encode("utf-8", "surrogatepass").decode("latin-1"))
    assert result.status == 400


def test_wrong_argument_count_is_a_400(peer: ScriptedPeer) -> None:
    result = peer.invoke("PutState", "only-key")
    assert result.status == 400
    assert result.message == "PutState takes 2 argument(s) (key, value), got 1"
    optional = peer.invoke("Add", "1")
    assert optional.status == 400
    assert "takes 2 to 3 argument(s)" in optional.message
    assert peer.invoke("Add", "1", "2", "true", "extra").status == 400


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("1.5", "2"), "argument 'a' must be an integer"),
        (("1", "2e3"), "argument 'b' must be an integer"),
        (("1_000", "2"), "argument 'a' must be an integer"),
        ((" 1", "2"), "argument 'a' must be an integer"),
        (("1", "2", "yes"), "argument 'negate' must be true or false"),
    ],
)
def test_bad_conversions_are_400s(peer: ScriptedPeer, args: tuple[str, ...], complaint: str) -> None:
    result = peer.invoke("Add", *args)
    assert result.status == 400
    assert complaint in result.message
    assert result.message.startswith("Add:")


def test_contract_error_keeps_status_and_message(peer: ScriptedPeer) -> None:
    for status in (400, 403, 404, 409, 503):
        result = peer.invoke("Fail", str(status), f"refused with {status}")
        assert (result.status, result.message) == (status, f"refused with {status}")


def test_exception_is_a_generic_500_and_logs_no_message(peer: ScriptedPeer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        result = peer.invoke("Crash")
        follow_up = peer.invoke("Add", "1", "1")
    assert result.status == 500
    assert "internal error in Crash" in result.message
    assert "secret-customer-data" not in result.message
    assert "secret-customer-data" not in caplog.text
    records = [r for r in caplog.records if getattr(r, "fn", "") == "Crash" and r.levelno == logging.ERROR]
    assert records and records[0].__dict__["error"] == "RuntimeError"
    # The server keeps serving.
    assert follow_up.text == "2"


def test_query_may_not_write(peer: ScriptedPeer) -> None:
    result = peer.invoke("SneakyWrite", "k")
    assert result.status == 500
    assert "SneakyWrite is a query and may not write" in result.message
    assert ("", "k") not in peer.ledger.state
    assert result.requests == []


class PageThenWrite(Contract):
    name = "page_then_write"

    @transaction
    def page_then_write(self, ctx: Context) -> None:
        ctx.stub.get_state_by_range_with_pagination("a", "z", 10)
        ctx.stub.put_state("k", b"v")


def test_paginated_query_then_write_is_refused_by_the_peer(
    start_server: ServerFactory, connect: PeerFactory, batching: bool
) -> None:
    """Fabric allows paginated queries only in read-only transactions, batching or not."""
    peer = connect(start_server([PageThenWrite()]), use_write_batch=batching)
    result = peer.invoke("PageThenWrite")
    assert result.status == 500
    assert "paginated query" in result.message
    assert peer.ledger.state == {}


def test_garbage_transaction_payload_gets_error(server: object, connect: PeerFactory) -> None:
    peer = connect(server)
    result = peer.invoke("Add", "1", "2", payload=b"\xff\xff\xff")
    assert result.error
    assert result.status == 0
    assert peer.invoke("Add", "1", "2").text == "3"


def test_malformed_proposal_gets_error(server: object, connect: PeerFactory) -> None:
    from fabric_protos.peer import proposal_pb2

    peer = connect(server)
    result = peer.invoke("Add", "1", "2", proposal=proposal_pb2.SignedProposal(proposal_bytes=b"\x0a\x02zz"))
    assert result.error
    assert "proposal" in result.error


def test_failed_init_is_reported_as_error(server: object, connect: PeerFactory) -> None:
    peer = connect(server)
    failed = peer.invoke("Fail", "400", "bad init", init=True)
    assert failed.error == "bad init"
    ok = peer.invoke("Add", "1", "2", init=True)
    assert ok.status == 200 and ok.text == "3"


def test_unknown_is_init_flag_still_runs(server: object, connect: PeerFactory) -> None:
    peer = connect(server)
    payload = chaincode_pb2.ChaincodeInput(args=[b"Add", b"2", b"2"], is_init=True).SerializeToString()
    assert peer.invoke("Add", payload=payload).text == "4"


def test_no_protocol_violations_in_error_paths(start_server: ServerFactory, connect: PeerFactory) -> None:
    peer = connect(start_server())
    peer.fail_requests[Msg.GET_STATE_MULTIPLE] = "nope"
    assert peer.invoke("BumpCounters", "a,b,c").status == 500
    assert peer.violations == []
