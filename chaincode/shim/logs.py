"""JSON-lines logging for the chaincode server.

Each record is one JSON object on one line: time, level, logger, message and the
structured fields passed with ``extra=``. Only the fields listed in :data:`FIELDS` are
written: call sites pass txid prefixes, function names, statuses and durations, and an
allow-list keeps an accidental ``extra`` (an argument, a transient value) out of the log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import TextIO

FIELDS = (
    "txid",
    "channel",
    "fn",
    "status",
    "duration_ms",
    "requests",
    "peer",
    "type",
    "state",
    "error",
    "where",
    "in_flight",
    "address",
    "port",
    "chaincode_id",
    "tls",
    "mutual_tls",
    "peer_msp_id",
    "contracts",
    "write_batch",
    "get_multiple",
    "signal",
)


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages may quote customer data.
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the ``chaincode`` loggers (and gRPC's) to ``stream`` as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
