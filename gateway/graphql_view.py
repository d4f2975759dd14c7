"""The GraphQL endpoint: GET and POST over HTTP, every input checked before it is used.

Written on Starlette rather than Strawberry's ASGI view because every step here must
be able to refuse with its own status and a GraphQL-shaped body, before the next step
costs anything: the request is read strictly (gateway/requests.py: 413, 415, 400), the
token verified (401), a persisted operation looked up (gateway/persisted.py), and only
then the operation handed to the engine (resolvers/engine.py), which measures,
prices and rate-limits it (400 / 429) and executes it. Execution runs under the request's deadline.
A GET answer says how it may be cached: publicly, for ``CACHE_MAX_AGE_SECONDS``, when
an anonymous viewer asked for PUBLIC fields only and got no error; else not at all.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson
from graphql import OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from gateway.admission import error_body, send_error
from gateway.audit import AuditTrail
from gateway.auth import TokenError
from gateway.deadlines import Deadlines
from gateway.ide import dev_tokens, example_uscc, ide_page
from gateway.metrics import observe_operation, operation_label
from gateway.persisted import PersistedNotFound
from gateway.requests import Operation, RequestHeaders, RequestRefused, read_operation
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.tracing import span
from gateway.viewer import Operator, Viewer
from loaders import create_loaders
from loaders.audit import record_reads
from resolvers.context import Context
from resolvers.engine import Engine, OperationRefused
from resolvers.errors import ErrorCode

__all__ = ["GRAPHQL_RESPONSE", "JSON", "GraphQLView", "negotiate", "request_context"]

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
#: The operations each method may run (tuples: looked up by identity, not by the
#: enum's hash, a Python call).
_GET_RUNS = (OperationType.QUERY,)
_POST_RUNS = (OperationType.QUERY, OperationType.MUTATION)


def _wants_ide(request: Request, accept: str | None) -> bool:
    """A browser opening the endpoint (a GET) that asks for HTML and carries no operation
    (neither a document nor a persisted query's hash)."""
    params = request.query_params
    return "query" not in params and "extensions" not in params and "text/html" in (accept or "")


#: GraphQL over HTTP's media type, and the one older clients know.
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_GRAPHQL_RESPONSE_TYPE = f"{GRAPHQL_RESPONSE}; charset=utf-8"


def negotiate(accept: str | None) -> str | None:
    """The media type to answer in, from the Accept header (GraphQL over HTTP):
    ``application/graphql-response+json`` when the client names it (at a quality not
    below ``application/json``'s), ``application/json`` when it accepts that (by name or
    by a wildcard) or sends no Accept, ``None`` when it accepts neither (406)."""
    if not accept or not accept.strip():
        return JSON
    best = {GRAPHQL_RESPONSE: 0.0, JSON: 0.0}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if media == GRAPHQL_RESPONSE:
            best[GRAPHQL_RESPONSE] = max(best[GRAPHQL_RESPONSE], quality)
        elif media in (JSON, "application/*", "*/*"):
            # A wildcard is an older client's way of accepting JSON.
            best[JSON] = max(best[JSON], quality)
    if best[GRAPHQL_RESPONSE] > 0 and best[GRAPHQL_RESPONSE] >= best[JSON]:
        return GRAPHQL_RESPONSE
    return JSON if best[JSON] > 0 else None


def _content_type(media_type: str) -> str:
    return _GRAPHQL_RESPONSE_TYPE if media_type == GRAPHQL_RESPONSE else JSON


def _request_error(body: Mapping[str, Any]) -> bool:
    """Raised before execution (parse, validation, variables, cost, rate): no data and
    no error at a path (a field's error, even one that nulled ``data``, has one)."""
    errors = body.get("errors")
    return (
        body.get("data") is None
        and bool(errors)
        and not any(error.get("path") for error in errors or ())
    )


def _public_schema(settings: Settings, viewer: Viewer) -> bool:
    """Whether errors may suggest names ("Did you mean ...") and the schema be read."""
    return settings.gateway_dev_mode or isinstance(viewer, Operator)


def _document_order(error: Mapping[str, Any]) -> tuple[Any, ...]:
    """Where an error belongs in the document: its first location, then its path, a
    list index before a field name where the two meet."""
    locations = error.get("locations") or _NOWHERE
    path = tuple(
        (0, step, "") if isinstance(step, int) else (1, 0, step) for step in error.get("path") or ()
    )
    return (locations[0]["line"], locations[0]["column"], path)


def _plain_order(error: Mapping[str, Any]) -> tuple[Any, ...]:
    """``_document_order`` with the path as it is: the same order wherever two paths
    compare at all (an index with an index, a name with a name), without a tuple per
    step; where an index meets a name, comparing raises ``TypeError``."""
    locations = error.get("locations") or _NOWHERE
    return (locations[0]["line"], locations[0]["column"], error.get("path") or _NO_PATH)


def in_document_order(errors: list[dict[str, Any]]) -> None:
    """Sort ``errors`` by ``_document_order``: by the plain paths when they all compare,
    else (the list as it was: a sort that raises leaves it part sorted) by steps."""
    try:
        errors[:] = sorted(errors, key=_plain_order)
    except TypeError:  # a list index and a field name at one step of two paths
        errors.sort(key=_document_order)


_NOWHERE = ({"line": 0, "column": 0},)
_NO_PATH: list[Any] = []


def _span_attributes(context: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """What an operation's span says of it: names and counts, nothing a client sent."""
    attributes: dict[str, Any] = {
        "graphql.operation.name": operation_label(context.report.operation_name),
        "graphql.outcome": _outcome(body),
        "graphql.errors": len(body.get("errors", ())),
        "viewer.kind": context.viewer.kind,
    }
    if context.report.cost is not None:
        attributes["graphql.cost"] = context.report.cost
    return attributes


def _outcome(body: Mapping[str, Any]) -> str:
    """ok, partial (data and errors), refused (a request error: nothing ran) or failed."""
    if "errors" not in body:
        return "ok"
    if body.get("data") is not None:
        return "partial"
    return "refused" if _status(body, GRAPHQL_RESPONSE) != 200 else "failed"


def _status(body: Mapping[str, Any], media_type: str) -> int:
    """200, but a refusal's own status; with the GraphQL response type, every request
    error is a 4xx (GraphQL over HTTP), and ``application/json`` stays as it was."""
    errors = body.get("errors")
    if body.get("data") is None and errors:
        code = str((errors[0].get("extensions") or {}).get("code"))
        if media_type == GRAPHQL_RESPONSE and _request_error(body):
            return REFUSAL_STATUS.get(code, 400)
        return REFUSAL_STATUS.get(code, 200)
    return 200


class GraphQLView:
    """``/graphql``: GraphiQL for browsers in dev mode, GraphQL over GET and POST."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._deadlines = Deadlines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime: Runtime = request.app.state.runtime
        settings = runtime.settings
        method: str = scope["method"]
        if method not in ("GET", "POST"):
            await send_error(
                send,
                405,
                "METHOD_NOT_ALLOWED",
                "GraphQL is served over GET and POST.",
                headers=[("allow", "GET, POST")],
            )
            return
        headers = RequestHeaders(scope)
        if method == "GET" and _wants_ide(request, headers.accept):
            if settings.gateway_dev_mode:
                owned = await example_uscc(request.app)
                page = ide_page(dev_tokens(settings, owned))
                await HTMLResponse(page, headers={"cache-control": "no-store"})(
                    scope, receive, send
                )
            else:
                await send_error(send, 404, "NOT_FOUND", "GraphiQL is served in dev mode only.")
            return
        media_type = negotiate(headers.accept)
        if media_type is None:
            await send_error(
                send,
                406,
                "NOT_ACCEPTABLE",
                f"Answers are {GRAPHQL_RESPONSE} or {JSON}; the Accept header allows neither.",
            )
            return
        content_type = _content_type(media_type)
        try:
            operation = await read_operation(request, settings, headers)
            viewer = await runtime.authenticator.authenticate(headers.authorization)
            operation = await runtime.persisted.resolve(operation, viewer)
        except RequestRefused as refused:
            await send_error(
                send, refused.status, refused.code, refused.message, media_type=content_type
            )
            return
        except TokenError as exc:
            await _unauthorized(send, str(exc), content_type)
            return
        except PersistedNotFound:
            # Apollo's protocol: HTTP 200, and the client sends the document with the hash.
            await send_error(
                send,
                200,
                "PERSISTED_QUERY_NOT_FOUND",
                "PersistedQueryNotFound",
                headers=[("cache-control", "private, no-cache, must-revalidate")],
                media_type=content_type,
            )
            return
        response = await self._execute(request, runtime, viewer, operation, media_type)
        await response(scope, receive, send)

    async def _execute(
        self,
        request: Request,
        runtime: Runtime,
        viewer: Viewer,
        operation: Operation,
        media_type: str,
    ) -> _Answer:
        settings = runtime.settings
        method: str = request.scope["method"]
        state = request.scope.get("state", {})
        request_id: str = state.get("request_id", "-")
        deadline_s = settings.request_deadline_ms / 1000
        context = request_context(
            runtime,
            viewer,
            request_id=request_id,
            http_method=method,
            client_address=state.get("client_address", "-"),
        )
        audit = context.audit
        allowed = _POST_RUNS if method == "POST" else _GET_RUNS
        started = time.perf_counter()

        def observed(outcome: str, errors: Any) -> None:
            # The operation's name as its document gives it, else as the request did.
            name = context.report.operation_name or operation.operation_name
            observe_operation(name, outcome, time.perf_counter() - started, errors)

        task: Any = asyncio.current_task()
        tick = self._deadlines.watch(task, deadline_s + _DEADLINE_GRACE_S)
        try:
            with span("graphql.operation") as current:
                body = await self.engine.run(
                    operation.query,
                    operation.variables,
                    operation.operation_name,
                    context,
                    allowed,
                    operation.extensions,
                )
                if current is not None:
                    current.set_attributes(_span_attributes(context, body))
        except asyncio.CancelledError:
            if not self._deadlines.expired(task):
                raise
            observed("failed", [{"extensions": {"code": ErrorCode.TIMEOUT.value}}])
            return _error_response(
                503,
                ErrorCode.TIMEOUT.value,
                "The request ran out of time; retry shortly.",
                media_type,
            )
        except OperationRefused as refused:
            observed("refused", [{"extensions": {"code": refused.code}}])
            return _error_response(refused.status, refused.code, refused.message, media_type)
        finally:
            self._deadlines.forget(task, tick)
        if context.report.allowance is not None and context.report.allowance.allowed:
            await runtime.persisted.register(operation)  # validated and paid for
        if audit:
            await record_or_withhold(runtime, audit, body)
        observed(_outcome(body), body.get("errors", ()))
        if len(body.get("errors", ())) > 1:
            # Raised in whatever order fields finished; sent in document order, so the
            # same request always gets the same bytes.
            in_document_order(body["errors"])
        if not _public_schema(settings, viewer):
            for error in body.get("errors", ()):
                if "Did you mean" in error["message"]:  # the search only where it finds
                    error["message"] = _SUGGESTION.sub("", error["message"])
        status = _status(body, media_type)
        if status != 200:
            body.pop("data", None)  # refused before execution: nothing was executed
        headers = {}
        allowance = context.report.allowance
        if allowance is not None:
            headers.update(allowance.headers())
        if method == "GET":
            shareable = context.report.public and "errors" not in body
            headers["cache-control"] = (
                f"public, max-age={settings.cache_max_age_seconds}"
                if shareable
                else "private, no-store"
            )
        return _Answer(orjson.dumps(body), status, headers, _content_type(media_type))


async def record_or_withhold(runtime: Runtime, audit: AuditTrail, body: dict[str, Any]) -> None:
    """No sensitive value leaves without its record: the trail is written before the
    response (or a subscription's event), and if it cannot be, each sensitive value is
    withheld (null, with AUDIT_UNAVAILABLE at its path) and the rest is served. The
    trail is emptied for the next event."""
    data = body.get("data")
    audit.served(data)
    if not audit:
        return
    timeout_s = runtime.settings.audit_timeout_ms / 1000
    records, paths = audit.records(), audit.paths
    audit.clear()
    if await record_reads(runtime.sources, records, timeout_s):
        return
    withheld: list[tuple[str | int, ...]] = []
    errors = body.setdefault("errors", [])
    for path in paths:
        if any(path[: len(done)] == done for done in withheld):
            continue  # inside a value already withheld
        parent = data
        for key in path[:-1]:
            parent = parent[key]  # type: ignore[index]
        parent[path[-1]] = None  # type: ignore[index]
        withheld.append(path)
        errors.append(
            {
                "message": "Withheld: the audit trail could not record this read; retry shortly.",
                "path": list(path),
                "extensions": {"code": ErrorCode.AUDIT_UNAVAILABLE.value},
            }
        )


def request_context(
    runtime: Runtime,
    viewer: Viewer,
    *,
    request_id: str,
    http_method: str,
    client_address: str,
) -> Context:
    """What every resolver of one request sees: the viewer, fresh loaders bounded by
    the request's deadline, an empty audit trail and decision cache."""
    deadline_s = runtime.settings.request_deadline_ms / 1000
    return Context(
        viewer=viewer,
        loaders=create_loaders(
            runtime.sources, runtime.cache, deadline=time.monotonic() + deadline_s
        ),
        settings=runtime.settings,
        request_id=request_id,
        audit=AuditTrail(viewer, request_id),
        sources=runtime.sources,
        cache=runtime.cache,
        limits=runtime.limits,
        cursor_key=runtime.cursor_key,
        http_method=http_method,
        client_address=client_address,
        notifications=runtime.notifications,
    )


class _Answer:
    """A response of bytes: the two messages Starlette's ``Response`` sends for it (the
    headers given, then content-length and content-type), without building its header
    objects on the way."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: bytes, status: int, headers: Mapping[str, str], content_type: str
    ) -> None:
        self.body = body
        self.status = status
        self.headers = [
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", content_type.encode("latin-1")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def _error_response(status: int, code: str, message: str, media_type: str) -> _Answer:
    return _Answer(error_body(code, message), status, {}, _content_type(media_type))


async def _unauthorized(send: Send, reason: str, content_type: str) -> None:
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
        media_type=content_type,
    )
