"""What fuzzing the live gateways found, kept fixed without a network (decision 0029).

The gateways here run on the real contract in an in-memory channel (``conftest.py``), because the
findings were disagreements between the gateway, its OpenAPI document and the contract behind it,
which the fake ledger of ``tests/unit/bank_api`` does not reproduce. Hypothesis properties cover
what schemathesis is weak at: amounts per currency exponent, Idempotency-Key reuse with another
body, and tampered pagination cursors.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bank_api import validation as v
from gateway.bank_api.money import MoneyError, parse_amount
from gateway.bank_api.openapi import openapi_document
from gateway.bank_api.regulator_openapi import regulator_document
from gateway.bank_api.validation import AMOUNT_PATTERN
from tests.unit.regulator.conftest import HK, REG, US, Gateway, GatewayFactory

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXPONENTS = {"USD": 2, "JPY": 0, "HKD": 2}


def _post(gateway: Gateway, path: str, body: Any, key: str | None = None, **headers: str) -> Any:
    return gateway.client.post(path, json=body, headers={**gateway.headers(key), **headers})


def _open(gateway: Gateway, account_id: str) -> str:
    response = _post(gateway, "/v1/accounts", {"holder": "Fuzz Co", "jurisdiction": "US", "kyc_ref": "K",
                                               "account_id": account_id})  # fmt: skip
    assert response.status_code == 201, response.get_json()
    key: str = response.get_json()["api_key"]
    return key


def _operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def _query_schema(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    params = _operation(document, path, "get")["parameters"]
    schema: dict[str, Any] = next(p["schema"] for p in params if p["name"] == name)
    return schema


# Properties send hundreds of requests with one key in a moment; the rate limits are not under test here.
UNLIMITED = {"rate_limit_key_per_second": 1e6, "rate_limit_key_burst": 10**6,
             "rate_limit_client_per_second": 1e6, "rate_limit_client_burst": 10**6}  # fmt: skip


@pytest.fixture
def us(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway(US, **UNLIMITED)


@pytest.fixture
def hk(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway(HK)


def _balances(gateway: Gateway, account_id: str) -> dict[str, str]:
    balances: dict[str, str] = gateway.ok(f"/v1/accounts/{account_id}")["balances"]
    return balances


# -- a well-formed payment id the contract never gives: 404, as documented --------------------------


@PROPERTY
@given(payment_id=st.from_regex(v.PAYMENT_ID.strip("^$"), fullmatch=True))
def test_a_well_formed_payment_id_is_found_or_404_never_the_contracts_400(us: Gateway, payment_id: str) -> None:
    # Found: GET /v1/payments/0 as the operator was the contract's 400 "must be a payment id (64
    # lowercase hex digits)" for an id the document allows.
    response = us.get(f"/v1/payments/{payment_id}")
    assert response.status_code == 404, (payment_id, response.get_json())
    assert response.get_json()["code"] == "payment_not_found"


# -- a freeze reason as long as the document allows is one the contract keeps ------------------------


def test_freeze_reason_is_bounded_where_the_contract_bounds_it(us: Gateway) -> None:
    # Found: the document and the gateway allowed 256 characters, the contract refused more than 200.
    schema = openapi_document()["components"]["schemas"]["FreezeRequest"]["properties"]["reason"]
    assert schema["maxLength"] == v.MAX_FREEZE_REASON == 200
    _open(us, "acc-freeze")
    refused = _post(us, "/v1/accounts/acc-freeze/freeze", {"reason": "x" * 201})
    assert refused.status_code == 400 and "at most 200" in refused.get_json()["detail"]
    assert us.ok("/v1/accounts/acc-freeze")["status"] == "active"
    frozen = _post(us, "/v1/accounts/acc-freeze/freeze", {"reason": "x" * 200})
    assert frozen.status_code == 200 and frozen.get_json()["status"] == "frozen"


# -- cursors: documented as the gateway reads them; tampered ones are 400, never 5xx -----------------


def test_cursors_are_documented_as_the_gateway_reads_them() -> None:
    # Found: the document allowed any text as a cursor; the gateway refuses all but printable ASCII
    # (ledger bookmarks) and delivery ids (webhook deliveries), and said "cursor in the path".
    document = openapi_document()
    for path in ("/v1/payments", "/v1/accounts/{account_id}/history"):
        assert _query_schema(document, path, "cursor")["pattern"] == v.PRINTABLE_ASCII
    assert _query_schema(document, "/v1/webhooks/{webhook_id}/deliveries", "cursor")["pattern"] == v.OPAQUE_ID


@PROPERTY
@given(cursor=st.text(max_size=80) | st.from_regex(r"[\x20-\x7e]{1,80}", fullmatch=True))
def test_a_tampered_cursor_is_400_never_5xx(us: Gateway, hk: Gateway, regulator: Gateway, cursor: str) -> None:
    if not getattr(us, "_seeded", False):
        _open(us, "acc-pages")
        for n in range(3):
            _post(us, "/v1/issuances", {"account_id": "acc-pages", "currency": "USD", "amount": "1.00",
                                        "deposit_ref": f"dep-{n}"})  # fmt: skip
        us._seeded = True  # type: ignore[attr-defined]
    first = us.ok("/v1/accounts/acc-pages/history", query_string={"page_size": "1"})
    assert first["next_cursor"]
    for gateway, path in ((us, "/v1/payments"), (us, "/v1/accounts/acc-pages/history"), (regulator, "/v1/payments")):
        for sent in (cursor, first["next_cursor"] + cursor, cursor + first["next_cursor"]):
            response = gateway.get(path, query_string={"cursor": sent, "page_size": "2"})
            assert response.status_code in (200, 400), (path, sent, response.get_data(as_text=True))
            if response.status_code == 400:
                assert response.mimetype == "application/problem+json"


# -- amounts at the HTTP edge: ASCII digits, whole string, the currency's exponent --------------------


def _accepted(text: str, exponent: int) -> int | None:
    try:
        return parse_amount(text, exponent)
    except MoneyError:
        return None


@settings(max_examples=300, deadline=None)
@given(
    text=st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{0,4})?", fullmatch=True) | st.text(max_size=8),
    exponent=st.integers(min_value=4, max_value=6),
)
def test_the_documented_amount_pattern_is_what_the_gateway_accepts(text: str, exponent: int) -> None:
    # Found: the document's pattern allowed "0" and "0.00", which the gateway refuses (not above zero).
    # With an exponent above every fraction here, pattern and parser must agree exactly.
    documented = re.fullmatch(AMOUNT_PATTERN.strip("^$"), text) is not None
    assert documented == (_accepted(text, exponent) is not None), text


@PROPERTY
@given(
    currency=st.sampled_from(sorted(EXPONENTS)),
    units=st.integers(min_value=0, max_value=10**6),
    decimals=st.integers(min_value=0, max_value=4),
    noise=st.sampled_from(["", "\n", " ", "\u0661", "e2", "+"]),
)
def test_an_issuance_moves_exactly_the_amount_or_nothing(
    us: Gateway, currency: str, units: int, decimals: int, noise: str
) -> None:
    if not getattr(us, "_opened", False):
        _open(us, "acc-amounts")
        us._opened = True  # type: ignore[attr-defined]
    exponent = EXPONENTS[currency]
    text = f"{Decimal(units).scaleb(-decimals):f}" + noise
    before = us.ok("/v1/supply")
    response = _post(us, "/v1/issuances", {"account_id": "acc-amounts", "currency": currency, "amount": text,
                                           "deposit_ref": f"dep-{currency}-{text.encode().hex()}"})  # fmt: skip
    assert response.status_code < 500, response.get_json()
    valid = noise == "" and decimals <= exponent and units > 0 and currency in {"USD"}
    if response.status_code in (200, 201):
        assert valid, (text, currency)
        assert response.get_json()["amount"] == f"{Decimal(units).scaleb(-decimals):.{exponent}f}"
    else:
        assert response.mimetype == "application/problem+json"
        assert us.ok("/v1/supply") == before, text
        assert not valid or currency != "USD", (text, response.get_json())


# -- Idempotency-Key reused with another body: 409, and nothing moves -------------------------------


@PROPERTY
@given(first=st.integers(min_value=1, max_value=500), second=st.integers(min_value=1, max_value=500))
def test_a_key_reused_with_another_body_is_409_and_moves_nothing(
    us: Gateway, hk: Gateway, first: int, second: int
) -> None:
    if not getattr(us, "_payer", None):
        key = _open(us, "acc-payer")
        _post(us, "/v1/issuances", {"account_id": "acc-payer", "currency": "USD", "amount": "100000.00",
                                    "deposit_ref": "dep-payer"})  # fmt: skip
        _post(hk, "/v1/accounts", {"holder": "Payee", "jurisdiction": "HK", "kyc_ref": "K", "account_id": "acc-payee"})
        us._payer = key  # type: ignore[attr-defined]
    key = us._payer  # type: ignore[attr-defined]
    idem = f"idem-{first}-{second}"
    body = {"payee_bank": HK, "payee_account": "acc-payee", "currency": "USD", "amount": f"{first}.00"}
    answer = _post(us, "/v1/payments", body, key, **{"Idempotency-Key": idem})
    assert answer.status_code in (201, 409), answer.get_json()
    balances = _balances(us, "acc-payer")
    other = {**body, "amount": f"{first}.01"} if first == second else {**body, "amount": f"{second}.00"}
    reused = _post(us, "/v1/payments", other, key, **{"Idempotency-Key": idem})
    assert reused.status_code == 409 and reused.get_json()["code"] == "idempotency_key_reused"
    assert _balances(us, "acc-payer") == balances
    replay = _post(us, "/v1/payments", body, key, **{"Idempotency-Key": idem})
    assert replay.status_code == answer.status_code and replay.get_json() == answer.get_json()


# -- free text: the document forbids control characters, never what the gateway accepts --------------


def _free_text_schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for schema in document["components"]["schemas"].values():
        for prop in schema.get("properties", {}).values():
            if "Printable characters only" in prop.get("description", ""):
                found.append(prop)
    return found


def test_free_text_fields_are_documented_as_printable() -> None:
    # Found: holder "\udab5..." or a freeze reason with "\u0015" were refused ("must not contain control
    # characters") though the document allowed any string.
    bank = openapi_document()["components"]["schemas"]
    fields = [("OpenAccountRequest", "holder"), ("OpenAccountRequest", "kyc_ref"), ("FreezeRequest", "reason"),
              ("PaymentRequest", "remittance"), ("ApiKeyCreateRequest", "label")]  # fmt: skip
    for name, field in fields:
        schema = bank[name]["properties"][field]
        assert schema["pattern"] == (v.TEXT_REQUIRED if schema.get("minLength") else v.TEXT), (name, field)
    texts = _free_text_schemas(openapi_document()) + _free_text_schemas(regulator_document())
    assert len(texts) >= 7 and all(t["pattern"] in (v.TEXT, v.TEXT_REQUIRED) for t in texts)


@pytest.mark.parametrize(
    ("holder", "detail"),
    [
        ("   ", "holder must not be empty"),
        ("Acme \U000f0000 Ltd", "holder must contain printable characters only (no control, format, separator"),
        ("Acme \U0006fbe9", "holder must contain printable characters only"),
        ("Acme\u200bLtd", "holder must contain printable characters only"),
    ],
)
def test_free_text_refusals_name_the_problem(us: Gateway, holder: str, detail: str) -> None:
    # Found: holder "\U0006fbe9..." (an unassigned code point) was refused as "must not contain control
    # characters", and a blank holder passed the gateway to be refused by the contract.
    before = us.ok("/v1/supply")
    response = _post(us, "/v1/accounts", {"holder": holder, "jurisdiction": "US", "kyc_ref": "K"})
    assert response.status_code == 400 and response.get_json()["detail"].startswith(detail), response.get_json()
    assert us.ok("/v1/supply") == before


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=12))
def test_the_documented_text_pattern_never_forbids_what_the_gateway_accepts(text: str) -> None:
    if v.printable(text):
        assert re.fullmatch(v.TEXT.strip("^$"), text), ascii(text)
        if text.strip():
            assert re.fullmatch(v.TEXT_REQUIRED.strip("^$"), text), ascii(text)
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text):
        assert not v.printable(text) and not re.fullmatch(v.TEXT.strip("^$"), text)


@pytest.fixture
def hooked(make_gateway: GatewayFactory) -> tuple[Gateway, str, str]:
    """A gateway whose merchant has a webhook: the gateway, the merchant's key, the webhook's id."""
    gateway = make_gateway(US, webhook_allowed_targets=("127.0.0.1",))
    key = _open(gateway, "acc-hooks")
    created = _post(gateway, "/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, key)
    assert created.status_code == 201, created.get_json()
    return gateway, key, created.get_json()["id"]


@PROPERTY
@given(cursor=st.text(max_size=80))
def test_a_deliveries_cursor_that_is_no_delivery_id_is_a_400_naming_the_query(
    hooked: tuple[Gateway, str, str], cursor: str
) -> None:
    # Found: a deliveries cursor of 200 "0"s was refused as "cursor in the path is malformed".
    gateway, key, hook = hooked
    response = gateway.get(f"/v1/webhooks/{hook}/deliveries", key, query_string={"cursor": cursor})
    if re.fullmatch(v.OPAQUE_ID.strip("^$"), cursor):
        assert response.status_code == 200, response.get_json()
    else:
        assert response.status_code == 400, response.get_json()
        assert "in the path" not in response.get_json()["detail"]


# -- every documented query parameter: an empty value the document forbids is never accepted -------


def _forbids_empty(schema: dict[str, Any]) -> bool:
    if schema.get("type") in ("integer", "number", "boolean"):
        return True
    if "enum" in schema:
        return "" not in schema["enum"]
    if schema.get("minLength", 0) > 0:
        return True
    return "pattern" in schema and re.search(schema["pattern"], "") is None


def _empty_value_cases(document: dict[str, Any], ids: dict[str, str]) -> list[tuple[str, str]]:
    """(path with its ids filled in, query parameter) for every GET parameter that forbids ""."""
    cases = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        concrete = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "missing"), path)
        if "missing" in concrete:
            continue
        for param in operation.get("parameters", []):
            if param["in"] == "query" and _forbids_empty(param["schema"]):
                cases.append((concrete, param["name"]))
    return cases


def test_an_empty_query_value_the_document_forbids_is_refused(
    hooked: tuple[Gateway, str, str], make_gateway: GatewayFactory
) -> None:
    # Found: "?cursor=" on webhook deliveries was read as "no cursor" and answered 200, while the
    # document says a cursor is a delivery id. Every parameter is checked so the class stays fixed.
    gateway, key, hook = hooked
    regulator = make_gateway(REG, role="regulator", **UNLIMITED)
    ids = {"account_id": "acc-hooks", "webhook_id": hook, "currency": "USD"}
    checked = 0
    for who, document, caller in (
        (gateway, openapi_document(), None),
        (gateway, openapi_document(), key),
        (regulator, regulator_document(), None),
    ):
        for path, name in _empty_value_cases(document, ids):
            response = who.get(path, caller, query_string={name: ""})
            assert not 200 <= response.status_code < 300, (path, name, response.get_data(as_text=True)[:300])
            assert response.status_code < 500, (path, name)
            checked += 1
    assert checked >= 10, checked
