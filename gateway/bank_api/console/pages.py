"""What every console page shares: who is logged in, the API call as that user, rendering, roles."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import flash, make_response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR
from gateway.bank_api.config import REGULATOR
from gateway.bank_api.console.api import ApiAnswer, ApiRefused, call_api
from gateway.bank_api.validation import matches

F = TypeVar("F", bound=Callable[..., Any])

KEY = "api_key"


@dataclass(frozen=True)
class Login:
    """The logged-in user as the API described them at login (GET /v1/me)."""

    role: str
    key_id: str
    account_id: str | None
    bank: str


@dataclass(frozen=True)
class RolePages:
    """One role's part of the console: its home page and its navigation, in order.

    A role with a gateway of its own (the regulator's) adds one of these and a blueprint.
    """

    role: str
    title: str
    home: str
    nav: tuple[tuple[str, str], ...]


ROLE_PAGES: dict[str, RolePages] = {}


def console_role(api_role: str) -> str:
    """Which pages a key opens here: the API's role, except that the operator key of the regulator's
    gateway is the regulator's (its API has the regulator's routes only, so a bank operator's pages
    would find none of theirs, and the regulator's pages none of theirs on a bank's gateway)."""
    if services().config.role == REGULATOR:
        return REGULATOR if api_role == OPERATOR else ""
    return api_role


class SignedOut(Exception):
    """The session has no key, or the API no longer accepts it (revoked): log in again."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "")
        self.message = message


class WrongRole(Exception):
    def __init__(self, needed: str, login: Login) -> None:
        super().__init__(needed)
        self.needed = needed
        self.login = login


def current_login() -> Login | None:
    if not session.get(KEY):
        return None
    return Login(
        role=str(session.get("role", "")),
        key_id=str(session.get("key_id", "")),
        account_id=session.get("account_id"),
        bank=str(session.get("bank", "")),
    )


def requires_role(role: str) -> Callable[[F], F]:
    """Page decorator: a logged-in user of ``role``; the API checks the key again on every call."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            login = current_login()
            if login is None:
                raise SignedOut()
            if login.role != role:
                raise WrongRole(role, login)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def api(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Any:
    """Call the REST API as the logged-in user; the answer's body, or ``ApiRefused``."""
    return api_answer(method, path, body=body, query=query, idempotency_key=idempotency_key).body


def api_answer(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> ApiAnswer:
    key = session.get(KEY)
    if not key:
        raise SignedOut()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    try:
        return call_api(str(key), method, path, body=body, query=query, headers=headers)
    except ApiRefused as refusal:
        if refusal.status == 401:
            # revoked since login (an operator's action takes effect on the next page)
            raise SignedOut(refusal.detail) from refusal
        raise


def checked_id(value: str, pattern: str, what: str) -> str:
    """An id from the page's URL or form, checked with the API's own pattern before it goes into an API path."""
    if not matches(pattern, value):
        raise ApiRefused(400, "invalid_request", f"{what} is malformed")
    return value


def form_text(name: str) -> str:
    return request.form.get(name, "").strip()


def new_idempotency_key() -> str:
    """A fresh key for one form: submitting the same form twice (a double click, a reload) acts once."""
    return "console-" + secrets.token_urlsafe(18)


def key_after(refusal: ApiRefused, key: str) -> str:
    """The idempotency key for the form shown again after ``refusal``.

    After a 5xx, or while the first request under the key is still running (a double click), the
    outcome is unknown, so sending the form again must reuse its key (the API then answers what
    happened, once). Any other 4xx is settled and did nothing; the API keeps some of those under the
    key, so a corrected form needs a fresh key or the API would refuse it as a reused key.
    """
    unknown = refusal.unavailable or refusal.code == "idempotency_in_progress"
    return key if unknown and key else new_idempotency_key()


def page(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    return response


def done(message: str, endpoint: str, **values: Any) -> Response:
    """After a change: say what was done and go to a page that shows it (post/redirect/get)."""
    flash(message, "done")
    return redirect(url_for(endpoint, **values), code=303)


def template_context() -> dict[str, Any]:
    login = current_login()
    return {
        "login": login,
        "role_pages": ROLE_PAGES.get(login.role) if login else None,
        "bank": login.bank if login else services().msp_id,
        "regulator_gateway": services().config.role == REGULATOR,
    }
