"""Open-loop load: operations start on a fixed schedule whatever the network's answers.

A rate step runs for a fixed time at ``rate`` operations per second. Operation *i* is due at
``t0 + i / rate``; its latency runs from that due time (not from when a worker got to it), so a
client or network that falls behind shows up as latency instead of quietly lowering the offered load.

An operation is one business action: a blind write, a transfer, or an interbank payment (two Fabric
transactions). Workers only endorse and submit; commits arrive from the watchers (``watch.py``), so a
worker is free again as soon as the orderer has a transaction.

Each bank's connection bounds the transactions it has in flight, from endorsement until its peer has
committed them (``Gateway.submissions``, 64 by default, ``--max-in-flight``). One over the bound is
refused at once (``Overloaded``), as a real client of an overloaded gateway would be answered 503:
the operation backs off (the hint, doubled on each refusal) and is tried again while it is younger
than ``REFUSED_PATIENCE`` seconds; after that it ends ``refused``, counted apart from failures.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fabric_client import EndorseError, Gateway, GatewayError, Overloaded, SubmitError
from fabric_client.inflight import Slot
from fabric_protos.peer import transaction_pb2

from bench.watch import CommitWatcher

log = logging.getLogger(__name__)


class Later:
    """Calls due after a delay, made by one thread: the back-offs of refused operations.

    A ``threading.Timer`` per back-off starts an OS thread each time; offered twice what it commits,
    the bench refuses hundreds of attempts a second, and those threads took a sixth of a core from
    the peers on the same two cores, so the overload figure measured the load generator instead of
    the network. One thread and a heap cost next to nothing per call. Each call runs on that thread,
    so it must only hand the work on (to a pool), never do it.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="bench-later", daemon=True)
        self._thread.start()

    def after(self, delay: float, call: Callable[[], None]) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + max(0.0, delay), next(self._order), call))
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                _, _, call = heapq.heappop(self._due)
            _guarded(call)


VALID = transaction_pb2.VALID
UNKNOWN_STATUS = -1  # the commit status could not be read; counts as an invalid transaction
CONFLICTS = frozenset({transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT})

# Outcomes of an operation.
OK = "ok"
ENDORSE_ERROR = "endorse_error"
SUBMIT_ERROR = "submit_error"
MVCC = "mvcc_conflict"
INVALID = "invalid"
TIMEOUT = "timeout"
CLIENT_ERROR = "client_error"
REFUSED = "refused"  # refused early (overloaded, or 429/503 with Retry-After) through every retry

# Seconds after its due time an operation refused as overloaded is still tried again.
REFUSED_PATIENCE = 10.0
# Threads for second steps waiting for a place: more than one bank's bound (64), so that a follow-up
# seldom waits for a thread rather than for a place.
FOLLOW_UP_WORKERS = 96
MAX_BACKOFF = 8.0


class Tracker:
    """Outcomes of the operations of one step, and of the Fabric transactions behind them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self.started = 0
        self.finished = 0
        self.outcomes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.last_finish = 0.0
        self.transactions_valid = 0
        self.transactions_conflicted = 0
        self.transactions_invalid = 0
        self.errors: Counter[str] = Counter()
        self.extra: Counter[str] = Counter()
        # Once the step is summed up, late callbacks (a commit after the drain deadline) change nothing.
        self.frozen = False

    def begin(self) -> None:
        with self._lock:
            self.started += 1

    def transaction(self, code: int) -> None:
        with self._lock:
            if self.frozen:
                return
            if code == VALID:
                self.transactions_valid += 1
            elif code in CONFLICTS:
                self.transactions_conflicted += 1
            else:
                self.transactions_invalid += 1

    def note(self, what: str) -> None:
        with self._lock:
            if not self.frozen:
                self.extra[what] += 1

    def finish(self, outcome: str, due: float, at: float, error: str | None = None) -> None:
        with self._lock:
            if self.frozen:
                return
            self.finished += 1
            self.outcomes[outcome] += 1
            if outcome == OK:
                self.latencies.append(at - due)
                self.last_finish = max(self.last_finish, at)
            if error:
                self.errors[error[:160]] += 1
            self._done.notify_all()

    def wait_all(self, deadline: float) -> bool:
        with self._lock:
            while self.finished < self.started:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                self._done.wait(min(remaining, 0.5))
            return True

    def freeze(self) -> None:
        with self._lock:
            self.frozen = True

    def is_frozen(self) -> bool:
        with self._lock:
            return self.frozen

    def open_operations(self) -> int:
        with self._lock:
            return self.started - self.finished


@dataclass
class Account:
    bank: str
    account_id: str


class AccountPool:
    """Accounts a bank may debit now: one debit in flight per account, so debits never collide.

    A debit reads and writes the account's balance head; a second debit endorsed before the first
    commits would read a stale head and lose an MVCC conflict. An account goes back to the pool only
    once its bank's peer has committed the debit."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self._queue: queue.Queue[Account] = queue.Queue()
        self.size = 0
        for account in accounts:
            self._queue.put(account)
            self.size += 1

    def take(self, timeout: float) -> Account | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def give_back(self, account: Account) -> None:
        self._queue.put(account)


@dataclass
class Client:
    """One bank's connection: its gateway to its own peer and that peer's commit watcher."""

    org: str
    gateway: Gateway
    watcher: CommitWatcher
    channel: str
    contracts: dict[str, Any] = field(default_factory=dict)

    def contract(self, chaincode: str) -> Any:
        if chaincode not in self.contracts:
            self.contracts[chaincode] = self.gateway.get_network(self.channel).get_contract(chaincode)
        return self.contracts[chaincode]


class Driver:
    """Endorses and submits on a worker pool; commits are reported by the peers' watchers."""

    def __init__(self, clients: Mapping[str, Client], workers: int = 256, commit_wait: str = "events") -> None:
        """``commit_wait="events"``: the submitting org's commit comes from its peer's block stream, so a
        worker is free once the orderer took the transaction. ``"status"``: the worker asks the gateway
        for the commit status and waits (what ``submit_transaction`` does); kept to compare the two."""
        if commit_wait not in ("events", "status"):
            raise ValueError(f"commit_wait must be 'events' or 'status', not {commit_wait!r}")
        self.clients = dict(clients)
        self.commit_wait = commit_wait
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-worker")
        # Places held by transactions whose commit has not been seen yet, so a step's end can give
        # back those that will never be (lost in a timeout) instead of leaking them.
        self._held: dict[str, Slot] = {}
        self._held_lock = threading.Lock()
        # Second steps (completions, releases) wait for a place in the bound ahead of new operations
        # (``follow_up``), which holds a thread while it waits: on a pool of their own, so that new
        # operations are refused at once meanwhile instead of queueing behind them for a worker.
        self.follow_ups = ThreadPoolExecutor(max_workers=FOLLOW_UP_WORKERS, thread_name_prefix="bench-follow-up")
        self._later = Later()

    def run_later(self, job: Callable[[], None], follow_up: bool = False) -> None:
        """Run ``job`` on the workers' pool, or on the follow-ups' pool for a second step."""
        (self.follow_ups if follow_up else self.pool).submit(_guarded, job)

    def run_after(self, delay: float, job: Callable[[], None], follow_up: bool = False) -> None:
        """Run ``job`` as ``run_later`` does after ``delay`` seconds (a back-off), without holding a worker."""
        self._later.after(delay, lambda: self.run_later(job, follow_up))

    def release_all(self) -> None:
        """Give back every place still held: what a finished step did not see commit never will count."""
        with self._held_lock:
            held, self._held = self._held, {}
        for slot in held.values():
            slot.release()

    def submit(
        self,
        org: str,
        chaincode: str,
        function: str,
        *args: str,
        request: Mapping[str, Any] | None = None,
        transient: Mapping[str, bytes] | None = None,
        watch: Mapping[str, Callable[[int, float], None]],
        follow_up: bool = False,
    ) -> tuple[str, bytes]:
        """Endorse on ``org``'s own peer and submit; ``watch`` maps orgs to the callback for the commit as
        that org's peer sees it. Returns (transaction id, chaincode result). Raises ``Overloaded`` (nothing
        was sent), ``EndorseError`` or ``SubmitError`` (then no callback will fire).

        The transaction holds a place in ``org``'s bound on submissions in flight from before it is
        endorsed until ``org``'s own peer has committed it (or until the step ends). A ``follow_up``
        (the second transaction of an operation whose first one committed) waits for a place ahead of
        new operations instead of being refused at once (``fabric_client.inflight``), as the gateways'
        completions do."""
        client = self.clients[org]
        # Overloaded: refused before anything is signed
        slot = client.gateway.submissions.acquire(follow_up=follow_up)
        if request is not None:
            transient = {"request": json.dumps(request, separators=(",", ":")).encode("utf-8")}
        proposal = client.contract(chaincode).new_proposal(
            function, *args, transient=transient, endorsing_organizations=[org]
        )
        transaction_id = proposal.transaction_id
        callbacks = dict(watch)
        if org in callbacks:
            callbacks[org] = _releasing(slot, callbacks[org])
        own = callbacks.get(org) if self.commit_wait == "status" else None
        streamed = {
            watch_org: callback for watch_org, callback in callbacks.items() if own is None or watch_org != org
        }
        with self._held_lock:
            self._held[transaction_id] = slot
        for watch_org, callback in streamed.items():
            self.clients[watch_org].watcher.expect(transaction_id, callback)
        try:
            transaction = proposal.endorse()
            submitted = transaction.submit()
        except GatewayError:
            for watch_org in streamed:
                self.clients[watch_org].watcher.forget(transaction_id)
            self._give_back(transaction_id)
            raise
        if org not in callbacks:
            self._give_back(transaction_id)  # nobody waits for its commit here
        if own is not None:
            try:
                code = submitted.status().code
            except GatewayError:
                code = UNKNOWN_STATUS
            own(code, time.time())
        return transaction_id, transaction.result

    def _give_back(self, transaction_id: str) -> None:
        with self._held_lock:
            slot = self._held.pop(transaction_id, None)
        if slot is not None:
            slot.release()

    def close(self) -> None:
        self._later.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.follow_ups.shutdown(wait=False, cancel_futures=True)


def _releasing(slot: Slot, callback: Callable[[int, float], None]) -> Callable[[int, float], None]:
    def committed(code: int, at: float) -> None:
        slot.release()  # first: the commit is known, the next submission may go
        callback(code, at)

    return committed


def backoff(refused: Overloaded, refusals: int) -> float:
    """Seconds to wait before trying a refused operation again: the hint, doubled on each refusal
    (at most ``MAX_BACKOFF``)."""
    return min(MAX_BACKOFF, float(refused.retry_after) * 2 ** max(0, refusals - 1))


def _guarded(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:
        log.exception("bench job failed")


def error_outcome(error: Exception) -> tuple[str, str]:
    """The outcome and a short description of a failed endorse or submit."""
    if isinstance(error, Overloaded):
        return REFUSED, "refused: overloaded"
    if isinstance(error, EndorseError):
        return ENDORSE_ERROR, f"endorse: {error.reason or error.chaincode_message or error.message}"
    if isinstance(error, SubmitError):
        return SUBMIT_ERROR, f"submit: {error.message}"
    if isinstance(error, GatewayError):
        return CLIENT_ERROR, f"{error.operation}: {error.message}"
    return CLIENT_ERROR, f"{type(error).__name__}: {error}"


def commit_outcome(code: int) -> str:
    if code == VALID:
        return OK
    return MVCC if code in CONFLICTS else INVALID


Operation = Callable[[Tracker, float], None]
"""Starts one operation due at the given ``time.time()``; reports to the tracker when it ends."""


@dataclass
class StepRun:
    rate: float
    duration: float
    tracker: Tracker
    t0: float
    sent: int
    send_end: float
    end: float
    drained: bool


def run_step(
    driver: Driver,
    operation: Operation,
    rate: float,
    duration: float,
    drain_timeout: float,
) -> StepRun:
    """Offer ``rate`` operations per second for ``duration`` seconds, then wait for the stragglers."""
    tracker = Tracker()
    total = max(1, round(rate * duration))
    t0 = time.time() + 0.05
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        tracker.begin()
        driver.run_later(_bind(operation, tracker, due, driver.run_after))
    send_end = time.time()
    drained = tracker.wait_all(max(send_end, t0 + duration) + drain_timeout)
    end = time.time()
    if not drained:
        # What never finished counts as timed out; late callbacks only touch this step's tracker.
        for _ in range(tracker.open_operations()):
            tracker.finish(TIMEOUT, 0.0, end)
    tracker.freeze()
    driver.release_all()
    return StepRun(rate, duration, tracker, t0, total, send_end, end, drained)


def _bind(
    operation: Operation,
    tracker: Tracker,
    due: float,
    run_after: Callable[[float, Callable[[], None]], None],
) -> Callable[[], None]:
    refusals = 0

    def job() -> None:
        nonlocal refusals
        if tracker.is_frozen():
            return  # a back-off that outlived its step
        try:
            operation(tracker, due)
        except Overloaded as refused:
            # Refused before anything was sent: back off as told, then try the same operation again.
            refusals += 1
            tracker.note("refused attempts")
            delay = backoff(refused, refusals)
            if time.time() + delay - due <= REFUSED_PATIENCE:
                run_after(delay, job)
            else:
                tracker.finish(REFUSED, due, time.time(), "refused: overloaded")
        except Exception as error:  # an operation bug must still count, not hang the step
            log.exception("operation failed")
            tracker.finish(CLIENT_ERROR, due, time.time(), f"{type(error).__name__}: {error}")

    return job
