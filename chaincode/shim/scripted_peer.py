"""A scripted stand-in for a Fabric peer, for testing chaincode servers without a network.

:class:`ScriptedPeer` is a real gRPC client: it dials a chaincode server, takes part in
the REGISTER / REGISTERED / READY handshake (announcing v3 batching or not), sends
TRANSACTION messages with a signed-proposal-shaped payload (creator, transient map,
timestamp) and answers the chaincode's ledger requests from an in-memory
:class:`Ledger`, with the peer's rules:

- reads see committed state only, never the transaction's own writes;
- a collection the peer's org may not read answers ERROR to reads but serves hashes;
- paginated queries and private-data range queries refuse a write around them;
- query results come in batches of ``query_batch`` (QUERY_STATE_NEXT fetches more);
- paginated range queries return a bookmark (the next key, or "" at the end);
- a second request for a txid while one is pending is recorded as a protocol violation
  (the real peer silently drops it, which hangs the transaction).

Every invocation returns the requests the chaincode made, so tests can count messages
and round trips. Several invocations may run at once on one stream (one per thread).
It is not a ledger: no MVCC check, no endorsement, no blocks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_pb2,
    proposal_response_pb2,
)
from google.protobuf import timestamp_pb2

Msg = chaincode_shim_pb2.ChaincodeMessage
CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", 100 * 1024 * 1024),
    ("grpc.max_receive_message_length", 100 * 1024 * 1024),
]
REQUEST_TYPES = {
    Msg.GET_STATE,
    Msg.PUT_STATE,
    Msg.DEL_STATE,
    Msg.INVOKE_CHAINCODE,
    Msg.GET_STATE_BY_RANGE,
    Msg.GET_QUERY_RESULT,
    Msg.QUERY_STATE_NEXT,
    Msg.QUERY_STATE_CLOSE,
    Msg.GET_HISTORY_FOR_KEY,
    Msg.GET_STATE_METADATA,
    Msg.PUT_STATE_METADATA,
    Msg.GET_PRIVATE_DATA_HASH,
    Msg.PURGE_PRIVATE_DATA,
    Msg.WRITE_BATCH_STATE,
    Msg.GET_STATE_MULTIPLE,
}


class PeerError(Exception):
    """The scripted peer could not complete an exchange (timeout, stream ended, bad message)."""


# -- identities -----------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    msp_id: str
    certificate_pem: bytes

    def serialize(self) -> bytes:
        return identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=self.certificate_pem).SerializeToString()


def make_identity(msp_id: str, common_name: str, organizational_units: Sequence[str] = ("client",)) -> Identity:
    """A throwaway self-signed X.509 identity for the creator field of proposals."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in organizational_units]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attributes)
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"ca.{msp_id.lower()}.example.com"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return Identity(msp_id=msp_id, certificate_pem=cert.public_bytes(serialization.Encoding.PEM))


def build_signed_proposal(
    *,
    channel_id: str,
    tx_id: str,
    chaincode_name: str,
    args: Sequence[bytes],
    creator: bytes,
    transient: Mapping[str, bytes] | None = None,
    nonce: bytes | None = None,
    timestamp: dt.datetime | None = None,
) -> proposal_pb2.SignedProposal:
    """A proposal shaped like the gateway's (unsigned: the shim does not verify signatures)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(timestamp or dt.datetime.now(dt.UTC))
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION, channel_id=channel_id, tx_id=tx_id, timestamp=ts, epoch=0
    )
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce or os.urandom(24))
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=signature_header.SerializeToString(),
    )
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode_name),
            input=chaincode_pb2.ChaincodeInput(args=list(args)),
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString(), TransientMap=dict(transient or {}))
    proposal = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
    return proposal_pb2.SignedProposal(proposal_bytes=proposal.SerializeToString(), signature=b"")


# -- the in-memory ledger ----------------------------------------------------------


_StateKey = tuple[str, str]  # (collection, key); collection "" is public state


@dataclass
class Ledger:
    """Committed state shared by the scripted peers of one test."""

    state: dict[_StateKey, bytes] = field(default_factory=dict)
    metadata: dict[_StateKey, dict[str, bytes]] = field(default_factory=dict)
    history: dict[str, list[kv_query_result_pb2.KeyModification]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, collection: str, key: str) -> bytes:
        with self.lock:
            return self.state.get((collection, key), b"")

    def keys_in(self, collection: str, start: str, end: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return sorted(
                (key, value)
                for (coll, key), value in self.state.items()
                if coll == collection and key >= start and (not end or key < end)
            )


@dataclass
class _Simulation:
    """The peer-side state of one running transaction."""

    tx_id: str
    timestamp: dt.datetime
    writes: dict[_StateKey, bytes | None] = field(default_factory=dict)
    metadata_writes: dict[_StateKey, dict[str, bytes]] = field(default_factory=dict)
    iterators: dict[str, list[bytes]] = field(default_factory=dict)
    write_performed: bool = False
    restricted_query_performed: str = ""


@dataclass
class InvokeResult:
    """What the chaincode answered, and what it asked of the peer on the way."""

    status: int
    message: str
    payload: bytes
    event_name: str = ""
    event_payload: bytes = b""
    error: str = ""  # set when the chaincode answered ERROR instead of COMPLETED
    requests: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        """Request/reply exchanges: the transaction itself plus one per ledger request."""
        return len(self.requests) + 1

    @property
    def messages(self) -> int:
        return 2 * self.round_trips

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


@dataclass
class _Flight:
    replies: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage | None] = field(default_factory=queue.SimpleQueue)
    outstanding: bool = False


class ScriptedPeer:
    """Dials a chaincode server and plays the peer's side of the stream."""

    def __init__(
        self,
        address: str,
        chaincode_id: str,
        *,
        ledger: Ledger | None = None,
        use_write_batch: bool = True,
        max_size_write_batch: int = 1000,
        use_get_multiple_keys: bool = True,
        max_size_get_multiple_keys: int = 1000,
        send_ready_params: bool = True,
        readable_collections: set[str] | None = None,
        query_batch: int = 100,
        chaincode_name: str = "conformance",
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, object]] = (),
        timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.chaincode_id = chaincode_id
        self.ledger = ledger if ledger is not None else Ledger()
        self.ready_params = chaincode_pb2.ChaincodeAdditionalParams(
            use_write_batch=use_write_batch,
            max_size_write_batch=max_size_write_batch,
            use_get_multiple_keys=use_get_multiple_keys,
            max_size_get_multiple_keys=max_size_get_multiple_keys,
        )
        self.send_ready_params = send_ready_params
        self.readable_collections = readable_collections
        self.query_batch = query_batch
        self.chaincode_name = chaincode_name
        self.timeout = timeout
        self.violations: list[str] = []
        self.unrouted: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage] = queue.SimpleQueue()
        self.keepalives: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage] = queue.SimpleQueue()
        self.fail_requests: dict[int, str] = {}
        self.default_identity = make_identity("USBankMSP", "User1@usbank.example.com")
        options = [*CLIENT_OPTIONS, *channel_options]
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=options)
        self._outbound: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage | None] = queue.SimpleQueue()
        self._handshake: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage | None] = queue.SimpleQueue()
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._reader: threading.Thread | None = None
        self._responses: Iterator[chaincode_shim_pb2.ChaincodeMessage] | None = None

    # -- connection ----------------------------------------------------------
    def connect(self) -> chaincode_shim_pb2.ChaincodeMessage:
        """Open ``Connect`` and complete the handshake; returns the chaincode's REGISTER."""
        stub = chaincode_shim_pb2_grpc.ChaincodeStub(self._channel)
        self._responses = stub.Connect(self._outbound_messages())
        self._reader = threading.Thread(target=self._read, name="scripted-peer", daemon=True)
        self._reader.start()
        register = self._next_handshake()
        if register.type != Msg.REGISTER:
            raise PeerError(f"expected REGISTER, got {Msg.Type.Name(register.type)}")
        name = chaincode_pb2.ChaincodeID.FromString(register.payload).name
        if name != self.chaincode_id:
            raise PeerError(f"chaincode registered as {name!r}, expected {self.chaincode_id!r}")
        self.send(Msg(type=Msg.REGISTERED))
        payload = self.ready_params.SerializeToString() if self.send_ready_params else b""
        self.send(Msg(type=Msg.READY, payload=payload))
        return register

    def close(self) -> None:
        """End the stream from the peer's side (as a peer does when it stops)."""
        self._outbound.put(None)
        self._ended.wait(self.timeout)
        self._channel.close()

    def __enter__(self) -> ScriptedPeer:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def wait_ended(self, timeout: float | None = None) -> bool:
        return self._ended.wait(self.timeout if timeout is None else timeout)

    def send(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        self._outbound.put(msg)

    def _outbound_messages(self) -> Iterator[chaincode_shim_pb2.ChaincodeMessage]:
        while True:
            msg = self._outbound.get()
            if msg is None:
                return
            yield msg

    def _next_handshake(self) -> chaincode_shim_pb2.ChaincodeMessage:
        try:
            msg = self._handshake.get(timeout=self.timeout)
        except queue.Empty:
            raise PeerError("no handshake message from the chaincode") from None
        if msg is None:
            raise PeerError("the chaincode closed the stream during the handshake")
        return msg

    def _read(self) -> None:
        assert self._responses is not None
        try:
            for msg in self._responses:
                self._route(msg)
        except grpc.RpcError:
            pass
        finally:
            self._ended.set()
            self._handshake.put(None)
            with self._lock:
                flights = list(self._flights.values())
            for flight in flights:
                flight.replies.put(None)

    def _route(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        if msg.type == Msg.REGISTER:
            self._handshake.put(msg)
            return
        if msg.type == Msg.KEEPALIVE:
            self.keepalives.put(msg)
            return
        with self._lock:
            flight = self._flights.get((msg.channel_id, msg.txid))
            if flight is not None and msg.type in REQUEST_TYPES:
                if flight.outstanding:
                    self.violations.append(
                        f"{msg.txid[:8]}: {Msg.Type.Name(msg.type)} sent while a request was pending"
                    )
                flight.outstanding = True
        if flight is None:
            self.unrouted.put(msg)
        else:
            flight.replies.put(msg)

    # -- transactions ----------------------------------------------------------
    def invoke(
        self,
        function: str,
        *args: str | bytes,
        transient: Mapping[str, bytes] | None = None,
        identity: Identity | None = None,
        channel_id: str = "tokens",
        tx_id: str | None = None,
        commit: bool = True,
        init: bool = False,
        proposal: proposal_pb2.SignedProposal | None = None,
        payload: bytes | None = None,
    ) -> InvokeResult:
        """Run one transaction and answer its ledger requests; commit its writes if asked."""
        tx_id = tx_id or uuid.uuid4().hex + uuid.uuid4().hex
        raw_args = [function.encode(), *(a.encode() if isinstance(a, str) else a for a in args)]
        creator = (identity or self.default_identity).serialize()
        timestamp = dt.datetime.now(dt.UTC)
        if proposal is None:
            proposal = build_signed_proposal(
                channel_id=channel_id,
                tx_id=tx_id,
                chaincode_name=self.chaincode_name,
                args=raw_args,
                creator=creator,
                transient=transient,
                timestamp=timestamp,
            )
        if payload is None:
            payload = chaincode_pb2.ChaincodeInput(args=raw_args, is_init=init).SerializeToString()
        flight = _Flight()
        key = (channel_id, tx_id)
        with self._lock:
            if key in self._flights:
                raise PeerError(f"transaction {tx_id[:8]} is already running")
            self._flights[key] = flight
        simulation = _Simulation(tx_id=tx_id, timestamp=timestamp)
        requests: list[str] = []
        try:
            self.send(
                Msg(
                    type=Msg.INIT if init else Msg.TRANSACTION,
                    payload=payload,
                    txid=tx_id,
                    channel_id=channel_id,
                    proposal=proposal,
                )
            )
            while True:
                try:
                    msg = flight.replies.get(timeout=self.timeout)
                except queue.Empty:
                    raise PeerError(f"transaction {tx_id[:8]}: no message from the chaincode") from None
                if msg is None:
                    raise PeerError(f"transaction {tx_id[:8]}: the stream ended")
                if msg.type == Msg.COMPLETED:
                    response = proposal_response_pb2.Response.FromString(msg.payload)
                    if commit and response.status < 400:
                        self._commit(simulation)
                    return InvokeResult(
                        status=response.status,
                        message=response.message,
                        payload=response.payload,
                        event_name=msg.chaincode_event.event_name,
                        event_payload=msg.chaincode_event.payload,
                        requests=requests,
                    )
                if msg.type == Msg.ERROR:
                    return InvokeResult(
                        status=0,
                        message="",
                        payload=b"",
                        error=msg.payload.decode("utf-8", errors="replace"),
                        requests=requests,
                    )
                requests.append(Msg.Type.Name(msg.type))
                reply = self._answer(msg, simulation)
                with self._lock:
                    flight.outstanding = False
                self.send(reply)
        finally:
            with self._lock:
                self._flights.pop(key, None)

    def send_keepalive(self) -> chaincode_shim_pb2.ChaincodeMessage:
        """Send KEEPALIVE and return the chaincode's echo."""
        self.send(Msg(type=Msg.KEEPALIVE))
        try:
            return self.keepalives.get(timeout=self.timeout)
        except queue.Empty:
            raise PeerError("no KEEPALIVE echo from the chaincode") from None

    # -- the peer's answers ----------------------------------------------------
    def _answer(
        self, msg: chaincode_shim_pb2.ChaincodeMessage, sim: _Simulation
    ) -> chaincode_shim_pb2.ChaincodeMessage:
        def reply(payload: bytes = b"") -> chaincode_shim_pb2.ChaincodeMessage:
            return Msg(type=Msg.RESPONSE, payload=payload, txid=msg.txid, channel_id=msg.channel_id)

        def error(text: str) -> chaincode_shim_pb2.ChaincodeMessage:
            failure = f"{Msg.Type.Name(msg.type)} failed: transaction ID: {msg.txid}: {text}"
            return Msg(type=Msg.ERROR, payload=failure.encode(), txid=msg.txid, channel_id=msg.channel_id)

        injected = self.fail_requests.get(msg.type)
        if injected is not None:
            return error(injected)
        try:
            handler = self._handlers()[msg.type]
        except KeyError:
            return error(f"scripted peer does not handle {Msg.Type.Name(msg.type)}")
        try:
            return reply(handler(msg.payload, sim))
        except _Refusal as refusal:
            return error(str(refusal))

    def _handlers(self) -> dict[int, Callable[[bytes, _Simulation], bytes]]:
        return {
            Msg.GET_STATE: self._get_state,
            Msg.GET_STATE_MULTIPLE: self._get_state_multiple,
            Msg.GET_PRIVATE_DATA_HASH: self._get_private_data_hash,
            Msg.PUT_STATE: self._put_state,
            Msg.DEL_STATE: self._del_state,
            Msg.PURGE_PRIVATE_DATA: self._purge,
            Msg.WRITE_BATCH_STATE: self._write_batch,
            Msg.GET_STATE_BY_RANGE: self._get_state_by_range,
            Msg.QUERY_STATE_NEXT: self._query_next,
            Msg.QUERY_STATE_CLOSE: self._query_close,
            Msg.GET_HISTORY_FOR_KEY: self._history,
            Msg.GET_STATE_METADATA: self._get_metadata,
            Msg.PUT_STATE_METADATA: self._put_metadata,
        }

    def _check_read(self, collection: str) -> None:
        if collection and self.readable_collections is not None and collection not in self.readable_collections:
            raise _Refusal(
                "tx creator does not have read access permission on privatedata in "
                f"chaincodeName:{self.chaincode_name} collectionName: {collection}"
            )

    def _check_write(self, collection: str, sim: _Simulation) -> None:
        if collection and self.readable_collections is not None and collection not in self.readable_collections:
            raise _Refusal(
                "tx creator does not have write access permission on privatedata in "
                f"chaincodeName:{self.chaincode_name} collectionName: {collection}"
            )
        if sim.restricted_query_performed:
            raise _Refusal(
                f"txid [{sim.tx_id}]: unsupported transaction. Transaction has already performed "
                f"{sim.restricted_query_performed}. Writes are not allowed"
            )
        sim.write_performed = True

    @staticmethod
    def _restricted_query(sim: _Simulation, kind: str) -> None:
        if sim.write_performed:
            raise _Refusal(f"txid [{sim.tx_id}]: unsupported transaction. {kind} only in a read-only transaction")
        sim.restricted_query_performed = kind

    def _get_state(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.GetState.FromString(payload)
        self._check_read(request.collection)
        return self.ledger.get(request.collection, request.key)

    def _get_state_multiple(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.GetStateMultiple.FromString(payload)
        self._check_read(request.collection)
        values = [self.ledger.get(request.collection, key) for key in request.keys]
        return chaincode_shim_pb2.GetStateMultipleResult(values=values).SerializeToString()

    def _get_private_data_hash(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.GetState.FromString(payload)
        value = self.ledger.get(request.collection, request.key)
        return hashlib.sha256(value).digest() if value else b""

    def _put_state(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.PutState.FromString(payload)
        self._check_write(request.collection, sim)
        sim.writes[(request.collection, request.key)] = request.value
        return b""

    def _del_state(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.DelState.FromString(payload)
        self._check_write(request.collection, sim)
        sim.writes[(request.collection, request.key)] = None
        return b""

    def _purge(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.DelState.FromString(payload)
        if not request.collection:
            raise _Refusal("only applicable for private data")
        self._check_write(request.collection, sim)
        sim.writes[(request.collection, request.key)] = None
        return b""

    def _write_batch(self, payload: bytes, sim: _Simulation) -> bytes:
        batch = chaincode_shim_pb2.WriteBatchState.FromString(payload)
        record_type = chaincode_shim_pb2.WriteRecord
        for record in batch.rec:
            self._check_write(record.collection, sim)
            key = (record.collection, record.key)
            if record.type == record_type.PUT_STATE:
                sim.writes[key] = record.value
            elif record.type in (record_type.DEL_STATE, record_type.PURGE_PRIVATE_DATA):
                if record.type == record_type.PURGE_PRIVATE_DATA and not record.collection:
                    raise _Refusal("only applicable for private data")
                sim.writes[key] = None
            elif record.type == record_type.PUT_STATE_METADATA:
                sim.metadata_writes.setdefault(key, {})[record.metadata.metakey] = record.metadata.value
            else:
                raise _Refusal("unknown operation type")
        return b""

    def _get_state_by_range(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.GetStateByRange.FromString(payload)
        self._check_read(request.collection)
        metadata = chaincode_shim_pb2.QueryMetadata.FromString(request.metadata) if request.metadata else None
        paginated = metadata is not None and (metadata.pageSize > 0 or metadata.bookmark != "")
        if request.collection:
            self._restricted_query(sim, "queries on private data")
        elif paginated:
            self._restricted_query(sim, "a paginated query")
        start = metadata.bookmark if paginated and metadata is not None and metadata.bookmark else request.startKey
        rows = self.ledger.keys_in(request.collection, start, request.endKey)
        encoded = [
            kv_query_result_pb2.KV(namespace=self.chaincode_name, key=key, value=value).SerializeToString()
            for key, value in rows
        ]
        iterator_id = uuid.uuid4().hex
        if paginated and metadata is not None:
            page = encoded[: metadata.pageSize] if metadata.pageSize > 0 else encoded
            bookmark = rows[len(page)][0] if len(page) < len(rows) else ""
            response_metadata = chaincode_shim_pb2.QueryResponseMetadata(
                fetched_records_count=len(page), bookmark=bookmark
            )
            return chaincode_shim_pb2.QueryResponse(
                results=[chaincode_shim_pb2.QueryResultBytes(resultBytes=r) for r in page],
                has_more=False,
                id=iterator_id,
                metadata=response_metadata.SerializeToString(),
            ).SerializeToString()
        sim.iterators[iterator_id] = encoded
        return self._query_next(chaincode_shim_pb2.QueryStateNext(id=iterator_id).SerializeToString(), sim)

    def _query_next(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.QueryStateNext.FromString(payload)
        remaining = sim.iterators.get(request.id)
        if remaining is None:
            raise _Refusal("query iterator not found")
        batch, rest = remaining[: self.query_batch], remaining[self.query_batch :]
        if rest:
            sim.iterators[request.id] = rest
        else:
            del sim.iterators[request.id]
        return chaincode_shim_pb2.QueryResponse(
            results=[chaincode_shim_pb2.QueryResultBytes(resultBytes=r) for r in batch],
            has_more=bool(rest),
            id=request.id,
        ).SerializeToString()

    def _query_close(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.QueryStateClose.FromString(payload)
        sim.iterators.pop(request.id, None)
        return chaincode_shim_pb2.QueryResponse(has_more=False, id=request.id).SerializeToString()

    def _history(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.GetHistoryForKey.FromString(payload)
        with self.ledger.lock:
            # Fabric returns the newest modification first.
            entries = [m.SerializeToString() for m in reversed(self.ledger.history.get(request.key, []))]
        iterator_id = uuid.uuid4().hex
        sim.iterators[iterator_id] = entries
        return self._query_next(chaincode_shim_pb2.QueryStateNext(id=iterator_id).SerializeToString(), sim)

    def _get_metadata(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.GetStateMetadata.FromString(payload)
        self._check_read(request.collection)
        with self.ledger.lock:
            entries = dict(self.ledger.metadata.get((request.collection, request.key), {}))
        return chaincode_shim_pb2.StateMetadataResult(
            entries=[chaincode_shim_pb2.StateMetadata(metakey=k, value=v) for k, v in sorted(entries.items())]
        ).SerializeToString()

    def _put_metadata(self, payload: bytes, sim: _Simulation) -> bytes:
        request = chaincode_shim_pb2.PutStateMetadata.FromString(payload)
        self._check_write(request.collection, sim)
        sim.metadata_writes.setdefault((request.collection, request.key), {})[request.metadata.metakey] = (
            request.metadata.value
        )
        return b""

    def _commit(self, sim: _Simulation) -> None:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(sim.timestamp)
        with self.ledger.lock:
            for key, value in sim.writes.items():
                if value is None:
                    self.ledger.state.pop(key, None)
                    self.ledger.metadata.pop(key, None)
                else:
                    self.ledger.state[key] = value
                collection, name = key
                if not collection:
                    self.ledger.history.setdefault(name, []).append(
                        kv_query_result_pb2.KeyModification(
                            tx_id=sim.tx_id, value=value or b"", timestamp=ts, is_delete=value is None
                        )
                    )
            for key, entries in sim.metadata_writes.items():
                self.ledger.metadata.setdefault(key, {}).update(entries)


class _Refusal(Exception):
    """A request the peer answers with ERROR."""
