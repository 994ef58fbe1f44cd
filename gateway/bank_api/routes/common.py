"""Helpers shared by the blueprints: JSON answers and the idempotent-request wrapper."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, g, request

from gateway.bank_api.app import services
from gateway.bank_api.auth import current_principal
from gateway.bank_api.idempotency import Claim, StoredResponse, fingerprint, validate_key
from gateway.bank_api.ledger import ContractRejected
from gateway.bank_api.problems import PROBLEM_MEDIA_TYPE, problem_body, rejection_detail
from gateway.bank_api.validation import json_object

F = TypeVar("F", bound=Callable[..., Any])

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def idempotent(required: bool) -> Callable[[F], F]:
    """Wrap a POST so that retries with the same Idempotency-Key replay the first answer.

    Stores successes and contract refusals (settled outcomes). Input errors found before
    the ledger is called, and failures of the ledger itself, release the key instead, so
    the caller can fix the request or retry it.
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required)
            if key is None:
                return view(*args, **kwargs)
            body = json_object()
            store = services().idempotency
            scope = current_principal().idempotency_scope
            outcome = store.claim_or_replay(scope, key, fingerprint(request.method, request.path, body))
            if isinstance(outcome, StoredResponse):
                response = Response(outcome.body, status=outcome.status, mimetype=outcome.content_type)
                response.headers[REPLAY_HEADER] = "true"
                return response
            return _run_claimed(store, outcome, view, args, kwargs)

        return cast(F, wrapper)

    return decorate


def _run_claimed(store: Any, claim: Claim, view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    try:
        response = view(*args, **kwargs)
    except ContractRejected as rejection:
        body = json.dumps(problem_body(rejection.status, rejection.code, rejection_detail(rejection)))
        store.store(claim, StoredResponse(rejection.status, body, PROBLEM_MEDIA_TYPE))
        raise
    except BaseException:
        store.release(claim)
        raise
    if not isinstance(response, Response):  # pragma: no cover - our views return Response objects
        store.release(claim)
        raise TypeError("idempotent views must return a Response")
    if 200 <= response.status_code < 300:
        stored_body = g.pop("idempotent_stored_body", None)
        text = (
            response.get_data(as_text=True) if stored_body is None else json.dumps(stored_body, separators=(",", ":"))
        )
        store.store(claim, StoredResponse(response.status_code, text, response.mimetype or ""))
    else:
        store.release(claim)
    return response
