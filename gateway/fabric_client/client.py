"""The wire: the peer's ``gateway.Gateway`` service over one shared gRPC channel.

Every unary call carries a deadline (the gateway's default for that step unless the caller passes one)
and ``wait_for_ready=False``, so an unreachable peer fails at once with UNAVAILABLE instead of waiting
for a connection. gRPC failures become the typed errors of ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from fabric_protos.discovery import protocol_pb2_grpc
from fabric_protos.gateway import gateway_pb2_grpc
from fabric_protos.peer import events_pb2_grpc

from .errors import CommitStatusError, EndorseError, GatewayError, SubmitError

__all__ = ["Deadlines", "GatewayClient"]

_Response = TypeVar("_Response")


@dataclass(frozen=True)
class Deadlines:
    """Default deadlines in seconds for each step of a transaction.

    ``commit_status`` bounds the wait for the block that holds the transaction; ``chaincode_events``
    bounds a whole event stream and is ``None`` (no limit) because a listener usually runs for good.
    """

    evaluate: float = 30.0
    endorse: float = 30.0
    submit: float = 30.0
    commit_status: float = 60.0
    chaincode_events: float | None = None

    def __post_init__(self) -> None:
        for name in ("evaluate", "endorse", "submit", "commit_status"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"deadline {name} must be a positive number of seconds, got {value!r}")


class GatewayClient:
    """Typed calls on the Gateway and Deliver services. Thread-safe: gRPC channels and stubs are."""

    def __init__(
        self, channel: grpc.Channel, *, endpoint: str = "", deadlines: Deadlines | None = None
    ) -> None:
        self.channel = channel
        self.endpoint = endpoint
        self.deadlines = deadlines or Deadlines()
        self._gateway = gateway_pb2_grpc.GatewayStub(channel)
        self._deliver = events_pb2_grpc.DeliverStub(channel)
        self._discovery = protocol_pb2_grpc.DiscoveryStub(channel)
        self.closed = False

    def evaluate(self, request: Any, timeout: float | None = None) -> Any:
        """``Gateway.Evaluate``; raises ``GatewayError``."""
        return self._unary(
            self._gateway.Evaluate,
            request,
            timeout or self.deadlines.evaluate,
            lambda e: GatewayError.from_rpc_error(
                e, transaction_id=request.transaction_id, endpoint=self.endpoint, operation="evaluate"
            ),
        )

    def endorse(self, request: Any, timeout: float | None = None) -> Any:
        """``Gateway.Endorse``; raises ``EndorseError``."""
        return self._unary(
            self._gateway.Endorse,
            request,
            timeout or self.deadlines.endorse,
            lambda e: EndorseError.from_rpc_error(
                e, transaction_id=request.transaction_id, endpoint=self.endpoint
            ),
        )

    def submit(self, request: Any, timeout: float | None = None) -> Any:
        """``Gateway.Submit``; raises ``SubmitError``."""
        return self._unary(
            self._gateway.Submit,
            request,
            timeout or self.deadlines.submit,
            lambda e: SubmitError.from_rpc_error(
                e, transaction_id=request.transaction_id, endpoint=self.endpoint
            ),
        )

    def commit_status(self, signed_request: Any, transaction_id: str, timeout: float | None = None) -> Any:
        """``Gateway.CommitStatus``; raises ``CommitStatusError``."""
        return self._unary(
            self._gateway.CommitStatus,
            signed_request,
            timeout or self.deadlines.commit_status,
            lambda e: CommitStatusError.from_rpc_error(
                e, transaction_id=transaction_id, endpoint=self.endpoint
            ),
        )

    def discover(self, signed_request: Any, timeout: float | None = None) -> Any:
        """``Discovery.Discover``; raises ``GatewayError``."""
        return self._unary(
            self._discovery.Discover,
            signed_request,
            timeout or self.deadlines.evaluate,
            lambda e: GatewayError.from_rpc_error(e, endpoint=self.endpoint, operation="discover"),
        )

    def chaincode_events(self, signed_request: Any, timeout: float | None = None) -> Any:
        """Start the server stream; the returned call is an iterator of responses with ``cancel()``."""
        return self._gateway.ChaincodeEvents(
            signed_request, timeout=timeout or self.deadlines.chaincode_events, wait_for_ready=False
        )

    def block_events(self, envelope: Any, *, filtered: bool, timeout: float | None = None) -> Any:
        """Start a ``Deliver`` (or ``DeliverFiltered``) stream with one signed seek envelope."""
        method = self._deliver.DeliverFiltered if filtered else self._deliver.Deliver
        return method(iter([envelope]), timeout=timeout, wait_for_ready=False)

    def iterate(self, call: Any, operation: str) -> Iterator[Any]:
        """Yield the responses of a server stream. A cancel by the stream's own ``close()`` or by closing
        the gateway ends it quietly; any other failure raises ``GatewayError``."""
        try:
            yield from call
        except grpc.RpcError as error:
            if _call_code(error) == grpc.StatusCode.CANCELLED and (self.closed or _cancelled_locally(call)):
                return
            raise GatewayError.from_rpc_error(error, endpoint=self.endpoint, operation=operation) from None

    def close(self) -> None:
        """Close the gRPC channel; open streams end with CANCELLED, which ``iterate`` swallows."""
        self.closed = True
        self.channel.close()

    @staticmethod
    def _unary(
        method: Callable[..., _Response],
        request: Any,
        timeout: float,
        to_error: Callable[[grpc.RpcError], GatewayError],
    ) -> _Response:
        try:
            return method(request, timeout=timeout, wait_for_ready=False)
        except grpc.RpcError as error:
            raise to_error(error) from None


def _call_code(error: grpc.RpcError) -> Any:
    code = getattr(error, "code", None)
    return code() if callable(code) else None


def _cancelled_locally(call: Any) -> bool:
    cancelled = getattr(call, "cancelled", None)
    return bool(cancelled()) if callable(cancelled) else False
