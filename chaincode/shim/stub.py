"""The real stub: every ledger call becomes a request to the peer on the chaincode stream.

One :class:`ChaincodeStub` exists per transaction. It talks to the peer through a
``request`` callable supplied by the stream handler, which sends one message tagged with
this transaction's channel and txid and blocks until the peer's RESPONSE (returned as
bytes) or ERROR (raised as :class:`~chaincode.shim.api.LedgerError`).

Semantics follow Fabric's Go shim (fabric-chaincode-go ``shim/stub.go``):

- reads always go to the peer, so a read never sees this transaction's own writes;
- when the peer announced write batching in READY, writes are buffered (last write per
  key wins, as in the peer's write set) and :meth:`ChaincodeStub.flush_writes` sends them
  as WRITE_BATCH_STATE before the transaction completes; otherwise every write is its own
  request;
- when the peer announced GET_STATE_MULTIPLE, multi-key reads use it, in chunks of the
  announced size; otherwise they fall back to one GET_STATE per key;
- paginated queries and private-data range queries are allowed by Fabric only in
  read-only transactions: the peer refuses a write after them (or them after a write).
  With batching that refusal arrives when the writes are flushed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    chaincode_shim_pb2,
    proposal_pb2,
)

from chaincode.shim.api import (
    KV,
    MAX_UNICODE_RUNE,
    ClientIdentity,
    KeyModification,
    LedgerError,
    QueryPage,
    create_composite_key,
    split_composite_key,
)

Msg = chaincode_shim_pb2.ChaincodeMessage
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"
# Fabric's Go shim substitutes this for an empty range start so that the range does not
# begin inside the composite-key namespace (which starts with U+0000).
EMPTY_KEY_SUBSTITUTE = "\x01"
# Used when the peer announces batching without a usable size (the Go shim's default).
DEFAULT_BATCH_SIZE = 100

# Sends one request for this transaction and returns the RESPONSE payload; raises
# LedgerError when the peer answers ERROR.
Requester = Callable[[int, bytes], bytes]

T = TypeVar("T")


@dataclass(frozen=True)
class PeerCapabilities:
    """What the peer announced in READY (Fabric v3 ``ChaincodeAdditionalParams``)."""

    use_write_batch: bool = False
    max_size_write_batch: int = 0
    use_get_multiple_keys: bool = False
    max_size_get_multiple_keys: int = 0

    @classmethod
    def from_ready_payload(cls, payload: bytes) -> PeerCapabilities:
        """Parse READY's payload; a v2 peer sends none, which means no batching."""
        if not payload:
            return cls()
        params = chaincode_pb2.ChaincodeAdditionalParams()
        params.ParseFromString(payload)
        return cls(
            use_write_batch=params.use_write_batch,
            max_size_write_batch=params.max_size_write_batch,
            use_get_multiple_keys=params.use_get_multiple_keys,
            max_size_get_multiple_keys=params.max_size_get_multiple_keys,
        )

    @property
    def write_batch_size(self) -> int:
        return self.max_size_write_batch or DEFAULT_BATCH_SIZE

    @property
    def get_multiple_size(self) -> int:
        return self.max_size_get_multiple_keys or DEFAULT_BATCH_SIZE


@dataclass(frozen=True)
class ChaincodeResponse:
    """What a transaction function produced: the peer's ``Response`` message."""

    status: int
    message: str = ""
    payload: bytes = b""


class ProposalError(ValueError):
    """The TRANSACTION message carried a proposal the shim cannot read."""


@dataclass(frozen=True)
class ProposalContext:
    """What the stub needs from the signed proposal, parsed once per transaction."""

    creator: bytes = b""
    transient: Mapping[str, bytes] | None = None
    binding: bytes = b""
    timestamp: dt.datetime | None = None

    @classmethod
    def from_signed_proposal(cls, signed: proposal_pb2.SignedProposal | None) -> ProposalContext:
        if signed is None or not signed.proposal_bytes:
            return cls(transient={})
        try:
            proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
            if not proposal.header:
                raise ProposalError("proposal header is empty")
            header = common_pb2.Header.FromString(proposal.header)
            channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
            if channel_header.type not in (common_pb2.ENDORSER_TRANSACTION, common_pb2.CONFIG):
                raise ProposalError(f"invalid channel header type {channel_header.type}")
            signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
            payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
        except ProposalError:
            raise
        except Exception as exc:  # protobuf DecodeError and friends
            raise ProposalError(f"cannot parse signed proposal: {type(exc).__name__}") from exc
        creator = signature_header.creator
        binding = hashlib.sha256(signature_header.nonce + creator + struct.pack("<Q", channel_header.epoch)).digest()
        return cls(
            creator=creator,
            transient=dict(payload.TransientMap),
            binding=binding,
            timestamp=channel_header.timestamp.ToDatetime(tzinfo=dt.UTC),
        )


@functools.lru_cache(maxsize=1024)
def parse_client_identity(creator: bytes) -> ClientIdentity:
    """Parse a ``SerializedIdentity`` into the MSP id and the X.509 subject details.

    Cached by the identity's bytes: a bank's gateway signs every transaction with the same
    certificate, and parsing it was the largest single cost of a transaction in the shim.
    ``ClientIdentity`` is immutable, so sharing one instance is safe.
    """
    identity = identities_pb2.SerializedIdentity.FromString(creator)
    pem = identity.id_bytes
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        # Not an X.509 identity (idemix): only the MSP id is known.
        return ClientIdentity(msp_id=identity.mspid, certificate_pem=pem)
    ous = tuple(str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME))
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return ClientIdentity(
        msp_id=identity.mspid,
        certificate_pem=pem,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        organizational_units=ous,
        common_name=str(cns[0].value) if cns else "",
    )


class _QueryIterator(Generic[T]):
    """Walks a peer-side query, fetching further batches with QUERY_STATE_NEXT.

    A class rather than a generator so that an abandoned iterator never sends anything
    from a garbage-collection finaliser: the peer closes every open iterator of a
    transaction when it completes. :meth:`close` releases it early.
    """

    def __init__(
        self,
        requester: Requester,
        response: chaincode_shim_pb2.QueryResponse,
        decode: Callable[[bytes], T],
    ) -> None:
        self._request = requester
        self._response = response
        self._decode = decode
        self._position = 0
        self._closed = False

    def __iter__(self) -> _QueryIterator[T]:
        return self

    def __next__(self) -> T:
        while True:
            if self._closed:
                raise StopIteration
            if self._position < len(self._response.results):
                item = self._response.results[self._position].resultBytes
                self._position += 1
                return self._decode(item)
            if not self._response.has_more:
                self._closed = True
                raise StopIteration
            payload = chaincode_shim_pb2.QueryStateNext(id=self._response.id).SerializeToString()
            reply = self._request(Msg.QUERY_STATE_NEXT, payload)
            self._response = chaincode_shim_pb2.QueryResponse.FromString(reply)
            self._position = 0

    def close(self) -> None:
        """Tell the peer to drop the iterator if it still holds results for it."""
        if self._closed:
            return
        self._closed = True
        if self._response.has_more:
            payload = chaincode_shim_pb2.QueryStateClose(id=self._response.id).SerializeToString()
            self._request(Msg.QUERY_STATE_CLOSE, payload)

    def __enter__(self) -> _QueryIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _decode_kv(raw: bytes) -> KV:
    kv = kv_query_result_pb2.KV.FromString(raw)
    return KV(key=kv.key, value=kv.value, namespace=kv.namespace)


def _decode_key_modification(raw: bytes) -> KeyModification:
    mod = kv_query_result_pb2.KeyModification.FromString(raw)
    return KeyModification(
        tx_id=mod.tx_id,
        value=mod.value,
        timestamp=mod.timestamp.ToDatetime(tzinfo=dt.UTC),
        is_delete=mod.is_delete,
    )


def _check_collection(collection: str) -> None:
    if not collection:
        raise ValueError("collection must not be an empty string")


def _check_simple_keys(*keys: str) -> None:
    for key in keys:
        if key.startswith("\x00"):
            raise ValueError("a simple key may not start with U+0000 (the composite-key namespace)")


def _as_bytes(value: bytes | bytearray | memoryview) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"ledger values are bytes, not {type(value).__name__}")


_RecordKey = tuple[str, str, bool]  # (collection, key, is_metadata)


class ChaincodeStub:
    """The :class:`~chaincode.shim.api.Stub` of one transaction, backed by the peer."""

    def __init__(
        self,
        *,
        requester: Requester,
        channel_id: str,
        tx_id: str,
        args: Sequence[bytes],
        proposal: ProposalContext,
        capabilities: PeerCapabilities,
        peer_msp_id: str = "",
        read_only: bool = False,
        function_name: str = "",
    ) -> None:
        self._request = requester
        self._channel_id = channel_id
        self._tx_id = tx_id
        self._args = list(args)
        self._proposal = proposal
        self._caps = capabilities
        self._peer_msp_id = peer_msp_id
        self._read_only = read_only
        self._function_name = function_name
        self._client_identity: ClientIdentity | None = None
        self._event: chaincode_event_pb2.ChaincodeEvent | None = None
        # Insertion-ordered, so the batch is sent in first-write order.
        self._batch: dict[_RecordKey, chaincode_shim_pb2.WriteRecord] | None = (
            {} if capabilities.use_write_batch else None
        )

    # -- transaction context -------------------------------------------------
    def get_tx_id(self) -> str:
        return self._tx_id

    def get_channel_id(self) -> str:
        return self._channel_id

    def get_tx_timestamp(self) -> dt.datetime:
        if self._proposal.timestamp is None:
            raise ValueError("the transaction carries no signed proposal, so it has no timestamp")
        return self._proposal.timestamp

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        strings = [arg.decode("utf-8", errors="replace") for arg in self._args]
        if not strings:
            return "", []
        return strings[0], strings[1:]

    def get_args(self) -> list[bytes]:
        return list(self._args)

    def get_transient(self) -> Mapping[str, bytes]:
        return dict(self._proposal.transient or {})

    def get_creator(self) -> bytes:
        return self._proposal.creator

    def get_client_identity(self) -> ClientIdentity:
        if self._client_identity is None:
            self._client_identity = parse_client_identity(self._proposal.creator)
        return self._client_identity

    def get_binding(self) -> bytes:
        return self._proposal.binding

    def get_peer_msp_id(self) -> str:
        if not self._peer_msp_id:
            raise ValueError("the peer's MSP id is unknown: CORE_PEER_LOCALMSPID is not set")
        return self._peer_msp_id

    # -- public state --------------------------------------------------------
    def get_state(self, key: str) -> bytes:
        return self._get("", key)

    def get_state_multiple(self, keys: Sequence[str]) -> list[bytes]:
        return self._get_multiple("", keys)

    def put_state(self, key: str, value: bytes) -> None:
        self._put("", key, value)

    def del_state(self, key: str) -> None:
        self._delete("", key)

    def get_state_by_range(self, start_key: str, end_key: str) -> Iterator[KV]:
        start_key = start_key or EMPTY_KEY_SUBSTITUTE
        _check_simple_keys(start_key, end_key)
        return self._range("", start_key, end_key)

    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage:
        start_key = start_key or EMPTY_KEY_SUBSTITUTE
        _check_simple_keys(start_key, end_key)
        return self._range_page(start_key, end_key, page_size, bookmark)

    def get_state_by_partial_composite_key(self, object_type: str, attributes: Sequence[str]) -> Iterator[KV]:
        start, end = self._partial_key_range(object_type, attributes)
        return self._range("", start, end)

    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = ""
    ) -> QueryPage:
        start, end = self._partial_key_range(object_type, attributes)
        return self._range_page(start, end, page_size, bookmark)

    def get_history_for_key(self, key: str) -> Iterator[KeyModification]:
        payload = chaincode_shim_pb2.GetHistoryForKey(key=key).SerializeToString()
        reply = self._request(Msg.GET_HISTORY_FOR_KEY, payload)
        response = chaincode_shim_pb2.QueryResponse.FromString(reply)
        return _QueryIterator(self._request, response, _decode_key_modification)

    # -- private data --------------------------------------------------------
    def get_private_data(self, collection: str, key: str) -> bytes:
        _check_collection(collection)
        return self._get(collection, key)

    def get_private_data_multiple(self, collection: str, keys: Sequence[str]) -> list[bytes]:
        _check_collection(collection)
        return self._get_multiple(collection, keys)

    def get_private_data_hash(self, collection: str, key: str) -> bytes:
        _check_collection(collection)
        payload = chaincode_shim_pb2.GetState(key=key, collection=collection).SerializeToString()
        return self._request(Msg.GET_PRIVATE_DATA_HASH, payload)

    def put_private_data(self, collection: str, key: str, value: bytes) -> None:
        _check_collection(collection)
        self._put(collection, key, value)

    def del_private_data(self, collection: str, key: str) -> None:
        _check_collection(collection)
        self._delete(collection, key)

    def purge_private_data(self, collection: str, key: str) -> None:
        _check_collection(collection)
        self._check_writable()
        if self._batch is not None:
            self._batch[(collection, key, False)] = chaincode_shim_pb2.WriteRecord(
                key=key, collection=collection, type=chaincode_shim_pb2.WriteRecord.PURGE_PRIVATE_DATA
            )
            return
        payload = chaincode_shim_pb2.DelState(key=key, collection=collection).SerializeToString()
        self._request(Msg.PURGE_PRIVATE_DATA, payload)

    def get_private_data_by_range(self, collection: str, start_key: str, end_key: str) -> Iterator[KV]:
        _check_collection(collection)
        start_key = start_key or EMPTY_KEY_SUBSTITUTE
        _check_simple_keys(start_key, end_key)
        return self._range(collection, start_key, end_key)

    def get_private_data_by_partial_composite_key(
        self, collection: str, object_type: str, attributes: Sequence[str]
    ) -> Iterator[KV]:
        _check_collection(collection)
        start, end = self._partial_key_range(object_type, attributes)
        return self._range(collection, start, end)

    # -- state-based endorsement --------------------------------------------
    def get_state_validation_parameter(self, key: str) -> bytes:
        return self.get_state_metadata(key).get(VALIDATION_PARAMETER, b"")

    def set_state_validation_parameter(self, key: str, policy: bytes) -> None:
        self.put_state_metadata(key, VALIDATION_PARAMETER, policy)

    def get_private_data_validation_parameter(self, collection: str, key: str) -> bytes:
        _check_collection(collection)
        return self.get_private_data_metadata(collection, key).get(VALIDATION_PARAMETER, b"")

    def set_private_data_validation_parameter(self, collection: str, key: str, policy: bytes) -> None:
        _check_collection(collection)
        self.put_private_data_metadata(collection, key, VALIDATION_PARAMETER, policy)

    def get_state_metadata(self, key: str) -> dict[str, bytes]:
        """All metadata entries of a public key (Fabric uses only VALIDATION_PARAMETER)."""
        return self._get_metadata("", key)

    def put_state_metadata(self, key: str, metakey: str, value: bytes) -> None:
        self._put_metadata("", key, metakey, value)

    def get_private_data_metadata(self, collection: str, key: str) -> dict[str, bytes]:
        _check_collection(collection)
        return self._get_metadata(collection, key)

    def put_private_data_metadata(self, collection: str, key: str, metakey: str, value: bytes) -> None:
        _check_collection(collection)
        self._put_metadata(collection, key, metakey, value)

    # -- events --------------------------------------------------------------
    def set_event(self, name: str, payload: bytes) -> None:
        if not name:
            raise ValueError("event name must not be empty")
        # Fabric keeps one event per transaction: a later call replaces the earlier one.
        self._event = chaincode_event_pb2.ChaincodeEvent(event_name=name, payload=_as_bytes(payload))

    # -- composite keys ------------------------------------------------------
    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str:
        return create_composite_key(object_type, attributes)

    def split_composite_key(self, composite_key: str) -> tuple[str, list[str]]:
        return split_composite_key(composite_key)

    # -- used by the stream handler ------------------------------------------
    @property
    def event(self) -> chaincode_event_pb2.ChaincodeEvent | None:
        return self._event

    @property
    def pending_writes(self) -> int:
        return len(self._batch) if self._batch else 0

    def flush_writes(self) -> None:
        """Send the buffered writes as WRITE_BATCH_STATE, in chunks the peer accepts."""
        if not self._batch:
            return
        records = list(self._batch.values())
        self._batch = {}
        size = self._caps.write_batch_size
        for start in range(0, len(records), size):
            payload = chaincode_shim_pb2.WriteBatchState(rec=records[start : start + size])
            self._request(Msg.WRITE_BATCH_STATE, payload.SerializeToString())

    def restrict_to_reads(self, function_name: str) -> None:
        """Refuse every write from now on: the contract layer calls this for query functions."""
        self._read_only = True
        self._function_name = function_name

    def discard_writes(self) -> None:
        if self._batch:
            self._batch = {}

    # -- internals -----------------------------------------------------------
    def _check_writable(self) -> None:
        if self._read_only:
            raise LedgerError(f"{self._function_name or 'this function'} is a query and may not write")

    def _get(self, collection: str, key: str) -> bytes:
        payload = chaincode_shim_pb2.GetState(key=key, collection=collection).SerializeToString()
        return self._request(Msg.GET_STATE, payload)

    def _get_multiple(self, collection: str, keys: Sequence[str]) -> list[bytes]:
        keys = list(keys)
        if not keys:
            return []
        if not self._caps.use_get_multiple_keys:
            return [self._get(collection, key) for key in keys]
        values: list[bytes] = []
        size = self._caps.get_multiple_size
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            payload = chaincode_shim_pb2.GetStateMultiple(keys=chunk, collection=collection)
            reply = self._request(Msg.GET_STATE_MULTIPLE, payload.SerializeToString())
            result = chaincode_shim_pb2.GetStateMultipleResult.FromString(reply)
            if len(result.values) != len(chunk):
                raise LedgerError(f"GET_STATE_MULTIPLE returned {len(result.values)} values for {len(chunk)} keys")
            values.extend(result.values)
        return values

    def _put(self, collection: str, key: str, value: bytes) -> None:
        if not key:
            raise ValueError("key must not be an empty string")
        value = _as_bytes(value)
        self._check_writable()
        if self._batch is not None:
            self._batch[(collection, key, False)] = chaincode_shim_pb2.WriteRecord(
                key=key, value=value, collection=collection, type=chaincode_shim_pb2.WriteRecord.PUT_STATE
            )
            return
        payload = chaincode_shim_pb2.PutState(key=key, value=value, collection=collection)
        self._request(Msg.PUT_STATE, payload.SerializeToString())

    def _delete(self, collection: str, key: str) -> None:
        self._check_writable()
        if self._batch is not None:
            self._batch[(collection, key, False)] = chaincode_shim_pb2.WriteRecord(
                key=key, collection=collection, type=chaincode_shim_pb2.WriteRecord.DEL_STATE
            )
            return
        payload = chaincode_shim_pb2.DelState(key=key, collection=collection).SerializeToString()
        self._request(Msg.DEL_STATE, payload)

    def _get_metadata(self, collection: str, key: str) -> dict[str, bytes]:
        payload = chaincode_shim_pb2.GetStateMetadata(key=key, collection=collection).SerializeToString()
        reply = self._request(Msg.GET_STATE_METADATA, payload)
        result = chaincode_shim_pb2.StateMetadataResult.FromString(reply)
        return {entry.metakey: entry.value for entry in result.entries}

    def _put_metadata(self, collection: str, key: str, metakey: str, value: bytes) -> None:
        if not key:
            raise ValueError("key must not be an empty string")
        value = _as_bytes(value)
        self._check_writable()
        metadata = chaincode_shim_pb2.StateMetadata(metakey=metakey, value=value)
        if self._batch is not None:
            self._batch[(collection, key, True)] = chaincode_shim_pb2.WriteRecord(
                key=key,
                collection=collection,
                metadata=metadata,
                type=chaincode_shim_pb2.WriteRecord.PUT_STATE_METADATA,
            )
            return
        payload = chaincode_shim_pb2.PutStateMetadata(key=key, collection=collection, metadata=metadata)
        self._request(Msg.PUT_STATE_METADATA, payload.SerializeToString())

    def _partial_key_range(self, object_type: str, attributes: Sequence[str]) -> tuple[str, str]:
        start = create_composite_key(object_type, attributes)
        return start, start + MAX_UNICODE_RUNE

    def _range_request(
        self, collection: str, start_key: str, end_key: str, metadata: bytes = b""
    ) -> chaincode_shim_pb2.QueryResponse:
        payload = chaincode_shim_pb2.GetStateByRange(
            startKey=start_key, endKey=end_key, collection=collection, metadata=metadata
        )
        reply = self._request(Msg.GET_STATE_BY_RANGE, payload.SerializeToString())
        return chaincode_shim_pb2.QueryResponse.FromString(reply)

    def _range(self, collection: str, start_key: str, end_key: str) -> _QueryIterator[KV]:
        response = self._range_request(collection, start_key, end_key)
        return _QueryIterator(self._request, response, _decode_kv)

    def _range_page(self, start_key: str, end_key: str, page_size: int, bookmark: str) -> QueryPage:
        if page_size <= 0:
            raise ValueError("page size must be a positive number")
        metadata = chaincode_shim_pb2.QueryMetadata(pageSize=page_size, bookmark=bookmark)
        response = self._range_request("", start_key, end_key, metadata.SerializeToString())
        results = list(_QueryIterator(self._request, response, _decode_kv))
        meta = chaincode_shim_pb2.QueryResponseMetadata.FromString(response.metadata)
        return QueryPage(results=results, fetched_records_count=meta.fetched_records_count, bookmark=meta.bookmark)
