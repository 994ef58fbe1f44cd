"""The console's session: an encrypted, HTTP-only cookie, and the secret it is encrypted with.

The session holds the API key the user logged in with, so the cookie is encrypted and
authenticated (Fernet: AES-128-CBC with HMAC-SHA256), not merely signed: a copy of it leaks no
key, and a changed one is refused. The gateway keeps no copy of the key, so its database holds
API keys only as hashes, as before (auth.py). The cookie is bound to ``/console``, so the REST
API never receives it and keeps authenticating by header only, which is also why the API needs
no CSRF protection. Decision 0026 says why this is a cookie and not a table of sessions.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SessionInterface

from gateway.bank_api.config import GatewayConfig

log = logging.getLogger(__name__)

CONSOLE_PATH = "/console"
# A session ends this long after login whatever its use; idleness ends it sooner (config).
MAX_SESSION_SECONDS = 12 * 3600
SECRET_FILE_NAME = "console.secret"
LOGIN_AT = "login_at"


def secret_path(config: GatewayConfig) -> Path | None:
    """Where the console's secret lives: as configured, else beside the operator key file."""
    if config.console_secret_file:
        return Path(config.console_secret_file)
    if config.operator_key_file:
        return Path(config.operator_key_file).with_name(SECRET_FILE_NAME)
    return None


def load_secret(path: Path | None) -> bytes:
    """The console's 32-byte secret, made on first start (mode 0600); without a path, one per process.

    Every process serving one bank's console must share it, or a session made by one would be
    refused by the next; so it is a file beside the operator key, not a value in memory.
    """
    if path is None:
        return secrets.token_bytes(32)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            # link, not replace: two processes starting together keep whichever secret came first
            os.link(tmp, path)
            log.info("console secret written to %s", path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError as error:
        raise ValueError(f"{path} must hold 64 hexadecimal digits") from error
    if len(secret) != 32:
        raise ValueError(f"{path} must hold 64 hexadecimal digits")
    return secret


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose, so the cookie cipher and the CSRF signer never share a key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret)


class ConsoleSession(SecureCookieSession):
    """The decrypted cookie: a dict that knows whether it was read or changed."""


class EncryptedCookieSessionInterface(SessionInterface):
    """Flask sessions in a Fernet-encrypted cookie that lives at most ``idle_seconds`` unused.

    Every console request that reads the session writes a fresh cookie, so the idle limit slides
    while the user works; Fernet's own timestamp enforces it, and ``login_at`` the hard limit.
    """

    def __init__(self, secret: bytes, cookie_name: str, idle_seconds: int) -> None:
        self._fernet = Fernet(_fernet_key(derive_key(secret, "console session cookie")))
        self.cookie_name = cookie_name
        self.idle_seconds = idle_seconds

    def open_session(self, app: Flask, request: Request) -> ConsoleSession:
        token = request.cookies.get(self.cookie_name)
        if not token:
            return ConsoleSession()
        try:
            data = json.loads(self._fernet.decrypt(token.encode(), ttl=self.idle_seconds))
        except (InvalidToken, ValueError):
            # expired, from another bank's console or an older secret, or tampered with: start afresh
            return ConsoleSession()
        if not isinstance(data, dict):
            return ConsoleSession()
        login_at = data.get(LOGIN_AT)
        if isinstance(login_at, int | float) and time.time() - login_at > MAX_SESSION_SECONDS:
            return ConsoleSession()
        return ConsoleSession(data)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if not isinstance(session, ConsoleSession):  # pragma: no cover - open_session always makes one
            return
        if not session:
            if session.modified:
                response.delete_cookie(
                    self.cookie_name, path=CONSOLE_PATH, secure=True, httponly=True, samesite="Strict"
                )
            return
        if not (session.modified or session.accessed):
            return
        token = self._fernet.encrypt(json.dumps(dict(session), separators=(",", ":")).encode()).decode()
        response.set_cookie(
            self.cookie_name,
            token,
            max_age=self.idle_seconds,
            path=CONSOLE_PATH,
            # Browsers keep Secure cookies on http://127.0.0.x and localhost, the only plain-HTTP
            # addresses a console should be served on; anywhere else the gateway sits behind TLS.
            secure=True,
            httponly=True,
            samesite="Strict",
        )
        response.vary.add("Cookie")


def _fernet_key(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw)
