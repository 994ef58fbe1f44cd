"""The gateway's ledger port on the real contract, run in an in-memory channel.

``ChannelLedger`` is ``FabricLedger`` with its two Fabric calls (evaluate and submit)
answered by a ``MemoryChannel`` instead of a peer, so the gateway's routes, the ledger port's
own code and the contract's rules are all exercised together, without a network.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fabric_client import GroupCommit

from chaincode.deposit_token.testing import VALID, MemoryChannel, Simulation
from gateway.bank_api.fabric_ledger import FabricLedger, _decode
from gateway.bank_api.ledger import (
    JSON,
    ChannelView,
    LedgerEvent,
    LedgerFailure,
    LedgerUnavailable,
    parse_contract_error,
)
from gateway.bank_api.metrics import GatewayMetrics


class ChannelLedger(FabricLedger):
    def __init__(self, channel: MemoryChannel, msp_id: str) -> None:
        self.channel = channel
        self._msp_id = msp_id
        self.down = False
        self.metrics = GatewayMetrics()
        self.follow_ups: list[str] = []  # what was submitted as a follow-up (``fabric_client.inflight``)
        self._start_groups()

    def _answer(self, simulation: Simulation, name: str) -> JSON:
        if simulation.ok:
            return _decode(simulation.payload, name)
        rejected = parse_contract_error(f"chaincode response {simulation.status}, {simulation.message}")
        if rejected is not None:
            raise rejected
        raise LedgerFailure(f"{name} failed: {simulation.message}")

    def _check_up(self) -> None:
        if self.down:
            raise LedgerUnavailable("the peer is down (test)")

    def evaluate(
        self, name: str, *args: str, request: JSON | None = None, timeout: float | None = None, on: str | None = None
    ) -> JSON:
        self._check_up()
        transient = None if request is None else {"request": request}
        peer = on or self._msp_id
        return self._answer(self.channel.query(peer, name, list(args), transient, creator=self._msp_id), name)

    def submit(self, name: str, *args: str, request: JSON | None = None, follow_up: bool = False) -> JSON:
        # ``follow_up`` only orders places in the client's bound on submissions, which this channel has
        # not: it is noted for the tests.
        self._check_up()
        if follow_up:
            self.follow_ups.append(name)
        transient = None if request is None else {"request": request}
        simulation = self.channel.invoke(self._msp_id, name, list(args), transient)
        if simulation.ok and self.channel.validation_codes[simulation.tx_id] != VALID:
            raise LedgerUnavailable(f"{name}: {self.channel.validation_codes[simulation.tx_id]}", retry_after=1)
        return self._answer(simulation, name)

    def channel_view(self) -> ChannelView:
        """Every org of the in-memory channel is in sight and as high as this peer (one block a call)."""
        self._check_up()
        height = len(self.channel.events) + 1
        return ChannelView(height, {org: height for org in self.channel.orgs})

    def events(self, start_block: int, after_transaction_id: str | None) -> Iterator[LedgerEvent]:
        """Every committed event from ``start_block`` on; each event counts as a block of its own."""
        self._check_up()
        skipping = after_transaction_id is not None
        for number, event in enumerate(list(self.channel.events)):
            if number < start_block:
                continue
            if skipping:
                if event.tx_id == after_transaction_id:
                    skipping = False
                continue
            yield LedgerEvent(number, event.tx_id, event.name, _payload(event.payload))

    def close(self) -> None:
        pass


def _payload(raw: bytes) -> JSON:
    import json

    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


def record_calls(ledger: ChannelLedger, method: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the contract functions ``ledger.<method>`` (``submit`` or ``evaluate``) is asked
    to run from now on, in order; the calls still go through."""
    called: list[str] = []
    original = getattr(ledger, method)

    def recorded(name: str, *args: str, **kwargs: Any) -> Any:
        called.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(ledger, method, recorded)
    return called


def hold_submissions(ledger: ChannelLedger, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make ``ledger.submit`` wait until the event returned is set, so that a group commit's callers
    pile up behind the groups in flight."""
    submit = ledger.submit
    hold = threading.Event()

    def held(name: str, *args: str, **kwargs: Any) -> Any:
        hold.wait(10)
        return submit(name, *args, **kwargs)

    monkeypatch.setattr(ledger, "submit", held)
    return hold


def wait_for_groups(groups: GroupCommit[Any, Any], submitting: int, waiting: int) -> tuple[int, int]:
    """Wait (up to 10 s) until ``submitting`` groups are in flight and ``waiting`` items wait behind
    them; returns what it saw last."""
    for _ in range(1000):
        if groups._submitting == submitting and len(groups._waiting) == waiting:
            break
        threading.Event().wait(0.01)
    return groups._submitting, len(groups._waiting)
