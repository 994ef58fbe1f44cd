"""An in-process stand-in for a peer's Gateway service, for client tests without a Fabric network.

It checks what a real peer checks about the client's messages: every signature verifies against the
creator's certificate, and the transaction id is sha256(nonce + creator).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from client_test_keys import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_client import ECDSASigner, Gateway, Identity
from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

REFUSAL = "chaincode response 404, [ACCOUNT_NOT_FOUND] no such account"


def verify(creator: bytes, message: bytes, signature: bytes) -> None:
    identity = identities_pb2.SerializedIdentity.FromString(creator)
    public_key = x509.load_pem_x509_certificate(identity.id_bytes).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def unpack_proposal(signed: Any) -> dict[str, Any]:
    proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    invocation = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input)
    return {
        "proposal": proposal,
        "header": header,
        "channel_header": channel_header,
        "signature_header": signature_header,
        "payload": payload,
        "args": list(invocation.chaincode_spec.input.args),
        "chaincode": invocation.chaincode_spec.chaincode_id.name,
        "transient": dict(payload.TransientMap),
    }


def rich_abort(
    context: grpc.ServicerContext, code: int, message: str, details: list[tuple[str, str, str]]
) -> None:
    packed = []
    for address, msp_id, text in details:
        detail = any_pb2.Any()
        detail.Pack(gateway_pb2.ErrorDetail(address=address, msp_id=msp_id, message=text))
        packed.append(detail)
    context.abort_with_status(
        rpc_status.to_status(status_pb2.Status(code=code, message=message, details=packed))
    )


QSCC_HEIGHT = 12
QSCC_TX_BLOCK = 5


def qscc_answer(args: list[bytes]) -> bytes:
    """What the query system chaincode returns, for a ledger of ``QSCC_HEIGHT`` blocks."""
    function, channel = args[0].decode(), args[1].decode()
    assert channel == "tokens", channel
    if function == "GetChainInfo":
        return bytes(
            ledger_pb2.BlockchainInfo(height=QSCC_HEIGHT, currentBlockHash=b"\x01" * 32).SerializeToString()
        )
    if function == "GetBlockByNumber":
        number = int(args[2])
        return bytes(common_pb2.Block(header=common_pb2.BlockHeader(number=number)).SerializeToString())
    if function in ("GetBlockByTxID", "GetBlockByHash"):
        return bytes(common_pb2.Block(header=common_pb2.BlockHeader(number=QSCC_TX_BLOCK)).SerializeToString())
    if function == "GetTransactionByID":
        return bytes(
            transaction_pb2.ProcessedTransaction(validationCode=transaction_pb2.MVCC_READ_CONFLICT).SerializeToString()
        )
    raise AssertionError(f"unexpected qscc function {function}")


@dataclass
class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    commit_code: int = transaction_pb2.VALID
    commit_block: int = 7
    commit_delay: float = 0.0
    events: list[Any] = field(default_factory=list)
    endorse_error: tuple[int, str, list[tuple[str, str, str]]] | None = None
    evaluated: list[dict[str, Any]] = field(default_factory=list)
    endorsed: list[dict[str, Any]] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    events_requests: list[Any] = field(default_factory=list)
    stream_cancelled: threading.Event = field(default_factory=threading.Event)
    # Recovery scripting (submit_idempotent): the next N submitted transactions are lost (never
    # committed, unknown to the ledger) or commit late (after the client's status deadline); the next
    # N submits fail as in a Raft election. ``ledger_codes`` answers GetTransactionByID when set.
    lose_next: int = 0
    commit_late_next: int = 0
    unavailable_submits: int = 0
    submit_calls: int = 0
    ledger_codes: dict[str, int] | None = None
    lost: set[str] = field(default_factory=set)
    on_endorse: Callable[[FakeGateway, str], None] | None = None
    result_with_tx_id: bool = False

    def _check_proposal(self, signed: Any, transaction_id: str) -> dict[str, Any]:
        parts = unpack_proposal(signed)
        creator = parts["signature_header"].creator
        verify(creator, signed.proposal_bytes, signed.signature)
        derived = hashlib.sha256(parts["signature_header"].nonce + creator).hexdigest()
        assert derived == parts["channel_header"].tx_id == transaction_id
        return parts

    def Evaluate(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            parts = self._check_proposal(request.proposed_transaction, request.transaction_id)
        except Exception as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"bad proposal: {error!r}")
        parts["target_organizations"] = list(request.target_organizations)
        self.evaluated.append(parts)
        if parts["chaincode"] == "qscc" and parts["args"][0] == b"GetTransactionByID" and self.ledger_codes is not None:
            tx_id = parts["args"][2].decode()
            if tx_id not in self.ledger_codes:
                message = f"Failed to get transaction with id {tx_id}, error no such transaction ID [{tx_id}] in index"
                rich_abort(
                    context,
                    code_pb2.UNKNOWN,
                    "evaluate call to endorser returned error: chaincode response 500, " + message,
                    [("peer0.usbank.example.com:7051", "USBankMSP", "chaincode response 500, " + message)],
                )
            processed = transaction_pb2.ProcessedTransaction(validationCode=self.ledger_codes[tx_id])
            return gateway_pb2.EvaluateResponse(
                result=proposal_response_pb2.Response(status=200, payload=processed.SerializeToString())
            )
        if parts["chaincode"] == "qscc":
            return gateway_pb2.EvaluateResponse(
                result=proposal_response_pb2.Response(status=200, payload=qscc_answer(parts["args"]))
            )
        if parts["args"][0] == b"Refuse":
            rich_abort(
                context,
                code_pb2.UNKNOWN,
                "evaluate call to endorser returned error: " + REFUSAL,
                [
                    (
                        "peer0.usbank.example.com:7051",
                        "USBankMSP",
                        "chaincode response 404, [ACCOUNT_NOT_FOUND] no such account",
                    )
                ],
            )
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(status=200, payload=b"|".join(parts["args"]))
        )

    def Endorse(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            parts = self._check_proposal(request.proposed_transaction, request.transaction_id)
        except Exception as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"bad proposal: {error!r}")
        parts["endorsing_organizations"] = list(request.endorsing_organizations)
        self.endorsed.append(parts)
        if self.on_endorse is not None:
            self.on_endorse(self, request.transaction_id)
        if self.endorse_error is not None:
            code, message, details = self.endorse_error
            rich_abort(context, code, message, details)
        result = b"endorsed:" + b"|".join(parts["args"])
        if self.result_with_tx_id:
            result += b"@" + request.transaction_id.encode()
        action = proposal_pb2.ChaincodeAction(
            response=proposal_response_pb2.Response(status=200, payload=result)
        )
        response_payload = proposal_response_pb2.ProposalResponsePayload(extension=action.SerializeToString())
        action_payload = transaction_pb2.ChaincodeActionPayload(
            action=transaction_pb2.ChaincodeEndorsedAction(
                proposal_response_payload=response_payload.SerializeToString()
            )
        )
        transaction = transaction_pb2.Transaction(
            actions=[transaction_pb2.TransactionAction(payload=action_payload.SerializeToString())]
        )
        payload = common_pb2.Payload(
            header=common_pb2.Header(
                channel_header=parts["header"].channel_header,
                signature_header=parts["header"].signature_header,
            ),
            data=transaction.SerializeToString(),
        )
        return gateway_pb2.EndorseResponse(
            prepared_transaction=common_pb2.Envelope(payload=payload.SerializeToString())
        )

    def Submit(self, request: Any, context: grpc.ServicerContext) -> Any:
        envelope = request.prepared_transaction
        payload = common_pb2.Payload.FromString(envelope.payload)
        creator = common_pb2.SignatureHeader.FromString(payload.header.signature_header).creator
        try:
            verify(creator, envelope.payload, envelope.signature)
        except Exception:
            context.abort(
                grpc.StatusCode.ABORTED, "received unsuccessful response from orderer: status=BAD_REQUEST"
            )
        self.submit_calls += 1
        if self.unavailable_submits > 0:
            self.unavailable_submits -= 1
            rich_abort(
                context,
                code_pb2.UNAVAILABLE,
                "insufficient number of orderers could successfully process transaction",
                [("orderer0.hk:7050", "HKBankMSP", "received unsuccessful response from orderer: SERVICE_UNAVAILABLE")],
            )
        self.submitted.append(request.transaction_id)
        if self.lose_next > 0:
            self.lose_next -= 1
            self.lost.add(request.transaction_id)
        elif self.commit_late_next > 0:
            self.commit_late_next -= 1
            self.lost.add(request.transaction_id)
            if self.ledger_codes is not None:
                self.ledger_codes[request.transaction_id] = self.commit_code
        elif self.ledger_codes is not None:
            self.ledger_codes[request.transaction_id] = self.commit_code
        return gateway_pb2.SubmitResponse()

    def CommitStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
        try:
            verify(inner.identity, request.request, request.signature)
        except Exception:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "signature check failed")
        if self.commit_delay:
            threading.Event().wait(self.commit_delay)
        if inner.transaction_id not in self.submitted:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown transaction")
        while inner.transaction_id in self.lost and context.is_active():
            threading.Event().wait(0.02)  # as a peer waits for a block that never brings it
        return gateway_pb2.CommitStatusResponse(result=self.commit_code, block_number=self.commit_block)

    def ChaincodeEvents(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        inner = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        verify(inner.identity, request.request, request.signature)
        self.events_requests.append(inner)
        context.add_callback(self.stream_cancelled.set)
        for block_number, events in self.events:
            yield gateway_pb2.ChaincodeEventsResponse(
                block_number=block_number,
                events=[
                    chaincode_event_pb2.ChaincodeEvent(
                        chaincode_id=inner.chaincode_id, tx_id=tx_id, event_name=name, payload=payload
                    )
                    for tx_id, name, payload in events
                ],
            )
        # Like a peer: keep the stream open until the client goes away.
        while context.is_active():
            self.stream_cancelled.wait(0.05)


class FakeGatewayServer:
    def __init__(self, servicer: FakeGateway) -> None:
        self.servicer = servicer
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"

    def __enter__(self) -> FakeGatewayServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


@contextmanager
def connected(fake: FakeGateway, credentials: Credentials, **options: Any) -> Iterator[Gateway]:
    """A client connected as USBankMSP to the fake Gateway service, served in-process."""
    with (
        FakeGatewayServer(fake) as server,
        Gateway.connect(
            identity=Identity("USBankMSP", credentials.cert_pem),
            signer=ECDSASigner.from_pem(credentials.key_pem),
            endpoint=server.endpoint,
            insecure=True,
            **options,
        ) as gateway,
    ):
        yield gateway
