"""The typed input boundary: each route declares its body and query as pydantic models.

spectree validates them before the view runs and generates their part of the OpenAPI document
(decision 0034), so a request body or query is described once, by its model. What this module adds:

- ``accepts``: the decorator routes use. It reads the body through the strict JSON reader first
  (``validation.json_object``: depth, duplicate keys, UTF-8, 415), because spectree reads it with
  ``request.get_json(silent=True) or {}``, which would take a body that is not JSON as an empty one.
- Every ``ValidationError`` becomes one 400 problem document naming the field and what is wrong
  with it, with the field's stable code (``invalid_amount`` for an amount, and so on). No
  validation error reaches a client in pydantic's own words or as a 422.
- Field types shared by the models: identifiers matched whole, free text with printable characters
  only, amounts as decimal strings, page sizes in ASCII digits.

Models are strict (no coercion of ``1`` into ``"1"``) and refuse unknown fields; query models
ignore unknown parameters, as the gateway always has. Amounts stay decimal strings here: turning one
into integer minor units needs the currency's exponent, which is the gateway's configuration, so
routes do it with ``money.Currencies`` right after the boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Annotated, Any, TypeVar, cast, get_args

from annotated_types import GroupedMetadata
from flask import request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from spectree import SpecTree

from gateway.bank_api import validation as v
from gateway.bank_api.problems import ApiProblem

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

# Greater than zero, as the gateway reads amounts (money.parse_amount refuses "0" and "0.00"); the
# exponent per currency is checked by the gateway, beyond what one pattern can say.
AMOUNT_PATTERN = r"^(0\.[0-9]*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]+)?)$"
SIGNED_AMOUNT_PATTERN = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"


class Body(BaseModel):
    """A JSON request body: strict types, no unknown fields, ``null`` read as absent."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """A query string: unknown parameters are ignored; values arrive as strings."""

    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True)
class Rule:
    """How a field's refusal reads: its stable code, and what a well-formed value is."""

    code: str = "invalid_request"
    what: str = ""


def _printable(value: str) -> str:
    if not v.printable(value):
        raise PydanticCustomError("not_printable", "must contain printable characters only ({rule})",
                                  {"rule": v.NOT_PRINTABLE})  # fmt: skip
    return value


def _not_blank(value: str) -> str:
    # Blank is empty, as the contract reads it (it strips before its own check).
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty")
    return value


def text(
    max_length: int,
    *,
    pattern: str | None = None,
    what: str = "",
    code: str = "invalid_request",
    blank: bool = False,
    description: str | None = None,
    example: str | None = None,
) -> Any:
    """A string field: at most ``max_length`` characters, printable, matched whole by ``pattern``.

    Without ``blank`` it must hold more than spaces. Use as ``Annotated[str, text(64, ...)]``.
    """
    if pattern is None and not blank:
        pattern = v.TEXT_REQUIRED
    elif pattern is None:
        pattern = v.TEXT
    rule = f"Printable characters only ({v.NOT_PRINTABLE})"
    extra: dict[str, Any] = {}
    if example is not None:
        extra["example"] = example
    field = Field(
        max_length=max_length,
        min_length=0 if blank else 1,
        pattern=pattern,
        description=f"{description}. {rule}" if description else rule,
        json_schema_extra=extra or None,
    )
    validators: list[Any] = [AfterValidator(_printable)]
    if not blank:
        validators.append(AfterValidator(_not_blank))
    return _Combined((field, Rule(code, what), *validators))


@dataclass(frozen=True)
class _Combined(GroupedMetadata):
    """Several ``Annotated`` metadata items given as one; pydantic unpacks grouped metadata."""

    items: tuple[Any, ...]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


def _identifier(pattern: str, max_length: int, what: str = "", code: str = "invalid_request") -> Any:
    return _Combined((Field(pattern=pattern, max_length=max_length, min_length=1), Rule(code, what)))


AccountId = Annotated[str, _identifier(v.ACCOUNT_ID, 64)]
MspId = Annotated[str, _identifier(v.MSP_ID, 64, "an MSP id")]
Reference = Annotated[str, _identifier(v.REFERENCE, 128)]
Jurisdiction = Annotated[str, _identifier(v.JURISDICTION, 4, "two to four capital letters")]
Currency = Annotated[
    str,
    Field(
        pattern=v.CURRENCY,
        min_length=3,
        max_length=3,
        description="ISO 4217 code",
        json_schema_extra={"example": "USD"},
    ),
    Rule("unknown_currency", "an ISO 4217 code"),
]
# An amount's shape is checked where it becomes minor units (money.parse_amount, with the currency's
# exponent), whose refusals say what is wrong ("must be positive", "more than 2 decimal places");
# the pattern here is what the document publishes of it.
Amount = Annotated[
    str,
    Field(
        description='Decimal string in the currency\'s exponent, greater than zero, e.g. "12.34" for USD',
        json_schema_extra={"example": "12.34", "pattern": AMOUNT_PATTERN, "maxLength": 40},
    ),
    Rule("invalid_amount", 'a decimal string greater than zero, such as "12.34"'),
]


def _ascii_whole(value: Any) -> Any:
    # Query values are strings: only ASCII digits are numbers at the HTTP edge (int() would take
    # "²" or "٣", and pydantic would take " 7" or "7_0").
    if isinstance(value, str):
        number = v.ascii_int(value)
        if number is None:
            raise PydanticCustomError("ascii_digits", "must be a whole number in ASCII digits")
        return number
    return value


PageSize = Annotated[
    int,
    Field(ge=1, le=v.MAX_PAGE_SIZE),
    BeforeValidator(_ascii_whole),
    Rule(what=f"a whole number from 1 to {v.MAX_PAGE_SIZE} in ASCII digits"),
]
Cursor = Annotated[
    str,
    Field(pattern=v.PRINTABLE_ASCII, max_length=v.MAX_BOOKMARK, description="next_cursor of the previous page"),
]
# Optional in a body: ``null`` is accepted as absent but not advertised, so the document stays
# OpenAPI 3.0 (pydantic writes an optional type as ``anyOf [..., null]``, a 3.1 form).
Absent = SkipJsonSchema[None]


def one_of(options: tuple[str, ...] | list[str]) -> Any:
    """A string that is one of ``options``, listed as the schema's ``enum``."""
    allowed = tuple(options)

    def check(value: str) -> str:
        if value not in allowed:
            raise PydanticCustomError("one_of", "must be one of {options}", {"options": ", ".join(allowed)})
        return value

    return _Combined((Field(json_schema_extra={"enum": list(allowed)}), AfterValidator(check)))


class Page(Query):
    """A page of a listing: its size and where the previous page ended."""

    page_size: PageSize = v.DEFAULT_PAGE_SIZE
    cursor: Cursor = ""


class Empty(Body):
    """No fields: a body may be left out, or be ``{}``."""


def _refuse(_req: Any, _resp: Any, error: Exception | None, _instance: Any, _adapter: Any) -> None:
    if isinstance(error, ValidationError):
        raise problem_for(error)


def problem_for(error: ValidationError) -> ApiProblem:
    """The 400 answer for a refused body or query: the first field at fault, named, and why."""
    errors = error.errors(include_url=False)
    unknown = sorted(str(e["loc"][0])[:64] for e in errors if e["type"] == "extra_forbidden" and e["loc"])
    if unknown:
        return ApiProblem(400, "invalid_request", f"unknown field(s): {', '.join(unknown[:5])}")
    first = errors[0]
    location = first["loc"]
    name = _field_name(location)
    rule = _rule_of(error.title, location)
    kind = first["type"]
    context = first.get("ctx") or {}
    if not location and kind in ("model_type", "dict_type", "model_attributes_type"):
        return ApiProblem(400, "invalid_request", "the body must be a JSON object")
    if kind == "missing":
        detail = f"{name} is required"
    elif kind == "string_type":
        detail = f"{name} must be {rule.what}" if rule.what else f"{name} must be a string"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        detail = f"{name} must be a whole number"
    elif kind == "bool_type" or kind == "bool_parsing":
        detail = f"{name} must be true or false"
    elif kind in ("list_type", "tuple_type"):
        detail = f"{name} must be a list"
    elif kind == "string_too_long":
        detail = f"{name} must be at most {context.get('max_length')} characters"
    elif kind in ("string_too_short", "blank"):
        detail = f"{name} must not be empty"
    elif kind == "one_of":
        detail = f"{name} {first['msg']}"
    elif kind in ("string_pattern_mismatch", "literal_error", "enum"):
        detail = f"{name} is malformed"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "ascii_digits"):
        detail = f"{name} is out of range"
    else:
        detail = f"{name} {first['msg']}"
    if rule.what and kind not in ("missing", "string_type", "not_printable", "blank", "string_too_short"):
        detail = f"{detail}: {rule.what}"
    return ApiProblem(400, rule.code, detail)


def _field_name(location: tuple[int | str, ...]) -> str:
    """The field as the client wrote it: ``items[2]``, not pydantic's union member names."""
    if not location:
        return "the body"
    name = str(location[0])[:64]
    for part in location[1:]:
        # The other parts are pydantic's names for union members; bodies are flat objects with
        # at most one list, so an index is all the rest a client needs.
        if isinstance(part, int):
            name += f"[{part}]"
    return name

_MODELS: dict[str, type[BaseModel]] = {}


def _rule_of(title: str, location: tuple[int | str, ...]) -> Rule:
    model = _MODELS.get(title)
    if model is None or not location:
        return Rule()
    field = model.model_fields.get(str(location[0]))
    if field is None:
        return Rule()
    for item in field.metadata:
        if isinstance(item, Rule):
            return item
    # An optional field (``X | Absent``) keeps X's metadata inside the union, not on the field.
    return next(_rules_in(field.annotation), Rule())


def _rules_in(annotation: Any) -> Iterator[Rule]:
    for argument in get_args(annotation):
        # Grouped metadata (text(), the identifiers) is unpacked on a field, not inside a union.
        for item in argument if isinstance(argument, GroupedMetadata) else (argument,):
            if isinstance(item, Rule):
                yield item
            else:
                yield from _rules_in(item)


def _naming(model: Any) -> str:
    return str(model.__name__)


def _spec(title: str) -> SpecTree:
    return SpecTree(
        "flask",
        mode="strict",
        title=title,
        openapi_version="3.0.3",
        validation_error_status=400,
        before=_refuse,
        naming_strategy=_naming,
        nested_naming_strategy=lambda _parent, child: child,
    )


BANK = _spec("Deposit-token bank API")
REGULATOR = _spec("Deposit-token regulator API")


def accepts(
    spec: SpecTree,
    *,
    body: type[Body] | None = None,
    query: type[Query] | None = None,
    body_required: bool = True,
) -> Callable[[F], F]:
    """Validate the request's body and query against models before the view runs.

    The view reads them with ``body_of`` and ``query_of``. A body that is not JSON, or nested too
    deep, is refused by the strict reader before spectree sees it.
    """
    for model in (body, query):
        if model is not None:
            _MODELS[model.__name__] = model

    def decorate(view: F) -> F:
        validated = spec.validate(json=body, query=query)(view)

        @wraps(validated)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if body is not None:
                v.json_object()
            return validated(*args, **kwargs)

        wrapper.body_required = body_required  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def body_of(model: type[M]) -> M:
    """The request's body as validated by ``accepts``."""
    value = request.context.json  # type: ignore[attr-defined]
    assert isinstance(value, model)
    return value


def query_of(model: type[M]) -> M:
    """The request's query as validated by ``accepts``."""
    value = request.context.query  # type: ignore[attr-defined]
    assert isinstance(value, model)
    return value


def request_parts(spec: SpecTree, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the models say of each operation's request, and the schemas they name.

    Returns ``{path: {method: {"parameters": [...], "requestBody": {...}}}}`` with only the query
    parameters (path parameters keep the patterns ``openapi.py`` gives them) and the component
    schemas. spectree generates the document from a registered app's routes, so a bare app with
    this role's blueprints is registered for it.
    """
    from flask import Flask

    from gateway.bank_api.routes import register_blueprints

    app = Flask(f"gateway.bank_api.document.{role}")
    register_blueprints(app, role)
    spec.register(app)
    with app.app_context():
        generated = spec.spec
    parts: dict[str, Any] = {}
    for path, operations in generated["paths"].items():
        for method, operation in operations.items():
            part: dict[str, Any] = {}
            query = [param for param in operation.get("parameters", []) if param.get("in") == "query"]
            if query:
                part["parameters"] = [_clean(param) for param in query]
            if "requestBody" in operation:
                function = app.view_functions[_endpoint(app, path, method)]
                part["requestBody"] = {
                    "required": bool(getattr(function, "body_required", True)),
                    "content": operation["requestBody"]["content"],
                }
            parts.setdefault(path, {})[method] = part
    # Query models become parameters; only body models are schemas of their own.
    schemas = {
        name: _clean(schema, body=True)
        for name, schema in generated["components"]["schemas"].items()
        if name in _MODELS and issubclass(_MODELS[name], Body)
    }
    return parts, schemas


def with_request_parts(document: dict[str, Any], spec: SpecTree, role: str) -> dict[str, Any]:
    """``document`` with each operation's query parameters and body taken from its route's models.

    An operation the models describe must exist in the document (its responses are written there):
    a route without one fails here rather than publish half an operation.
    """
    parts, schemas = request_parts(spec, role)
    paths = document["paths"]
    for path, operations in parts.items():
        for method, part in operations.items():
            if path not in paths or method not in paths[path]:
                raise KeyError(f"{method.upper()} {path} has request models but no operation in the document")
            operation = paths[path][method]
            if "parameters" in part:
                kept = [param for param in operation.get("parameters", []) if param.get("in") != "query"]
                operation["parameters"] = kept + part["parameters"]
            if "requestBody" in part:
                operation["requestBody"] = part["requestBody"]
    document["components"]["schemas"].update(schemas)
    return document


def _endpoint(app: Any, path: str, method: str) -> str:
    for rule in app.url_map.iter_rules():
        if _openapi_path(rule.rule) == path and method.upper() in (rule.methods or ()):
            return str(rule.endpoint)
    raise KeyError(f"{method} {path}")


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)


def _clean(value: Any, *, body: bool = False) -> Any:
    """pydantic's JSON schema, as OpenAPI 3.0 reads it: no titles, no ``default: null``.

    In a body, ``default: null`` marks a field that may be left out (``| Absent = None``), which
    the model also takes as ``null``: the document says ``nullable``, or a client (and the
    negative tests) would read the ``null`` the gateway accepts as forbidden.
    """
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if key == "title" and isinstance(item, str):
                continue
            if key == "default" and item is None:
                if body:
                    cleaned["nullable"] = True
                continue
            if key == "description" and item == "":
                continue
            cleaned[key] = _clean(item, body=body)
        return cleaned
    if isinstance(value, list):
        return [_clean(item, body=body) for item in value]
    return value


# Bodies shared by several resources.
class EmptyRequest(Empty):
    """No fields: the body may be left out, or be ``{}``."""


class ApiKeyCreateRequest(Body):
    label: Annotated[str, text(128, blank=True)] | Absent = None
