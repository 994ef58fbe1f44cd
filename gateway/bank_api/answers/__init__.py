"""The gateways' answers as typed models: the response side of the OpenAPI documents is generated
from them (decision 0034), as the request side is from the request models (``boundary.py``).

The views still build their answers as plain JSON (``representations.py``); schemathesis checks
every answer of the running gateway against the document these models produce (decision 0029), so
a model and a view that disagree fail the tests. The models are not run on each answer: that would
parse every response a second time.

pydantic writes JSON Schema 2020-12; ``openapi30`` turns it into what OpenAPI 3.0.3 reads
(``nullable`` instead of ``anyOf [.., null]``, no ``const``, no titles), so the published documents
keep their version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from gateway.bank_api import validation as v

Schema = dict[str, Any]

class Answer(BaseModel):
    """A JSON object the gateway answers with. Fields the answer may leave out are ``| Absent``."""

    model_config = ConfigDict(populate_by_name=True)


Money = Annotated[str, Field(description="Decimal string in the currency's exponent", pattern=v.SIGNED_AMOUNT_PATTERN)]
Timestamp = Annotated[str, Field(description="RFC 3339 time in UTC")]


def one_of(values: Iterable[str]) -> Any:
    """A string that is one of ``values``, taken from the constants the gateway itself uses."""
    return Field(json_schema_extra={"enum": list(values)})


def components(models: Iterable[type[BaseModel]]) -> dict[str, Schema]:
    """The component schemas of ``models`` and of every model they refer to, by class name."""
    listed = [(model, "serialization") for model in models]
    _, schema = models_json_schema(listed, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    return {name: openapi30(definition) for name, definition in schema.get("$defs", {}).items()}


def openapi30(value: Any) -> Any:
    """pydantic's JSON Schema as OpenAPI 3.0.3 reads it."""
    if isinstance(value, list):
        return [openapi30(item) for item in value]
    if not isinstance(value, dict):
        return value
    members = value.get("anyOf")
    if isinstance(members, list) and {"type": "null"} in members:
        others = [member for member in members if member != {"type": "null"}]
        rest = {key: item for key, item in value.items() if key != "anyOf"}
        if len(others) == 1:
            inner = openapi30(others[0])
            # A $ref has no siblings in 3.0: wrap it to make it nullable.
            base = {"allOf": [inner]} if "$ref" in inner else inner
            return openapi30({**base, **rest, "nullable": True})
        return openapi30({**rest, "anyOf": others, "nullable": True})
    cleaned: Schema = {}
    for key, item in value.items():
        if key == "properties" and isinstance(item, dict):
            # Field names are not keywords: a field called "title" or "const" stays.
            cleaned[key] = {name: openapi30(schema) for name, schema in item.items()}
            continue
        if key == "title" and isinstance(item, str):
            continue
        if key == "default" and item is None:
            continue
        if key == "const":
            # 3.0 has no const: a single-valued enum says the same.
            cleaned.setdefault("enum", [item])
            continue
        cleaned[key] = item if key in ("example", "enum") else openapi30(item)
    return cleaned
