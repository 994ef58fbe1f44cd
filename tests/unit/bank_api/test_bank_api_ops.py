"""Operations routes, the OpenAPI document, configuration, and Fabric error translation."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from fabric_client import CommitError, CommitStatusError, EndorseError, GatewayError, SubmitError

from gateway.bank_api.config import ConfigError, GatewayConfig
from gateway.bank_api.fabric_ledger import translate
from gateway.bank_api.ledger import ContractRejected, LedgerFailure, LedgerUnavailable, parse_contract_error
from gateway.bank_api.openapi import openapi_document
from tests.unit.bank_api.conftest import Gateway
from tests.unit.bank_api.fake_ledger import FakeNetwork


def test_healthz_needs_no_peer(network: FakeNetwork, us: Gateway) -> None:
    network.down = True
    assert us.client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_follows_the_peer(network: FakeNetwork, us: Gateway) -> None:
    ready = us.client.get("/readyz").get_json()
    assert (ready["status"], ready["bank"]) == ("ready", "USBankMSP")
    network.down = True
    down = us.client.get("/readyz")
    assert down.status_code == 503
    assert down.headers["Retry-After"]
    assert down.get_json()["code"] == "peer_unreachable"
    assert down.get_json()["checks"] == {"database": "ok", "peer": "does not answer"}


def test_peer_down_gives_503_with_retry_after(network: FakeNetwork, us: Gateway) -> None:
    account, key = us.open_account()
    network.down = True
    response = us.client.get(f"/v1/accounts/{account}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/problem+json"


def test_metrics_count_requests_fabric_calls_and_pending(us: Gateway) -> None:
    account, key = us.open_account()
    us.client.get(f"/v1/accounts/{account}", headers={"Authorization": f"Bearer {key}"})
    text = us.client.get("/metrics").get_data(as_text=True)
    assert 'bank_api_http_requests_total{method="GET",route="/v1/accounts/<account_id>",status="200"} 1.0' in text
    assert 'bank_api_ledger_operation_duration_seconds_count{operation="get_account",outcome="ok"}' in text
    assert "bank_api_pending_incoming_payments" in text
    assert account not in text  # route templates, never account ids


def test_openapi_document_is_valid_and_covers_every_route(us: Gateway) -> None:
    import schemathesis

    document = us.client.get("/openapi.json").get_json()
    loaded = schemathesis.openapi.from_dict(document)
    results = list(loaded.get_all_operations())
    operations = [result.ok() for result in results if hasattr(result, "ok")]
    assert len(operations) == len(results)  # an invalid operation would be an Err without ok()
    assert len(operations) == sum(len(ops) for ops in document["paths"].values())
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in us.app.url_map.iter_rules():
        if rule.endpoint in ("static", "docs.docs_page", "docs.docs_static", "docs.openapi"):
            continue
        if rule.endpoint.startswith("console."):  # the console's HTML pages are not part of the API
            continue
        path = rule.rule.replace("<", "{").replace(">", "}").replace("{path:", "{")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            served.add((path.replace("{subscription_id}", "{webhook_id}"), method))
    assert served == documented


def test_docs_page_is_served_without_a_cdn(us: Gateway) -> None:
    page = us.client.get("/docs")
    assert page.status_code == 200 and b"/openapi.json" in page.data
    assert b"http" not in page.data.replace(b"http-equiv", b"")  # every asset is local
    assert us.client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert us.client.get("/docs/static/../../etc/passwd").status_code == 404


def test_openapi_examples_match_the_money_rules() -> None:
    document = openapi_document()
    amount = document["components"]["schemas"]["PaymentRequest"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["example"] == "12.34"


def test_config_from_profile(tmp_path: Path) -> None:
    profile = {
        "channel": "tokens",
        "state_dir": str(tmp_path),
        "orgs": {
            "USBankMSP": {
                "kind": "bank",
                "gateway_url": "http://127.0.0.1:27103",
                "operator_key_file": str(tmp_path / "gateways" / "USBankMSP" / "operator.key"),
            },
            "RegulatorMSP": {"kind": "regulator"},
            "AuditorMSP": {"kind": "auditor"},
        },
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    config = GatewayConfig.from_profile(str(path), "USBankMSP")
    assert (config.host, config.port) == ("127.0.0.1", 27103)
    assert config.database_url == f"sqlite:///{tmp_path}/gateways/USBankMSP/bank_api.sqlite"
    env_config = GatewayConfig.from_env(
        {
            "BANK_API_PROFILE": str(path),
            "BANK_API_MSP": "USBankMSP",
            "BANK_API_FOLLOW_EVENTS": "1",
            "BANK_API_FX_RATES": "USD/HKD=7.75",
        }
    )
    assert env_config.follow_events is True and env_config.fx_rates == {"USD/HKD": "7.75"}
    assert (config.role, GatewayConfig.from_profile(str(path), "RegulatorMSP").role) == ("bank", "regulator")
    with pytest.raises(ConfigError, match="gateways run for a bank or the regulator"):
        GatewayConfig.from_profile(str(path), "AuditorMSP")
    with pytest.raises(ConfigError, match="setting role must be one of bank, regulator"):
        GatewayConfig.from_mapping({"role": "auditor"})
    with pytest.raises(ConfigError, match="no org"):
        GatewayConfig.from_profile(str(path), "NoMSP")
    with pytest.raises(ConfigError, match="unknown setting"):
        GatewayConfig.from_mapping({"colour": "blue"})
    with pytest.raises(ConfigError, match="port"):
        GatewayConfig.from_mapping({"port": "eighty"})


def test_config_file_and_env_precedence(tmp_path: Path) -> None:
    settings = tmp_path / "bank.yaml"
    settings.write_text("msp_id: SGBankMSP\nport: 9000\ndatabase_url: sqlite:///x.db\n")
    config = GatewayConfig.from_env({"BANK_API_CONFIG_FILE": str(settings), "BANK_API_PORT": "9100"})
    assert (config.msp_id, config.port, config.database_url) == ("SGBankMSP", 9100, "sqlite:///x.db")


def test_contract_errors_are_parsed_from_peer_text() -> None:
    found = parse_contract_error("chaincode response 409, [insufficient_funds] account balance 1 is below 2")
    assert isinstance(found, ContractRejected)
    assert (found.code, found.status, found.message) == ("insufficient_funds", 409, "account balance 1 is below 2")
    assert parse_contract_error("chaincode response 500, [internal] boom") is None
    assert parse_contract_error("no code here") is None


def test_fabric_errors_translate_to_the_port() -> None:
    refused = translate(EndorseError("failed to endorse: chaincode response 404, [unknown_account] no such account"))
    assert isinstance(refused, ContractRejected) and (refused.code, refused.status) == ("unknown_account", 404)
    crashed = translate(EndorseError("chaincode response 500, internal error"))
    assert isinstance(crashed, LedgerFailure)
    assert isinstance(translate(GatewayError("x", grpc_code=grpc.StatusCode.UNAVAILABLE)), LedgerUnavailable)
    assert isinstance(translate(SubmitError("x", grpc_code=grpc.StatusCode.UNAVAILABLE)), LedgerUnavailable)
    assert isinstance(translate(CommitStatusError("x", grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED)), LedgerUnavailable)
    assert isinstance(translate(CommitError(transaction_id="t", code=11, block_number=3)), LedgerUnavailable)
    assert isinstance(translate(CommitError(transaction_id="t", code=10, block_number=3)), LedgerFailure)
    assert isinstance(translate(GatewayError("x", grpc_code=grpc.StatusCode.PERMISSION_DENIED)), LedgerFailure)


def test_a_completion_group_out_of_range_is_refused_before_connecting(tmp_path: Path) -> None:
    from gateway.bank_api.fabric_ledger import COMPLETION_GROUP, FabricLedger

    assert GatewayConfig.from_env({"BANK_API_COMPLETION_GROUP": "1"}).completion_group == 1
    for wrong in (0, COMPLETION_GROUP + 1):
        config = GatewayConfig.from_mapping({"profile_path": str(tmp_path / "absent.json"), "completion_group": wrong})
        with pytest.raises(ConfigError, match=f"completion_group must be 1 to {COMPLETION_GROUP}, not {wrong}"):
            FabricLedger.from_config(config)
