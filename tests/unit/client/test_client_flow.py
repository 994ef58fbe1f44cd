"""The whole client flow against an in-process fake Gateway service that verifies every signature."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import grpc
import pytest
from client_test_keys import Credentials
from fabric_client import (
    CommitError,
    CommitStatusError,
    ECDSASigner,
    EndorseError,
    Gateway,
    GatewayError,
    Identity,
    InMemoryCheckpointer,
)
from fabric_protos.peer import transaction_pb2
from fake_gateway import FakeGateway, FakeGatewayServer, connected
from google.rpc import code_pb2


@pytest.fixture
def gateway(fake: FakeGateway, credentials: Credentials) -> Iterator[Gateway]:
    with connected(fake, credentials) as gw:
        yield gw


def test_evaluate_sends_signed_proposal_with_args_and_transient(gateway: Gateway, fake: FakeGateway) -> None:
    contract = gateway.get_network("tokens").get_contract("deposit_token")

    result = contract.evaluate_transaction(
        "GetAccount",
        "acct-1",
        250,
        b"\x00raw",
        transient={"holder": "Alice"},
        endorsing_organizations=["USBankMSP"],
    )

    assert result == b"GetAccount|acct-1|250|\x00raw"
    seen = fake.evaluated[-1]
    assert seen["chaincode"] == "deposit_token"
    assert seen["channel_header"].channel_id == "tokens"
    assert seen["transient"] == {"holder": b"Alice"}
    assert seen["target_organizations"] == ["USBankMSP"]


def test_contract_name_prefixes_transaction(gateway: Gateway, fake: FakeGateway) -> None:
    contract = gateway.get_network("tokens").get_contract("deposit_token", "deposit_token")
    assert contract.evaluate_transaction("GetSupply") == b"deposit_token:GetSupply"


def test_submit_transaction_returns_result_after_valid_commit(gateway: Gateway, fake: FakeGateway) -> None:
    contract = gateway.get_network("tokens").get_contract("deposit_token")

    result = contract.submit_transaction("Issue", "100", endorsing_organizations=["USBankMSP", "HKBankMSP"])

    assert result == b"endorsed:Issue|100"
    assert fake.submitted == [fake.endorsed[-1]["channel_header"].tx_id]
    assert fake.endorsed[-1]["endorsing_organizations"] == ["USBankMSP", "HKBankMSP"]


def test_submit_async_then_status(gateway: Gateway, fake: FakeGateway) -> None:
    submitted = gateway.get_network("tokens").get_contract("deposit_token").submit_async("Issue", "5")

    status = submitted.status()

    assert submitted.result == b"endorsed:Issue|5"
    assert status.successful
    assert (status.code, status.code_name, status.block_number) == (0, "VALID", 7)
    assert status.transaction_id == submitted.transaction_id == fake.submitted[0]


def test_invalid_commit_raises_commit_error_with_code(gateway: Gateway, fake: FakeGateway) -> None:
    fake.commit_code = transaction_pb2.MVCC_READ_CONFLICT
    contract = gateway.get_network("tokens").get_contract("deposit_token")

    with pytest.raises(CommitError) as caught:
        contract.submit_transaction("Transfer", "1")

    error = caught.value
    assert (error.code, error.code_name, error.block_number) == (11, "MVCC_READ_CONFLICT", 7)
    assert error.is_retryable
    assert error.transaction_id == fake.submitted[-1]
    assert "MVCC_READ_CONFLICT" in str(error)


def test_endorse_error_carries_details_and_chaincode_status(gateway: Gateway, fake: FakeGateway) -> None:
    fake.endorse_error = (
        code_pb2.ABORTED,
        "failed to endorse transaction, see attached details for more info",
        [
            (
                "peer0.usbank.example.com:7051",
                "USBankMSP",
                "chaincode response 409, [DUPLICATE] already issued",
            )
        ],
    )
    contract = gateway.get_network("tokens").get_contract("deposit_token")

    with pytest.raises(EndorseError) as caught:
        contract.submit_transaction("Issue", "1")

    error = caught.value
    assert error.grpc_code == grpc.StatusCode.ABORTED
    assert error.transaction_id == fake.endorsed[-1]["channel_header"].tx_id
    assert [(d.address, d.msp_id) for d in error.details] == [("peer0.usbank.example.com:7051", "USBankMSP")]
    assert (error.chaincode_status, error.chaincode_message) == (409, "[DUPLICATE] already issued")
    assert error.reason == "DUPLICATE"
    assert error.is_chaincode_error and not error.is_retryable
    assert fake.submitted == []


def test_evaluate_error_is_gateway_error_with_chaincode_status(gateway: Gateway) -> None:
    contract = gateway.get_network("tokens").get_contract("deposit_token")

    with pytest.raises(GatewayError) as caught:
        contract.evaluate_transaction("Refuse")

    assert caught.value.chaincode_status == 404
    assert caught.value.reason == "ACCOUNT_NOT_FOUND"
    assert caught.value.details[0].msp_id == "USBankMSP"
    assert str(caught.value).startswith("evaluate failed (transaction ")


def test_commit_status_deadline_gives_commit_status_error(gateway: Gateway, fake: FakeGateway) -> None:
    fake.commit_delay = 2.0
    submitted = gateway.get_network("tokens").get_contract("deposit_token").submit_async("Issue", "1")

    with pytest.raises(CommitStatusError) as caught:
        submitted.status(timeout=0.2)

    assert caught.value.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.transaction_id == submitted.transaction_id


def test_offline_signing_round_trip(fake: FakeGateway, credentials: Credentials) -> None:
    """The gateway holds no key: each message leaves as bytes+digest and comes back signed."""
    offline_signer = ECDSASigner.from_pem(credentials.key_pem)
    with (
        FakeGatewayServer(fake) as server,
        Gateway.connect(
            identity=Identity("USBankMSP", credentials.cert_pem), endpoint=server.endpoint, insecure=True
        ) as gw,
    ):
        contract = gw.get_network("tokens").get_contract("deposit_token")
        unsigned = contract.new_proposal("Issue", "42", transient={"ref": "dep-1"})
        with pytest.raises(RuntimeError, match="no signer"):
            unsigned.endorse()

        proposal = gw.new_signed_proposal(unsigned.bytes(), offline_signer(unsigned.digest()))
        assert proposal.transaction_id == unsigned.transaction_id
        unsigned_tx = proposal.endorse()
        transaction = gw.new_signed_transaction(unsigned_tx.bytes(), offline_signer(unsigned_tx.digest()))
        assert transaction.result == b"endorsed:Issue|42"
        unsigned_commit = transaction.submit()
        commit = gw.new_signed_commit(unsigned_commit.bytes(), offline_signer(unsigned_commit.digest()))
        status = commit.status()

        assert status.successful and status.transaction_id == proposal.transaction_id
        assert fake.submitted == [proposal.transaction_id]


def test_tampered_offline_signature_is_rejected(fake: FakeGateway, credentials: Credentials) -> None:
    signer = ECDSASigner.from_pem(credentials.key_pem)
    with (
        FakeGatewayServer(fake) as server,
        Gateway.connect(
            identity=Identity("USBankMSP", credentials.cert_pem), endpoint=server.endpoint, insecure=True
        ) as gw,
    ):
        proposal = gw.get_network("tokens").get_contract("deposit_token").new_proposal("Issue", "1")
        signature = bytearray(signer(proposal.digest()))
        signature[-1] ^= 0x01
        with pytest.raises(EndorseError):
            gw.new_signed_proposal(proposal.bytes(), bytes(signature)).endorse()


def test_chaincode_events_resume_from_checkpoint(gateway: Gateway, fake: FakeGateway) -> None:
    fake.events = [
        (5, [("tx-a", "Issued", b"1"), ("tx-b", "Issued", b"2")]),
        (6, [("tx-c", "Paid", b"3")]),
    ]
    checkpointer = InMemoryCheckpointer()
    checkpointer.checkpoint_transaction(5, "tx-a")
    network = gateway.get_network("tokens")

    with network.get_chaincode_events("deposit_token", start_block=0, checkpointer=checkpointer) as events:
        received = [next(events), next(events), next(events)]

    request = fake.events_requests[-1]
    assert request.start_position.specified.number == 5  # the checkpoint wins over start_block
    assert request.after_transaction_id == "tx-a"
    assert [(e.block_number, e.transaction_id, e.event_name, e.payload) for e in received] == [
        (5, "tx-a", "Issued", b"1"),
        (5, "tx-b", "Issued", b"2"),
        (6, "tx-c", "Paid", b"3"),
    ]
    assert received[0].chaincode_name == "deposit_token"
    assert fake.stream_cancelled.wait(5)


def test_event_stream_close_from_another_thread_ends_iteration(gateway: Gateway, fake: FakeGateway) -> None:
    events = gateway.get_network("tokens").get_chaincode_events("deposit_token")
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.extend(events))
    reader.start()
    threading.Timer(0.3, events.close).start()
    reader.join(10)

    assert not reader.is_alive()
    assert seen == []
    assert fake.events_requests[-1].start_position.HasField("next_commit")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_peer_fails_with_clear_error(credentials: Credentials) -> None:
    endpoint = f"127.0.0.1:{_free_port()}"
    with Gateway.connect(
        identity=Identity("USBankMSP", credentials.cert_pem),
        signer=ECDSASigner.from_pem(credentials.key_pem),
        endpoint=endpoint,
        insecure=True,
        evaluate_timeout=5,
        endorse_timeout=5,
    ) as gw:
        contract = gw.get_network("tokens").get_contract("deposit_token")
        with pytest.raises(GatewayError) as evaluated:
            contract.evaluate_transaction("GetSupply")
        with pytest.raises(EndorseError) as endorsed:
            contract.submit_transaction("Issue", "1")

    for error in (evaluated.value, endorsed.value):
        assert error.grpc_code == grpc.StatusCode.UNAVAILABLE
        assert endpoint in str(error)


def test_closing_the_gateway_ends_its_event_streams_quietly(
    fake: FakeGateway, credentials: Credentials
) -> None:
    with FakeGatewayServer(fake) as server:
        gw = Gateway.connect(
            identity=Identity("USBankMSP", credentials.cert_pem),
            signer=ECDSASigner.from_pem(credentials.key_pem),
            endpoint=server.endpoint,
            insecure=True,
        )
        fake.events = [(3, [("tx-1", "Issued", b"")])]
        events = gw.get_network("tokens").get_chaincode_events("deposit_token", start_block=3)
        assert next(events).transaction_id == "tx-1"
        gw.close()
        assert list(events) == []


def test_broken_event_stream_raises_gateway_error(fake: FakeGateway, credentials: Credentials) -> None:
    with (
        FakeGatewayServer(fake) as server,
        Gateway.connect(
            identity=Identity("USBankMSP", credentials.cert_pem),
            signer=ECDSASigner.from_pem(credentials.key_pem),
            endpoint=server.endpoint,
            insecure=True,
        ) as gw,
    ):
        fake.events = [(3, [("tx-1", "Issued", b"")])]
        events = gw.get_network("tokens").get_chaincode_events("deposit_token", start_block=3, timeout=0.5)
        assert next(events).transaction_id == "tx-1"
        with pytest.raises(GatewayError) as caught:
            next(events)
    assert caught.value.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.operation == "chaincode events"
