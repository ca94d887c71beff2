"""Log lines for the front-ends: plain text (a timestamp unless journald adds its own) or, with
`log_format = "json"`, one JSON object per line for log shippers (Loki, Elasticsearch, journald's JSON export).

A JSON line holds time (ISO 8601, UTC, milliseconds), level, logger, message, pid, and the event's structured
fields: whatever the code passed as `extra=` (user, mailbox, uid, job, kind, state, counts, duration_ms...), so a
shipper can filter on `user` without parsing the message. A traceback (a bug) is one `error` field, not lines.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

# LogRecord's own attributes: everything else on a record came from `extra=`
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in out:
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def text_formatter(journald: bool) -> logging.Formatter:
    """The plain line: journald stamps time and pid itself."""
    fmt = "%(levelname)s: %(message)s" if journald else "%(asctime)s ftsd[%(process)d]: %(levelname)s: %(message)s"
    return logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S")


def formatter(log_format: str, journald: bool) -> logging.Formatter:
    """The formatter of the `log_format` setting ("text" or "json")."""
    return JsonFormatter() if log_format == "json" else text_formatter(journald)
