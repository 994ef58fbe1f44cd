"""What the typed boundary (``boundary.py``) stands on: the strict JSON reader, the rules every value
from outside obeys, and the path and query-string checks.

- JSON bodies: UTF-8, at most ``MAX_JSON_DEPTH`` levels of nesting, no duplicate keys, no
  ``NaN``/``Infinity``, no lone surrogates (the size limit, 413, is Flask's ``MAX_CONTENT_LENGTH``).
  Read here before any model sees the body: the JSON parser recurses once per level.
- Patterns match the whole value (``re.fullmatch``): a ``$`` in a pattern would otherwise match
  before a final newline, and ``"1\n"`` would pass as an amount or an id.
- Numbers are ASCII digits only: ``str.isdigit`` and ``int`` accept other scripts' digits and
  superscripts, which are not numbers on the wire.

The same patterns feed the request models and so the OpenAPI documents, where they keep their
``^...$`` anchors: JSON Schema patterns are ECMA-262 regular expressions, where ``$`` without the
multiline flag means end of input (as in the Rust regular expressions pydantic checks them with).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import g, request

from gateway.bank_api.problems import ApiProblem

ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MSP_ID = r"^[A-Za-z][A-Za-z0-9.-]{0,63}$"
REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
JURISDICTION = r"^[A-Z]{2,4}$"
CURRENCY = r"^[A-Z]{3}$"
PAYMENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# The ids the contract gives interbank payments (payments.py): any other well-formed id names no
# payment on the ledger, so the gateway answers 404 without asking (the contract would refuse it as
# malformed, a 400 the document does not describe for a well-formed id).
INTERBANK_PAYMENT_ID = r"^[0-9a-f]{64}$"
CYCLE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
OPAQUE_ID = r"^[A-Za-z0-9_-]{1,64}$"
# Query values and other free text that must stay printable ASCII (bookmarks, keys).
PRINTABLE_ASCII = r"^[\x20-\x7e]*$"
# Free text as the published document states it: no control characters. The gateway refuses more
# (``printable``: format, separator and surrogate characters too), which a pattern without Unicode
# classes cannot say; the document's descriptions name the rule.
TEXT = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Required free text: the same, with one character other than a space at least.
TEXT_REQUIRED = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
# What ``printable`` refuses, for the answers and the document: the refusal must name the problem
# (a private-use or unassigned character is not a control character).
NOT_PRINTABLE = "no control, format, separator, surrogate, private-use or unassigned characters"

# Deeper than any body of this API needs (they are flat objects with one list at most), and far
# below the recursion limit of the JSON parser, whose RecursionError would otherwise escape.
MAX_JSON_DEPTH = 8
MAX_QUERY_VALUE = 2048
_ASCII_DIGITS = re.compile(r"[0-9]{1,9}")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")

# Amounts on the wire: greater than zero as the gateway reads them (money.parse_amount refuses "0"
# and "0.00"; the exponent per currency is checked there, beyond what one pattern can say), and
# signed in answers (positions, balances).
AMOUNT_PATTERN = r"^(0\.[0-9]*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]+)?)$"
SIGNED_AMOUNT_PATTERN = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_BOOKMARK = 1024
# The contract keeps a freeze reason of at most this many characters (contract.py, FreezeAccount):
# the gateway refuses a longer one itself rather than pass on the contract's refusal.
MAX_FREEZE_REASON = 200

_COMPILED: dict[str, re.Pattern[str]] = {}


def _pattern(pattern: str) -> re.Pattern[str]:
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` matches ``pattern`` as a whole (never a prefix, never before a final newline)."""
    return _pattern(pattern).fullmatch(value) is not None


def ascii_int(raw: str) -> int | None:
    """The value of a run of ASCII digits (at most nine), or None for anything else."""
    if _ASCII_DIGITS.fullmatch(raw) is None:
        return None
    return int(raw)


def bad_request(detail: str, code: str = "invalid_request") -> ApiProblem:
    return ApiProblem(400, code, detail)


def json_object() -> dict[str, Any]:
    """The request body as a JSON object (an empty body counts as ``{}``); parsed once per request."""
    cached = g.get("json_body")
    if cached is not None:
        return dict(cached)
    raw = request.get_data(cache=True)
    if not raw.strip():
        body: dict[str, Any] = {}
    else:
        if not request.is_json:
            raise ApiProblem(415, "unsupported_media_type", "send the body as application/json")
        parsed = parse_json(raw)
        if not isinstance(parsed, dict):
            raise bad_request("the body must be a JSON object")
        body = parsed
    g.json_body = body
    return dict(body)


def parse_json(raw: bytes) -> Any:
    """Strict JSON: refuses what a hostile client sends instead of failing on it later."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the body is not valid UTF-8") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise bad_request(f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except _DuplicateKey as error:
        raise bad_request(f"the body names the field {error.args[0]!r} more than once") from None
    except (ValueError, RecursionError):
        raise bad_request("the body is not valid JSON") from None
    try:
        # Lone surrogates ("\ud800") parse, but no database, log or signature can carry them.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("the body holds a string that is not valid Unicode") from None
    return value


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, brackets inside strings not counted.

    Counted before parsing because the parser recurses once per level. Unclosed strings or
    brackets can only make the count larger, which refuses a body that is invalid anyway.
    """
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING_LITERAL.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # With duplicates, which value counts depends on the parser; refuse rather than guess.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key[:64])
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def printable(value: str) -> bool:
    """No control, format, separator (other than space), surrogate, private-use or unassigned characters."""
    return all(ch.isprintable() or ch == " " for ch in value)


def path_id(value: str, pattern: str, name: str) -> str:
    if not matches(pattern, value):
        raise bad_request(f"{name} in the path is malformed")
    return value


def check_query_string() -> None:
    """Every request: query values are bounded printable ASCII (no route takes anything else)."""
    for name, value in request.args.items(multi=True):
        if len(name) > 64 or len(value) > MAX_QUERY_VALUE:
            raise bad_request("a query parameter is too long")
        if not matches(PRINTABLE_ASCII, name) or not matches(PRINTABLE_ASCII, value):
            raise bad_request("query parameters must be printable ASCII")
