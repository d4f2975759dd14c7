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

__all__ = ["HeldWrites", "HttpProtocol"]


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
