"""The regulator's typed boundary: every body and query its routes read is refused, before anything
changes, when it is not what the route's model says, with the field named as the client wrote it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.bank_api.alerts import AlertStore
from gateway.bank_api.regulator_openapi import regulator_document
from tests.unit.regulator.conftest import Gateway

CAP = {"currency": "USD", "from": "US", "to": "HK", "daily": "100.00"}
PAGE_SIZE = "page_size must be a whole number from 1 to 100 in ASCII digits"


def _send(regulator: Gateway, method: str, path: str, body: Any) -> Any:
    headers = {**regulator.headers(), "Idempotency-Key": "k-1"}
    return getattr(regulator.client, method)(path, json=body, headers=headers)


def _refused(response: Any, detail: str, code: str = "invalid_request") -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == code, problem
    assert problem["detail"].startswith(detail), problem


@pytest.mark.parametrize(
    ("body", "detail", "code"),
    [
        ([{"base_version": 1, "rules": []}], "the body must be a JSON object", "invalid_request"),
        ({"base_version": True, "rules": []}, "base_version is required: the version this change starts from",
         "invalid_request"),
        ({"base_version": 1.0, "rules": []}, "base_version is required", "invalid_request"),
        ({"base_version": 1, "rules": [], "note": 5}, "note must be a string", "invalid_request"),
        ({"base_version": 1, "rules": ["USD"]}, "rules must be a list of objects", "invalid_request"),
        ({"base_version": 1, "rules": [{"currency": "USD", "cross_border_only": True}] * 101},
         "rules may hold at most 100 entries", "invalid_request"),
        ({"base_version": 1, "rules": [{"currency": "USD", "cross_border_only": True, "colour": "red"}]},
         "rules[0]: unknown field(s): colour", "invalid_request"),
        ({"base_version": 1, "rules": [{"currency": "usd", "cross_border_only": True}]},
         "rules[0]: currency is malformed", "unknown_currency"),
        ({"base_version": 1, "rules": [{"currency": "USD", "allowed": [["US", "hk"]]}]},
         'rules[0]: allowed must be a list of [jurisdiction, jurisdiction] pairs such as ["US", "HK"]',
         "invalid_request"),
        ({"base_version": 1, "rules": [{"currency": "USD", "allowed": "US-HK"}]},
         "rules[0]: allowed must be a list of [jurisdiction, jurisdiction] pairs", "invalid_request"),
        ({"base_version": 1, "rules": [], "caps": [CAP, {"currency": "USD", "to": "HK", "daily": "1"}]},
         "caps[1]: from is required", "invalid_request"),
        ({"base_version": 1, "rules": [], "caps": [{**CAP, "from": "us"}]},
         "caps[0]: from is malformed: two to four capital letters", "invalid_request"),
        ({"base_version": 1, "rules": [], "caps": [{**CAP, "per_payment": 5}]},
         "caps[0]: per_payment must be a decimal string", "invalid_amount"),
        ({"base_version": 1, "rules": [], "caps": [{**CAP, "daily": True}]},
         "caps[0]: daily must be a decimal string", "invalid_amount"),
    ],
)  # fmt: skip
def test_a_corridor_policy_of_the_wrong_shape_changes_nothing(
    regulator: Gateway, body: Any, detail: str, code: str
) -> None:
    before = regulator.ok("/v1/corridor-policy/history")
    _refused(_send(regulator, "put", "/v1/corridor-policy", body), detail, code)
    assert regulator.ok("/v1/corridor-policy/history") == before


@pytest.mark.parametrize(
    ("rule", "body", "detail", "code"),
    [
        ("velocity", {"enabled": True, "window_seconds": "60", "max_payments": None, "max_amounts": {}},
         "window_seconds must be a whole number from 1 to 2592000", "invalid_request"),
        ("velocity", {"enabled": True, "window_seconds": True, "max_payments": None, "max_amounts": {}},
         "window_seconds must be a whole number from 1 to 2592000", "invalid_request"),
        ("velocity", {"enabled": True, "window_seconds": 60, "max_payments": 1.5, "max_amounts": {}},
         "max_payments must be a whole number from 1 to 1000000", "invalid_request"),
        ("velocity", {"enabled": True, "window_seconds": 60, "max_payments": None, "max_amounts": {"USD": 5}},
         "max_amounts.USD must be a decimal string", "invalid_amount"),
        ("velocity", {"enabled": 1, "window_seconds": 60, "max_payments": None, "max_amounts": {}},
         "enabled must be true or false", "invalid_request"),
        ("velocity", {"enabled": None, "window_seconds": 60, "max_payments": None, "max_amounts": {}},
         "enabled must be true or false", "invalid_request"),
        ("velocity", {"enabled": True, "window_seconds": None, "max_payments": None, "max_amounts": {}},
         "window_seconds must be a whole number from 1 to 2592000", "invalid_request"),
        ("large_payment", {"enabled": True, "thresholds": None},
         "thresholds must be an object of currency: amount", "invalid_request"),
        ("large_payment", {"enabled": True, "thresholds": {}, "colour": "red"},
         "unknown field(s): colour", "invalid_request"),
    ],
)  # fmt: skip
def test_alert_rule_settings_of_the_wrong_shape_change_nothing(
    regulator: Gateway, rule: str, body: dict[str, Any], detail: str, code: str
) -> None:
    before = regulator.ok("/v1/alert-rules")
    _refused(_send(regulator, "put", f"/v1/alert-rules/{rule}", body), detail, code)
    assert regulator.ok("/v1/alert-rules") == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"note": 5}, "note must be a string"),
        ({"note": "seen", "by": "me"}, "unknown field(s): by"),
        ({"note": "x" * 201}, "note must be at most 200 characters"),
        (["seen"], "the body must be a JSON object"),
    ],
)
def test_an_acknowledgement_of_the_wrong_shape_leaves_the_alert_open(
    regulator: Gateway, body: Any, detail: str
) -> None:
    alert_id = AlertStore(regulator.services).raise_alert("large_payment", "test:1", "a payment", {"amount": "1"})
    assert alert_id is not None
    _refused(_send(regulator, "post", f"/v1/alerts/{alert_id}/acknowledgement", body), detail)
    assert regulator.ok(f"/v1/alerts/{alert_id}")["state"] == "open"
    # No body at all is an acknowledgement without a note.
    done = regulator.client.post(f"/v1/alerts/{alert_id}/acknowledgement", headers=regulator.headers())
    assert (done.status_code, done.get_json()["note"]) == (200, None)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"url": 5}, "url must be a string"),
        ({"url": "https://supervisor.example/a", "events": "alert.raised"}, "events must be a list"),
        ({"url": "https://supervisor.example/a", "events": []},
         "events must be a non-empty list drawn from alert.raised"),
        ({"url": "https://supervisor.example/a", "events": ["payment.completed"]}, "events must be a non-empty list"),
        ({"url": "https://supervisor.example/a", "secret": "mine"}, "unknown field(s): secret"),
    ],
)
def test_an_alert_webhook_of_the_wrong_shape_is_not_registered(regulator: Gateway, body: Any, detail: str) -> None:
    _refused(_send(regulator, "post", "/v1/webhooks", body), detail)
    assert regulator.ok("/v1/webhooks") == {"webhooks": []}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"payment_id": 5, "legal_basis": "AML Act s.7"}, "payment_id must be an interbank payment's id"),
        ({"payment_id": "0" * 64, "legal_basis": ["AML Act s.7"]}, "legal_basis must be a string"),
        ({"payment_id": "0" * 64, "legal_basis": "   "}, "legal_basis must not be empty"),
        ({"payment_id": "0" * 64, "legal_basis": None}, "legal_basis must be a string"),
        ({"payment_id": "0" * 64, "legal_basis": "AML \u200b"}, "legal_basis must contain printable characters"),
    ],
)
def test_a_disclosure_request_of_the_wrong_shape_is_not_filed(regulator: Gateway, body: Any, detail: str) -> None:
    _refused(_send(regulator, "post", "/v1/disclosure-requests", body), detail)
    assert regulator.ok("/v1/disclosure-requests") == {"requests": []}


@pytest.mark.parametrize(
    ("path", "query", "detail"),
    [
        ("/v1/payments", {"page_size": " 7"}, PAGE_SIZE),
        ("/v1/payments", {"page_size": "+7"}, PAGE_SIZE),
        ("/v1/payments", {"page_size": "7_0"}, PAGE_SIZE),
        ("/v1/payments", {"page_size": "101"}, PAGE_SIZE),
        ("/v1/payments", {"page_size": "\u0663"}, "query parameters must be printable ASCII"),
        ("/v1/payments", {"status": ["completed", "initiated"]}, "status must be"),
        ("/v1/payments", {"from": ""}, "from must be an RFC 3339 time with its zone"),
        ("/v1/payments", {"currency": ""}, "currency: currency must be a three-letter ISO 4217 code"),
        ("/v1/supply", {"format": ""}, "format must be one of json, csv"),
        ("/v1/positions", {"format": "CSV"}, "format must be one of json, csv"),
        ("/v1/supply/history", {"issuer": "USBankMSP", "currency": "USD", "to": "2025-01-06"}, "to must be an RFC"),
        ("/v1/settlement-cycles", {"status": "closed"}, "status must be one of open, settled"),
        ("/v1/settlement-cycles", {"pending_bank": "a/b"}, "pending_bank is malformed"),
        ("/v1/corridor-usage", {"day": ""}, "day must be a date such as 2025-01-06 (UTC)"),
        ("/v1/corridor-policy/history", {"format": "xml"}, "format must be one of json, csv"),
        ("/v1/alerts", {"state": "closed"}, "state must be one of open, acknowledged"),
        ("/v1/alerts", {"rule": "nonsense"}, "rule must be one of large_payment"),
        ("/v1/disclosure-requests", {"bank": "a b"}, "bank is malformed"),
        ("/v1/disclosure-requests", {"status": "lost"}, "status must be one of pending, disclosed, refused"),
    ],
)
def test_a_query_of_the_wrong_shape_is_refused_by_name(
    regulator: Gateway, path: str, query: dict[str, Any], detail: str
) -> None:
    code = "unknown_currency" if detail.startswith("currency") else "invalid_request"
    _refused(regulator.get(path, query_string=query), detail, code)


def test_a_deliveries_query_of_the_wrong_shape_is_refused_by_name(regulator: Gateway) -> None:
    created = _send(regulator, "post", "/v1/webhooks", {"url": "https://supervisor.example/a"})
    assert created.status_code == 201, created.get_json()
    path = f"/v1/webhooks/{created.get_json()['id']}/deliveries"
    assert regulator.ok(path) == {"deliveries": [], "next_cursor": None}
    for query, detail in (
        ({"cursor": ""}, "cursor is malformed: pass next_cursor of the previous page as it is"),
        ({"cursor": "a/b"}, "cursor is malformed"),
        ({"page_size": "7_0"}, "page_size is out of range"),
        ({"page_size": "0"}, "page_size is out of range"),
    ):
        _refused(regulator.get(path, query_string=query), detail)


def test_the_document_describes_the_requests_by_their_models() -> None:
    document = regulator_document()
    schemas = document["components"]["schemas"]
    bodies = {
        ("/v1/corridor-policy", "put"): "CorridorPolicyRequest",
        ("/v1/alerts/{alert_id}/acknowledgement", "post"): "AcknowledgementRequest",
        ("/v1/alert-rules/{rule}", "put"): "AlertRuleSettings",
        ("/v1/webhooks", "post"): "AlertWebhookRequest",
        ("/v1/disclosure-requests", "post"): "NewDisclosureRequest",
    }
    for (path, method), name in bodies.items():
        body = document["paths"][path][method]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}
        assert body["required"] is (name != "AcknowledgementRequest")
        assert schemas[name]["additionalProperties"] is False
    # the entries of a policy are schemas of their own, as the policy's lists name them
    policy = schemas["CorridorPolicyRequest"]["properties"]
    for field, entry in (("rules", "CorridorRuleRequest"), ("caps", "CorridorCapRequest")):
        assert policy[field]["items"] == {"$ref": f"#/components/schemas/{entry}"}
        assert schemas[entry]["additionalProperties"] is False
    assert schemas["AlertRuleSettings"]["properties"]["max_payments"]["nullable"] is True
    # each query parameter once, path parameters kept as written
    for path, item in document["paths"].items():
        for operation in item.values():
            names = [(param["in"], param["name"]) for param in operation.get("parameters", [])]
            assert len(names) == len(set(names)), (path, names)
            assert all(f"{{{name}}}" in path for where, name in names if where == "path"), (path, names)
    listed = {p["name"] for p in document["paths"]["/v1/payments"]["get"]["parameters"]}
    assert listed == {"bank", "payer_bank", "payee_bank", "status", "currency", "min_amount", "max_amount",
                      "from", "to", "page_size", "cursor", "format"}  # fmt: skip
