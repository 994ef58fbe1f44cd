"""A bound on the submissions one gateway connection has in flight, so overload is refused at once.

A peer takes only so many transactions at a time before each of them gets slower: simulations wait
on the ledger's commit lock, the orderer's blocks grow, commits fall behind. A client that keeps
sending past that point only queues calls inside gRPC until their deadlines expire, deep in Fabric,
with the endorsement already paid for. ``SubmissionLimit`` counts one connection's submissions from
before they are endorsed until their commit is known, and refuses one over the limit with
``Overloaded`` (which carries a retry-after hint) before anything is signed or sent, so the caller
can back off or tell its own caller to.

A **follow-up** is the second transaction of work whose first one has committed: completing an
interbank payment, releasing an escrow. Refusing it does not shed load, it only leaves the first
transaction's effect open (money debited and not yet credited) and its cost paid for nothing; and a
follow-up retried on the same footing as new work loses to it under overload, so latency grows
without bound while new work keeps starting. So ``acquire(follow_up=True)`` goes ahead: while a
follow-up waits, new submissions are refused, and the next place given back goes to a follow-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import Overloaded

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "FOLLOW_UP_WAIT", "Slot", "SubmissionLimit"]

# A peer commits a transfer in about half a second (a 250 ms block plus endorsement and validation)
# and a two-core peer commits 100-150 of them a second: some 60-75 in flight keep it busy. More only
# lengthen the queue in front of its commit.
DEFAULT_MAX_IN_FLIGHT = 64

# How long a follow-up waits for a place when its caller sets no wait: a place comes free each time a
# submission commits, so under overload a follow-up gets one within about a block's time; ten seconds
# is only reached when the peer stopped committing.
FOLLOW_UP_WAIT = 10.0

# The hint before any submission finished, and its bounds: a refused caller should come back about
# when the submissions ahead of it have finished, neither at once nor after a whole deadline.
_FIRST_HINT = 1.0
_MIN_HINT = 0.1
_MAX_HINT = 10.0
_SMOOTHING = 0.1


class Slot:
    """One submission's place in the limit. ``release()`` gives it back; a second call does nothing,
    so a caller whose commit is reported twice (by a block stream and a status call) cannot free a
    place another submission holds."""

    def __init__(self, limit: SubmissionLimit, taken_at: float) -> None:
        self._limit = limit
        self.taken_at = taken_at
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the place back (once; later calls do nothing)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._limit._give_back(self)

    @property
    def released(self) -> bool:
        """True once the place was given back."""
        return self._released


class SubmissionLimit:
    """At most ``limit`` submissions in flight (``None``: no limit). Thread-safe.

    ``acquire`` waits up to ``wait`` seconds for a place (0: refuse at once) and raises ``Overloaded``
    when none comes free. The retry-after hint is how long a submission has held its place lately
    (a moving average): by then, the submissions ahead of the refused one have mostly finished."""

    def __init__(
        self,
        limit: int | None = DEFAULT_MAX_IN_FLIGHT,
        *,
        wait: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"the in-flight limit must be at least 1 (or None for none), got {limit!r}")
        if wait < 0:
            raise ValueError(f"the wait for a place must not be negative, got {wait!r}")
        self._limit = limit
        self.wait = wait
        self._clock = clock
        self._in_flight = 0
        self._held_seconds = _FIRST_HINT
        self._refused = 0
        self._follow_ups_waiting = 0
        self._free = threading.Condition()

    @property
    def limit(self) -> int | None:
        """The most submissions in flight at once (``None``: no bound)."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Submissions holding a place now."""
        with self._free:
            return self._in_flight

    @property
    def refused(self) -> int:
        """Submissions refused since this limit was made (for metrics)."""
        with self._free:
            return self._refused

    def retry_after(self) -> float:
        """Seconds a refused caller should wait before it tries again."""
        with self._free:
            return min(_MAX_HINT, max(_MIN_HINT, self._held_seconds))

    def acquire(self, wait: float | None = None, *, follow_up: bool = False) -> Slot:
        """A place for one submission, or ``Overloaded`` after ``wait`` seconds (the limit's own
        ``wait`` when ``None``) without one. A ``follow_up`` (see the module) is served before any new
        submission: while one waits for a place, new submissions are refused. With no ``wait`` given,
        a follow-up waits ``FOLLOW_UP_WAIT`` seconds at least."""
        patience = (max(self.wait, FOLLOW_UP_WAIT) if follow_up else self.wait) if wait is None else wait
        with self._free:
            if self._limit is not None and not self._admits(follow_up):
                deadline = self._clock() + patience
                if follow_up:
                    self._follow_ups_waiting += 1
                try:
                    while not self._admits(follow_up):
                        remaining = deadline - self._clock()
                        if remaining <= 0:
                            self._refused += 1
                            hint = min(_MAX_HINT, max(_MIN_HINT, self._held_seconds))
                            if follow_up or not self._follow_ups_waiting:
                                why = f"{self._in_flight} submissions are in flight on this connection, its limit"
                            else:
                                why = (
                                    "follow-ups wait for places on this connection and go first "
                                    f"({self._in_flight} of {self._limit} in flight)"
                                )
                            raise Overloaded(
                                f"{why}; retry in {hint:.1f}s",
                                limit=self._limit,
                                in_flight=self._in_flight,
                                retry_after=hint,
                            )
                        self._free.wait(remaining)
                finally:
                    if follow_up:
                        self._follow_ups_waiting -= 1
                        if not self._follow_ups_waiting:
                            self._free.notify_all()  # new submissions waiting for a place may take one now
            self._in_flight += 1
            return Slot(self, self._clock())

    def _admits(self, follow_up: bool) -> bool:
        """Whether a submission may take a place now (the lock held)."""
        assert self._limit is not None
        if self._in_flight >= self._limit:
            return False
        return follow_up or self._follow_ups_waiting == 0

    @contextmanager
    def slot(self, wait: float | None = None, *, follow_up: bool = False) -> Iterator[Slot]:
        """``with limit.slot(): ...``: a place held for the block, given back however it ends."""
        taken = self.acquire(wait, follow_up=follow_up)
        try:
            yield taken
        finally:
            taken.release()

    def _give_back(self, slot: Slot) -> None:
        held = max(0.0, self._clock() - slot.taken_at)
        with self._free:
            self._in_flight -= 1
            self._held_seconds += _SMOOTHING * (held - self._held_seconds)
            # A follow-up must get this place: wake every waiter, the new ones go back to sleep.
            if self._follow_ups_waiting:
                self._free.notify_all()
            else:
                self._free.notify()
