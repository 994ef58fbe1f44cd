from __future__ import annotations

import hashlib
import time

import pytest
from client_test_keys import Credentials
from fabric_client import Gateway, Identity
from fabric_client.proposal import (
    NONCE_SIZE,
    TransactionContext,
    build_proposed_transaction,
    derive_transaction_id,
)
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2
from fake_gateway import unpack_proposal


def test_transaction_id_is_hex_sha256_of_nonce_and_creator(credentials: Credentials) -> None:
    creator = Identity("USBankMSP", credentials.cert_pem).creator()
    context = TransactionContext.new(creator)

    assert len(context.nonce) == NONCE_SIZE
    assert context.transaction_id == hashlib.sha256(context.nonce + creator).hexdigest()
    assert derive_transaction_id(b"\x01" * 24, b"me") == hashlib.sha256(b"\x01" * 24 + b"me").hexdigest()
    assert TransactionContext.new(creator).transaction_id != context.transaction_id


def test_proposal_structure(credentials: Credentials) -> None:
    creator = Identity("HKBankMSP", credentials.cert_pem).creator()
    context = TransactionContext.new(creator)
    before = int(time.time())

    proposed = build_proposed_transaction(
        context=context,
        channel_name="tokens",
        chaincode_name="deposit_token",
        transaction_name="InitiatePayment",
        arguments=["pay-1", 1250, b"\xff"],
        transient={"details": b'{"payee":"x"}', "note": "n"},
        endorsing_organizations=["HKBankMSP"],
    )

    assert proposed.transaction_id == context.transaction_id
    assert list(proposed.endorsing_organizations) == ["HKBankMSP"]
    assert proposed.proposal.signature == b""
    parts = unpack_proposal(proposed.proposal)
    header = parts["channel_header"]
    assert header.type == common_pb2.ENDORSER_TRANSACTION
    assert (header.channel_id, header.tx_id, header.epoch) == ("tokens", context.transaction_id, 0)
    assert header.timestamp.seconds >= before
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(header.extension)
    assert extension.chaincode_id.name == "deposit_token"
    assert parts["signature_header"].creator == creator
    assert parts["signature_header"].nonce == context.nonce
    assert parts["args"] == [b"InitiatePayment", b"pay-1", b"1250", b"\xff"]
    assert parts["chaincode"] == "deposit_token"
    assert parts["transient"] == {"details": b'{"payee":"x"}', "note": b"n"}
    # Transient data lives only in the proposal payload; it never becomes an argument.
    invocation = chaincode_pb2.ChaincodeInvocationSpec.FromString(parts["payload"].input)
    assert b"payee" not in invocation.SerializeToString()


@pytest.mark.parametrize("bad", [1.5, True, None])
def test_float_bool_and_none_arguments_are_refused(credentials: Credentials, bad: object) -> None:
    context = TransactionContext.new(Identity("USBankMSP", credentials.cert_pem).creator())
    with pytest.raises(TypeError, match="argument 1 of Issue"):
        build_proposed_transaction(
            context=context,
            channel_name="tokens",
            chaincode_name="deposit_token",
            transaction_name="Issue",
            arguments=[bad],  # type: ignore[list-item]
        )


def test_proposal_bytes_round_trip_through_gateway(credentials: Credentials) -> None:
    import grpc

    channel = grpc.insecure_channel("127.0.0.1:1")  # never dialled: nothing is sent in this test
    gw = Gateway(channel, Identity("USBankMSP", credentials.cert_pem))
    proposal = gw.get_network("tokens").get_contract("deposit_token").new_proposal("Issue", "7")

    rebuilt = gw.new_signed_proposal(proposal.bytes(), b"sig")

    assert rebuilt.transaction_id == proposal.transaction_id
    assert rebuilt.channel_name == "tokens"
    assert (
        rebuilt.digest()
        == proposal.digest()
        == hashlib.sha256(proposal.signed_proposal.proposal_bytes).digest()
    )
    assert gateway_pb2.ProposedTransaction.FromString(rebuilt.bytes()).proposal.signature == b"sig"
    assert proposal.is_signed() is False
    channel.close()
