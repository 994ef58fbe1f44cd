"""The Python Fabric client against the real network: evaluate, submit, commit, private data, errors,
off-line signing, and what the peers do with bad signatures and strangers."""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_client import (
    CommitStatusError,
    Contract,
    ECDSASigner,
    EndorseError,
    Gateway,
    GatewayError,
    Identity,
    SubmitError,
)
from fabric_protos.peer import transaction_pb2

from tests.integration.client_helpers import CHAINCODE, connect_all, load, profile_path_for, unique

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def client_profile(request: pytest.FixtureRequest) -> Path:
    return profile_path_for(request)


@pytest.fixture(scope="module")
def gateways(client_profile: Path) -> Iterator[dict[str, Gateway]]:
    connected = connect_all(client_profile)
    yield connected
    for gateway in connected.values():
        gateway.close()


def contract_of(gateways: dict[str, Gateway], msp_id: str = "USBankMSP") -> Contract:
    return gateways[msp_id].get_network("tokens").get_contract(CHAINCODE)


def flip_last_bit(signature: bytes) -> bytes:
    return signature[:-1] + bytes([signature[-1] ^ 0x01])


# -- evaluate, submit, commit ------------------------------------------------------------------


def test_evaluate_returns_the_chaincode_result(gateways: dict[str, Gateway]) -> None:
    assert contract_of(gateways).evaluate_transaction("Add", 40, 2) == b"42"
    assert contract_of(gateways).evaluate_transaction("Add", 40, 2, "true") == b"-42"


def test_submit_commits_and_other_banks_read_it(gateways: dict[str, Gateway]) -> None:
    key = unique("client-put")

    result = contract_of(gateways).submit_transaction("PutState", key, "v1")

    assert result == b""
    for msp_id in ("USBankMSP", "HKBankMSP", "SGBankMSP"):
        # the other banks' peers commit the block a moment after the submitting peer
        assert read_when_committed(contract_of(gateways, msp_id), "GetState", key) == b"v1"


def read_when_committed(contract: Any, function: str, *args: str, timeout: float = 15) -> bytes:
    """Evaluate until the peer answers something (it may not have committed the block yet)."""
    deadline = time.monotonic() + timeout
    value: bytes = contract.evaluate_transaction(function, *args)
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = contract.evaluate_transaction(function, *args)
    return value


def test_submit_async_status_names_the_block(gateways: dict[str, Gateway]) -> None:
    contract = contract_of(gateways, "HKBankMSP")
    submitted = contract.submit_async("EmitEvent", unique("evt"), "payload")

    status = submitted.status()

    assert submitted.result.decode() == submitted.transaction_id  # EmitEvent returns its own tx id
    assert status.successful and status.code == transaction_pb2.VALID and status.code_name == "VALID"
    assert status.transaction_id == submitted.transaction_id
    assert status.block_number > 0
    assert submitted.get_status().block_number == status.block_number  # asking again gives the same answer


def test_concurrent_calls_share_one_gateway(gateways: dict[str, Gateway]) -> None:
    contract = contract_of(gateways)
    keys = [unique("client-thread") for _ in range(6)]
    errors: list[BaseException] = []

    def put(key: str) -> None:
        try:
            contract.submit_transaction("PutState", key, key)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=put, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert json.loads(contract.evaluate_transaction("GetStateMultiple", ",".join(keys))) == keys


# -- chaincode errors ---------------------------------------------------------------------------


def test_chaincode_refusal_on_evaluate_carries_status_and_reason(gateways: dict[str, Gateway]) -> None:
    with pytest.raises(GatewayError) as caught:
        contract_of(gateways).evaluate_transaction("Fail", 404, "[ACCOUNT_NOT_FOUND] no such account")

    error = caught.value
    assert (error.chaincode_status, error.reason) == (404, "ACCOUNT_NOT_FOUND")
    assert error.chaincode_message == "[ACCOUNT_NOT_FOUND] no such account"
    assert error.transaction_id
    assert error.details and error.details[0].msp_id == "USBankMSP"


def test_chaincode_refusal_on_submit_is_endorse_error(gateways: dict[str, Gateway]) -> None:
    with pytest.raises(EndorseError) as caught:
        contract_of(gateways).submit_transaction("Fail", 409, "[DUPLICATE] deposit reference already used")

    error = caught.value
    assert error.grpc_code == grpc.StatusCode.ABORTED
    assert (error.chaincode_status, error.reason) == (409, "DUPLICATE")
    assert error.is_chaincode_error and not error.is_retryable
    assert {d.msp_id for d in error.details} <= {"USBankMSP", "HKBankMSP", "SGBankMSP", "RegulatorMSP"}


# -- private data -----------------------------------------------------------------------------


def test_private_data_travels_in_transient_map_only(gateways: dict[str, Gateway]) -> None:
    key = unique("client-private")
    secret = unique("holder-Alice")
    collection = "disclosure-USBankMSP"  # USBank and the regulator, memberOnlyRead
    us = contract_of(gateways, "USBankMSP")

    submitted = us.submit_async(
        "PutPrivate", collection, key, transient={"value": secret}, endorsing_organizations=["USBankMSP"]
    )
    status = submitted.status()
    assert status.successful

    assert us.evaluate_transaction("GetPrivate", collection, key).decode() == secret
    # Another bank sees only the hash, and may not read the value.
    hk = contract_of(gateways, "HKBankMSP")
    expected_hash = hashlib.sha256(secret.encode()).hexdigest()
    assert hk.evaluate_transaction("GetPrivateHash", collection, key).decode() == expected_hash
    with pytest.raises(GatewayError):
        hk.evaluate_transaction("GetPrivate", collection, key)
    # The block that holds the transaction, as every org receives it, does not contain the value.
    network = gateways["HKBankMSP"].get_network("tokens")
    with network.get_block_events(start_block=status.block_number) as blocks:
        block = next(blocks)
    assert block.header.number == status.block_number
    assert secret.encode() not in block.SerializeToString()


def submit_when_gossip_ready(contract: Contract, name: str, *args: str, **options: Any) -> bytes:
    """Submit; while a freshly started network's peers have not yet met over gossip, the endorsing peer
    knows no peer to hand the private data to (requiredPeerCount 1) and refuses: try again shortly."""
    deadline = time.monotonic() + 90
    while True:
        try:
            return contract.submit_transaction(name, *args, **options)
        except EndorseError as error:
            if "eligible peers" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_shared_private_data_reaches_the_other_member(gateways: dict[str, Gateway]) -> None:
    key = unique("client-shared")
    details = unique("remittance")
    collection = "disclosure-USBankMSP"  # USBank and the regulator

    submit_when_gossip_ready(
        contract_of(gateways, "USBankMSP"),
        "PutPrivate",
        collection,
        key,
        transient={"value": details},
        endorsing_organizations=["USBankMSP"],
    )

    # The submit returned once USBank's peer committed; the regulator's peer commits the same block a
    # moment later, so read there until it has (the value must then be exactly the details).
    assert read_when_committed(contract_of(gateways, "RegulatorMSP"), "GetPrivate", collection, key) == details.encode()
    with pytest.raises(GatewayError):
        contract_of(gateways, "SGBankMSP").evaluate_transaction("GetPrivate", collection, key)


def test_transient_data_reaches_the_chaincode(gateways: dict[str, Gateway]) -> None:
    echoed = contract_of(gateways).evaluate_transaction("TransientEcho", transient={"a": "1", "b": b"\x32"})
    assert json.loads(echoed) == {"a": "1", "b": "2"}


# -- off-line signing ---------------------------------------------------------------------------


def test_offline_signing_round_trip(client_profile: Path) -> None:
    """The gateway holds only the certificate; every signature is made by a separate signer."""
    org = load(client_profile)["orgs"]["SGBankMSP"]
    offline = ECDSASigner.from_key_file(org["client"]["key"])
    key = unique("client-offline")
    with Gateway.connect(
        identity=Identity.from_cert_file("SGBankMSP", org["client"]["cert"]),
        endpoint=org["peer"]["address"],
        tls_root_cert=Path(org["peer"]["tls_ca"]).read_bytes(),
        host_override=org["peer"]["host_override"],
    ) as gateway:
        contract = gateway.get_network("tokens").get_contract(CHAINCODE)

        unsigned = contract.new_proposal("PutState", key, "signed elsewhere")
        proposal = gateway.new_signed_proposal(unsigned.bytes(), offline(unsigned.digest()))
        unsigned_tx = proposal.endorse()
        transaction = gateway.new_signed_transaction(unsigned_tx.bytes(), offline(unsigned_tx.digest()))
        unsigned_commit = transaction.submit()
        commit = gateway.new_signed_commit(unsigned_commit.bytes(), offline(unsigned_commit.digest()))
        status = commit.status()

        assert status.successful and status.transaction_id == unsigned.transaction_id
        query = contract.new_proposal("GetState", key)
        assert gateway.new_signed_proposal(query.bytes(), offline(query.digest())).evaluate() == b"signed elsewhere"


# -- rejected signatures and identities ---------------------------------------------------------


def test_tampered_signatures_are_rejected_at_every_step(gateways: dict[str, Gateway], client_profile: Path) -> None:
    signer = ECDSASigner.from_key_file(load(client_profile)["orgs"]["USBankMSP"]["client"]["key"])
    contract = contract_of(gateways)
    key = unique("client-tampered")

    proposal = contract.new_proposal("PutState", key, "x")
    proposal.set_signature(flip_last_bit(signer(proposal.digest())))
    with pytest.raises(EndorseError, match="access denied"):
        proposal.endorse()

    transaction = contract.new_proposal("PutState", key, "x").endorse()
    transaction.set_signature(flip_last_bit(signer(transaction.digest())))
    with pytest.raises(SubmitError, match="FORBIDDEN"):
        transaction.submit()

    submitted = contract.new_proposal("PutState", key, "y").endorse().submit()
    submitted.set_signature(flip_last_bit(signer(submitted.digest())))
    with pytest.raises(CommitStatusError) as caught:
        submitted.status()
    assert caught.value.grpc_code == grpc.StatusCode.PERMISSION_DENIED

    # The same request correctly signed is answered; only the honest transaction took effect.
    commit = gateways["USBankMSP"].new_signed_commit(submitted.bytes(), signer(submitted.digest()))
    assert commit.status().successful
    assert contract.evaluate_transaction("GetState", key) == b"y"


def _stranger(msp_id: str) -> tuple[Identity, ECDSASigner]:
    """A certificate from a CA no channel member knows, claiming a member's MSP id."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca.usbank.example.com")])
    user_key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "User1@usbank.example.com")]))
        .issuer_name(ca_name)
        .public_key(user_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return Identity(msp_id, cert.public_bytes(serialization.Encoding.PEM)), ECDSASigner(user_key)


def test_certificate_from_unknown_ca_is_rejected(client_profile: Path) -> None:
    org = load(client_profile)["orgs"]["USBankMSP"]
    identity, signer = _stranger("USBankMSP")
    with Gateway.connect(
        identity=identity,
        signer=signer,
        endpoint=org["peer"]["address"],
        tls_root_cert=Path(org["peer"]["tls_ca"]).read_bytes(),
        host_override=org["peer"]["host_override"],
    ) as gateway:
        contract = gateway.get_network("tokens").get_contract(CHAINCODE)
        with pytest.raises(GatewayError, match="access denied") as evaluated:
            contract.evaluate_transaction("Add", 1, 1)
        with pytest.raises(EndorseError, match="access denied"):
            contract.submit_transaction("PutState", unique("client-stranger"), "x")
    assert evaluated.value.chaincode_status is None  # refused by the peer, not by the contract


# -- unreachable peers ------------------------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_fails_fast_and_names_the_peer(client_profile: Path) -> None:
    org = load(client_profile)["orgs"]["USBankMSP"]
    endpoint = f"127.0.0.1:{_unused_port()}"
    with (
        Gateway.connect(
            identity=Identity.from_cert_file("USBankMSP", org["client"]["cert"]),
            signer=ECDSASigner.from_key_file(org["client"]["key"]),
            endpoint=endpoint,
            tls_root_cert=Path(org["peer"]["tls_ca"]).read_bytes(),
            evaluate_timeout=10,
        ) as gateway,
        pytest.raises(GatewayError) as caught,
    ):
        gateway.get_network("tokens").get_contract(CHAINCODE).evaluate_transaction("Add", 1, 1)
    assert caught.value.grpc_code == grpc.StatusCode.UNAVAILABLE
    assert endpoint in str(caught.value)


def test_silent_peer_gives_deadline_error(client_profile: Path) -> None:
    """A host that accepts TCP but never answers (hung process, black-holed link): the deadline ends it."""
    org = load(client_profile)["orgs"]["USBankMSP"]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"127.0.0.1:{silent.getsockname()[1]}"
        with (
            Gateway.connect(
                identity=Identity.from_cert_file("USBankMSP", org["client"]["cert"]),
                signer=ECDSASigner.from_key_file(org["client"]["key"]),
                endpoint=endpoint,
                tls_root_cert=Path(org["peer"]["tls_ca"]).read_bytes(),
                endorse_timeout=1.5,
            ) as gateway,
            pytest.raises(EndorseError) as caught,
        ):
            gateway.get_network("tokens").get_contract(CHAINCODE).submit_transaction("PutState", "k", "v")
    assert caught.value.grpc_code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    assert endpoint in str(caught.value)
