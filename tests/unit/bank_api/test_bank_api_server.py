"""The production HTTP server: slow clients cannot starve a normal one; `serve` wires the CLI to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.bank_api import __main__ as cli
from gateway.bank_api.server import http_server
from tests.unit.bank_api.conftest import Gateway, GatewayFactory

SLOW_CLIENTS = 200


@pytest.fixture
def served(make_gateway: GatewayFactory) -> Iterator[tuple[Gateway, str]]:
    gateway = make_gateway("USBankMSP", http_threads=4)
    server = http_server(gateway.app, gateway.services.config, port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield gateway, f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown()


def _slow_clients(url: str, count: int, partial: bytes) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(partial)
        sockets.append(sock)
    return sockets


@pytest.mark.parametrize(
    "partial",
    [
        b"",  # connected, silent
        b"GET /v1/me HTTP/1.1\r\nHost: x\r\n",  # headers never finished (slowloris)
        b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{",
    ],
    ids=["silent", "unfinished-headers", "unfinished-body"],
)
def test_slow_connections_do_not_starve_a_normal_client(served: tuple[Gateway, str], partial: bytes) -> None:
    gateway, url = served
    sockets = _slow_clients(url, SLOW_CLIENTS, partial)
    try:
        started = time.monotonic()
        response = requests.get(url + "/v1/me", headers=gateway.op(), timeout=5)
        assert response.status_code == 200
        assert response.json()["role"] == "operator"
        assert time.monotonic() - started < 2.0
    finally:
        for sock in sockets:
            sock.close()


def test_server_answers_problems_and_no_tracebacks(served: tuple[Gateway, str]) -> None:
    gateway, url = served
    deep = "[" * 5000
    response = requests.post(
        url + "/v1/accounts", data=deep, headers={**gateway.op(), "Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["Server"] == "bank-api"
    huge = requests.post(
        url + "/v1/accounts",
        data=b"x" * 300_000,
        headers={**gateway.op(), "Content-Type": "application/json"},
        timeout=5,
    )
    assert huge.status_code == 413


def test_serve_keeps_the_cli_flags_and_starts_the_workers_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "gateways" / "USBankMSP" / "operator.key"
    profile = tmp_path / "profile.json"
    orgs = {"USBankMSP": {"kind": "bank", "gateway_url": "http://127.0.0.1:27103", "operator_key_file": str(key_file)}}
    profile.write_text(json.dumps({"channel": "tokens", "state_dir": str(tmp_path), "orgs": orgs}))
    made: list[Any] = []
    served: list[Any] = []

    class App:
        def __init__(self, config: Any) -> None:
            self.config = config
            self.stopped = 0
            app = self

            class Services:
                def stop_workers(self) -> None:
                    app.stopped += 1

                class ledger:
                    @staticmethod
                    def close() -> None:
                        return None

            self.extensions = {"bank_api": Services()}

    def create_app(config: Any) -> App:
        app = App(config)
        made.append(app)
        return app

    monkeypatch.setattr("gateway.bank_api.app.create_app", create_app)
    monkeypatch.setattr("gateway.bank_api.server.serve", lambda app, config: served.append((app, config)))
    argv = ["serve", "--profile", str(profile), "--msp", "USBankMSP", "--host", "127.0.0.2", "--port", "27999"]
    assert cli.main([*argv, "--threads", "8"]) == 0
    assert len(made) == 1 and len(served) == 1  # one app, so one follower, sweeper and sender
    config = served[0][1]
    assert (config.host, config.port, config.http_threads) == ("127.0.0.2", 27999, 8)
    assert config.follow_events and config.deliver_webhooks
    assert made[0].stopped == 1
