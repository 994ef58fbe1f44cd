"""Accounts, treasury and settlement bodies and queries at the typed boundary.

Each refusal is a 400 problem naming the field, with the field's stable code, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.bank_api.conftest import Gateway, ledger_snapshot

ISSUE = {"account_id": "{own}", "currency": "USD", "amount": "1.00", "deposit_ref": "dep-b1"}
REFERENCE_RULE = "letters, digits and _ . : / -"

# (method, path, body, code, words the detail must hold)
REFUSED: list[tuple[str, str, Any, str, str]] = [
    # a field of the wrong JSON type
    ("post", "/v1/accounts", {"holder": 7, "jurisdiction": "US", "kyc_ref": "K"}, "invalid_request", "holder"),
    (
        "post",
        "/v1/accounts",
        {"holder": "A", "jurisdiction": ["US"], "kyc_ref": "K"},
        "invalid_request",
        "jurisdiction",
    ),
    ("post", "/v1/accounts/{own}/freeze", {"reason": True}, "invalid_request", "reason must be a string"),
    (
        "put",
        "/v1/accounts/{own}/limits/USD",
        {"per_transaction": 5, "daily": None},
        "invalid_amount",
        "per_transaction must be a decimal string",
    ),
    ("put", "/v1/accounts/{own}/limits/USD", {"per_transaction": None, "daily": ["1.00"]}, "invalid_amount", "daily"),
    ("post", "/v1/accounts/{own}/api-keys", {"label": 7}, "invalid_request", "label must be a string"),
    ("post", "/v1/issuances", {**ISSUE, "account_id": 12}, "invalid_request", "account_id"),
    ("post", "/v1/issuances", {**ISSUE, "currency": 840}, "unknown_currency", "currency"),
    (
        "post",
        "/v1/redemptions",
        {"account_id": "{own}", "currency": "USD", "amount": "1.00", "withdrawal_ref": 1},
        "invalid_request",
        "withdrawal_ref",
    ),
    ("post", "/v1/settlement-cycles", {"cycle_id": 7}, "invalid_request", "cycle_id must be a string"),
    ("post", "/v1/settlement-cycles/c1/confirmation", {"external_ref": {"x": 1}}, "invalid_request", "external_ref"),
    # unknown fields, bodies that are not objects
    ("post", "/v1/accounts/{own}/unfreeze", {"reason": "x"}, "invalid_request", "unknown field(s): reason"),
    ("post", "/v1/accounts/{own}/close", {"force": True}, "invalid_request", "unknown field(s): force"),
    (
        "post",
        "/v1/accounts/{own}/api-keys",
        {"label": "x", "role": "operator"},
        "invalid_request",
        "unknown field(s): role",
    ),
    # the currency is the path's: one in the body is not a second way to name it
    (
        "put",
        "/v1/accounts/{own}/limits/USD",
        {"per_transaction": None, "daily": None, "currency": "HKD"},
        "invalid_request",
        "unknown field(s): currency",
    ),
    ("post", "/v1/settlement-cycles", ["c1"], "invalid_request", "JSON object"),
    # required, empty, malformed
    (
        "put",
        "/v1/accounts/{own}/limits/USD",
        {"daily": None},
        "invalid_request",
        "per_transaction is required (a decimal string, or null for no limit)",
    ),
    ("put", "/v1/accounts/{own}/limits/usd", {"per_transaction": None, "daily": None}, "unknown_currency", "currency"),
    (
        "post",
        "/v1/accounts",
        {"holder": "A", "jurisdiction": "US", "kyc_ref": "K", "account_id": ""},
        "invalid_request",
        "account_id must not be empty",
    ),
    (
        "post",
        "/v1/accounts",
        {"holder": "A", "jurisdiction": "USAX1", "kyc_ref": "K"},
        "invalid_request",
        "jurisdiction",
    ),
    (
        "post",
        "/v1/accounts",
        {"holder": "bell\x07", "jurisdiction": "US", "kyc_ref": "K"},
        "invalid_request",
        "holder must contain printable characters only",
    ),
    ("post", "/v1/accounts", {"holder": "A", "jurisdiction": "US", "kyc_ref": " \t "}, "invalid_request", "kyc_ref"),
    ("post", "/v1/accounts/{own}/freeze", {"reason": "   "}, "invalid_request", "reason must not be empty"),
    ("post", "/v1/accounts/{own}/api-keys", {"label": "x" * 129}, "invalid_request", "label must be at most 128"),
    ("post", "/v1/issuances", {**ISSUE, "currency": "usd"}, "unknown_currency", "currency"),
    (
        "post",
        "/v1/issuances",
        {**ISSUE, "deposit_ref": "has space"},
        "invalid_request",
        f"deposit_ref is malformed: {REFERENCE_RULE}",
    ),
    ("post", "/v1/issuances", {**ISSUE, "amount": "1.001"}, "invalid_amount", "amount has more than 2"),
    ("post", "/v1/settlement-cycles", {"cycle_id": ""}, "invalid_request", "cycle_id must not be empty"),
    ("post", "/v1/settlement-cycles", {"cycle_id": "a/b"}, "invalid_request", "cycle_id is malformed"),
    (
        "post",
        "/v1/settlement-cycles/c1/confirmation",
        {"external_ref": "x y"},
        "invalid_request",
        f"external_ref is malformed: {REFERENCE_RULE}",
    ),
]


def _call(us: Gateway, own: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {us.operator_key}", "Idempotency-Key": f"b-{method}-{path}"}
    return getattr(us.client, method)(path.format(own=own), headers=headers, **kwargs)


def _refused(response: Any, code: str, words: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == code, problem
    assert words in problem["detail"], problem


@pytest.mark.parametrize(("method", "path", "body", "code", "words"), REFUSED)
def test_refused_with_the_field_named(us: Gateway, seeded, method: str, path: str, body: Any, code: str,
                                      words: str) -> None:  # fmt: skip
    own, _ = seeded
    if isinstance(body, dict):
        body = {name: value.format(own=own) if isinstance(value, str) else value for name, value in body.items()}
    before = ledger_snapshot(us)
    keys = len(us.client.get(f"/v1/accounts/{own}/api-keys", headers=us.op()).get_json()["api_keys"])
    _refused(_call(us, own, method, path, json=body), code, words)
    assert ledger_snapshot(us) == before
    assert len(us.client.get(f"/v1/accounts/{own}/api-keys", headers=us.op()).get_json()["api_keys"]) == keys


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("page_size=%2B5", "page_size"),
        ("page_size=abc", "page_size"),
        ("page_size=101", "page_size is out of range"),
        ("cursor=" + "x" * 1025, "cursor must be at most 1024"),
    ],
)
def test_history_query_is_refused_with_the_parameter_named(us: Gateway, seeded, query: str, words: str) -> None:
    own, key = seeded
    response = us.client.get(f"/v1/accounts/{own}/history?{query}", headers=us.op(key))
    _refused(response, "invalid_request", words)


def test_history_pages_and_ignores_unknown_parameters(us: Gateway, seeded) -> None:
    own, key = seeded
    us.issue(own, "2.00", ref="dep-page-2")
    first = us.client.get(f"/v1/accounts/{own}/history?page_size=1&colour=red", headers=us.op(key))
    assert first.status_code == 200, first.get_json()
    assert len(first.get_json()["entries"]) == 1
    cursor = first.get_json()["next_cursor"]
    assert cursor
    second = us.client.get(f"/v1/accounts/{own}/history", query_string={"page_size": "1", "cursor": cursor},
                           headers=us.op(key))  # fmt: skip
    assert second.status_code == 200 and second.get_json()["entries"] != first.get_json()["entries"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_an_empty_body_of_any_media_type_reads_as_an_empty_object(us: Gateway, seeded, content_type: Any) -> None:
    own, _ = seeded
    before = ledger_snapshot(us)
    # A body is required: without one the refusal names what is missing.
    _refused(_call(us, own, "post", "/v1/accounts/{own}/freeze", data=b"", content_type=content_type),
             "invalid_request", "reason is required")  # fmt: skip
    _refused(_call(us, own, "put", "/v1/accounts/{own}/limits/USD", data=b"", content_type=content_type),
             "invalid_request", "per_transaction is required")  # fmt: skip
    assert ledger_snapshot(us) == before
    # Optional bodies may be left out.
    created = _call(us, own, "post", "/v1/accounts/{own}/api-keys", data=b"", content_type=content_type)
    assert created.status_code == 201, created.get_json()
    unfrozen = _call(us, own, "post", "/v1/accounts/{own}/unfreeze", data=b"", content_type=content_type)
    assert unfrozen.status_code == 200 and unfrozen.get_json()["status"] == "active", unfrozen.get_json()


def test_limits_take_null_for_no_limit(us: Gateway, seeded) -> None:
    own, _ = seeded
    put = _call(us, own, "put", "/v1/accounts/{own}/limits/USD", json={"per_transaction": "5.00", "daily": None})
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["limits"]["USD"] == {"per_transaction": "5.00", "daily": None}


def test_optional_fields_may_be_null(us: Gateway, seeded) -> None:
    own, _ = seeded
    created = _call(us, own, "post", "/v1/accounts/{own}/api-keys", json={"label": None})
    assert created.status_code == 201, created.get_json()
    opened = us.client.post(
        "/v1/accounts", json={"holder": "Null Co", "jurisdiction": "US", "kyc_ref": "K", "account_id": None},
        headers=us.op(),
    )  # fmt: skip
    assert opened.status_code == 201 and opened.get_json()["account"]["account_id"].startswith("acc_")


def test_payment_fields_keep_their_codes_and_words(us: Gateway, seeded) -> None:
    # An optional field keeps its type's code; an identifier says what a well-formed one is.
    _, key = seeded
    pay = {"payee_bank": "HKBankMSP", "payee_account": "acc_payee", "currency": "USD", "amount": "1.00"}
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "pc-1"}
    response = us.client.post("/v1/payments", json={**pay, "payee_currency": "usd"}, headers=headers)
    _refused(response, "unknown_currency", "payee_currency")
    response = us.client.post("/v1/payments", json={**pay, "payee_bank": "no bank"}, headers=headers)
    _refused(response, "invalid_request", "payee_bank is malformed: an MSP id")
