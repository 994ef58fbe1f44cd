"""CSV answers for the list routes: ``?format=csv`` or ``Accept: text/csv``.

A cell that a spreadsheet would read as a formula (``=``, ``+``, ``@``, a tab or carriage
return first, or ``-`` not followed by a number) gets a leading apostrophe, so an export
opened in a spreadsheet never runs something a record's text slipped in. Negative amounts
(net positions) stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from flask import Response, request
from pydantic import Field

from gateway.bank_api.boundary import Absent, Query, one_of

CSV_MEDIA_TYPE = "text/csv"
FORMATS = ("json", "csv")

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_FORMULA_START = ("=", "+", "@", "\t", "\r", "-")


class Listing(Query):
    """The query of a list route: its filters, and the format of the answer."""

    format: Annotated[
        str,
        one_of(FORMATS),
        Field(description="csv: every matching row as text/csv (also chosen by Accept: text/csv)"),
    ] | Absent = None


def wants_csv(query: Listing) -> bool:
    """Whether the caller asked for CSV: ``format`` decides, else the Accept header."""
    if query.format is not None:
        return query.format == "csv"
    return request.accept_mimetypes.best_match(["application/json", CSV_MEDIA_TYPE]) == CSV_MEDIA_TYPE


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_response(filename: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    response = Response(buffer.getvalue(), mimetype=CSV_MEDIA_TYPE)
    response.headers["Content-Type"] = f"{CSV_MEDIA_TYPE}; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
