"""Structured JSON logging for every process."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# A URL's query string (where a careless client puts a key) and bearer tokens: never logged.
_QUERY = re.compile(r"(?P<url>\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s#\"'<>]*", re.I)
_BEARER = re.compile(r"(?P<scheme>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
# Libraries that log every request URL at INFO (httpx: "HTTP Request: GET http://…?key=…").
QUIET_LOGGERS = ("httpx", "httpcore", "botocore", "urllib3", "s3transfer")


def redact(text: str) -> str:
    """``text`` with URL query strings and bearer tokens replaced by ``[redacted]``."""
    text = _QUERY.sub(lambda m: m.group("url") + "?[redacted]", text)
    return _BEARER.sub(lambda m: m.group("scheme") + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO", stream: object = None) -> None:
    """Route the root logger to one JSON line per record (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
