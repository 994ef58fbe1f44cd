"""Gateway: one client identity connected to one Fabric peer's Gateway service.

Create it once and share it: it holds one gRPC channel, which is thread-safe and multiplexes every call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fabric_protos.gateway import gateway_pb2

from .chaincode_events import ChaincodeEventsRequest
from .client import Deadlines, GatewayClient
from .commit import Commit
from .identity import Identity
from .inflight import DEFAULT_MAX_IN_FLIGHT, SubmissionLimit
from .network import Network
from .proposal import Proposal, channel_of_proposal
from .signer import Hash, Signer, sha256
from .transaction import Transaction

__all__ = ["Gateway", "connect"]

# Blocks and query results can be large; gRPC's 4 MB default would cut them off.
_MAX_MESSAGE_BYTES = 100 * 1024 * 1024
_MAX_RECONNECT_BACKOFF_MS = 2000


class Gateway:
    """Entry point: ``gateway.get_network("tokens").get_contract("deposit_token")``.

    ``signer`` may be ``None`` for a client that signs off-line: then every request must be signed
    outside and brought back with ``new_signed_proposal``/``new_signed_transaction``/``new_signed_commit``/
    ``new_signed_chaincode_events_request``.

    ``submissions`` bounds the submissions in flight on this connection (``max_in_flight``, default
    64; ``None`` for no bound): ``submit_transaction`` and ``submit_idempotent`` hold a place until
    the commit is known, ``submit_async`` while it endorses and submits, and one over the bound is
    refused at once with ``Overloaded`` (after waiting up to ``in_flight_wait`` seconds for a place).
    A caller that drives the steps itself (``new_proposal(...).endorse().submit()``) and learns the
    commit elsewhere takes a place with ``gateway.submissions.acquire()`` and releases it then.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        identity: Identity,
        signer: Signer | None = None,
        *,
        hash: Hash = sha256,
        deadlines: Deadlines | None = None,
        endpoint: str = "",
        owns_channel: bool = False,
        tls_cert_hash: bytes = b"",
        max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
        in_flight_wait: float = 0.0,
    ) -> None:
        self.identity = identity
        self.submissions = SubmissionLimit(max_in_flight, wait=in_flight_wait)
        self.hash = hash
        self.tls_cert_hash = tls_cert_hash
        self.client = GatewayClient(channel, endpoint=endpoint, deadlines=deadlines)
        self._signer = signer
        self._owns_channel = owns_channel
        self._closed = False

    @classmethod
    def connect(
        cls,
        *,
        identity: Identity,
        signer: Signer | None = None,
        endpoint: str | None = None,
        channel: grpc.Channel | None = None,
        tls_root_cert: bytes | None = None,
        host_override: str | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
        insecure: bool = False,
        hash: Hash = sha256,
        deadlines: Deadlines | None = None,
        evaluate_timeout: float | None = None,
        endorse_timeout: float | None = None,
        submit_timeout: float | None = None,
        commit_status_timeout: float | None = None,
        keepalive_time: float | None = None,
        keepalive_timeout: float = 20.0,
        keepalive_without_calls: bool = False,
        channel_options: Sequence[tuple[str, Any]] = (),
        max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
        in_flight_wait: float = 0.0,
    ) -> Gateway:
        """Connect to the peer at ``endpoint`` ("host:port") or use a ready gRPC ``channel``.

        TLS trusts ``tls_root_cert`` (PEM of the peer's TLS CA; the system roots if ``None``);
        ``host_override`` is the name to expect in the peer's certificate when it differs from the dialled
        host. ``client_cert``/``client_key`` (PEM) enable mutual TLS. ``insecure=True`` dials without TLS,
        for test peers only. A channel passed in is not closed by ``close()``; one created here is.

        Deadlines (seconds): ``deadlines`` or the individual ``*_timeout`` values override the defaults
        of ``Deadlines``.

        Keep-alive: ``keepalive_time`` (seconds) sends an HTTP/2 ping after that much silence and drops the
        connection when no answer comes within ``keepalive_timeout``, so a long event stream notices a dead
        peer or a silently dropped NAT/firewall mapping. ``keepalive_without_calls`` pings also when no call
        is open. Fabric peers refuse pings more often than their ``peer.keepalive.minInterval`` (60 s by
        default) and close such connections, so keep ``keepalive_time`` at or above it. ``channel_options``
        adds raw gRPC channel arguments last, so they win.

        ``max_in_flight`` and ``in_flight_wait``: the bound on submissions in flight (see the class).

        No connection is made here; the first call fails with ``GatewayError`` (UNAVAILABLE, naming the
        peer) if the peer cannot be reached. Raises ``ValueError`` for contradictory settings.
        """
        deadlines = _deadlines(
            deadlines, evaluate_timeout, endorse_timeout, submit_timeout, commit_status_timeout
        )
        tls_cert_hash = b""
        if client_cert is not None:
            der = x509.load_pem_x509_certificate(client_cert).public_bytes(serialization.Encoding.DER)
            tls_cert_hash = hashlib.sha256(der).digest()
        if channel is not None:
            if endpoint or tls_root_cert or client_cert:
                raise ValueError("pass either a ready gRPC channel or endpoint/TLS settings, not both")
            return cls(
                channel,
                identity,
                signer,
                hash=hash,
                deadlines=deadlines,
                tls_cert_hash=tls_cert_hash,
                max_in_flight=max_in_flight,
                in_flight_wait=in_flight_wait,
            )
        if not endpoint:
            raise ValueError("connect needs an endpoint ('host:port') or a gRPC channel")
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            # Calls fail at once while the channel is down (wait_for_ready=False), so a restarted peer must
            # be re-dialled soon: gRPC's default backoff grows to two minutes.
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_BACKOFF_MS),
        ]
        if host_override:
            options.append(("grpc.ssl_target_name_override", host_override))
        options.extend(_keepalive_options(keepalive_time, keepalive_timeout, keepalive_without_calls))
        options.extend(channel_options)
        if insecure:
            if tls_root_cert or client_cert:
                raise ValueError("insecure=True cannot be combined with TLS certificates")
            grpc_channel = grpc.insecure_channel(endpoint, options=options)
        else:
            if (client_cert is None) != (client_key is None):
                raise ValueError("mutual TLS needs both client_cert and client_key")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls_root_cert, private_key=client_key, certificate_chain=client_cert
            )
            grpc_channel = grpc.secure_channel(endpoint, credentials, options=options)
        return cls(
            grpc_channel,
            identity,
            signer,
            hash=hash,
            deadlines=deadlines,
            endpoint=endpoint,
            owns_channel=True,
            tls_cert_hash=tls_cert_hash,
            max_in_flight=max_in_flight,
            in_flight_wait=in_flight_wait,
        )

    @property
    def endpoint(self) -> str:
        """The ``host:port`` dialled (empty when a ready channel was passed in)."""
        return self.client.endpoint

    @property
    def deadlines(self) -> Deadlines:
        """The default deadline of each step, in seconds."""
        return self.client.deadlines

    def sign(self, digest: bytes, what: str) -> bytes:
        """Sign ``digest`` with this gateway's signer. Raises ``RuntimeError`` when it has none (off-line signing)."""
        if self._signer is None:
            raise RuntimeError(
                f"the {what} is unsigned and this gateway has no signer: sign its digest() off-line and "
                "bring it back with the gateway's new_signed_* method"
            )
        return self._signer(digest)

    def get_network(self, name: str) -> Network:
        """The channel ``name``. Makes no call; raises ``ValueError`` for an empty name."""
        return Network(self, name)

    # Off-line signing: rebuild a request from its bytes, with or without the signature made elsewhere.

    def new_proposal(self, proposal_bytes: bytes) -> Proposal:
        """Rebuild an unsigned proposal from ``Proposal.bytes()``. Raises ``DecodeError`` on bytes that are not one."""
        proposed = gateway_pb2.ProposedTransaction.FromString(proposal_bytes)
        return Proposal(self, proposed, channel_of_proposal(proposed.proposal.proposal_bytes))

    def new_signed_proposal(self, proposal_bytes: bytes, signature: bytes) -> Proposal:
        """Rebuild a proposal from ``Proposal.bytes()`` with a signature made elsewhere over its ``digest()``."""
        proposal = self.new_proposal(proposal_bytes)
        proposal.set_signature(signature)
        return proposal

    def new_transaction(self, transaction_bytes: bytes) -> Transaction:
        """Rebuild an unsigned endorsed transaction from ``Transaction.bytes()``."""
        return Transaction(self, gateway_pb2.PreparedTransaction.FromString(transaction_bytes))

    def new_signed_transaction(self, transaction_bytes: bytes, signature: bytes) -> Transaction:
        """Rebuild an endorsed transaction from ``Transaction.bytes()`` with a signature over its ``digest()``."""
        transaction = self.new_transaction(transaction_bytes)
        transaction.set_signature(signature)
        return transaction

    def new_commit(self, commit_bytes: bytes) -> Commit:
        """Rebuild an unsigned commit-status request from ``Commit.bytes()``."""
        signed_request = gateway_pb2.SignedCommitStatusRequest.FromString(commit_bytes)
        request = gateway_pb2.CommitStatusRequest.FromString(signed_request.request)
        return Commit(self, signed_request, str(request.transaction_id))

    def new_signed_commit(self, commit_bytes: bytes, signature: bytes) -> Commit:
        """Rebuild a commit-status request from ``Commit.bytes()`` with a signature over its ``digest()``."""
        commit = self.new_commit(commit_bytes)
        commit.set_signature(signature)
        return commit

    def new_chaincode_events_request(self, request_bytes: bytes) -> ChaincodeEventsRequest:
        """Rebuild an unsigned chaincode-events request from ``ChaincodeEventsRequest.bytes()``."""
        return ChaincodeEventsRequest(
            self, gateway_pb2.SignedChaincodeEventsRequest.FromString(request_bytes)
        )

    def new_signed_chaincode_events_request(
        self, request_bytes: bytes, signature: bytes
    ) -> ChaincodeEventsRequest:
        """Rebuild a chaincode-events request from its bytes with a signature over its ``digest()``."""
        request = self.new_chaincode_events_request(request_bytes)
        request.set_signature(signature)
        return request

    def close(self) -> None:
        """Close the gRPC channel if this gateway created it; open streams end."""
        if self._owns_channel and not self._closed:
            self.client.close()
        self._closed = True

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _keepalive_options(
    keepalive_time: float | None, keepalive_timeout: float, without_calls: bool
) -> list[tuple[str, Any]]:
    if keepalive_time is None:
        if without_calls:
            raise ValueError("keepalive_without_calls needs keepalive_time")
        return []
    if not keepalive_time > 0 or not keepalive_timeout > 0:
        raise ValueError("keepalive_time and keepalive_timeout must be positive numbers of seconds")
    return [
        ("grpc.keepalive_time_ms", int(keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 1 if without_calls else 0),
        # gRPC otherwise stops pinging after two pings without data, which would end keep-alive on a quiet
        # event stream.
        ("grpc.http2.max_pings_without_data", 0),
    ]


def _deadlines(
    deadlines: Deadlines | None,
    evaluate: float | None,
    endorse: float | None,
    submit: float | None,
    commit_status: float | None,
) -> Deadlines:
    base = deadlines or Deadlines()
    return Deadlines(
        evaluate=evaluate or base.evaluate,
        endorse=endorse or base.endorse,
        submit=submit or base.submit,
        commit_status=commit_status or base.commit_status,
        chaincode_events=base.chaincode_events,
    )


connect = Gateway.connect
