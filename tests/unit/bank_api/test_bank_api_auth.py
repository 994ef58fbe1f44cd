"""The auth matrix: who may call what."""

from __future__ import annotations

import pytest

from tests.unit.bank_api.conftest import Gateway

OPERATOR_ROUTES: list[tuple[str, str, object]] = [
    ("post", "/v1/accounts", {"holder": "X", "jurisdiction": "US", "kyc_ref": "K"}),
    ("post", "/v1/accounts/{other}/freeze", {"reason": "aml review"}),
    ("post", "/v1/accounts/{other}/unfreeze", {}),
    ("put", "/v1/accounts/{other}/limits/USD", {"per_transaction": "10.00", "daily": None}),
    (
        "post",
        "/v1/issuances",
        {"account_id": "{own}", "currency": "USD", "amount": "1.00", "deposit_ref": "d1"},
    ),
    (
        "post",
        "/v1/redemptions",
        {"account_id": "{own}", "currency": "USD", "amount": "1.00", "withdrawal_ref": "w"},
    ),
    ("get", "/v1/payments", None),
    ("get", "/v1/supply", None),
    ("get", "/v1/positions", None),
    ("get", "/v1/settlement-cycles", None),
    ("post", "/v1/settlement-cycles", {}),
    ("post", "/v1/settlement-cycles/c1/confirmation", {"external_ref": "rtgs-1"}),
    ("post", "/v1/accounts/{own}/api-keys", {}),
]

MERCHANT_ROUTES: list[tuple[str, str, object]] = [
    ("get", "/v1/accounts/{own}", None),
    ("get", "/v1/accounts/{own}/history", None),
    (
        "post",
        "/v1/payments",
        {"payee_bank": "HKBankMSP", "payee_account": "b", "currency": "USD", "amount": "1"},
    ),
    ("get", "/v1/webhooks", None),
]


def _call(gateway: Gateway, method: str, path: str, body: object, headers: dict[str, str], own: str, other: str):
    path = path.format(own=own, other=other)
    if isinstance(body, dict):
        body = {k: (v.format(own=own, other=other) if isinstance(v, str) else v) for k, v in body.items()}
    headers = {**headers, "Idempotency-Key": "k-1"}
    return getattr(gateway.client, method)(path, json=body, headers=headers)


@pytest.fixture
def accounts(us: Gateway) -> tuple[str, str, str, str]:
    own, own_key = us.open_account("Own Co")
    other, other_key = us.open_account("Other Co")
    return own, own_key, other, other_key


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ROUTES + MERCHANT_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dtk_0000000000000000_nope"},
        {"Authorization": "Basic abc"},
        {"X-API-Key": "not-a-key"},
    ],
    ids=["no-key", "wrong-key", "other-scheme", "garbage-header"],
)
def test_missing_or_wrong_key_is_401(us: Gateway, accounts, method, path, body, headers) -> None:
    own, _, other, _ = accounts
    response = _call(us, method, path, body, headers, own, other)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "unauthenticated"
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ROUTES)
def test_merchant_on_operator_routes_is_403(us: Gateway, accounts, method, path, body) -> None:
    own, own_key, other, _ = accounts
    calls_before = len(us.ledger.network.calls)
    response = _call(us, method, path, body, {"Authorization": f"Bearer {own_key}"}, own, other)
    assert response.status_code == 403
    assert response.get_json()["code"] == "forbidden"
    assert len(us.ledger.network.calls) == calls_before  # refused before reaching the ledger


@pytest.mark.parametrize("path", ["/v1/accounts/{other}", "/v1/accounts/{other}/history"])
def test_merchant_cannot_reach_another_account(us: Gateway, accounts, path) -> None:
    _, own_key, other, _ = accounts
    response = us.client.get(path.format(other=other), headers={"Authorization": f"Bearer {own_key}"})
    assert response.status_code == 403
    assert response.get_json()["code"] == "forbidden"
    # ...and the same for an account that does not exist: nothing tells the two apart
    missing = us.client.get("/v1/accounts/acc_nobody", headers={"Authorization": f"Bearer {own_key}"})
    assert missing.status_code == 403


def test_operator_on_merchant_only_routes_is_403(us: Gateway) -> None:
    response = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": "b", "currency": "USD", "amount": "1.00"},
        headers={**us.op(), "Idempotency-Key": "x"},
    )
    assert response.status_code == 403
    assert us.client.get("/v1/webhooks", headers=us.op()).status_code == 403


def test_merchant_reads_own_account_and_operator_reads_any(us: Gateway, accounts) -> None:
    own, own_key, other, _ = accounts
    mine = us.client.get(f"/v1/accounts/{own}", headers={"Authorization": f"Bearer {own_key}"})
    assert mine.status_code == 200 and mine.get_json()["account_id"] == own
    assert us.client.get(f"/v1/accounts/{other}", headers=us.op()).get_json()["account_id"] == other
    me = us.client.get("/v1/me", headers={"X-API-Key": own_key}).get_json()
    assert me == {"role": "merchant", "key_id": me["key_id"], "account_id": own, "bank": "USBankMSP"}


def test_merchant_cannot_see_a_payment_of_another_merchant(us: Gateway, hk: Gateway, accounts) -> None:
    own, own_key, _, other_key = accounts
    payee, _ = hk.open_account("Supplier", "HK")
    us.issue(own, "50.00")
    paid = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": payee, "currency": "USD", "amount": "5.00"},
        headers={"Authorization": f"Bearer {own_key}", "Idempotency-Key": "p1"},
    )
    assert paid.status_code == 201
    payment_id = paid.get_json()["payment_id"]
    assert (
        us.client.get(f"/v1/payments/{payment_id}", headers={"Authorization": f"Bearer {own_key}"}).status_code == 200
    )
    peek = us.client.get(f"/v1/payments/{payment_id}", headers={"Authorization": f"Bearer {other_key}"})
    assert peek.status_code == 404
    assert peek.get_json()["code"] == "payment_not_found"


def test_revoked_key_stops_working_at_once(us: Gateway, accounts) -> None:
    own, own_key, _, _ = accounts
    key_id = us.client.get("/v1/me", headers={"Authorization": f"Bearer {own_key}"}).get_json()["key_id"]
    assert us.client.delete(f"/v1/accounts/{own}/api-keys/{key_id}", headers=us.op()).status_code == 204
    response = us.client.get(f"/v1/accounts/{own}", headers={"Authorization": f"Bearer {own_key}"})
    assert response.status_code == 401
    listed = us.client.get(f"/v1/accounts/{own}/api-keys", headers=us.op()).get_json()["api_keys"]
    assert [k["revoked_at"] is not None for k in listed] == [True]


def test_keys_are_stored_hashed(us: Gateway, accounts) -> None:
    _, own_key, _, _ = accounts
    from sqlalchemy import text

    with us.services.db.session(write=False) as session:
        stored = [row[0] for row in session.execute(text("SELECT secret_hash FROM api_keys"))]
    secret = own_key.split("_", 2)[2]
    assert stored and all(secret not in value for value in stored)
    assert all(us.operator_key.split("_", 2)[2] not in value for value in stored)
