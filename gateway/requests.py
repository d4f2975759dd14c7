"""Reading a GraphQL request off HTTP, strictly: every refusal before any GraphQL work.

The body is counted while it is read (413), decoded strictly (400 for invalid UTF-8 or
JSON, fields of the wrong type, batches, nesting deeper than ``LIMIT_VARIABLES_DEPTH``);
a POST must be ``application/json`` (415), which also keeps cross-site form posts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Scope

from gateway.settings import Settings

__all__ = ["Operation", "RequestHeaders", "RequestRefused", "json_depth", "read_operation"]


class RequestRefused(Exception):
    """The HTTP request cannot carry a GraphQL operation; answered before any work."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class RequestHeaders:
    """The headers the GraphQL endpoint reads, found in one pass over the request's
    (Starlette's ``Headers`` searches and decodes the list anew for each name it is
    asked). The first of a repeated header counts, as Starlette's ``get`` takes it."""

    __slots__ = ("accept", "authorization", "content_length", "content_type")

    def __init__(self, scope: Scope) -> None:
        found: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _READ and name not in found:
                found[name] = value.decode("latin-1")
        get = found.get
        self.accept = get(b"accept")
        self.authorization = get(b"authorization")
        self.content_length = get(b"content-length")
        self.content_type = get(b"content-type")


#: The names ``RequestHeaders`` keeps (ASGI gives header names in lower case).
_READ = frozenset((b"accept", b"authorization", b"content-length", b"content-type"))


@dataclass(frozen=True, slots=True)
class Operation:
    """What the HTTP request asked for, before any GraphQL work."""

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


async def _read_body(request: Request, limit: int, declared: str | None) -> bytes:
    """The body, counted as it arrives; read off ``receive`` as Starlette's
    ``Request.stream`` reads it, without an asynchronous generator per request.
    ``declared``: the Content-Length header."""
    if declared is not None:
        if not declared.isdigit():
            raise RequestRefused(400, "BAD_REQUEST", "Content-Length is not a number.")
        if int(declared) > limit:
            raise _too_large(limit)
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()  # as Request.stream raises it
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if not message.get("more_body", False):
            if not chunks:
                return chunk  # the whole body in one message: mostly
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


def _too_large(limit: int) -> RequestRefused:
    return RequestRefused(
        413, "BODY_TOO_LARGE", f"The request body is larger than {limit} bytes, the most allowed."
    )


def _decode_json(raw: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(raw)  # which refuses invalid UTF-8 as well
    except orjson.JSONDecodeError:
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestRefused(
                    400, "BAD_REQUEST", f"The {what} is not valid UTF-8."
                ) from None
        raise RequestRefused(400, "BAD_REQUEST", f"The {what} is not valid JSON.") from None


#: The members of a request, the type each must have when given, and its name in words.
_MEMBERS = (
    ("query", str, "a string"),
    ("variables", dict, "an object"),
    ("operationName", str, "a string"),
    ("extensions", dict, "an object"),
)


def _brackets(raw: bytes | str) -> int:
    """How many objects and arrays the JSON text opens at most: a bound on how deeply
    anything in it nests, counted in C (brackets inside strings count too)."""
    if isinstance(raw, bytes):
        return raw.count(b"{") + raw.count(b"[")
    return raw.count("{") + raw.count("[")


def _payload(data: object, settings: Settings, nesting: int) -> Operation:
    """The operation a decoded request carries. ``nesting``: a bound on how deeply its
    members may nest (``_brackets``), under which their depth need not be walked."""
    if isinstance(data, list):
        raise RequestRefused(400, "BAD_REQUEST", "Batched operations are not supported.")
    if not isinstance(data, dict):
        raise RequestRefused(400, "BAD_REQUEST", "The request must be a JSON object.")
    for key, kind, noun in _MEMBERS:
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise RequestRefused(400, "BAD_REQUEST", f"`{key}` must be {noun} or null.")
    limit = settings.limit_variables_depth
    for key in ("variables", "extensions"):
        value = data.get(key)
        if value is None or nesting <= limit:
            continue
        depth = json_depth(value, limit)
        if depth > limit:
            raise RequestRefused(
                400,
                "VARIABLES_TOO_DEEP",
                f"`{key}` nests deeper than {limit} levels, the most allowed.",
            )
    return Operation(
        query=data.get("query"),
        variables=data.get("variables"),
        operation_name=data.get("operationName"),
        extensions=data.get("extensions"),
    )


async def read_operation(
    request: Request, settings: Settings, headers: RequestHeaders
) -> Operation:
    if request.method == "GET":
        params = request.query_params
        data: dict[str, Any] = {"query": params.get("query")}
        data["operationName"] = params.get("operationName")
        nesting = 0
        for key in ("variables", "extensions"):
            raw = params.get(key)
            data[key] = _decode_json(raw, f"`{key}` parameter") if raw else None
            if raw:
                nesting = max(nesting, _brackets(raw))
        return _payload(data, settings, nesting)
    media_type = (headers.content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        # Also what keeps cross-site "simple" requests (forms) from running operations.
        raise RequestRefused(
            415, "UNSUPPORTED_MEDIA_TYPE", "Send the operation as application/json."
        )
    body = await _read_body(request, settings.limit_body_bytes, headers.content_length)
    # The request's own object is one of the brackets: its members nest one less.
    return _payload(_decode_json(body, "request body"), settings, _brackets(body) - 1)
