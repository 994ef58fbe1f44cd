"""Fixtures: the regulator's gateway and the banks' gateways on one in-memory channel running the contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.bank_api.alerts import RegulatorMonitor
from gateway.bank_api.app import Services, create_app
from tests.unit.contract.conftest import HK, REG, SG, US, Ledger, new_ledger
from tests.unit.regulator.channel_ledger import ChannelLedger


@dataclass
class Gateway:
    app: Flask
    client: FlaskClient
    ledger: ChannelLedger
    operator_key: str

    @property
    def services(self) -> Services:
        services: Services = self.app.extensions["bank_api"]
        return services

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.operator_key}"}

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> Any:
        return self.client.get(path, headers={**self.headers(key), **kwargs.pop("headers", {})}, **kwargs)

    def ok(self, path: str, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True))
        return response.get_json()


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def contract() -> Ledger:
    """The channel, with the reference data the contract tests use."""
    return new_ledger()


@pytest.fixture
def make_gateway(contract: Ledger, tmp_path: Path) -> Iterator[GatewayFactory]:
    made: list[Gateway] = []

    def make(msp_id: str, role: str = "bank", **settings: Any) -> Gateway:
        folder = tmp_path / msp_id
        config = {
            "msp_id": msp_id,
            "role": role,
            "database_url": f"sqlite:///{folder / 'gateway.sqlite'}",
            "operator_key_file": str(folder / "operator.key"),
            **settings,
        }
        ledger = ChannelLedger(contract.channel, msp_id)
        app = create_app(config, ledger=ledger)
        app.testing = True
        gateway = Gateway(app, app.test_client(), ledger, (folder / "operator.key").read_text().strip())
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.services.stop_workers()
        gateway.services.db.dispose()


@pytest.fixture
def regulator(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway(REG, role="regulator")


__all__ = ["HK", "REG", "SG", "US", "Gateway", "GatewayFactory", "Ledger"]


def handle_new(monitor: RegulatorMonitor, regulator: Gateway) -> list[str]:
    """Handle every event after the checkpoint, as the monitor's follower would, and save it."""
    block, tx_id = monitor.load_checkpoint()
    raised: list[str] = []
    last = None
    for event in regulator.ledger.events(block, tx_id):
        raised += monitor.handle(event)
        last = event
    if last is not None:
        monitor.save_checkpoint(last)
    return raised
