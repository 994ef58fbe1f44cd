"""Group commit: work that arrives while earlier groups are in flight goes to the ledger together.

Each Fabric transaction has a fixed price whatever it carries: signatures checked on every peer,
a policy check per namespace and collection written, a place in a block. When a contract offers
a function that does many items of one kind at once, submitting the items that are ready together
pays that price once for all of them. The deposit-token gateways use it to complete incoming
payments (a ``CompletePayments`` transaction for whatever completions are ready).

``GroupCommit`` lets the callers' own threads do it, with no thread of its own: a caller adds
its item and, while fewer than ``in_flight`` groups are being submitted, takes everything
waiting (at most ``max_group`` items, oldest first) and submits it for all of them; otherwise it
waits for a submitter to hand it its outcome. At light load every item finds a free place and
goes alone, as before; the busier the bank, the larger the groups.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Item, Outcome]):
    """Items submitted in groups by the callers' own threads (see the module docstring)."""

    def __init__(
        self,
        submit_group: Callable[[list[Item]], list[Outcome | BaseException]],
        *,
        max_group: int,
        in_flight: int,
        on_group: Callable[[int], None] | None = None,
    ) -> None:
        """``submit_group`` gets 1 to ``max_group`` items and returns one outcome per item, in order:
        a value, or the exception that item's caller is to raise. If it raises, every item of the
        group gets that exception. ``on_group`` hears each group's size (metrics)."""
        if max_group < 1 or in_flight < 1:
            raise ValueError("a group holds at least one item and at least one group may be in flight")
        self._submit_group = submit_group
        self._max_group = max_group
        self._in_flight = in_flight
        self._on_group = on_group
        self._lock = threading.Condition()
        self._waiting: list[tuple[Item, Future[Outcome]]] = []
        self._submitting = 0

    def run(self, item: Item) -> Outcome:
        """Submit ``item`` with whatever else is waiting; returns its outcome or raises its exception."""
        mine: Future[Outcome] = Future()
        with self._lock:
            self._waiting.append((item, mine))
        while True:
            with self._lock:
                while not mine.done() and (self._submitting >= self._in_flight or not self._waiting):
                    self._lock.wait()
                if mine.done():
                    return mine.result()
                group, self._waiting = self._waiting[: self._max_group], self._waiting[self._max_group :]
                self._submitting += 1
            try:
                self._submit(group)
            finally:
                with self._lock:
                    self._submitting -= 1
                    self._lock.notify_all()

    def _submit(self, group: list[tuple[Item, Future[Outcome]]]) -> None:
        if self._on_group is not None:
            self._on_group(len(group))
        try:
            outcomes = self._submit_group([item for item, _ in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"a group of {len(group)} got {len(outcomes)} outcomes")
        except BaseException as failure:  # every caller of the group must hear of it
            for _, future in group:
                future.set_exception(failure)
            if not isinstance(failure, Exception):
                raise
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
