"""The typed input boundary (boundary.py, decision 0034): every request is read through a model,
the documents' request parts are the models', and every refusal is a 400 naming the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from gateway.bank_api import boundary
from gateway.bank_api.config import BANK, REGULATOR
from gateway.bank_api.openapi import openapi_document
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.regulator_openapi import regulator_document
from gateway.bank_api.routes import register_blueprints
from gateway.bank_api.routes.payments import PaymentRequest

ROUTES = Path(boundary.__file__).parent / "routes"
WRITES = {"POST", "PUT", "PATCH"}


def _app(role: str) -> Flask:
    app = Flask(f"test-{role}")
    register_blueprints(app, role)
    return app


@pytest.mark.parametrize("role", [BANK, REGULATOR])
def test_every_write_route_declares_its_body(role: str) -> None:
    app = _app(role)
    undeclared = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or not WRITES & set(rule.methods or ()):
            continue
        declared = getattr(app.view_functions[rule.endpoint], "request_models", None)
        if declared is None or declared.body is None:
            undeclared.append(rule.rule)
    assert undeclared == []


# What a view reading its input by hand would call; the boundary reads it instead.
_BY_HAND = re.compile(
    r"\bFields\(|\bjson_object\(|\bquery_choice\(|\bquery_pattern\(|\bpage_size\(\)|\bcursor\(\)"
    r"|request\.get_json|request\.json\b|request\.args\b"
)


def test_no_route_reads_its_input_by_hand() -> None:
    # common.py holds the idempotency wrapper, which fingerprints the raw body (the same bytes the
    # strict reader parsed) rather than reading a field of it.
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(ROUTES.glob("*.py"))
        if path.name != "common.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _BY_HAND.search(line)
    ]
    assert found == []


def _models_by_name() -> dict[str, type[BaseModel]]:
    _app(BANK), _app(REGULATOR)  # importing the routes registers their models
    return dict(boundary._MODELS)


@pytest.mark.parametrize("document", [openapi_document, regulator_document], ids=["bank", "regulator"])
def test_request_parts_of_the_documents_are_the_models(document: Any) -> None:
    models = _models_by_name()
    doc = document()
    bodies = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is not None:
                bodies += 1
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                assert name in models, f"{method} {path}: {name} is written by hand, not a model"
                model = models[name]
                generated = boundary._with_nulls(
                    model, boundary._clean(model.model_json_schema(ref_template="#/components/schemas/{model}"))
                )
                generated.pop("$defs", None)
                assert doc["components"]["schemas"][name] == generated, name
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert "schema" in parameter and parameter.get("required") in (True, False), (path, parameter)
    assert bodies > 0


def _refusal(model: type[BaseModel], data: Any) -> ApiProblem:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return boundary.problem_for(caught.value)


_PAYMENT = {"payee_bank": "HKBankMSP", "payee_account": "acc-1", "currency": "USD", "amount": "1.00"}


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"payee_bank": None}, "invalid_request", "payee_bank is required"),
        ({"payee_bank": 7}, "invalid_request", "payee_bank must be an MSP id"),
        ({"payee_bank": "HKBankMSP\n"}, "invalid_request", "payee_bank is malformed: an MSP id"),
        ({"payee_account": "x" * 65}, "invalid_request", "payee_account must be at most 64 characters"),
        ({"amount": 1}, "invalid_amount", "amount must be a decimal string"),
        ({"amount": None}, "invalid_amount", "amount is required"),
        ({"currency": "usd"}, "unknown_currency", "currency is malformed"),
        ({"remittance": "a\u200bb"}, "invalid_request", "remittance must contain printable characters only"),
        ({"remittance": ["x"]}, "invalid_request", "remittance must be a string"),
        ({"surprise": 1}, "invalid_request", "unknown field(s): surprise"),
    ],
)
def test_a_refusal_names_the_field_and_keeps_its_code(change: dict[str, Any], code: str, words: str) -> None:
    data = {**_PAYMENT, **change}
    data = {key: value for key, value in data.items() if value is not None}
    problem = _refusal(PaymentRequest, data)
    assert (problem.status, problem.code) == (400, code)
    assert words in problem.detail


def test_a_body_that_is_not_an_object_is_refused_as_such() -> None:
    problem = _refusal(PaymentRequest, ["not", "an", "object"])
    assert (problem.status, problem.detail) == (400, "the body must be a JSON object")


def test_query_numbers_are_ascii_digits() -> None:
    for raw in ("²", "٣", " 7", "7_0", "+7", "7.0", "0x7", ""):
        problem = _refusal(boundary.Page, {"page_size": raw})
        assert problem.status == 400 and problem.detail.startswith("page_size"), raw
    assert boundary.Page.model_validate({"page_size": "7"}).page_size == 7


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*PaymentRequest.model_fields, "other", ""]), _JSON, max_size=7))
def test_any_body_is_accepted_whole_or_refused_naming_a_field(data: dict[str, Any]) -> None:
    try:
        accepted = PaymentRequest.model_validate(data)
    except ValidationError as error:
        problem = boundary.problem_for(error)
        assert problem.status == 400
        named = [name for name in PaymentRequest.model_fields if problem.detail.startswith(name)]
        assert named or problem.detail.startswith("unknown field(s)"), problem.detail
        return
    # Accepted: every identifier matched whole and every text field printable.
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9.-]{0,63}", accepted.payee_bank)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", accepted.payee_account)
    assert re.fullmatch(r"[A-Z]{3}", accepted.currency)
    assert accepted.remittance is None or accepted.remittance.isprintable() or " " in accepted.remittance


def _refs(value: Any, into: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            into.add(ref.rsplit("/", 1)[1])
        for item in value.values():
            _refs(item, into)
    elif isinstance(value, list):
        for item in value:
            _refs(item, into)


@pytest.mark.parametrize("document", [openapi_document, regulator_document], ids=["bank", "regulator"])
def test_every_answer_schema_is_generated_from_an_answer_model(document: Any) -> None:
    from gateway.bank_api.answers import bank, common, components, regulator

    doc = document()
    published = bank.PUBLISHED if document is openapi_document else regulator.PUBLISHED
    generated = components(published + common.PUBLISHED)
    answered: set[str] = set()
    for operations in doc["paths"].values():
        for operation in operations.values():
            _refs(operation["responses"], answered)
    _refs(doc["components"]["responses"], answered)
    # What those refer to, in turn.
    pending = set(answered)
    while pending:
        name = pending.pop()
        assert name in doc["components"]["schemas"], f"{name} is referred to and not defined"
        inner: set[str] = set()
        _refs(doc["components"]["schemas"][name], inner)
        pending |= inner - answered
        answered |= inner
    models = _models_by_name()
    for name in sorted(answered):
        if name in models:  # a request model that is answered back as it was sent
            continue
        assert name in generated, f"{name} is written by hand, not an answer model"
        assert doc["components"]["schemas"][name] == generated[name], name
