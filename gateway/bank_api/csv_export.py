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
from typing import Any

from flask import Response, request

from gateway.bank_api.validation import bad_request

CSV_MEDIA_TYPE = "text/csv"
FORMATS = ("json", "csv")

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_FORMULA_START = ("=", "+", "@", "\t", "\r", "-")


def wants_csv() -> bool:
    """Whether the caller asked for CSV: ``format`` decides, else the Accept header."""
    chosen = request.args.get("format")
    if chosen is not None:
        if chosen not in FORMATS:
            raise bad_request(f"format must be one of {', '.join(FORMATS)}")
        return chosen == "csv"
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
