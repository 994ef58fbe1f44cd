"""Fixtures: a gateway app per bank on one shared in-memory network."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.bank_api.app import Services, create_app
from tests.unit.bank_api.fake_ledger import FakeLedger, FakeNetwork
from tests.unit.bank_api.receiver import Receiver


@dataclass
class Gateway:
    app: Flask
    client: FlaskClient
    ledger: FakeLedger
    operator_key: str

    @property
    def services(self) -> Services:
        services: Services = self.app.extensions["bank_api"]
        return services

    def op(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.operator_key}"}

    def open_account(self, holder: str = "Acme Ltd", jurisdiction: str = "US", **extra: Any) -> tuple[str, str]:
        response = self.client.post(
            "/v1/accounts",
            json={"holder": holder, "jurisdiction": jurisdiction, "kyc_ref": "KYC-1", **extra},
            headers=self.op(),
        )
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return body["account"]["account_id"], body["api_key"]

    def issue(self, account_id: str, amount: str, currency: str = "USD", ref: str | None = None) -> None:
        response = self.client.post(
            "/v1/issuances",
            json={
                "account_id": account_id,
                "currency": currency,
                "amount": amount,
                "deposit_ref": ref or f"dep-{account_id}-{amount}",
            },
            headers=self.op(),
        )
        assert response.status_code in (200, 201), response.get_json()


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork()


@pytest.fixture
def make_gateway(network: FakeNetwork, tmp_path: Path) -> Iterator[GatewayFactory]:
    made: list[Gateway] = []

    def make(msp_id: str = "USBankMSP", **settings: Any) -> Gateway:
        folder = tmp_path / msp_id
        config = {
            "msp_id": msp_id,
            "database_url": f"sqlite:///{folder / 'bank_api.sqlite'}",
            "operator_key_file": str(folder / "operator.key"),
            **settings,
        }
        ledger = network.ledger(msp_id)
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
def us(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway("USBankMSP")


@pytest.fixture
def hk(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway("HKBankMSP")


@pytest.fixture
def seeded(us: Gateway, hk: Gateway) -> tuple[str, str]:
    """A USBank account with 100.00 USD: its id and its merchant key."""
    own, key = us.open_account("Payer Co")
    us.issue(own, "100.00", ref="dep-seed")
    return own, key


def ledger_snapshot(gateway: Gateway) -> Any:
    """Everything the fake ledger holds, to prove a refused request changed nothing."""
    network = gateway.ledger.network
    return copy.deepcopy((network.accounts, network.supply, network.payments, network.cycles, network.references))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
