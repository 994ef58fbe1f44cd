"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal carries a stable ``code`` a program can branch on and a ``detail`` a
person can act on. Contract errors keep the contract's own code. Nothing here ever
puts a traceback or customer data into a response.
"""

from __future__ import annotations

import logging
import re
import uuid
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, has_request_context, json, request
from werkzeug.exceptions import HTTPException

from gateway.bank_api.ledger import ContractRejected, CounterpartyUnreachable, LedgerFailure, LedgerUnavailable
from gateway.bank_api.money import MoneyError

PROBLEM_TYPE_PREFIX = "urn:deposit-token:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_body(status: int, code: str, detail: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    response = Response(
        json.dumps(problem_body(status, code, detail, extra)),
        status=status,
        mimetype=PROBLEM_MEDIA_TYPE,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def rejection_detail(rejection: ContractRejected) -> str:
    return rejection.message or rejection.code.replace("_", " ")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# Werkzeug's own HTTP errors (unknown route, wrong method, bad JSON...) get stable codes too.
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def register_problem_handlers(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api_problem(problem: ApiProblem) -> Response:
        return problem_response(problem.status, problem.code, problem.detail, problem.headers, problem.extra)

    @app.errorhandler(MoneyError)
    def _money(error: MoneyError) -> Response:
        return problem_response(400, error.code, error.message)

    @app.errorhandler(ContractRejected)
    def _rejected(error: ContractRejected) -> Response:
        return problem_response(error.status, error.code, rejection_detail(error))

    @app.errorhandler(LedgerUnavailable)
    def _unavailable(error: LedgerUnavailable) -> Response:
        return unavailable_response(error)

    @app.errorhandler(LedgerFailure)
    def _failure(error: LedgerFailure) -> Response:
        log.error("ledger failure: %s", error)
        return problem_response(502, "ledger_error", "the ledger could not process the request")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        detail = error.description or _title(status)
        headers = {}
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return problem_response(status, code, detail, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # The last resort: the client gets a problem document with the request id and no
        # traceback; the log gets the traceback under the same id, so the two can be matched.
        request_id = current_request_id()
        log.exception("unexpected error while handling request %s", request_id)
        return problem_response(
            500,
            "internal_error",
            f"the gateway failed to process the request; quote request id {request_id} to the bank",
            extra={"request_id": request_id},
        )


def unavailable_response(error: LedgerUnavailable) -> Response:
    """503 with the reason's own code (ledger.py) and Retry-After."""
    log.warning("ledger unavailable (%s): %s", error.code, error)
    extra = {}
    if isinstance(error, CounterpartyUnreachable) and error.counterparty:
        extra["counterparty"] = error.counterparty
    return problem_response(
        503, error.code, error.public_detail, headers={"Retry-After": str(error.retry_after)}, extra=extra
    )


REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def current_request_id() -> str:
    """The request's id: the client's X-Request-Id when it is a sane token, else a fresh one."""
    if not has_request_context():
        return "none"
    request_id = g.get("request_id")
    if request_id is None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        g.request_id = request_id
    return str(request_id)
