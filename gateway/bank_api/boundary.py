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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import wraps
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, cast, get_args, get_origin

from annotated_types import GroupedMetadata
from flask import request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WrapValidator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from spectree import SpecTree

from gateway.bank_api import validation as v
from gateway.bank_api.problems import ApiProblem

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)



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
    rule = f"Printable characters only ({v.NOT_PRINTABLE})"
    extra: dict[str, Any] = {}
    if pattern is None:
        # The document's pattern for free text is only published: the checks below refuse all it
        # refuses and more, and their answers name the problem ("must not be empty", "printable
        # characters only") where a pattern checked first would answer "malformed".
        extra["pattern"] = v.TEXT if blank else v.TEXT_REQUIRED
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
        json_schema_extra={"example": "12.34", "pattern": v.AMOUNT_PATTERN, "maxLength": 40},
    ),
    Rule("invalid_amount", 'a decimal string greater than zero, such as "12.34"'),
]


def ascii_whole(value: Any) -> Any:
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
    BeforeValidator(ascii_whole),
    Rule(what=f"a whole number from 1 to {v.MAX_PAGE_SIZE} in ASCII digits"),
]
Cursor = Annotated[
    str,
    Field(pattern=v.PRINTABLE_ASCII, max_length=v.MAX_BOOKMARK, description="next_cursor of the previous page"),
]
# Free text for the payee of a payment, an escrow or a standing order.
REMITTANCE_MAX = 140
Remittance = Annotated[str, text(REMITTANCE_MAX, blank=True, description="Free text for the payee, kept private")]
# Optional in a body: ``null`` is accepted as absent. pydantic would write the type as ``anyOf
# [..., null]``, an OpenAPI 3.1 form; the document is 3.0, so ``request_parts`` publishes
# ``nullable: true`` instead (a fuzzer holds the gateway to it: a null it may not send is refused).
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
    unknown = _unknown_fields(errors)
    if unknown is not None:
        return unknown
    first = errors[0]
    location = first["loc"]
    within, name, rule = _located(error.title, location)
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
    return ApiProblem(400, rule.code, f"{within}: {detail}" if within else detail)


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
    return _rule_in(field.metadata, field.annotation)


def _rule_in(metadata: Iterable[Any], annotation: Any) -> Rule:
    """The rule of a field (its metadata and type), or of a map's values (their type alone)."""
    if get_origin(annotation) is Annotated:
        metadata, annotation = (*annotation.__metadata__, *metadata), get_args(annotation)[0]
    # An optional field (``T | Absent``) keeps its type's metadata on the union's member (not a
    # list's or a map's items: their rules are theirs).
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    rules = [rule for member in members if get_origin(member) is Annotated for rule in _rules(member.__metadata__)]
    rules.extend(_rules(metadata))
    # Annotated metadata is flattened inner first, so the last rule is the outermost: a field
    # that wraps a shared type in a ``Rule`` of its own says what it accepts in its own words.
    return rules[-1] if rules else Rule()


def _rules(metadata: Any) -> Iterator[Rule]:
    for item in metadata:
        if isinstance(item, Rule):
            yield item
        elif isinstance(item, _Combined):  # what ``text`` and the identifier types give
            yield from _rules(item.items)


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


@dataclass(frozen=True)
class RequestModels:
    """What a route declared of its request."""

    body: type[Body] | None
    query: type[Query] | None
    body_required: bool


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
            for each in (model, *_models_within(model)):
                known = _MODELS.setdefault(each.__name__, each)
                # The name is the schema's in the document and the key of its refusals' rules:
                # two models of one name would publish one and word the other's refusals.
                if known is not each:
                    raise TypeError(f"two request models are named {each.__name__}")

    def decorate(view: F) -> F:
        validated = spec.validate(json=body, query=query)(view)

        @wraps(validated)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if body is not None:
                v.json_object()
            return validated(*args, **kwargs)

        # Read by the document builder and by the tests (functools.wraps carries it outwards).
        wrapper.request_models = RequestModels(body, query, body_required)  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def body_of(model: type[M]) -> M:
    """The request's body as validated by ``accepts``."""
    value = request.context.json  # type: ignore[attr-defined]
    if value is None:
        # spectree reads no body under a form media type; the strict reader has let only an
        # empty one through (any other is a 415 there), which the gateway reads as ``{}``.
        try:
            value = model.model_validate(v.json_object())
        except ValidationError as error:
            raise problem_for(error) from None
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
                view: Any = app.view_functions[_endpoint(app, path, method)]
                declared: RequestModels = view.request_models
                part["requestBody"] = {
                    "required": declared.body_required,
                    "content": operation["requestBody"]["content"],
                }
            parts.setdefault(path, {})[method] = part
    # Query models become parameters; only body models are schemas of their own.
    schemas = {
        name: _with_nulls(_MODELS[name], _clean(schema))
        for name, schema in generated["components"]["schemas"].items()
        if name in _MODELS and issubclass(_MODELS[name], Body)
    }
    return parts, schemas


def _with_nulls(model: type[BaseModel], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``nullable: true`` on each field that takes ``null`` (``T | Absent``)."""
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        if name in properties and any(_is_none(member) for member in get_args(field.annotation)):
            properties[name]["nullable"] = True
    return schema


def _is_none(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation is type(None)


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


def _clean(value: Any) -> Any:
    """pydantic's JSON schema, as OpenAPI 3.0 reads it: no titles, no ``default: null``."""
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if key == "title" and isinstance(item, str):
                continue
            if key == "default" and item is None:
                continue
            if key == "description" and item == "":
                continue
            cleaned[key] = _clean(item)
        return cleaned
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


# Bodies shared by several resources.
class EmptyRequest(Empty):
    """No fields: the body may be left out, or be ``{}``."""


class ApiKeyCreateRequest(Body):
    label: Annotated[str, text(128, blank=True)] | Absent = None


# Regulator
#
# The corridor policy's body holds lists of objects (rules, caps) and the alert rules' settings hold
# maps (currency -> amount): a refusal inside one names the entry and the field as the client wrote
# them, ``caps[1]: daily must be a decimal string``, with that field's own code.


def worded(message: str) -> Any:
    """Any refusal of the value reads as ``message`` after the field's name.

    For fields whose refusal has always been one sentence, whatever was wrong with the value (a
    string for a number, zero, a list too long), so clients keep getting the words they were given.
    Give such a field no ``Rule.what``, which would be appended to the sentence.
    """

    def reword(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("worded", message) from None

    return WrapValidator(reword)


def _models_within(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """The body models inside ``model``'s fields (list entries), so they are known by name too."""
    for field in model.model_fields.values():
        container = _container(field.annotation)
        entry = _model_in(container[1]) if container is not None else None
        if entry is not None:
            yield entry
            yield from _models_within(entry)


def _unknown_fields(errors: list[Any]) -> ApiProblem | None:
    extra = [error for error in errors if error["type"] == "extra_forbidden" and error["loc"]]
    if not extra:
        return None
    entry = _entry_of(extra[0]["loc"])
    unknown = sorted(str(error["loc"][-1])[:64] for error in extra if _entry_of(error["loc"]) == entry)
    detail = f"unknown field(s): {', '.join(unknown[:5])}"
    return ApiProblem(400, "invalid_request", f"{entry}: {detail}" if entry else detail)


def _entry_of(location: tuple[int | str, ...]) -> str:
    """``rules[0]`` for a field of an object in a list, "" for a field of the body."""
    if len(location) >= 3 and isinstance(location[1], int):
        return f"{str(location[0])[:64]}[{location[1]}]"
    return ""


def _located(title: str, location: tuple[int | str, ...]) -> tuple[str, str, Rule]:
    """Where a refusal is: the list entry holding the field ("" for none), the field's name, its rule.

    Only a field whose type is the list or the map itself (not optional) is looked into: an
    optional one's location holds pydantic's names for union members, which could pass for keys.
    """
    model = _MODELS.get(title)
    field = _field_of(model, location[0]) if model is not None and len(location) >= 2 else None
    container = _container(field.annotation) if field is not None else None
    if container is not None:
        kind, item = container
        head = str(location[0])[:64]
        entry = _model_in(item)
        if kind is list and entry is not None and isinstance(location[1], int) and len(location) >= 3:
            inner = _field_of(entry, location[2])
            if inner is not None:
                return f"{head}[{location[1]}]", _field_name(location[2:]), _rule_in(inner.metadata, inner.annotation)
        if kind is dict and isinstance(location[1], str):
            return "", f"{head}.{location[1][:64]}", _rule_in((), item)
    return "", _field_name(location), _rule_of(title, location)


def _field_of(model: type[BaseModel] | None, name: int | str) -> Any:
    for key, field in (model.model_fields.items() if model is not None else ()):
        if (field.alias or key) == name:
            return field
    return None


def _container(annotation: Any) -> tuple[type, Any] | None:
    """``(list, item)`` or ``(dict, value)`` when ``annotation`` is a list or a map."""
    origin = get_origin(annotation)
    if origin is list or origin is dict:
        return origin, get_args(annotation)[-1]
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, Body):
        return annotation
    return None
