"""HTTP surface besides GraphQL (gateway/graphql_view.py): the health endpoints."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.runtime import Runtime

__all__ = ["healthz", "readyz"]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class Utf8JSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def healthz(request: Request) -> Response:
    """The process is alive and serving HTTP; says nothing about its dependencies."""
    return Utf8JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Each MongoDB source and Redis, reported; 503 when any MongoDB source is down.

    Redis down is reported but does not fail readiness: the gateway then serves
    from MongoDB.
    """
    runtime = _runtime(request)
    mongodb = await runtime.sources.ping()
    redis_error = await runtime.cache.ping()
    ready = all(error is None for error in mongodb.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "mongodb": {
            source.value: "ok" if error is None else f"down: {error}"
            for source, error in mongodb.items()
        },
        "redis": "ok" if redis_error is None else f"down: {redis_error}",
    }
    return Utf8JSONResponse(body, status_code=200 if ready else 503)
