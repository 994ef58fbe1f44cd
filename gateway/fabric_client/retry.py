"""Retry a submit whose transaction lost a read conflict, or whose fate is unknown.

Fabric validates optimistically: two transactions that read and write the same key can both be endorsed
and ordered, and the later one is marked MVCC_READ_CONFLICT (or PHANTOM_READ_CONFLICT for a range). It
changed nothing, so running the whole flow again (fresh proposal, new transaction id, fresh reads) is safe.
A chaincode refusal or any other failure is returned to the caller at once: the same request would be
refused again, or its outcome is unknown and only the caller can decide.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import grpc
from fabric_protos.peer import transaction_pb2

from .contract import Contract
from .errors import (
    RETRYABLE_VALIDATION_CODES,
    CommitError,
    CommitStatusError,
    EndorseError,
    GatewayError,
    SubmitError,
)
from .ledger import Ledger
from .proposal import Argument
from .transaction import SubmittedTransaction, Transaction

__all__ = ["submit_idempotent", "submit_with_retry"]

_log = logging.getLogger(__name__)


def submit_with_retry(
    contract: Contract,
    name: str,
    *args: Argument,
    transient: Mapping[str, str | bytes] | None = None,
    endorsing_organizations: Iterable[str] | None = None,
    attempts: int = 5,
    backoff: float = 0.05,
    max_backoff: float = 2.0,
    commit_timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """``contract.submit_transaction(...)`` run up to ``attempts`` times while it fails with a retryable
    ``CommitError``. Between attempts it sleeps ``backoff * 2**(attempt-1)`` seconds (capped at
    ``max_backoff``) with full jitter, so competing clients stop colliding. Returns the committed result;
    raises the last ``CommitError`` when attempts run out, or any other error at once."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if backoff < 0 or max_backoff < 0:
        raise ValueError("backoff must not be negative")
    for attempt in range(1, attempts + 1):
        try:
            return contract.submit_transaction(
                name,
                *args,
                transient=transient,
                endorsing_organizations=endorsing_organizations,
                commit_timeout=commit_timeout,
            )
        except CommitError as error:
            if not error.is_retryable or attempt == attempts:
                raise
            delay = random.uniform(0, min(max_backoff, backoff * 2 ** (attempt - 1)))
            _log.info(
                "transaction %s of %s lost a read conflict (%s); attempt %d of %d in %.3fs",
                error.transaction_id,
                contract.qualified_name(name),
                error.code_name,
                attempt + 1,
                attempts,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


# What one attempt of ``submit_idempotent`` ended as: a result, or a reason to try again.
_COMMITTED, _INVALID, _UNKNOWN = "committed", "invalid", "unknown"


@dataclass
class _Attempt:
    transaction_id: str
    result: bytes


def submit_idempotent(
    contract: Contract,
    name: str,
    *args: Argument,
    transient: Mapping[str, str | bytes] | None = None,
    endorsing_organizations: Iterable[str] | None = None,
    commit_wait: float = 5.0,
    deadline: float = 30.0,
    attempts: int = 5,
    retry_codes: Iterable[int] = RETRYABLE_VALIDATION_CODES,
    backoff: float = 0.05,
    max_backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    follow_up: bool = False,
) -> bytes:
    """Submit a transaction the contract makes idempotent, and find out what became of it in bounded time.

    For transactions whose repeat the contract turns into a no-op or a refusal (a payment id, a deposit
    reference, a state machine that moves once): running one twice must never apply it twice.

    ``contract.submit_transaction`` waits for the commit as long as its deadline allows, which is all of it
    when the transaction went to an orderer that then died: nothing will ever commit it. Here the wait for
    each attempt is at most ``commit_wait`` seconds. A transaction not committed by then is looked up on the
    ledger (``Ledger.validation_code``): committed, invalid, or unknown. When unknown, the same request runs
    again with a new transaction id, so once the ordering service has a leader again the request commits
    within seconds. A submit the ordering service refuses (no leader during an election) is retried with
    backoff. Read conflicts (and any other ``retry_codes``) run the request again, at most ``attempts`` runs
    in all, like ``submit_with_retry``.

    A later run may find the effect of an earlier one that committed meanwhile and be refused, or lose a
    read conflict to it. So before any failure is reported, every earlier attempt is looked up again, and
    the result of one that committed is returned instead.

    Everything ends within about ``deadline`` seconds: returns the committed result; raises
    ``EndorseError`` (a refusal, or the peer unreachable), ``CommitError`` (invalid, out of attempts),
    ``SubmitError`` (the ordering service never accepted it) or ``CommitStatusError`` (its fate is still
    unknown: it may yet commit, so the caller must repeat the same request, never a different one).

    The whole call holds one place in the gateway's bound on submissions in flight; over the bound it
    raises ``Overloaded`` at once, before anything is endorsed. A ``follow_up`` (the second transaction
    of work whose first one committed) waits for a place ahead of new submissions instead
    (``inflight.py``).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if not commit_wait > 0 or not deadline > 0:
        raise ValueError("commit_wait and deadline must be positive numbers of seconds")
    with contract.network.gateway.submissions.slot(follow_up=follow_up):
        return _submit_idempotent(
            contract, name, args, transient, endorsing_organizations, commit_wait, deadline, attempts,
            retry_codes, backoff, max_backoff, sleep, clock,
        )  # fmt: skip


def _submit_idempotent(
    contract: Contract,
    name: str,
    args: tuple[Argument, ...],
    transient: Mapping[str, str | bytes] | None,
    endorsing_organizations: Iterable[str] | None,
    commit_wait: float,
    deadline: float,
    attempts: int,
    retry_codes: Iterable[int],
    backoff: float,
    max_backoff: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> bytes:
    retryable = frozenset(retry_codes)
    ledger = contract.network.get_ledger()
    end = clock() + deadline
    unresolved: list[_Attempt] = []  # attempts of unknown fate: only these may still have committed
    runs = 0
    last_unknown: CommitStatusError | None = None

    def remaining() -> float:
        return max(0.001, end - clock())

    def earlier_commit() -> bytes | None:
        """The result of an earlier attempt of unknown fate that the ledger now holds as valid, if any."""
        for attempt in unresolved:
            try:
                code = ledger.validation_code(attempt.transaction_id, timeout=min(5.0, remaining()))
            except GatewayError:
                continue  # the peer cannot say now; the caller's retry will find out
            if code == transaction_pb2.VALID:
                return attempt.result
        return None

    while True:
        runs += 1
        try:
            transaction = contract.new_proposal(
                name, *args, transient=transient, endorsing_organizations=endorsing_organizations
            ).endorse(remaining())
        except EndorseError:
            found = earlier_commit()
            if found is not None:
                return found
            raise
        try:
            submitted = _submit_until_accepted(transaction, remaining, sleep, backoff, max_backoff, clock, end)
        except SubmitError as refused:
            found = earlier_commit()
            if found is not None:
                return found
            # A submit that timed out may have reached an orderer after all: report what is unknown.
            raise last_unknown or refused from None
        outcome, error = _outcome(submitted, ledger, min(commit_wait, remaining()), remaining)
        if outcome == _COMMITTED:
            return transaction.result
        if outcome == _UNKNOWN:
            assert isinstance(error, CommitStatusError)
            unresolved.append(_Attempt(transaction.transaction_id, transaction.result))
            last_unknown = error
            _log.warning(
                "transaction %s of %s not committed within %.1fs and not on the ledger; running it again",
                transaction.transaction_id,
                contract.qualified_name(name),
                commit_wait,
            )
            runs -= 1  # lost, not refused: does not use up a run
        found = earlier_commit()
        if found is not None:
            return found
        if outcome == _INVALID:
            assert isinstance(error, CommitError)
            if error.code not in retryable or runs >= attempts:
                raise error
        if end - clock() <= 0:
            # Out of time: an attempt of unknown fate may still commit, so that is what to report.
            raise last_unknown or error or CommitStatusError(
                f"{contract.qualified_name(name)} was not committed within {deadline:.0f}s",
                grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED,
                transaction_id=transaction.transaction_id,
            )
        sleep(min(remaining(), random.uniform(0, min(max_backoff, backoff * 2 ** (runs - 1)))))


def _submit_until_accepted(
    transaction: Transaction,
    remaining: Callable[[], float],
    sleep: Callable[[float], None],
    backoff: float,
    max_backoff: float,
    clock: Callable[[], float],
    end: float,
) -> SubmittedTransaction:
    """Submit the same signed transaction until an orderer takes it (an election ends) or time runs out.

    Sending the same envelope again is safe: the transaction id is the same, so at most one copy can
    be valid."""
    delay = max(backoff, 0.25)
    while True:
        try:
            return transaction.submit(remaining())
        except SubmitError:
            if end - clock() <= delay:
                raise
            sleep(delay)
            delay = min(max_backoff, delay * 2)


def _outcome(
    submitted: SubmittedTransaction, ledger: Ledger, wait: float, remaining: Callable[[], float]
) -> tuple[str, GatewayError | None]:
    block = -1  # not known when the outcome comes from the ledger lookup
    try:
        status = submitted.status(wait)
        code, block = status.code, status.block_number
    except CommitStatusError as waited_out:
        try:
            found = ledger.validation_code(submitted.transaction_id, timeout=min(5.0, remaining()))
        except GatewayError:
            return _UNKNOWN, waited_out
        if found is None:
            return _UNKNOWN, waited_out
        code = found
    if code == transaction_pb2.VALID:
        return _COMMITTED, None
    return _INVALID, CommitError(transaction_id=submitted.transaction_id, code=code, block_number=block)
