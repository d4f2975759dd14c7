"""One connection to a single Redis server that carries the cache's reads, pipelined.

The cache's reads (each turn's MGET, and the rate-limit scripts that travel with it) do
not borrow a connection from redis-py's pool for each round trip: a round trip is
written on the link at once and its answers are read off it, in order, as they arrive.
Round trips of many turns are in flight on it together (Redis answers a connection's
commands in the order they came), so no read ever waits for a connection, and what
answers a round trip is a callback run as soon as its last answer is parsed: no task,
no stream reader, no timeout context per round trip. hiredis parses the answers.

A round trip that gets no answer within the read timeout fails, and with it the link
(its later answers could no longer be matched to their round trips): every round trip
still in flight fails with it, and the cache opens a new link for the next turn. Redis
closing the connection fails the round trips in flight the same way.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import (
    AuthenticationError,
    InvalidResponse,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Answered", "Link", "open_link"]

log = logging.getLogger(__name__)

#: What a round trip's sender is called with: its answers in order (a command Redis
#: refused answers with its ``ResponseError``), or the error the round trip failed with.
Answered = Callable[[list[Any] | BaseException], None]


def _reply_error(text: str) -> ResponseError:
    """An error Redis answered, as redis-py names it (the limiter loads a script it
    is told Redis does not hold)."""
    if text.startswith("NOSCRIPT "):
        return NoScriptError(text[len("NOSCRIPT ") :])
    return ResponseError(text)


class _Trip:
    __slots__ = ("answered", "answers", "count", "deadline")

    def __init__(self, count: int, answered: Answered, deadline: float) -> None:
        self.count = count
        self.answered = answered
        self.deadline = deadline
        self.answers: list[Any] = []


class Link(asyncio.Protocol):
    """The protocol of one connection: round trips in, answers out, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=_reply_error)
        self._trips: deque[_Trip] = deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Why the link can carry no more round trips (None while it can).
        self.failed: BaseException | None = None

    @property
    def usable(self) -> bool:
        return self.failed is None and self._transport is not None

    def send(self, packed: bytes, count: int, answered: Answered) -> None:
        """Write a round trip of ``count`` commands (``packed``); ``answered`` is
        called once, with their answers or with the error the round trip failed with."""
        if self.failed is not None or self._transport is None:
            answered(self.failed or RedisConnectionError("The Redis link is not open."))
            return
        trip = _Trip(count, answered, self._loop.time() + self._timeout_s)
        self._trips.append(trip)
        self._transport.write(packed)
        if self._timer is None:
            self._timer = self._loop.call_at(trip.deadline, self._expire)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        trips = self._trips
        try:
            while trips:
                trip = trips[0]
                answers, count = trip.answers, trip.count
                while len(answers) < count:
                    answer = reader.gets()
                    if answer is False:
                        return
                    answers.append(answer)
                trips.popleft()
                try:
                    trip.answered(answers)
                except Exception:  # the sender's own failure: the link goes on
                    log.exception("a Redis round trip's answer could not be given")
            if reader.gets() is not False:  # an answer no round trip asked for
                raise InvalidResponse("Redis answered a command that was not sent")
        except InvalidResponse as exc:
            self.fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis closed the connection ({exc or 'EOF'})."))

    def _expire(self) -> None:
        self._timer = None
        trips = self._trips
        if not trips:
            return
        deadline = trips[0].deadline
        if deadline <= self._loop.time():
            self.fail(RedisTimeoutError("Timeout reading from Redis."))
        else:
            self._timer = self._loop.call_at(deadline, self._expire)

    def fail(self, error: BaseException) -> None:
        """Close the link: every round trip still in flight fails with ``error``."""
        if self.failed is None:
            self.failed = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()
        trips = self._trips
        while trips:
            try:
                trips.popleft().answered(error)
            except Exception:
                log.exception("a Redis round trip's failure could not be given")


async def open_link(
    connection_class: type[Any], options: Mapping[str, Any], timeout_s: float
) -> Link:
    """A link to the server a redis-py pool connects to (its ``connection_class`` and
    ``connection_kwargs``: host and port or a socket path, TLS, credentials, database,
    client name), authenticated and on its database. Raises ``RedisError``."""
    loop = asyncio.get_running_loop()
    connect_timeout = options.get("socket_connect_timeout") or timeout_s
    link: Link | None = None
    try:
        async with asyncio.timeout(connect_timeout):
            if issubclass(connection_class, UnixDomainSocketConnection):
                transport, link = await loop.create_unix_connection(
                    lambda: Link(loop, timeout_s), path=options["path"]
                )
            else:
                tls = None
                if issubclass(connection_class, SSLConnection):
                    tls = connection_class(**options).ssl_context.get()
                transport, link = await loop.create_connection(
                    lambda: Link(loop, timeout_s),
                    options.get("host", "localhost"),
                    options.get("port", 6379),
                    ssl=tls,
                )
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            setup = await _setup(options)
            if setup:
                answered: asyncio.Future[list[Any] | BaseException] = loop.create_future()

                def give(result: list[Any] | BaseException) -> None:
                    if not answered.done():  # (a wait given up: the link fails the trip)
                        answered.set_result(result)

                link.send(
                    b"".join(hiredis.pack_command(command) for command in setup),
                    len(setup),
                    give,
                )
                answers = await answered
                if isinstance(answers, BaseException):
                    raise answers
                for command, answer in zip(setup, answers, strict=True):
                    if isinstance(answer, ResponseError):
                        if command[0] == "AUTH":
                            raise AuthenticationError(str(answer))
                        raise answer
    except BaseException as exc:
        if link is not None:
            link.fail(RedisConnectionError("The link was not set up."))
        if isinstance(exc, TimeoutError):
            raise RedisTimeoutError("Timeout connecting to Redis.") from None
        if isinstance(exc, OSError):
            raise RedisConnectionError(f"Error connecting to Redis: {exc}") from exc
        raise
    return link


async def _setup(options: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The commands that make a new connection the pool's: AUTH, CLIENT SETNAME, SELECT."""
    commands: list[tuple[Any, ...]] = []
    provider = options.get("credential_provider")
    if provider is not None:
        credentials = tuple(await provider.get_credentials_async())
    else:
        username, password = options.get("username"), options.get("password")
        credentials = (username, password) if username else (password,) if password else ()
    if credentials:
        commands.append(("AUTH", *credentials))
    if options.get("client_name"):
        commands.append(("CLIENT", "SETNAME", options["client_name"]))
    if options.get("db"):
        commands.append(("SELECT", int(options["db"])))
    return commands
