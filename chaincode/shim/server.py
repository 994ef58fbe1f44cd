"""The chaincode-as-a-service gRPC server: peers dial it and open ``Connect`` streams.

Configuration comes from the environment, as with Fabric's own CCaaS shims:

- ``CHAINCODE_ID``: the package id; the peer accepts the stream only if it matches;
- ``CHAINCODE_SERVER_ADDRESS``: ``host:port`` to listen on;
- ``CORE_PEER_LOCALMSPID``: the org this server belongs to (``stub.get_peer_msp_id()``);
- ``CHAINCODE_TLS_CERT_FILE`` and ``CHAINCODE_TLS_KEY_FILE``: serve TLS;
- ``CHAINCODE_TLS_CLIENT_CA_FILE``: also require a client certificate signed by this CA.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from fabric_protos.peer import chaincode_shim_pb2, chaincode_shim_pb2_grpc

from chaincode.shim.handler import Dispatcher, StreamHandler

log = logging.getLogger("chaincode.shim")

MAX_MESSAGE_BYTES = 100 * 1024 * 1024

# The peer pings its chaincode connections every 60 s, also between transactions. gRPC's
# default server policy counts pings without data as abuse and, after a few, answers
# GOAWAY too_many_pings, which drops the chaincode. These options accept such pings.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
    # Our own pings find a peer that vanished without closing the connection.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Without this a second server on the same port starts silently and steals streams.
    ("grpc.so_reuseport", 0),
]


class ConfigError(ValueError):
    """The server's environment is incomplete or points to unreadable files."""


@dataclass(frozen=True)
class ServerConfig:
    chaincode_id: str
    address: str
    peer_msp_id: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # Transactions mostly wait on the peer, so many threads cost little CPU.
    transaction_workers: int = 64
    # Each open stream holds one gRPC thread for its whole life.
    stream_workers: int = 32
    request_timeout: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        env = os.environ if env is None else env
        chaincode_id = env.get("CHAINCODE_ID", "").strip()
        address = env.get("CHAINCODE_SERVER_ADDRESS", "").strip()
        missing = [
            name for name, value in (("CHAINCODE_ID", chaincode_id), ("CHAINCODE_SERVER_ADDRESS", address)) if not value
        ]
        if missing:
            raise ConfigError(f"environment variable(s) not set: {', '.join(missing)}")
        config = cls(
            chaincode_id=chaincode_id,
            address=address,
            peer_msp_id=env.get("CORE_PEER_LOCALMSPID", "").strip(),
            tls_cert_file=env.get("CHAINCODE_TLS_CERT_FILE", "").strip(),
            tls_key_file=env.get("CHAINCODE_TLS_KEY_FILE", "").strip(),
            tls_client_ca_file=env.get("CHAINCODE_TLS_CLIENT_CA_FILE", "").strip(),
        )
        config.validate()
        return config

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file or self.tls_key_file)

    def validate(self) -> None:
        if ":" not in self.address:
            raise ConfigError(f"CHAINCODE_SERVER_ADDRESS must be host:port, got {self.address!r}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("CHAINCODE_TLS_CERT_FILE and CHAINCODE_TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file and not self.tls:
            raise ConfigError("CHAINCODE_TLS_CLIENT_CA_FILE needs CHAINCODE_TLS_CERT_FILE and _KEY_FILE")
        for path in (self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file):
            if path and not Path(path).is_file():
                raise ConfigError(f"TLS file not found: {path}")

    def server_credentials(self) -> grpc.ServerCredentials:
        key = Path(self.tls_key_file).read_bytes()
        cert = Path(self.tls_cert_file).read_bytes()
        client_ca = Path(self.tls_client_ca_file).read_bytes() if self.tls_client_ca_file else None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


class _ChaincodeServicer(chaincode_shim_pb2_grpc.ChaincodeServicer):
    def __init__(self, server: ChaincodeServer) -> None:
        self._server = server

    def Connect(
        self,
        request_iterator: Iterator[chaincode_shim_pb2.ChaincodeMessage],
        context: grpc.ServicerContext,
    ) -> Iterator[chaincode_shim_pb2.ChaincodeMessage]:
        handler = self._server.new_stream_handler(context.peer())
        # Cancellation (peer gone, server stopping) must wake transactions waiting on this stream.
        context.add_callback(handler.close)
        try:
            yield from handler.run(request_iterator)
        finally:
            self._server.forget_stream_handler(handler)


class ChaincodeServer:
    """Serves one chaincode to any number of peers, each on its own stream."""

    def __init__(self, config: ServerConfig, dispatcher: Dispatcher) -> None:
        self.config = config
        self._dispatcher = dispatcher
        self._transactions = ThreadPoolExecutor(
            max_workers=config.transaction_workers, thread_name_prefix="chaincode-tx"
        )
        self._grpc = grpc.server(
            ThreadPoolExecutor(max_workers=config.stream_workers, thread_name_prefix="chaincode-stream"),
            options=SERVER_OPTIONS,
        )
        chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(_ChaincodeServicer(self), self._grpc)
        self._handlers: set[StreamHandler] = set()
        self._lock = threading.Lock()
        self.port = 0

    def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0)."""
        try:
            if self.config.tls:
                port = self._grpc.add_secure_port(self.config.address, self.config.server_credentials())
            else:
                port = self._grpc.add_insecure_port(self.config.address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {self.config.address}: {exc}") from exc
        if port == 0:
            raise ConfigError(f"cannot listen on {self.config.address}")
        self._grpc.start()
        self.port = port
        log.info(
            "chaincode server listening",
            extra={
                "address": self.config.address,
                "port": port,
                "chaincode_id": self.config.chaincode_id,
                "tls": self.config.tls,
                "mutual_tls": bool(self.config.tls_client_ca_file),
                "peer_msp_id": self.config.peer_msp_id,
            },
        )
        return port

    def stop(self, grace: float = 5.0) -> None:
        """Let running transactions end (for up to ``grace`` seconds), then close every stream.

        Streams live as long as the peer is connected, so waiting for them to end on their
        own (gRPC's grace) would always take the full grace period.
        """
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        self._grpc.stop(None).wait()
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.close()
        self._transactions.shutdown(wait=True, cancel_futures=True)
        log.info("chaincode server stopped")

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(self._grpc.wait_for_termination(timeout))

    def new_stream_handler(self, peer_address: str) -> StreamHandler:
        handler = StreamHandler(
            chaincode_id=self.config.chaincode_id,
            dispatcher=self._dispatcher,
            executor=self._transactions,
            peer_msp_id=self.config.peer_msp_id,
            peer_address=peer_address,
            request_timeout=self.config.request_timeout,
        )
        with self._lock:
            self._handlers.add(handler)
        log.info("peer connected", extra={"peer": peer_address})
        return handler

    def forget_stream_handler(self, handler: StreamHandler) -> None:
        with self._lock:
            self._handlers.discard(handler)

    @property
    def in_flight(self) -> int:
        with self._lock:
            handlers = list(self._handlers)
        return sum(handler.in_flight for handler in handlers)

    @property
    def stream_count(self) -> int:
        with self._lock:
            return len(self._handlers)
