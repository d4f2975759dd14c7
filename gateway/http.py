"""HTTP surface: the authenticated GraphQL view and the health endpoints."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gateway.audit import AuditTrail
from gateway.auth import TokenError
from gateway.runtime import Runtime
from gateway.viewer import Anonymous, Viewer
from loaders import create_loaders
from loaders.audit import write_audit
from resolvers.context import Context

__all__ = ["GatewayGraphQL", "healthz", "readyz"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _runtime(request: Request | WebSocket) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def request_id(request: Request | WebSocket) -> str:
    """The caller's X-Request-ID when it is well-formed, else a fresh one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


class Utf8JSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def unauthorized(reason: str) -> Response:
    """401 for a credential that does not verify (RFC 6750), with a GraphQL-shaped body."""
    description = reason.replace('"', "'")
    return Utf8JSONResponse(
        {
            "errors": [
                {"message": f"Unauthorized: {reason}.", "extensions": {"code": "UNAUTHENTICATED"}}
            ]
        },
        status_code=401,
        headers={
            "www-authenticate": (
                f'Bearer realm="integrity-gateway", error="invalid_token", '
                f'error_description="{description}"'
            )
        },
    )


class GatewayGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view: authenticates first, then a typed context and UTF-8 JSON."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            try:
                viewer = await _runtime(request).authenticator.authenticate(
                    request.headers.get("authorization")
                )
            except TokenError as exc:
                await unauthorized(str(exc))(scope, receive, send)
                return
            scope.setdefault("state", {})["viewer"] = viewer
        await super().__call__(scope, receive, send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        runtime = _runtime(request)
        viewer: Viewer = getattr(request.state, "viewer", Anonymous())
        rid = request_id(request)
        audit = AuditTrail(viewer, rid)
        if isinstance(response, Response):
            response.headers["x-request-id"] = rid
            # Written after the response is sent: auditing never delays an answer.
            response.background = BackgroundTask(write_audit, runtime.sources, audit)
        return Context(
            viewer=viewer,
            loaders=create_loaders(runtime.sources, runtime.cache),
            settings=runtime.settings,
            request_id=rid,
            audit=audit,
            sources=runtime.sources,
            cache=runtime.cache,
            limits=runtime.limits,
            cursor_key=runtime.cursor_key,
            http_method=request.scope.get("method", "POST"),
        )

    def encode_json(self, data: object) -> bytes:
        # orjson writes UTF-8 and never \\u-escapes non-ASCII text.
        return orjson.dumps(data)


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
