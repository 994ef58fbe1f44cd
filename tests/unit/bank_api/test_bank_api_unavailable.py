"""Honest errors and readiness: each reason the ledger cannot take a request has its own problem code
and Retry-After, and /readyz is ready only when a payment can be made and completed."""

from __future__ import annotations

import grpc
import pytest
from fabric_client import CommitError, CommitStatusError, EndorseError, ErrorDetail, GatewayError, SubmitError

from gateway.bank_api.fabric_ledger import translate
from gateway.bank_api.ledger import (
    UNAVAILABLE_REASONS,
    ChaincodeUnavailable,
    Contention,
    CounterpartyUnreachable,
    LedgerUnavailable,
    OrderingUnavailable,
    Overloaded,
    PeerUnreachable,
)
from gateway.bank_api.openapi import openapi_document
from gateway.bank_api.readiness import READINESS_CODES
from tests.unit.bank_api.conftest import Gateway, GatewayFactory
from tests.unit.bank_api.fake_ledger import FakeNetwork

# What a Fabric 2.5 peer says, as seen on the test network (tx ids and hashes shortened).
CHAINCODE_DOWN = (
    "error in simulation: failed to execute transaction 1a9d52b8: could not launch chaincode "
    "deposit_token_1.0:58948878: connection to deposit_token_1.0:58948878 failed: error cannot create connection"
)
PAYEE_PEER_DOWN = (
    "error in simulation: failed to distribute private collection, txID 9e85cad1, channel tokens: could not build "
    "private data dissemination plan for chaincode deposit_token and collection bilateral-HKBankMSP-USBankMSP: "
    "required to disseminate to at least 1 peers, but know of only 0 eligible peers"
)
ELECTION = "received unsuccessful response from orderer: status=SERVICE_UNAVAILABLE, info=no Raft leader"


def _detail(message: str) -> tuple[ErrorDetail, ...]:
    return (ErrorDetail("127.0.0.2:28100", "USBankMSP", message),)


def test_our_chaincode_down_is_chaincode_unavailable() -> None:
    for error in (
        EndorseError("failed to endorse", grpc_code=grpc.StatusCode.ABORTED, details=_detail(CHAINCODE_DOWN)),
        GatewayError("failed to evaluate", grpc_code=grpc.StatusCode.ABORTED, details=_detail(CHAINCODE_DOWN)),
    ):
        assert type(translate(error, "USBankMSP")) is ChaincodeUnavailable


def test_the_payee_banks_peer_down_is_counterparty_unreachable_naming_the_bank() -> None:
    error = EndorseError(
        "failed to collect enough transaction endorsements",
        grpc_code=grpc.StatusCode.ABORTED,
        details=_detail(PAYEE_PEER_DOWN),
    )
    translated = translate(error, "USBankMSP")
    assert type(translated) is CounterpartyUnreachable and translated.counterparty == "HKBankMSP"
    assert translate(error, "HKBankMSP").counterparty == "USBankMSP"  # type: ignore[attr-defined]


def test_our_peer_down_is_peer_unreachable() -> None:
    refused = "failed to connect to all addresses; Connection refused [gateway peer 127.0.0.2:28100]"
    for error in (
        GatewayError(refused, grpc_code=grpc.StatusCode.UNAVAILABLE),
        EndorseError(refused, grpc_code=grpc.StatusCode.UNAVAILABLE),
        SubmitError(refused, grpc_code=grpc.StatusCode.UNAVAILABLE),
        CommitStatusError("Socket closed", grpc_code=grpc.StatusCode.UNAVAILABLE),
        GatewayError("Deadline Exceeded", grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED),
    ):
        assert type(translate(error, "USBankMSP")) is PeerUnreachable, error


def test_read_conflicts_through_every_retry_are_contention() -> None:
    for code in (11, 12):  # MVCC_READ_CONFLICT, PHANTOM_READ_CONFLICT
        assert type(translate(CommitError(transaction_id="t", code=code, block_number=3))) is Contention


def test_an_ordering_service_without_leader_or_commit_is_ordering_unavailable() -> None:
    orderer = (ErrorDetail("127.0.0.5:28030", "RegulatorMSP", ELECTION),)
    election = SubmitError("insufficient orderers", grpc_code=grpc.StatusCode.UNAVAILABLE, details=orderer)
    assert type(translate(election)) is OrderingUnavailable
    unknown = CommitStatusError("not committed in time", grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED)
    assert type(translate(unknown)) is OrderingUnavailable


REASONS = [
    PeerUnreachable("peer down"),
    ChaincodeUnavailable("chaincode down"),
    CounterpartyUnreachable("payee peer down", "HKBankMSP"),
    Contention("read conflicts"),
    OrderingUnavailable("no leader"),
    Overloaded("64 submissions in flight"),
    LedgerUnavailable("something else"),
]


@pytest.mark.parametrize("reason", REASONS, ids=lambda r: r.code)
def test_each_reason_answers_503_with_its_code_and_retry_after(
    network: FakeNetwork, us: Gateway, seeded: tuple[str, str], reason: LedgerUnavailable
) -> None:
    _, key = seeded
    network.outage = reason
    response = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": "acc_shop", "currency": "USD", "amount": "1.00"},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"k-{reason.code}"},
    )
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == reason.code and body["detail"] == reason.public_detail
    assert response.headers["Retry-After"] == str(reason.retry_after) and reason.retry_after > 0
    assert body.get("counterparty") == ("HKBankMSP" if isinstance(reason, CounterpartyUnreachable) else None)


def test_the_codes_are_distinct_and_documented() -> None:
    codes = [reason.code for reason in UNAVAILABLE_REASONS]
    assert len(set(codes)) == len(codes) == 7
    document = openapi_document()
    documented = document["components"]["schemas"]["Unavailable"]["properties"]["code"]["enum"]
    assert documented == codes
    description = document["components"]["responses"]["Unavailable"]["description"]
    assert all(f"`{code}`" in description for code in codes)
    readiness = document["paths"]["/readyz"]["get"]["responses"]["503"]["description"]
    assert all(f"`{code}`" in readiness for code in READINESS_CODES)


# -- readiness ------------------------------------------------------------------------------------


def _ready(gateway: Gateway) -> tuple[int, dict[str, object], str]:
    response = gateway.client.get("/readyz")
    return response.status_code, response.get_json(), response.headers.get("Retry-After", "")


def test_ready_when_everything_a_payment_needs_is_there(us: Gateway) -> None:
    status, body, _ = _ready(us)
    assert status == 200 and body["status"] == "ready"
    assert body["checks"] == {  # type: ignore[comparison-overlap]
        "database": "ok",
        "peer": "ok",
        "chaincode": "ok",
        "channel": "sees HKBankMSP, SGBankMSP",
        "ledger": "height 1, 0 block(s) behind the channel",
    }


@pytest.mark.parametrize("reason", [PeerUnreachable("down"), ChaincodeUnavailable("down")], ids=lambda r: r.code)
def test_not_ready_without_our_peer_or_chaincode(network: FakeNetwork, us: Gateway, reason: LedgerUnavailable) -> None:
    network.outage = reason
    status, body, retry_after = _ready(us)
    assert (status, body["code"]) == (503, reason.code) and int(retry_after) > 0


def test_ready_while_one_bank_is_out_of_sight_and_says_which(network: FakeNetwork, us: Gateway) -> None:
    """A payment to a bank whose peer is down is made all the same (decision 0031): still ready."""
    network.channel_members = {"USBankMSP": 1, "SGBankMSP": 1}
    status, body, _ = _ready(us)
    assert status == 200 and body["checks"]["channel"] == "sees SGBankMSP; not HKBankMSP"  # type: ignore[index]
    network.channel_members = {"USBankMSP": 1}  # no other bank at all: the peer is cut off
    status, body, retry_after = _ready(us)
    assert (status, body["code"], body["banks"]) == (503, "counterparty_unreachable", ["HKBankMSP", "SGBankMSP"])
    assert int(retry_after) > 0
    network.channel_members = None
    assert _ready(us)[0] == 200


def test_every_bank_may_be_required_when_so_configured(network: FakeNetwork, make_gateway: GatewayFactory) -> None:
    us = make_gateway("USBankMSP", readiness_requires_all_banks=True)
    network.channel_members = {"USBankMSP": 1, "SGBankMSP": 1}  # restarted: gossip has not found HKBank yet
    status, body, retry_after = _ready(us)
    assert (status, body["code"], body["banks"]) == (503, "counterparty_unreachable", ["HKBankMSP"])
    assert int(retry_after) > 0 and body["checks"]["channel"] == "sees SGBankMSP; not HKBankMSP"  # type: ignore[index]
    network.channel_members = None
    assert _ready(us)[0] == 200


def test_not_ready_while_the_peer_catches_up(network: FakeNetwork, us: Gateway) -> None:
    network.blocks_behind = 40
    status, body, _ = _ready(us)
    assert (status, body["code"]) == (503, "peer_catching_up")
    network.blocks_behind = 3  # a few blocks behind is every peer's normal state under load
    assert _ready(us)[0] == 200
