"""Support for the bank gateway integration tests (tests/integration/test_bank_api_*.py).

They run against the REST gateways that ``python -m network up`` starts, one per bank, on
the shared test network of ``conftest.py``, and talk to them over HTTP only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

TIMEOUT = 120.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    """Poll until ``predicate`` returns something truthy; return it (or the last value at the deadline)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


@dataclass
class Merchant:
    account_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class BankGateway:
    msp_id: str
    url: str
    operator_key_file: Path

    @property
    def op(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_key_file.read_text().strip()}"}

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.op if headers is None else headers, timeout=TIMEOUT, **kwargs)

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(
            self.url + path, json=body, headers=self.op if headers is None else headers, timeout=TIMEOUT
        )

    def open_account(self, holder: str, jurisdiction: str) -> Merchant:
        response = self.post(
            "/v1/accounts",
            {"holder": holder, "jurisdiction": jurisdiction, "kyc_ref": unique("kyc")},
            {**self.op, "Idempotency-Key": unique("onboard")},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Merchant(body["account"]["account_id"], body["api_key"])

    def issue(self, account_id: str, currency: str, amount: str) -> None:
        response = self.post(
            "/v1/issuances",
            {"account_id": account_id, "currency": currency, "amount": amount, "deposit_ref": unique("dep")},
        )
        assert response.status_code == 201, response.text

    def pay(
        self, merchant: Merchant, payee_bank: str, payee: str, currency: str, amount: str, key: str, **extra: Any
    ) -> requests.Response:
        return self.post(
            "/v1/payments",
            {"payee_bank": payee_bank, "payee_account": payee, "currency": currency, "amount": amount, **extra},
            {**merchant.headers, "Idempotency-Key": key},
        )

    def balances(self, merchant: Merchant) -> dict[str, str]:
        response = self.get(f"/v1/accounts/{merchant.account_id}", merchant.headers)
        assert response.status_code == 200, response.text
        balances: dict[str, str] = response.json()["balances"]
        return balances

    def payment(self, payment_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.get(f"/v1/payments/{payment_id}", headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def api_requests_served(self) -> float:
        """Requests this gateway answered on /v1 routes, from its own metrics."""
        text = requests.get(self.url + "/metrics", timeout=TIMEOUT).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("bank_api_http_requests_total{") and 'route="/v1' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def ready(self) -> bool:
        try:
            return requests.get(self.url + "/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False


def gateways_of(profile: dict[str, Any]) -> dict[str, BankGateway]:
    banks = {}
    for msp_id, org in profile["orgs"].items():
        if org.get("kind") != "bank" or not org.get("gateway_url"):
            continue
        banks[msp_id] = BankGateway(msp_id, org["gateway_url"], Path(org["operator_key_file"]))
    return banks


def ready_gateways(profile: dict[str, Any]) -> dict[str, BankGateway]:
    """Every bank's gateway in the profile, once each says it is ready."""
    found = gateways_of(profile)
    for bank in found.values():
        assert wait_for(bank.ready, timeout=60), f"{bank.msp_id} gateway is not ready"
    return found


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A local receiver of webhook deliveries: its base URL, and each (signature header, body) it got."""
    received: list[tuple[str, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.headers["Bank-Api-Signature"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
