"""One log line per HTTP request: method, path, status, time, request id; and its metrics.

It replaces uvicorn's access log, whose request line carries the query string: a GET
query's arguments (an ID number to verify, say) must never reach a log. Admission
(gateway/admission.py), the outermost layer but tracing, calls it when a request is
over, from the one wrapper of ``send`` it has anyway.
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from gateway.metrics import observe_request

__all__ = ["log_request"]

log = logging.getLogger("integrity_gateway.access")


def log_request(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    """The request's metrics, and its line when INFO is logged (its fields built only
    then)."""
    observe_request(scope["path"], scope["method"], status, seconds)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000,
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
