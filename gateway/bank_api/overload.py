"""The cap on write requests in flight: past it, a write is refused at once with 503 and Retry-After.

A write holds a request thread for as long as its transaction takes to commit (half a second when
the peer keeps up, many seconds when it does not). Offered more writes than the ledger commits, a
gateway without a cap lets them pile up in its threads and in the peer, each one slower than the
last, until they time out deep inside Fabric; meanwhile reads and health checks wait behind them.
So at most ``max_concurrent_writes`` writes run at once, and one more is answered ``503 overloaded``
before it is authenticated against the database, claims an idempotency key or reaches the ledger:
refusing costs microseconds, and the client's retry (same Idempotency-Key) finds nothing to undo.

Counted: POST, PUT, PATCH and DELETE under ``/v1/`` (the console's forms reach the API in process,
so their API calls are counted, not the pages). Never counted: the operator's recovery actions
when an operator key makes them, as with the rate limits (decision 0016), so a flood cannot keep
the bank from freezing an account or revoking a key.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fabric_client import Overloaded as Refused
from fabric_client import SubmissionLimit
from flask import Flask, Response, g, request

from gateway.bank_api.auth import presented_key
from gateway.bank_api.ledger import Overloaded
from gateway.bank_api.problems import problem_response
from gateway.bank_api.ratelimit import OPERATOR_RECOVERY

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIX = "/v1/"


def is_counted_write() -> bool:
    return request.method in WRITE_METHODS and request.path.startswith(API_PREFIX)


def register_write_cap(app: Flask, cap: int, is_operator: Callable[[str], bool]) -> SubmissionLimit | None:
    """Refuse writes past ``cap`` in flight (0: no cap). Returns the limit, for tests and metrics."""
    if cap <= 0:
        return None
    # The same bookkeeping as the Fabric client's bound: a place per request, refused at once, and a
    # retry-after hint from how long writes have held their place lately.
    writes = SubmissionLimit(cap, wait=0.0)

    @app.before_request
    def _take_a_place() -> Response | None:
        if not is_counted_write():
            return None
        if request.endpoint in OPERATOR_RECOVERY:
            key = presented_key(request)
            if key is not None and is_operator(key):
                return None
        try:
            g.write_place = writes.acquire()
        except Refused as refused:
            # Not logged one by one: under overload that would be thousands of lines a minute; the
            # request metrics count the 503s.
            seconds = max(1, math.ceil(refused.retry_after))
            return problem_response(
                503, Overloaded.code, Overloaded.public_detail, headers={"Retry-After": str(seconds)}
            )
        return None

    @app.teardown_request
    def _give_it_back(_error: BaseException | None) -> None:
        place = g.pop("write_place", None)
        if place is not None:
            place.release()

    return writes
