"""Bad input: a clear 4xx problem naming the issue, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.bank_api.conftest import Gateway, ledger_snapshot

PAY = {"payee_bank": "HKBankMSP", "payee_account": "acc_payee", "currency": "USD", "amount": "1.00"}


def pay(**changes: Any) -> dict[str, Any]:
    body = {**PAY, **changes}
    return {k: v for k, v in body.items() if v is not ...}


ISSUE = {"account_id": "{own}", "currency": "USD", "amount": "1.00", "deposit_ref": "dep-1"}


def issue(**changes: Any) -> dict[str, Any]:
    body = {**ISSUE, **changes}
    return {k: v for k, v in body.items() if v is not ...}


# (who, method, path, body, status, code)
CASES: list[tuple[str, str, str, Any, int, str]] = [
    # money
    ("merchant", "post", "/v1/payments", pay(amount=1.0), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount=1), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount="1.001"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount="-1.00"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount="0"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount="99999999999999999999"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount="ten"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount="1e2"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount=None), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount=...), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(amount=["1.00"]), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(currency="XYZ"), 400, "unknown_currency"),
    ("merchant", "post", "/v1/payments", pay(currency="usd"), 400, "unknown_currency"),
    ("merchant", "post", "/v1/payments", pay(currency=...), 400, "unknown_currency"),
    ("merchant", "post", "/v1/payments", pay(payee_currency="ABC"), 400, "unknown_currency"),
    ("merchant", "post", "/v1/payments", pay(currency="JPY", amount="1.5"), 400, "invalid_amount"),
    ("merchant", "post", "/v1/payments", pay(payee_currency="JPY", amount="0.001"), 400, "invalid_amount"),
    # shape
    ("merchant", "post", "/v1/payments", pay(payee_account=...), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(payee_account=""), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(payee_account="a b"), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(payee_account="x" * 65), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(payee_bank=7), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(remittance="x" * 141), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(remittance="bell\x07"), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", pay(surprise=1), 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", ["not", "an", "object"], 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", "raw:{not json", 400, "invalid_request"),
    ("merchant", "post", "/v1/payments", "form:amount=1", 415, "unsupported_media_type"),
    (
        "merchant",
        "post",
        "/v1/payments",
        pay(payee_bank="USBankMSP", payee_account="{own}"),
        400,
        "invalid_request",
    ),
    (
        "merchant",
        "post",
        "/v1/payments",
        pay(payee_bank="USBankMSP", payee_currency="HKD"),
        400,
        "unsupported_currency_pair",
    ),
    (
        "merchant",
        "post",
        "/v1/payments",
        pay(payee_currency="CNH", currency="USD", amount="1.00") | {"x": 1},
        400,
        "invalid_request",
    ),
    # contract refusals keep the contract's code
    ("merchant", "post", "/v1/payments", pay(amount="1000.00"), 409, "insufficient_funds"),
    ("merchant", "post", "/v1/payments", pay(payee_bank="NoSuchBankMSP"), 404, "unknown_bank"),
    ("merchant", "post", "/v1/payments", pay(payee_currency="SGD"), 403, "currency_not_issued"),
    ("operator", "post", "/v1/issuances", issue(currency="HKD"), 403, "currency_not_issued"),
    ("operator", "post", "/v1/issuances", issue(account_id="acc_missing"), 404, "unknown_account"),
    (
        "operator",
        "post",
        "/v1/issuances",
        issue(deposit_ref="dep-seed", amount="2.00"),
        409,
        "duplicate_reference",
    ),
    (
        "operator",
        "post",
        "/v1/redemptions",
        {"account_id": "{own}", "currency": "USD", "amount": "500.00", "withdrawal_ref": "w1"},
        409,
        "insufficient_funds",
    ),
    # operator input
    ("operator", "post", "/v1/issuances", issue(amount=5), 400, "invalid_amount"),
    ("operator", "post", "/v1/issuances", issue(deposit_ref="has space"), 400, "invalid_request"),
    ("operator", "post", "/v1/issuances", issue(deposit_ref=...), 400, "invalid_request"),
    (
        "operator",
        "post",
        "/v1/accounts",
        {"holder": "A", "jurisdiction": "usa", "kyc_ref": "k"},
        400,
        "invalid_request",
    ),
    (
        "operator",
        "post",
        "/v1/accounts",
        {"holder": "", "jurisdiction": "US", "kyc_ref": "k"},
        400,
        "invalid_request",
    ),
    (
        "operator",
        "post",
        "/v1/accounts",
        {"holder": "   ", "jurisdiction": "US", "kyc_ref": "k"},
        400,
        "invalid_request",
    ),
    ("operator", "post", "/v1/accounts", {"holder": "A", "jurisdiction": "US"}, 400, "invalid_request"),
    (
        "operator",
        "post",
        "/v1/accounts",
        {"holder": "A", "jurisdiction": "US", "kyc_ref": "k", "account_id": "{own}"},
        409,
        "account_exists",
    ),
    ("operator", "post", "/v1/accounts/{own}/freeze", {}, 400, "invalid_request"),
    (
        "operator",
        "put",
        "/v1/accounts/{own}/limits/USD",
        {"per_transaction": "1.005", "daily": None},
        400,
        "invalid_amount",
    ),
    ("operator", "put", "/v1/accounts/{own}/limits/USD", {"per_transaction": "1.00"}, 400, "invalid_request"),
    (
        "operator",
        "put",
        "/v1/accounts/{own}/limits/ZZZ",
        {"per_transaction": None, "daily": None},
        400,
        "unknown_currency",
    ),
    ("operator", "get", "/v1/accounts/bad%20id", None, 400, "invalid_request"),
    ("operator", "get", "/v1/accounts/acc_missing", None, 404, "unknown_account"),
    ("operator", "get", "/v1/payments?status=lost", None, 400, "invalid_request"),
    ("operator", "get", "/v1/payments?page_size=0", None, 400, "invalid_request"),
    ("operator", "get", "/v1/payments?page_size=1000", None, 400, "invalid_request"),
    ("operator", "get", "/v1/payments/pay_nothing", None, 404, "payment_not_found"),
    ("operator", "get", "/v1/settlement-cycles/none", None, 404, "cycle_not_found"),
    ("operator", "post", "/v1/settlement-cycles", {}, 409, "nothing_to_settle"),
    (
        "operator",
        "post",
        "/v1/settlement-cycles/none/confirmation",
        {"external_ref": "x"},
        404,
        "cycle_not_found",
    ),
    ("operator", "post", "/v1/settlement-cycles/none/confirmation", {}, 400, "invalid_request"),
    ("operator", "delete", "/v1/accounts/{own}", None, 405, "method_not_allowed"),
    ("operator", "get", "/v1/nowhere", None, 404, "not_found"),
    # webhooks
    ("merchant", "post", "/v1/webhooks", {"url": "ftp://example.org/x"}, 400, "invalid_request"),
    ("merchant", "post", "/v1/webhooks", {"url": "http://127.0.0.1/x", "events": []}, 400, "invalid_request"),
    (
        "merchant",
        "post",
        "/v1/webhooks",
        {"url": "http://127.0.0.1/x", "events": ["payment.lost"]},
        400,
        "invalid_request",
    ),
    ("merchant", "get", "/v1/webhooks/wh_nothing/deliveries", None, 404, "not_found"),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "status", "code"), CASES)
def test_bad_input_table(us: Gateway, seeded, who, method, path, body, status, code) -> None:
    own, merchant_key = seeded
    key = merchant_key if who == "merchant" else us.operator_key
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"bad-{path}-{status}-{code}"}
    path = path.format(own=own)
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, str) and body.startswith("raw:"):
        kwargs.update(data=body[4:], content_type="application/json")
    elif isinstance(body, str) and body.startswith("form:"):
        kwargs.update(data=body[5:], content_type="application/x-www-form-urlencoded")
    elif isinstance(body, dict):
        kwargs["json"] = {k: (v.format(own=own) if isinstance(v, str) else v) for k, v in body.items()}
    elif body is not None:
        kwargs["json"] = body
    before = ledger_snapshot(us)
    response = getattr(us.client, method)(path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"].endswith(code)
    assert problem["title"] and problem["detail"]
    assert "Traceback" not in problem["detail"]
    assert ledger_snapshot(us) == before


def test_payment_without_idempotency_key_is_refused(us: Gateway, seeded) -> None:
    _, key = seeded
    response = us.client.post("/v1/payments", json=PAY, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "idempotency_key_required"


def test_oversized_body_is_413(us: Gateway, seeded) -> None:
    _, key = seeded
    response = us.client.post(
        "/v1/payments",
        data='{"remittance": "' + "x" * 100_000 + '"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "big"},
    )
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"
