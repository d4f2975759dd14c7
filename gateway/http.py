"""HTTP surface besides GraphQL (gateway/graphql_view.py): the health endpoints and the
metrics' exposition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admission import error_body, in_networks, networks
from gateway.metrics import REGISTRY
from gateway.runtime import Runtime

__all__ = ["MetricsEndpoint", "healthz", "readyz"]


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


class MetricsEndpoint:
    """``GET /metrics``: the text exposition format, or 404 to any other network."""

    def __init__(self, allowed_networks: Sequence[str]) -> None:
        self.allowed = networks(allowed_networks)

    async def respond(self, request: Request) -> Response:
        # The address admission worked out (X-Forwarded-For from trusted proxies only).
        address = request.scope.get("state", {}).get("client_address", "-")
        if not in_networks(address, self.allowed):
            return Response(
                error_body("NOT_FOUND", "Not Found"),
                status_code=404,
                media_type="application/json",
            )
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
