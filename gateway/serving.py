"""How ``serve`` speaks HTTP: uvicorn's httptools protocol, each response sent in one write.

uvicorn writes a response's status line and headers to the socket as soon as the
application starts the response, and its body in a second write: two ``send`` system
calls, and two TCP segments the client reads apart, for every small answer the gateway
gives. Here the connection's writes are held until the end of the event loop's tick, or
until anything else is asked of the transport (uvicorn asks whether it is closing as
soon as the body is written), and then go out together. Nothing is reordered or lost:
every other use of the transport, closing it included, sends what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeldWrites", "HttpProtocol", "uvicorn_options"]


class HeldWrites:
    """A transport whose writes are joined until the end of the tick (see above)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        """Send what is held, in one write."""
        held = self._held
        if held:
            self._held = []
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        """Anything else (``is_closing``, ``writelines``, ``set_protocol``, ...) is the
        transport's own, asked only once what is held has been sent."""
        self.flush()
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over ``HeldWrites``: ``uvicorn.run(http=HttpProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, HeldWrites(transport, self.loop)))


def uvicorn_options() -> dict[str, Any]:
    """How ``serve`` runs uvicorn, host, port and log level aside (the suite's live
    server runs it so too).

    uvicorn's own proxy handling is off: by default it believes ``X-Forwarded-For``
    from a loopback peer and rewrites the client's address before the gateway sees it,
    which would make a hop nobody listed in ``TRUSTED_PROXIES`` decide whose budget a
    request spends. Admission alone reads that header, from the proxies listed there
    (gateway/admission.py ``client_address``)."""
    return {
        "loop": "uvloop",
        "http": HttpProtocol,  # httptools, each response in one write
        "proxy_headers": False,
        "access_log": False,  # gateway/accesslog.py logs requests without query strings
        "log_config": None,  # uvicorn's loggers go through ours (request ids, JSON)
    }
