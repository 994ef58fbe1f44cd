"""The web console: pages for merchants, bank operators and the regulator, served by each gateway under /console.

Every page is rendered on the server from the gateway's own REST API (api.py), called with the
API key the user logged in with; the key lives only in an encrypted, HTTP-only cookie
(cookie_session.py). Forms carry CSRF tokens (Flask-WTF), pages allow no inline script (CSP), and
Jinja escapes every value. One blueprint per role under one parent, so another role's pages
are one more module in ``_ROLE_MODULES``. Decision 0026 records the choices.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, flash, redirect, request, send_from_directory, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

# merchant_escrow adds its pages to the merchant blueprint, so it is imported before that is registered
from gateway.bank_api.console import merchant, merchant_escrow, operator, regulator  # noqa: F401
from gateway.bank_api.console.api import ApiRefused, call_api
from gateway.bank_api.console.cookie_session import (
    CONSOLE_PATH,
    LOGIN_AT,
    MAX_SESSION_SECONDS,
    EncryptedCookieSessionInterface,
    derive_key,
    load_secret,
    secret_path,
)
from gateway.bank_api.console.pages import (
    KEY,
    ROLE_PAGES,
    SignedOut,
    WrongRole,
    console_role,
    current_login,
    form_text,
    page,
    template_context,
)
from gateway.bank_api.problems import current_request_id

log = logging.getLogger(__name__)

# Where `make venv` puts the browser libraries (npm ci in assets/, decision 0026), and the files served from it.
ASSETS_DIR = Path(__file__).parent / "assets" / "node_modules"
ASSET_FILES = {"chart.umd.min.js": Path("chart.js") / "dist" / "chart.umd.min.js"}

_ROLE_MODULES = (merchant, operator, regulator)

# No inline script or style, nothing from another origin, no framing, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

bp = Blueprint(
    "console",
    __name__,
    url_prefix=CONSOLE_PATH,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
csrf = CSRFProtect()


def register_console(app: Flask) -> None:
    """Mount the console on a gateway app: its session cookie, CSRF protection and pages."""
    config = app.extensions["bank_api"].config
    secret = load_secret(secret_path(config))
    app.session_interface = EncryptedCookieSessionInterface(
        secret, f"console_{config.msp_id or 'gateway'}", config.console_idle_minutes * 60
    )
    app.config["WTF_CSRF_SECRET_KEY"] = derive_key(secret, "console csrf token")
    # The REST API authenticates by header and never sees the console's cookie, so only the
    # console's forms need tokens: they are checked in the console's before_request below.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # A token is only good with its own session, which ends after 12 hours at most; a form may stay
    # open that long (a token older than its session is refused with the session anyway).
    app.config["WTF_CSRF_TIME_LIMIT"] = MAX_SESSION_SECONDS
    csrf.init_app(app)
    # The console's templates are the app's only ones: drop the blank lines their tags leave.
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.register_blueprint(bp)


for _module in _ROLE_MODULES:
    bp.register_blueprint(_module.bp)
    ROLE_PAGES[_module.PAGES.role] = _module.PAGES


@bp.before_request
def _protect() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.after_request
def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.app_template_filter("when")
def _when(value: object) -> str:
    """An API timestamp (RFC 3339, UTC) as a person reads it: to the second, marked UTC."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.context_processor
def _context() -> dict[str, object]:
    return {**template_context(), "charts_available": charts_available()}


@bp.errorhandler(SignedOut)
def _signed_out(error: SignedOut) -> Response:
    had_key = bool(session.get(KEY))
    session.clear()
    if error.message:
        flash(f"Logged out: {error.message}", "error")
    elif had_key:
        flash("Logged out.", "error")
    # back to the page after login; a form's target is not a page, so its page's login is plain
    target = _safe_next(request.full_path) if request.method == "GET" else ""
    return redirect(url_for("console.login", next=target or None), code=303)


@bp.errorhandler(WrongRole)
def _wrong_role(error: WrongRole) -> Response:
    refusal = ApiRefused(
        403, "forbidden", f"these pages are for {error.needed} keys; you are logged in with a {error.login.role} key"
    )
    return page("console/error.html", 403, error=refusal)


@bp.errorhandler(ApiRefused)
def _refused(error: ApiRefused) -> Response:
    return page("console/error.html", error.status, error=error)


@bp.errorhandler(CSRFError)
def _csrf(error: CSRFError) -> Response:
    refusal = ApiRefused(
        400,
        "csrf_failed",
        "the form was not accepted: it expired or did not come from this console "
        f"({error.description}). Nothing was changed; open the page again and resend it.",
    )
    return page("console/error.html", 400, error=refusal)


@bp.errorhandler(HTTPException)
def _http(error: HTTPException) -> Response:
    status = error.code or 500
    refusal = ApiRefused(status, "http_error", error.description or "the request was refused")
    response = page("console/error.html", status, error=refusal)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    request_id = current_request_id()
    log.exception("unexpected error on console page, request %s", request_id)
    refusal = ApiRefused(
        500, "internal_error", f"the console failed to show this page; quote request id {request_id} to the bank"
    )
    return page("console/error.html", 500, error=refusal)


@bp.get("/")
def home() -> Response:
    login = current_login()
    if login is None:
        return redirect(url_for("console.login"), code=303)
    pages = ROLE_PAGES.get(login.role)
    if pages is None:
        raise ApiRefused(403, "forbidden", f"this console has no pages for {login.role} keys yet")
    return redirect(url_for(pages.home), code=303)


@bp.get("/login")
def login() -> Response:
    if current_login() is not None:
        return redirect(url_for("console.home"), code=303)
    return page("console/login.html", next=_safe_next(request.args.get("next", "")))


@bp.post("/login")
def login_post() -> Response:
    key = form_text("api_key")
    next_page = _safe_next(form_text("next"))
    if not key:
        return page("console/login.html", 400, error=ApiRefused(400, "invalid_request", "enter your API key"))
    try:
        me = call_api(key, "GET", "/v1/me").body
    except ApiRefused as refusal:
        return page("console/login.html", refusal.status, error=refusal, next=next_page)
    role = console_role(str(me.get("role")))
    if role not in ROLE_PAGES:
        unknown = ApiRefused(403, "forbidden", f"this console has no pages for {me.get('role')} keys yet")
        return page("console/login.html", 403, error=unknown, next=next_page)
    # A new session at login: nothing from before it (its CSRF token included) carries over.
    session.clear()
    session.update(
        {
            KEY: key,
            "role": role,
            "key_id": me.get("key_id"),
            "account_id": me.get("account_id"),
            "bank": me.get("bank"),
            LOGIN_AT: int(time.time()),
        }
    )
    return redirect(next_page or url_for(ROLE_PAGES[role].home), code=303)


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    flash("Logged out.", "done")
    return redirect(url_for("console.login"), code=303)


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def not_found(unknown: str) -> Response:
    """A console address that names no page: the console's own 404 (or 405) page, not the API's JSON.

    This catch-all also matches a page's address sent with another method (GET of a form's
    target), which must stay a 405: so look for a page at this address under the other method.
    """
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint != request.endpoint:
            allowed.append(method)
    if allowed:
        raise MethodNotAllowed(valid_methods=allowed)
    abort(404)


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    """A browser library installed by npm (decision 0026), served by the gateway itself."""
    relative = ASSET_FILES.get(name)
    if relative is None or not (ASSETS_DIR / relative).is_file():
        abort(404)
    return send_from_directory(ASSETS_DIR / relative.parent, relative.name, max_age=3600)


def charts_available() -> bool:
    return all((ASSETS_DIR / relative).is_file() for relative in ASSET_FILES.values())


def _safe_next(target: str) -> str:
    """Only a console path of this gateway: a login link must not send the user elsewhere."""
    target = target.rstrip("?")
    if not target.startswith(CONSOLE_PATH + "/") or "\\" in target:
        return ""
    if target.startswith((CONSOLE_PATH + "/login", CONSOLE_PATH + "/logout", CONSOLE_PATH + "/assets")):
        return ""
    return target
