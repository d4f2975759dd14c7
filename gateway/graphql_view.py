"""The GraphQL endpoint: GET and POST over HTTP, every input checked before it is used.

Written on Starlette rather than Strawberry's ASGI view because every step here must
be able to refuse with its own status and a GraphQL-shaped body, before the next step
costs anything: the body is counted while it is read (413), decoded strictly (400 for
invalid UTF-8, JSON, shapes or nesting), the token verified (401), and only then the
operation handed to Strawberry, whose OperationLimits extension measures, prices and
rate-limits it (400 / 429). Execution runs under the request's deadline.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gateway.admission import send_error
from gateway.audit import AuditTrail
from gateway.auth import TokenError
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.viewer import Operator, Viewer
from loaders import create_loaders
from loaders.audit import write_audit
from resolvers.context import Context
from resolvers.errors import ErrorCode

__all__ = ["GraphQLView", "RequestRefused", "json_depth"]

#: Refusals before execution, and the HTTP status each is answered with.
REFUSAL_STATUS = {
    ErrorCode.RATE_LIMITED.value: 429,
    ErrorCode.TOO_MANY_TOKENS.value: 400,
    ErrorCode.DEPTH_LIMIT_EXCEEDED.value: 400,
    ErrorCode.TOO_MANY_ALIASES.value: 400,
    ErrorCode.TOO_MANY_ROOT_FIELDS.value: 400,
    ErrorCode.TOO_MANY_DIRECTIVES.value: 400,
    ErrorCode.TOO_MANY_FIELDS.value: 400,
    ErrorCode.TOO_MANY_OPERATIONS.value: 400,
    ErrorCode.COST_LIMIT_EXCEEDED.value: 400,
}
_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")
#: The last resort beyond the deadline, should something not honour it.
_DEADLINE_GRACE_S = 0.5


class RequestRefused(Exception):
    """The HTTP request cannot carry a GraphQL operation; answered before any work."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Payload:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def json_depth(value: object, limit: int) -> int:
    """How deeply ``value`` nests (a scalar is 0), counting no further than ``limit + 1``;
    iterative, so no nesting can exhaust the stack."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = RequestRefused(
        413, "BODY_TOO_LARGE", f"The request body is larger than {limit} bytes, the most allowed."
    )
    if declared is not None:
        if not declared.isdigit():
            raise RequestRefused(400, "BAD_REQUEST", "Content-Length is not a number.")
        if int(declared) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_json(raw: bytes | str, what: str) -> Any:
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestRefused(400, "BAD_REQUEST", f"The {what} is not valid UTF-8.") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestRefused(400, "BAD_REQUEST", f"The {what} is not valid JSON.") from None


def _payload(data: object, settings: Settings) -> Payload:
    if isinstance(data, list):
        raise RequestRefused(400, "BAD_REQUEST", "Batched operations are not supported.")
    if not isinstance(data, dict):
        raise RequestRefused(400, "BAD_REQUEST", "The request must be a JSON object.")
    expected = {"query": str, "variables": dict, "operationName": str, "extensions": dict}
    for key, kind in expected.items():
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            noun = "a string" if kind is str else "an object"
            raise RequestRefused(400, "BAD_REQUEST", f"`{key}` must be {noun} or null.")
    limit = settings.limit_variables_depth
    for key in ("variables", "extensions"):
        depth = json_depth(data.get(key), limit)
        if depth > limit:
            raise RequestRefused(
                400,
                "VARIABLES_TOO_DEEP",
                f"`{key}` nests deeper than {limit} levels, the most allowed.",
            )
    return Payload(
        query=data.get("query"),
        variables=data.get("variables"),
        operation_name=data.get("operationName"),
        extensions=data.get("extensions"),
    )


async def read_payload(request: Request, settings: Settings) -> Payload:
    if request.method == "GET":
        params = request.query_params
        data: dict[str, Any] = {"query": params.get("query")}
        data["operationName"] = params.get("operationName")
        for key in ("variables", "extensions"):
            raw = params.get(key)
            data[key] = _decode_json(raw, f"`{key}` parameter") if raw else None
        return _payload(data, settings)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        # Also what keeps cross-site "simple" requests (forms) from running operations.
        raise RequestRefused(
            415, "UNSUPPORTED_MEDIA_TYPE", "Send the operation as application/json."
        )
    body = await _read_body(request, settings.limit_body_bytes)
    return _payload(_decode_json(body, "request body"), settings)


def _wants_ide(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and ("text/html" in accept or "*/*" in accept)
    )


def _public_schema(settings: Settings, viewer: Viewer) -> bool:
    """Whether errors may suggest names ("Did you mean ...") and the schema be read."""
    return settings.gateway_dev_mode or isinstance(viewer, Operator)


def _document_order(error: Mapping[str, Any]) -> tuple[Any, ...]:
    locations = error.get("locations") or [{"line": 0, "column": 0}]
    path = tuple(
        (0, step, "") if isinstance(step, int) else (1, 0, step) for step in error.get("path") or ()
    )
    return (locations[0]["line"], locations[0]["column"], path)


def _status(body: Mapping[str, Any]) -> int:
    errors = body.get("errors")
    if body.get("data") is None and errors:
        code = (errors[0].get("extensions") or {}).get("code")
        return REFUSAL_STATUS.get(str(code), 200)
    return 200


class GraphQLView:
    """``/graphql``: GraphiQL for browsers in dev mode, GraphQL over GET and POST."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self._ide = get_graphql_ide_html("graphiql")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime: Runtime = request.app.state.runtime
        settings = runtime.settings
        if request.method not in ("GET", "POST"):
            await send_error(
                send,
                405,
                "METHOD_NOT_ALLOWED",
                "GraphQL is served over GET and POST.",
                headers=[("allow", "GET, POST")],
            )
            return
        if _wants_ide(request):
            if settings.gateway_dev_mode:
                await HTMLResponse(self._ide)(scope, receive, send)
            else:
                await send_error(send, 404, "NOT_FOUND", "GraphiQL is served in dev mode only.")
            return
        try:
            payload = await read_payload(request, settings)
            viewer = await runtime.authenticator.authenticate(request.headers.get("authorization"))
        except RequestRefused as refused:
            await send_error(send, refused.status, refused.code, refused.message)
            return
        except TokenError as exc:
            await _unauthorized(send, str(exc))
            return
        response = await self._execute(request, runtime, viewer, payload)
        await response(scope, receive, send)

    async def _execute(
        self, request: Request, runtime: Runtime, viewer: Viewer, payload: Payload
    ) -> Response:
        settings = runtime.settings
        state = request.scope.get("state", {})
        request_id: str = state.get("request_id", "-")
        deadline_s = settings.request_deadline_ms / 1000
        audit = AuditTrail(viewer, request_id)
        context = Context(
            viewer=viewer,
            loaders=create_loaders(
                runtime.sources, runtime.cache, deadline=time.monotonic() + deadline_s
            ),
            settings=settings,
            request_id=request_id,
            audit=audit,
            sources=runtime.sources,
            cache=runtime.cache,
            limits=runtime.limits,
            cursor_key=runtime.cursor_key,
            http_method=request.method,
            client_address=state.get("client_address", "-"),
        )
        allowed = {OperationType.QUERY}
        if request.method == "POST":
            allowed.add(OperationType.MUTATION)
        try:
            async with asyncio.timeout(deadline_s + _DEADLINE_GRACE_S):
                result = await self.schema.execute(
                    payload.query,
                    variable_values=payload.variables,
                    context_value=context,
                    operation_name=payload.operation_name,
                    allowed_operation_types=allowed,
                    operation_extensions=payload.extensions,
                )
        except TimeoutError:
            return _error_response(
                503, ErrorCode.TIMEOUT.value, "The request ran out of time; retry shortly."
            )
        except MissingQueryError:
            return _error_response(400, "BAD_REQUEST", "No GraphQL query found in the request.")
        except InvalidOperationTypeError as exc:
            return _error_response(
                405, "METHOD_NOT_ALLOWED", exc.as_http_error_reason(request.method)
            )
        except CannotGetOperationTypeError as exc:
            return _error_response(400, "BAD_REQUEST", exc.as_http_error_reason())
        body: dict[str, Any] = dict(process_result(result))
        if "errors" in body:
            # Raised in whatever order fields finished; sent in document order, so the
            # same request always gets the same bytes.
            body["errors"].sort(key=_document_order)
        if not _public_schema(settings, viewer):
            for error in body.get("errors", ()):
                error["message"] = _SUGGESTION.sub("", error["message"])
        status = _status(body)
        if status != 200:
            body.pop("data", None)  # refused before execution: nothing was executed
        headers = {}
        allowance = context.report.allowance
        if allowance is not None:
            headers.update(allowance.headers())
        # Written after the response is sent: auditing never delays an answer.
        return Response(
            orjson.dumps(body),
            status_code=status,
            headers=headers,
            media_type="application/json",
            background=BackgroundTask(write_audit, runtime.sources, audit) if audit else None,
        )


def _error_response(status: int, code: str, message: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _unauthorized(send: Send, reason: str) -> None:
    """401 for a credential that does not verify (RFC 6750)."""
    description = reason.replace('"', "'")
    await send_error(
        send,
        401,
        "UNAUTHENTICATED",
        f"Unauthorized: {reason}.",
        headers=[
            (
                "www-authenticate",
                f'Bearer realm="integrity-gateway", error="invalid_token", '
                f'error_description="{description}"',
            )
        ],
    )
