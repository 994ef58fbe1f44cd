"""One peer's chaincode stream: handshake, routing by (channel, txid), completion.

The peer dials the chaincode server and opens ``Connect``. On that stream the shim
sends REGISTER, the peer answers REGISTERED then READY (with its v3 batching
parameters), and from then on the peer sends TRANSACTION (or INIT) messages, many at
once. Each transaction runs on the shared worker pool; its ledger calls go out on the
same stream tagged with the transaction's channel and txid, and the peer's RESPONSE or
ERROR comes back tagged the same way. The reader routes it to the waiting transaction.
Fabric's peer drops a second request for a txid while one is pending, so each
transaction has at most one request outstanding.

The same semantics as Fabric's peer-side handler (``core/chaincode/handler.go``) and the
Go shim (fabric-chaincode-go ``shim/handler.go``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2, proposal_response_pb2

from chaincode.shim.api import LedgerError
from chaincode.shim.stub import (
    ChaincodeResponse,
    ChaincodeStub,
    PeerCapabilities,
    ProposalContext,
    ProposalError,
)

Msg = chaincode_shim_pb2.ChaincodeMessage
log = logging.getLogger("chaincode.shim")

# Fabric's shim.ERRORTHRESHOLD: a status at or above it fails endorsement.
ERROR_THRESHOLD = 400


class Dispatcher(Protocol):
    """Runs one transaction function against a stub (implemented by the contract layer)."""

    def dispatch(self, stub: ChaincodeStub) -> ChaincodeResponse: ...


class StreamClosed(LedgerError):
    """The peer's stream ended while a transaction was waiting for it."""


def short_txid(tx_id: str) -> str:
    return tx_id[:8]


@dataclass
class _Transaction:
    """A transaction in flight on this stream, and the mailbox for the peer's replies."""

    channel_id: str
    tx_id: str
    replies: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage | None] = field(default_factory=queue.SimpleQueue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    broken: str = ""


_CLOSE = object()


class StreamHandler:
    """Serves one ``Connect`` stream from one peer."""

    def __init__(
        self,
        *,
        chaincode_id: str,
        dispatcher: Dispatcher,
        executor: Executor,
        peer_msp_id: str = "",
        peer_address: str = "",
        request_timeout: float = 120.0,
    ) -> None:
        self._chaincode_id = chaincode_id
        self._dispatcher = dispatcher
        self._executor = executor
        self._peer_msp_id = peer_msp_id
        self._peer_address = peer_address
        self._request_timeout = request_timeout
        self._outbound: queue.SimpleQueue[chaincode_shim_pb2.ChaincodeMessage | object] = queue.SimpleQueue()
        self._transactions: dict[tuple[str, str], _Transaction] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._state = "created"
        self.capabilities = PeerCapabilities()
        self.ready = threading.Event()

    # -- stream plumbing -----------------------------------------------------
    def run(
        self, requests: Iterable[chaincode_shim_pb2.ChaincodeMessage]
    ) -> Iterator[chaincode_shim_pb2.ChaincodeMessage]:
        """The response stream of ``Connect``: REGISTER first, then whatever is sent."""
        self._send(
            Msg(
                type=Msg.REGISTER,
                payload=chaincode_pb2.ChaincodeID(name=self._chaincode_id).SerializeToString(),
            )
        )
        reader = threading.Thread(
            target=self._read, args=(requests,), name=f"chaincode-stream-{self._peer_address}", daemon=True
        )
        reader.start()
        try:
            while True:
                item = self._outbound.get()
                if item is _CLOSE:
                    return
                assert isinstance(item, chaincode_shim_pb2.ChaincodeMessage)
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """End the stream and wake every transaction still waiting for the peer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiting = list(self._transactions.values())
        for tx in waiting:
            tx.replies.put(None)
        self._outbound.put(_CLOSE)
        if self._state != "ready":
            log.error(
                "peer stream ended before READY (a peer refuses a stream whose CHAINCODE_ID is not its package id)",
                extra={"peer": self._peer_address, "chaincode_id": self._chaincode_id},
            )
        else:
            log.info("peer stream closed", extra={"peer": self._peer_address, "in_flight": len(waiting)})

    def _send(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        self._outbound.put(msg)

    def _read(self, requests: Iterable[chaincode_shim_pb2.ChaincodeMessage]) -> None:
        try:
            for msg in requests:
                self._handle(msg)
        except Exception as exc:  # grpc raises on cancellation; either way the stream is over
            log.debug("peer stream read ended", extra={"peer": self._peer_address, "error": type(exc).__name__})
        finally:
            self.close()

    # -- inbound messages ----------------------------------------------------
    def _handle(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        if msg.type == Msg.KEEPALIVE:
            # The Go shim echoes keepalives; the peer ignores them but they keep NAT state fresh.
            self._send(Msg(type=Msg.KEEPALIVE))
            return
        if self._state == "ready":
            if msg.type in (Msg.RESPONSE, Msg.ERROR):
                self._route_reply(msg)
            elif msg.type in (Msg.TRANSACTION, Msg.INIT):
                self._start_transaction(msg)
            else:
                log.warning(
                    "unexpected message from peer",
                    extra={
                        "peer": self._peer_address,
                        "type": chaincode_shim_pb2.ChaincodeMessage.Type.Name(msg.type),
                        "txid": short_txid(msg.txid),
                    },
                )
                self._send(
                    Msg(
                        type=Msg.ERROR,
                        payload=f"chaincode cannot handle {Msg.Type.Name(msg.type)} while ready".encode(),
                        txid=msg.txid,
                        channel_id=msg.channel_id,
                    )
                )
            return
        if self._state == "created" and msg.type == Msg.REGISTERED:
            self._state = "established"
            return
        if self._state == "established" and msg.type == Msg.READY:
            try:
                self.capabilities = PeerCapabilities.from_ready_payload(msg.payload)
            except Exception:
                # As the Go shim: unreadable parameters mean no batching, not a dead stream.
                self.capabilities = PeerCapabilities()
            self._state = "ready"
            self.ready.set()
            log.info(
                "peer stream ready",
                extra={
                    "peer": self._peer_address,
                    "write_batch": self.capabilities.use_write_batch,
                    "get_multiple": self.capabilities.use_get_multiple_keys,
                },
            )
            return
        log.error(
            "unexpected message during handshake",
            extra={
                "peer": self._peer_address,
                "type": chaincode_shim_pb2.ChaincodeMessage.Type.Name(msg.type),
                "state": self._state,
            },
        )
        self._send(
            Msg(
                type=Msg.ERROR,
                payload=f"chaincode cannot handle {Msg.Type.Name(msg.type)} in state {self._state}".encode(),
                txid=msg.txid,
            )
        )

    def _route_reply(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        with self._lock:
            tx = self._transactions.get((msg.channel_id, msg.txid))
        if tx is None:
            log.warning(
                "reply for a transaction that is not running",
                extra={
                    "peer": self._peer_address,
                    "txid": short_txid(msg.txid),
                    "type": chaincode_shim_pb2.ChaincodeMessage.Type.Name(msg.type),
                },
            )
            return
        tx.replies.put(msg)

    def _start_transaction(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        key = (msg.channel_id, msg.txid)
        tx = _Transaction(channel_id=msg.channel_id, tx_id=msg.txid)
        with self._lock:
            duplicate = key in self._transactions
            if not duplicate:
                self._transactions[key] = tx
        if duplicate:
            self._send(
                Msg(
                    type=Msg.ERROR,
                    payload=b"a transaction with this txid is already running on this channel",
                    txid=msg.txid,
                    channel_id=msg.channel_id,
                )
            )
            return
        try:
            self._executor.submit(self._execute, msg, tx)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._finish(tx, self._error_reply(msg, "chaincode server is shutting down"))

    # -- transactions ----------------------------------------------------------
    def _request(self, tx: _Transaction, msg_type: int, payload: bytes) -> bytes:
        with tx.lock:
            if tx.broken:
                raise LedgerError(tx.broken)
            if self._closed:
                raise StreamClosed("the peer's stream is closed")
            tx.requests += 1
            self._send(Msg(type=msg_type, payload=payload, txid=tx.tx_id, channel_id=tx.channel_id))
            try:
                reply = tx.replies.get(timeout=self._request_timeout)
            except queue.Empty:
                # A late reply would answer the wrong request, so the transaction can go no further.
                tx.broken = f"no reply from the peer to {Msg.Type.Name(msg_type)} within {self._request_timeout:g}s"
                raise LedgerError(tx.broken) from None
        if reply is None:
            raise StreamClosed("the peer's stream closed while waiting for a reply")
        if reply.type == Msg.RESPONSE:
            return reply.payload
        if reply.type == Msg.ERROR:
            raise LedgerError(reply.payload.decode("utf-8", errors="replace"))
        raise LedgerError(f"unexpected {Msg.Type.Name(reply.type)} in reply to {Msg.Type.Name(msg_type)}")

    def _execute(self, msg: chaincode_shim_pb2.ChaincodeMessage, tx: _Transaction) -> None:
        started = time.perf_counter()
        function = ""
        reply: chaincode_shim_pb2.ChaincodeMessage | None = None
        status = 0
        try:
            chaincode_input = chaincode_pb2.ChaincodeInput.FromString(msg.payload)
            if chaincode_input.args:
                function = _loggable_function(chaincode_input.args[0])
            proposal = ProposalContext.from_signed_proposal(msg.proposal if msg.HasField("proposal") else None)
            stub = ChaincodeStub(
                requester=lambda msg_type, payload: self._request(tx, msg_type, payload),
                channel_id=msg.channel_id,
                tx_id=msg.txid,
                args=chaincode_input.args,
                proposal=proposal,
                capabilities=self.capabilities,
                peer_msp_id=self._peer_msp_id,
            )
            response = self._dispatcher.dispatch(stub)
            if response.status < ERROR_THRESHOLD:
                try:
                    stub.flush_writes()
                except StreamClosed:
                    raise
                except LedgerError as exc:
                    response = ChaincodeResponse(500, f"the peer refused the transaction's writes: {exc}")
            else:
                stub.discard_writes()
            status = response.status
            reply = self._completion(msg, response, stub)
        except StreamClosed:
            reply = None
        except ProposalError as exc:
            reply = self._error_reply(msg, str(exc))
        except Exception as exc:
            # Not the contract's fault (the contract layer catches its exceptions): log the
            # kind only, since messages may quote arguments.
            log.error(
                "transaction failed in the shim",
                extra={"txid": short_txid(msg.txid), "fn": function, "error": type(exc).__name__},
            )
            reply = self._error_reply(msg, f"chaincode shim failed: {type(exc).__name__}")
        self._finish(tx, reply)
        log.info(
            "transaction",
            extra={
                "txid": short_txid(msg.txid),
                "channel": msg.channel_id,
                "fn": function,
                "status": status if reply is not None and reply.type == Msg.COMPLETED else "error",
                "requests": tx.requests,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "peer": self._peer_address,
            },
        )

    def _completion(
        self, msg: chaincode_shim_pb2.ChaincodeMessage, response: ChaincodeResponse, stub: ChaincodeStub
    ) -> chaincode_shim_pb2.ChaincodeMessage:
        if msg.type == Msg.INIT and response.status >= ERROR_THRESHOLD:
            # As the Go shim: a failed Init is reported as ERROR, not as COMPLETED.
            return self._error_reply(msg, response.message)
        payload = proposal_response_pb2.Response(
            status=response.status, message=response.message, payload=response.payload
        ).SerializeToString()
        reply = Msg(type=Msg.COMPLETED, payload=payload, txid=msg.txid, channel_id=msg.channel_id)
        if stub.event is not None and response.status < ERROR_THRESHOLD:
            reply.chaincode_event.CopyFrom(stub.event)
        return reply

    @staticmethod
    def _error_reply(msg: chaincode_shim_pb2.ChaincodeMessage, message: str) -> chaincode_shim_pb2.ChaincodeMessage:
        return Msg(type=Msg.ERROR, payload=message.encode(), txid=msg.txid, channel_id=msg.channel_id)

    def _finish(self, tx: _Transaction, reply: chaincode_shim_pb2.ChaincodeMessage | None) -> None:
        # Forget the transaction before answering, so that the peer may reuse the txid
        # (a re-evaluated proposal) as soon as it has the answer.
        with self._lock:
            self._transactions.pop((tx.channel_id, tx.tx_id), None)
            closed = self._closed
        if reply is not None and not closed:
            self._send(reply)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._transactions)


def _loggable_function(raw: bytes) -> str:
    """The function name for log lines; anything that is not a plain name is not logged."""
    name = raw[:100].decode("utf-8", errors="replace")
    if name and all(ch.isalnum() or ch in "_.:-" for ch in name) and name.isascii():
        return name
    return "<invalid>"
