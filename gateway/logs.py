"""Logging: every line carries the request id of the request it was written for, as
text or as one JSON object per line (GATEWAY_LOG_FORMAT=json, for a log pipeline).

The request id is set by admission (gateway/admission.py) for the request's task, so a
line written anywhere while the request runs (a resolver, a loader, the audit writer) is
tagged with it without being passed along.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextvars import ContextVar
from typing import IO, Any

import orjson

__all__ = ["REQUEST_ID", "JsonFormatter", "RequestIdFilter", "configure_logging", "handler"]

#: The id of the request the current task serves; "-" outside a request.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
#: LogRecord attributes that are not a caller's ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's message again, with terminal colours
}


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id``: its own ``extra``, else the current one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    request_id, the caller's ``extra`` fields, and the exception if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``log_format`` ("text" or "json") lines to ``stream``."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.addFilter(RequestIdFilter())
    out.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return out


def configure_logging(level: str, log_format: str) -> None:
    """The process's logging: one handler on the root logger (uvicorn's own loggers
    propagate to it, see ``serve``). Like ``logging.basicConfig``, it leaves a process
    whose logging is already configured (an embedding application, a test run) alone."""
    root = logging.getLogger()
    if root.handlers:
        return
    root.addHandler(handler(log_format))
    root.setLevel(level)
