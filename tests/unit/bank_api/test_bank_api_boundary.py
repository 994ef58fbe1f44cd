"""The input boundary: hostile bodies, query strings, headers and paths get a 4xx problem, never a 500.

One table of the classes an outside tester found (deep nesting, other scripts' digits, a final
newline, duplicate keys...), then property-based tests that throw arbitrary input at every route
and check the same three things each time: no 5xx, a problem document, and no change of state.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bank_api.validation import MAX_JSON_DEPTH, json_depth
from tests.unit.bank_api.conftest import Gateway, ledger_snapshot

REFUSALS = {400, 401, 403, 404, 405, 409, 413, 415, 429}

# (method, path, who) for every route that reads a body, a query or a path value.
ROUTES: list[tuple[str, str, str]] = [
    ("post", "/v1/accounts", "operator"),
    ("post", "/v1/accounts/{own}/freeze", "operator"),
    ("post", "/v1/accounts/{own}/unfreeze", "operator"),
    ("post", "/v1/accounts/{own}/close", "operator"),
    ("put", "/v1/accounts/{own}/limits/USD", "operator"),
    ("post", "/v1/accounts/{own}/api-keys", "operator"),
    ("post", "/v1/issuances", "operator"),
    ("post", "/v1/redemptions", "operator"),
    ("post", "/v1/settlement-cycles", "operator"),
    ("post", "/v1/settlement-cycles/c1/confirmation", "operator"),
    ("post", "/v1/payments", "merchant"),
    ("post", "/v1/webhooks", "merchant"),
]
LIST_ROUTES: list[tuple[str, str]] = [
    ("/v1/payments", "operator"),
    ("/v1/accounts/{own}/history", "merchant"),
]

# Superscript two, Arabic-Indic one and three, Devanagari five, fullwidth one, mathematical one,
# circled five, NKo one: all "digits" to str.isdigit, none a number on the wire.
UNICODE_DIGITS = ["\u00b2", "\u0661", "\u0663", "\u096b", "\uff11", "\U0001d7d9", "\u2464", "\u07c1"]


def _headers(us: Gateway, seeded: tuple[str, str], who: str, key: str = "k-1") -> dict[str, str]:
    api_key = seeded[1] if who == "merchant" else us.operator_key
    return {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key}


def _assert_refused(response: Any, status: int | None = None, code: str | None = None) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code in REFUSALS, text
    if status is not None:
        assert response.status_code == status, text
    assert response.mimetype == "application/problem+json", text
    problem = response.get_json()
    assert problem["status"] == response.status_code
    assert "Traceback" not in text
    if code is not None:
        assert problem["code"] == code, text


# --- the classes, one or more examples each ---------------------------------------------------

DEEP_BODIES = [
    "[" * 1000 + "]" * 1000,
    "[" * 100_00,  # never closed
    '{"a":' * 1000 + "1" + "}" * 1000,
    '{"a":' * 5000,
    '{"remittance": "' + "[" * 900 + '", "x": ' + "[" * 50 + "]" * 50 + "}",
]


@pytest.mark.parametrize("body", DEEP_BODIES, ids=range(len(DEEP_BODIES)))
@pytest.mark.parametrize(("method", "path", "who"), ROUTES)
def test_deep_or_unclosed_json_is_400(us: Gateway, seeded, method, path, who, body) -> None:
    before = ledger_snapshot(us)
    response = getattr(us.client, method)(
        path.format(own=seeded[0]), data=body, content_type="application/json", headers=_headers(us, seeded, who)
    )
    _assert_refused(response, 400, "invalid_request")
    assert ledger_snapshot(us) == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"amount": "1.00", "amount": "90.00"}',  # duplicate key
        '{"amount": NaN}',
        '{"amount": Infinity}',
        '{"amount": 1e999}',
        '{"amount": ' + "9" * 5000 + "}",  # beyond Python's int-from-text limit
        '{"remittance": "\\ud800"}',  # a lone surrogate
        '{"amount": "1.00"} trailing',
        "\ufeff{}",
    ],
)
def test_strict_json(us: Gateway, seeded, raw: str) -> None:
    before = ledger_snapshot(us)
    response = us.client.post(
        "/v1/payments",
        data=raw.encode("utf-8"),
        content_type="application/json",
        headers=_headers(us, seeded, "merchant"),
    )
    _assert_refused(response, 400)
    assert ledger_snapshot(us) == before


def test_body_that_is_not_utf8_is_400(us: Gateway, seeded) -> None:
    response = us.client.post(
        "/v1/payments",
        data='{"amount": "1.00"}'.encode("utf-16"),
        content_type="application/json",
        headers=_headers(us, seeded, "merchant"),
    )
    _assert_refused(response, 400)


@pytest.mark.parametrize(
    "amount",
    [
        "1\n",
        "1.00\n",
        "\n1",
        "1\r",
        " 1",
        "1 ",
        "1\x00",
        "1.0\u2028",
        *UNICODE_DIGITS,
        *(f"1.{d}0" for d in UNICODE_DIGITS),
    ],
)
def test_amounts_are_ascii_digits_matched_whole(us: Gateway, seeded, amount: str) -> None:
    own, _ = seeded
    before = ledger_snapshot(us)
    pay = {"payee_bank": "HKBankMSP", "payee_account": "acc_payee", "currency": "USD", "amount": amount}
    response = us.client.post(
        "/v1/payments", json=pay, headers=_headers(us, seeded, "merchant", f"a-{amount.encode().hex()}")
    )
    _assert_refused(response, 400, "invalid_amount")
    issue = {"account_id": own, "currency": "USD", "amount": amount, "deposit_ref": "dep-x"}
    response = us.client.post(
        "/v1/issuances", json=issue, headers=_headers(us, seeded, "operator", f"i-{amount.encode().hex()}")
    )
    _assert_refused(response, 400, "invalid_amount")
    assert ledger_snapshot(us) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "{own}\n"),
        ("deposit_ref", "dep-1\n"),
        ("currency", "USD\n"),
        ("account_id", "{own}\r\n"),
        ("deposit_ref", "dep\u00a0"),
    ],
)
def test_pattern_fields_match_whole(us: Gateway, seeded, field: str, value: str) -> None:
    own, _ = seeded
    before = ledger_snapshot(us)
    body = {
        "account_id": own,
        "currency": "USD",
        "amount": "1.00",
        "deposit_ref": "dep-y",
        field: value.format(own=own),
    }
    response = us.client.post("/v1/issuances", json=body, headers=_headers(us, seeded, "operator"))
    _assert_refused(response, 400)
    assert ledger_snapshot(us) == before


@pytest.mark.parametrize("value", [*UNICODE_DIGITS, "1\n", "+5", "-1", "5.0", " 5", "0x10", "1_0", "9" * 30, ""])
@pytest.mark.parametrize(("path", "who"), LIST_ROUTES)
def test_page_size_is_ascii_digits(us: Gateway, seeded, path: str, who: str, value: str) -> None:
    response = us.client.get(
        f"{path.format(own=seeded[0])}?page_size={quote(value)}", headers=_headers(us, seeded, who)
    )
    _assert_refused(response, 400, "invalid_request")


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%00", "%C2%B2", "%E2%80%A8"])
def test_path_ids_match_whole(us: Gateway, seeded, suffix: str) -> None:
    own, _ = seeded
    for path in (f"/v1/accounts/{own}{suffix}", f"/v1/payments/pay_1{suffix}", f"/v1/settlement-cycles/c1{suffix}"):
        response = us.client.get(path, headers=_headers(us, seeded, "operator"))
        _assert_refused(response, 400, "invalid_request")


def test_non_ascii_query_values_are_400(us: Gateway, seeded) -> None:
    response = us.client.get("/v1/payments?cursor=%E2%80%A8", headers=_headers(us, seeded, "operator"))
    _assert_refused(response, 400, "invalid_request")


def test_every_answer_carries_a_request_id(us: Gateway) -> None:
    response = us.client.get("/healthz", headers={"X-Request-Id": "client-chosen-1234"})
    assert response.headers["X-Request-Id"] == "client-chosen-1234"
    response = us.client.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert response.headers["X-Request-Id"] != "bad id\twith tab"
    assert len(response.headers["X-Request-Id"]) == 32


def test_unexpected_error_is_a_500_problem_with_the_request_id(
    us: Gateway, seeded, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("secret internal detail")

    monkeypatch.setattr(us.ledger, "get_supply", broken)
    us.app.testing = False  # testing mode would re-raise instead of answering
    response = us.client.get("/v1/supply", headers=_headers(us, seeded, "operator"))
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "internal_error"
    assert problem["request_id"] == response.headers["X-Request-Id"]
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert any(problem["request_id"] in record.getMessage() for record in caplog.records)


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth('{"a": "[[[[[[[[[[[[[[["}') == 1
    assert json_depth('{"a": "\\"[[[[[[[[[[[["}') == 1
    assert json_depth("[[[]]]") == 3
    assert json_depth("[" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1


# --- properties: anything at all, on every route ----------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [
        "amount",
        "currency",
        "account_id",
        "payee_bank",
        "payee_account",
        "deposit_ref",
        "withdrawal_ref",
        "holder",
        "jurisdiction",
        "kyc_ref",
        "url",
        "events",
        "reason",
        "per_transaction",
        "daily",
        "cycle_id",
        "external_ref",
        "label",
        "remittance",
        "payee_currency",
    ]
)
HOSTILE_TEXT = st.text(max_size=12) | st.sampled_from(
    ["1\n", "\u00b2", "1.00\n", "\uff11", "-0", "0.001", "1e3", "USD\n"]
)
OBJECTS = st.dictionaries(FIELD_NAMES, HOSTILE_TEXT | JSON_VALUES, max_size=6)
RAW_BODIES = st.binary(max_size=64) | st.text(alphabet='[]{}",:0123456789.\\u \n', max_size=200).map(str.encode)

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(route=st.sampled_from(ROUTES), body=OBJECTS | JSON_VALUES)
def test_any_json_body_on_any_route(us: Gateway, seeded, route: tuple[str, str, str], body: Any) -> None:
    method, path, who = route
    before = ledger_snapshot(us)
    response = getattr(us.client, method)(
        path.format(own=seeded[0]), json=body, headers=_headers(us, seeded, who, f"fuzz-{hash(json.dumps(body))}")
    )
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        _assert_refused(response)
        assert ledger_snapshot(us) == before


@FUZZ
@given(route=st.sampled_from(ROUTES), raw=RAW_BODIES)
def test_any_bytes_on_any_route(us: Gateway, seeded, route: tuple[str, str, str], raw: bytes) -> None:
    method, path, who = route
    before = ledger_snapshot(us)
    response = getattr(us.client, method)(
        path.format(own=seeded[0]), data=raw, content_type="application/json", headers=_headers(us, seeded, who)
    )
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        _assert_refused(response)
        assert ledger_snapshot(us) == before


@FUZZ
@given(
    route=st.sampled_from(LIST_ROUTES),
    params=st.dictionaries(st.sampled_from(["page_size", "cursor", "status", "x"]), st.text(max_size=12), max_size=3),
)
def test_any_query_string(us: Gateway, seeded, route: tuple[str, str], params: dict[str, str]) -> None:
    path, who = route
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    response = us.client.get(f"{path.format(own=seeded[0])}?{query}", headers=_headers(us, seeded, who))
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        _assert_refused(response)


@FUZZ
@given(segment=st.text(min_size=1, max_size=80))
def test_any_path_value(us: Gateway, seeded, segment: str) -> None:
    for template in ("/v1/accounts/{}", "/v1/payments/{}", "/v1/settlement-cycles/{}", "/v1/accounts/{}/history"):
        response = us.client.get(template.format(quote(segment, safe="")), headers=_headers(us, seeded, "operator"))
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code >= 400:
            _assert_refused(response)


@FUZZ
@given(key=st.text(max_size=40), idem=st.text(max_size=40))
def test_any_header_value(us: Gateway, seeded, key: str, idem: str) -> None:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
    try:
        response = us.client.post("/v1/payments", json={}, headers=headers)
    except ValueError:  # the test client itself refuses newlines in header values; a socket would too
        return
    assert response.status_code < 500, response.get_data(as_text=True)
    _assert_refused(response)
