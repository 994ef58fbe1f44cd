"""Seeing transactions commit: one stream per peer instead of one CommitStatus call per transaction.

``CommitWatcher`` follows a peer's filtered blocks (transaction ids and validation codes) and calls the
callback registered for each transaction id it sees. ``PaymentWatcher`` follows the deposit-token
chaincode's events on a peer and reports ``PaymentCompleted`` by payment id, for payments completed by
someone else (a bank's REST gateway).

Callbacks run on the stream's thread: they must be quick (record, release, hand work to a pool).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fabric_client import Gateway, GatewayError

log = logging.getLogger(__name__)

CommitCallback = Callable[[int, float], None]
"""Called with the validation code (``TxValidationCode``) and the ``time.time()`` it was seen."""


class _Stream:
    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._stopping = threading.Event()
        self.failure: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_guarded, name=self.name, daemon=True)
        self._thread.start()

    def _run_guarded(self) -> None:
        try:
            self.run()
        except GatewayError as error:
            if not self._stopping.is_set():
                self.failure = str(error)
                log.warning("%s stopped: %s", self.name, error)

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class CommitWatcher(_Stream):
    """Validation codes of the transactions committed on one peer, from its filtered blocks."""

    def __init__(self, gateway: Gateway, channel: str, org: str) -> None:
        super().__init__(f"commits-{org}")
        self.gateway = gateway
        self.channel = channel
        self.org = org
        self._lock = threading.Lock()
        self._waiters: dict[str, list[CommitCallback]] = {}
        self.blocks = 0
        self.transactions = 0
        self.ready = threading.Event()

    def expect(self, transaction_id: str, callback: CommitCallback) -> None:
        """Call ``callback`` when ``transaction_id`` is in a block. Register before submitting."""
        with self._lock:
            self._waiters.setdefault(transaction_id, []).append(callback)

    def forget(self, transaction_id: str) -> None:
        with self._lock:
            self._waiters.pop(transaction_id, None)

    def counters(self) -> tuple[int, int]:
        """(blocks, transactions) seen so far."""
        with self._lock:
            return self.blocks, self.transactions

    def run(self) -> None:
        network = self.gateway.get_network(self.channel)
        self._stream = network.get_block_events(filtered=True)
        self.ready.set()
        for block in self._stream:
            seen_at = time.time()
            fired: list[tuple[list[CommitCallback], int]] = []
            with self._lock:
                self.blocks += 1
                self.transactions += len(block.filtered_transactions)
                for transaction in block.filtered_transactions:
                    callbacks = self._waiters.pop(transaction.txid, None)
                    if callbacks:
                        fired.append((callbacks, int(transaction.tx_validation_code)))
            for callbacks, code in fired:
                for callback in callbacks:
                    try:
                        callback(code, seen_at)
                    except Exception:  # one bad callback must not stop the stream for everyone
                        log.exception("commit callback failed")


PaymentCallback = Callable[[float], None]


class PaymentWatcher(_Stream):
    """``PaymentCompleted`` and ``PaymentsCompleted`` events of the deposit-token chaincode on one peer,
    by payment id."""

    def __init__(self, gateway: Gateway, channel: str, org: str, chaincode: str = "deposit_token") -> None:
        super().__init__(f"payments-{org}")
        self.gateway = gateway
        self.channel = channel
        self.chaincode = chaincode
        self._lock = threading.Lock()
        self._waiters: dict[str, PaymentCallback] = {}
        # Completions seen before anyone asked (a REST client learns the id only from the response).
        self._early: dict[str, float] = {}

    def expect(self, payment_id: str, callback: PaymentCallback) -> None:
        with self._lock:
            seen_at = self._early.pop(payment_id, None)
            if seen_at is None:
                self._waiters[payment_id] = callback
                return
        callback(seen_at)

    def run(self) -> None:
        network = self.gateway.get_network(self.channel)
        self._stream = network.get_chaincode_events(self.chaincode)
        for event in self._stream:
            if event.event_name not in ("PaymentCompleted", "PaymentsCompleted"):
                continue
            seen_at = time.time()
            for payment_id in completed_payment_ids(event.event_name, event.payload):
                self._seen(payment_id, seen_at)

    def _seen(self, payment_id: str, seen_at: float) -> None:
        with self._lock:
            callback = self._waiters.pop(payment_id, None)
            if callback is None:
                self._early[payment_id] = seen_at
                if len(self._early) > 200_000:  # completions nobody will ask about (other runs)
                    self._early.clear()
                return
        callback(seen_at)


def completed_payment_ids(event_name: str, payload: bytes) -> list[str]:
    """The payments a ``PaymentCompleted`` (one) or ``PaymentsCompleted`` (a group) event completed."""
    try:
        data = json.loads(payload)
        if event_name == "PaymentCompleted":
            return [str(data["payment_id"])]
        return [str(item["payment_id"]) for item in data["payments"]]
    except (ValueError, KeyError, TypeError):
        return []
