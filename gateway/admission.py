"""The outermost layer of every HTTP request: what must hold whatever comes after.

- Every response carries ``x-request-id`` (the caller's, if well-formed, else a new one).
- A header block over ``LIMIT_HEADER_BYTES`` is refused (431) before any work.
- At most ``MAX_IN_FLIGHT`` GraphQL requests run in one worker; one more is answered
  503 at once, with ``Retry-After``, instead of queueing behind the others. Health
  endpoints are never counted, so ``/healthz`` answers while the worker is saturated.
- An exception nobody handled becomes a GraphQL-shaped 500 ``INTERNAL_SERVER_ERROR``
  naming the request id, with one log line (and the traceback); never internals.
- The client's address: the peer, or, when the peer is a trusted proxy, the nearest
  untrusted hop of ``X-Forwarded-For``.
- When the request is over, its access-log line and metrics (gateway/accesslog.py),
  from the same wrapper of ``send`` that tags the answer.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import re
import time
from collections.abc import Iterable, Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.accesslog import log_request
from gateway.logs import REQUEST_ID

__all__ = ["Admission", "error_body", "send_error"]

log = logging.getLogger("integrity_gateway.errors")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
#: Makes request ids; seeded from the system, again in a forked worker.
_IDS = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _IDS.seed(os.urandom(32)))
#: Routes counted against the in-flight cap.
_ADMITTED = ("/graphql",)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def error_body(code: str, message: str, **extensions: object) -> bytes:
    """A GraphQL-shaped body with one error and no data."""
    return orjson.dumps(
        {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    )


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    media_type: str = "application/json",
    **extensions: object,
) -> None:
    body = error_body(code, message, **extensions)
    raw = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            if _REQUEST_ID.match(given):
                return given
            break
    # 128 random bits as 32 hex digits, as uuid4().hex gave; from a generator seeded by
    # the system per process, not a system call per request. An id names a request in
    # the logs and is no secret (a client may choose its own).
    return f"{_IDS.getrandbits(128):032x}"


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's IP: the peer's, unless the peer is a trusted proxy; then the
    right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    peer = scope.get("client")
    address = peer[0] if peer else "-"
    if not trusted or not in_networks(address, trusted):
        return address
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops.extend(hop.strip() for hop in value.decode("latin-1").split(","))
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return address  # a forged, malformed hop: count the proxy's peer
    return address


def networks(specs: Iterable[str]) -> list[Network]:
    """Addresses or CIDR networks, as settings give them."""
    return [ipaddress.ip_network(spec, strict=False) for spec in specs]


def in_networks(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class Admission:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        max_header_bytes: int,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_header_bytes = max_header_bytes
        self.trusted = networks(trusted_proxies)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = _request_id(scope)
        REQUEST_ID.set(request_id)  # every log line of this request's task carries it
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_address"] = client_address(scope, self.trusted)
        status = 0  # none yet: the answer has not begun

        tag = (b"x-request-id", request_id.encode("latin-1"))

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Appended, not set: nothing behind admission names a request id.
                message["headers"] = [*message.get("headers", ()), tag]
            await send(message)

        admitted = False
        try:
            header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if header_bytes > self.max_header_bytes:
                await send_error(
                    tagged,
                    431,
                    "HEADERS_TOO_LARGE",
                    f"The request headers take {header_bytes} bytes; at most "
                    f"{self.max_header_bytes} allowed.",
                )
                return
            if scope["path"] in _ADMITTED:
                if self.in_flight >= self.max_in_flight:
                    await send_error(
                        tagged,
                        503,
                        "OVERLOADED",
                        f"This worker is answering {self.in_flight} requests, its most; "
                        "retry shortly.",
                        headers=[("retry-after", "1")],
                    )
                    return
                admitted = True
                self.in_flight += 1
            try:
                await self.app(scope, receive, tagged)
            except Exception:
                log.exception("unhandled error (request %s)", request_id)
                if not status:
                    await send_error(
                        tagged,
                        500,
                        "INTERNAL_SERVER_ERROR",
                        f"Internal error; it has been logged with request id {request_id}.",
                        requestId=request_id,
                    )
        finally:
            if admitted:
                self.in_flight -= 1
            # The access log and its metrics; a request that never answered counts as 500.
            log_request(scope, status or 500, time.perf_counter() - began, request_id)
