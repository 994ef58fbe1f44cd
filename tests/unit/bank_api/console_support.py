"""A browser stand-in for the console's unit tests: its own cookie jar, forms posted with their CSRF token."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, Protocol

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Gateway(Protocol):
    """A bank's or the regulator's gateway of the unit tests: its app, and its ledger (for its MSP id)."""

    app: Flask
    ledger: Any


class Console:
    """One user's browser on one gateway's console."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.client: FlaskClient = gateway.app.test_client()
        self.last: TestResponse | None = None

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        self.last = self.client.get(path, **kwargs)
        return self.last

    def token(self) -> str:
        """The CSRF token of the page shown last (or of the login page when none shows one)."""
        page = self.last.get_data(as_text=True) if self.last is not None else ""
        found = _TOKEN.search(page)
        if found is None:
            # the login page, or the home page it sends a logged-in user to
            found = _TOKEN.search(self.client.get("/console/login", follow_redirects=True).get_data(as_text=True))
        assert found is not None, "no form with a CSRF token"
        return found.group(1)

    def post(self, path: str, data: dict[str, Any] | None = None, *, token: str | None = None) -> TestResponse:
        """Post a form as the browser would, with the CSRF token of the page shown last."""
        fields = {"csrf_token": self.token() if token is None else token, **(data or {})}
        self.last = self.client.post(path, data=fields)
        return self.last

    def follow(self, response: TestResponse) -> TestResponse:
        assert response.status_code in (302, 303), (response.status_code, response.get_data(as_text=True)[:500])
        return self.get(response.headers["Location"])

    def login(self, api_key: str) -> TestResponse:
        self.get("/console/login")
        response = self.post("/console/login", {"api_key": api_key})
        assert response.status_code == 303, response.get_data(as_text=True)
        return self.follow(response)

    def cookie(self) -> Any:
        return self.client.get_cookie(f"console_{self.gateway.ledger.msp_id}", path="/console")


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def refusal(response: TestResponse) -> str:
    """The words of the refusal box on a page ('' when there is none)."""
    found = re.search(r'<div class="refusal" role="alert" id="refusal">(.*?)</div>', text(response), re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip() if found else ""


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(response: TestResponse) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(text(response))
    return parser.tags
