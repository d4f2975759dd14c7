"""``serve``'s HTTP protocol: a response goes out in one write, nothing reordered or lost."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import uvicorn
from redis.asyncio import Redis
from uvicorn.server import ServerState

from gateway.serving import HeldWrites, HttpProtocol
from gateway.settings import Settings
from tests.conftest import live
from tests.test_archive import HANGZHOU


class Socket:
    """What a transport was asked, in order (the real one under ``HeldWrites``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(("writelines", b"".join(lines)))

    def is_closing(self) -> bool:
        self.calls.append(("is_closing", None))
        return self.closing

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        self.calls.append(("pause_reading", None))

    def resume_reading(self) -> None:
        self.calls.append(("resume_reading", None))


def held(socket: Socket) -> HeldWrites:
    return HeldWrites(cast(asyncio.Transport, socket), asyncio.get_running_loop())


async def test_writes_of_one_tick_go_out_as_one() -> None:
    socket = Socket()
    transport = held(socket)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(b'{"data":{}}')
    assert socket.calls == []
    await asyncio.sleep(0)  # the end of the tick
    assert socket.calls == [("write", b'HTTP/1.1 200 OK\r\n\r\n{"data":{}}')]
    await asyncio.sleep(0)
    assert socket.calls == [("write", b'HTTP/1.1 200 OK\r\n\r\n{"data":{}}')]


async def test_anything_else_asked_of_the_transport_sends_what_is_held_first() -> None:
    socket = Socket()
    transport = held(socket)
    transport.write(b"head ")
    transport.write(b"body")
    assert transport.is_closing() is False
    transport.write(b"more")
    transport.writelines([b"a", b"b"])
    transport.write(b"last")
    transport.close()
    assert socket.calls == [
        ("write", b"head body"),
        ("is_closing", None),
        ("write", b"more"),
        ("writelines", b"ab"),
        ("write", b"last"),
        ("close", None),
    ]
    await asyncio.sleep(0)  # the tick's flush finds nothing left to send
    assert len(socket.calls) == 6


async def test_a_buffer_changed_after_its_write_is_sent_as_it_was_written() -> None:
    socket = Socket()
    transport = held(socket)
    buffer = bytearray(b"abc")
    transport.write(buffer)
    buffer[:] = b"xyz"
    await asyncio.sleep(0)
    assert socket.calls == [("write", b"abc")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = b'{"data":{"ok":true}}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def test_uvicorn_sends_each_response_in_one_write_over_a_kept_connection() -> None:
    config = uvicorn.Config(app, http=HttpProtocol, log_level="warning", lifespan="off")
    config.load()
    protocol = HttpProtocol(config, ServerState(), app_state={})
    socket = Socket()
    protocol.connection_made(cast(asyncio.Transport, socket))
    for _ in range(2):  # two requests, one connection
        before = len(socket.calls)
        protocol.data_received(b"GET /graphql HTTP/1.1\r\nhost: gateway\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        writes = [data for call, data in socket.calls[before:] if call == "write"]
        assert len(writes) == 1
        head, body = writes[0].split(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
        assert b"content-length: 20" in head.split(b"\r\n")
        assert body == b'{"data":{"ok":true}}'
    assert ("close", None) not in socket.calls
    protocol.connection_lost(None)


async def test_serve_believes_x_forwarded_for_only_from_the_trusted_proxies(
    settings: Settings, seeded: list[str], redis: Redis
) -> None:
    """Stock uvicorn believes X-Forwarded-For from a loopback peer; ``serve`` leaves the
    header to admission, which believes it only from ``TRUSTED_PROXIES`` (none here):
    claiming other addresses buys a loopback client no budget of theirs."""
    budget = "LIMITS:{LIMITER/ip/127.0.0.1/25/1/minute}"
    await redis.delete(budget)
    limited = settings.model_copy(
        update={"rate_limit_anonymous": "25/minute", "trusted_proxies": []}
    )
    query = {
        "query": "query($u: USCC!) { enterprise(uscc: $u) { name } }",
        "variables": {"u": HANGZHOU},
    }
    try:
        async with live(limited) as address, httpx.AsyncClient() as client:
            codes = [
                (
                    await client.post(
                        f"http://{address}/graphql",
                        json=query,
                        headers={"x-forwarded-for": f"198.51.100.{hop}"},
                    )
                ).status_code
                for hop in range(3)
            ]
    finally:
        await redis.delete(budget)
    assert codes == [200, 200, 429]  # 10 units each, one budget of 25: the peer's
