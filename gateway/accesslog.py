"""One log line per HTTP request: method, path, status, time, request id; and its metrics.

It replaces uvicorn's access log, whose request line carries the query string: a GET
query's arguments (an ID number to verify, say) must never reach a log.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import observe_request

__all__ = ["AccessLog"]

log = logging.getLogger("integrity_gateway.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            seconds = time.perf_counter() - started
            observe_request(scope["path"], scope["method"], status, seconds)
            if log.isEnabledFor(logging.INFO):  # the line's fields built only when kept
                # The id admission (inside) gave the request and its answer's header.
                request_id = scope.get("state", {}).get("request_id", "-")
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
