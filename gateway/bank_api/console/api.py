"""The console's one way to the ledger: the gateway's own REST API, called inside the process.

A page never calls the ledger or the stores itself. It sends the REST request a program would
send, with the logged-in user's API key, through this app's WSGI entry point; so every rule of
the API (authentication, roles, a merchant's own account only, input checks, idempotency, rate
limits, problem codes) holds for the console by construction, and a refusal arrives as the
same problem document a program would get.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from gateway.bank_api.problems import REQUEST_ID_HEADER, current_request_id


class ApiRefused(Exception):
    """The API answered with a problem document: its status, code and words for a person."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def unavailable(self) -> bool:
        return self.status >= 500


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any
    headers: dict[str, str]


def call_api(
    api_key: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> ApiAnswer:
    """Send one REST request to this gateway as the holder of ``api_key``; 2xx or ``ApiRefused``.

    ``path`` must be built from values the caller has checked against the API's own patterns
    (validation.py): the WSGI path is taken as given, so an unchecked ``/`` would reach another route.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sent_headers = {
        "Authorization": f"Bearer {api_key}",
        # one request id for the page and the API calls it made, so logs and answers match up
        REQUEST_ID_HEADER: current_request_id(),
        **(headers or {}),
    }
    builder = EnvironBuilder(
        path=path,
        method=method,
        query_string={k: v for k, v in (query or {}).items() if v not in (None, "")},
        headers=list(sent_headers.items()),
        data=None if body is None else json.dumps(body),
        content_type=None if body is None else "application/json",
        # the browser's address, so the API's per-client rate limit counts the console's users as it counts anyone
        environ_base={"REMOTE_ADDR": request.remote_addr or ""},
    )
    environ = builder.get_environ()
    # A fresh application context gives the API request its own ``g`` (principal, timers), so
    # nothing the API sets there leaks into the page's request or the next call.
    with app.app_context():
        response = Response.from_app(app.wsgi_app, environ, buffered=True)
    text = response.get_data(as_text=True)
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if 200 <= response.status_code < 300:
        return ApiAnswer(response.status_code, parsed, dict(response.headers))
    if isinstance(parsed, dict):
        code = str(parsed.get("code") or "error")
        detail = str(parsed.get("detail") or parsed.get("title") or "the request was refused")
    else:
        code, detail = "error", f"the gateway answered {response.status_code}"
    raise ApiRefused(response.status_code, code, detail)
