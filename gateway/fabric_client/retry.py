"""Retry a submit whose transaction lost a read conflict.

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

from .contract import Contract
from .errors import CommitError
from .proposal import Argument

__all__ = ["submit_with_retry"]

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
