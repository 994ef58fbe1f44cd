"""Per-key and per-client-address rate limits (token buckets), answered with 429 and Retry-After.

Every request takes a token from the bucket of the API key it presents and from the bucket of
the address it comes from; either one empty means 429. Buckets live in this process, which is
the whole gateway (one process, see decision 0015), so no shared store is needed. The operator's
recovery actions (freezing an account, revoking a key) are never limited when an operator key
makes them: a flood of merchant traffic must not keep the bank from stopping it.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flask import request

from gateway.bank_api.problems import ApiProblem

# Buckets kept at most (least recently used dropped first): an attacker inventing keys or
# addresses grows this table, not the gateway's memory.
MAX_BUCKETS = 20_000

# Endpoints (Flask endpoint names) an operator key may always call, and ones nobody is limited on.
OPERATOR_RECOVERY = frozenset({"accounts.freeze", "accounts.revoke_api_key"})
UNLIMITED = frozenset({"ops.healthz", "ops.readyz"})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets of ``burst`` tokens refilled at ``rate`` per second; thread-safe."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """Take a token; returns 0 when granted, else the seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(name, None)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
            else:
                bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
                bucket.updated = now
            self._buckets[name] = bucket
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


class RateLimiter:
    def __init__(self, per_key: TokenBuckets, per_client: TokenBuckets) -> None:
        self.per_key = per_key
        self.per_client = per_client

    def check(self, presented_key: str | None, is_operator: Callable[[str], bool]) -> None:
        """Raise a 429 problem when this request is over a limit."""
        endpoint = request.endpoint or ""
        if endpoint in UNLIMITED:
            return
        if presented_key is not None and endpoint in OPERATOR_RECOVERY and is_operator(presented_key):
            return
        waits = [self.per_client.take("addr:" + (request.remote_addr or "unknown"))]
        if presented_key is not None:
            # The key itself is not kept in memory, only a digest of it.
            waits.append(self.per_key.take("key:" + hashlib.sha256(presented_key.encode()).hexdigest()[:32]))
        wait = max(waits)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiProblem(
                429,
                "rate_limited",
                f"too many requests; retry in {seconds} second(s)",
                headers={"Retry-After": str(seconds)},
            )
