"""Live notifications: one Redis pub/sub connection per process, fanned out to the
subscriptions that listen on each channel.

A notification is stored in MongoDB first (loaders/writes.py) and then its id is
published on its enterprise's channel, so every replica's subscribers hear it. Pub/sub
is fire-and-forget: a subscriber that was not connected reads the stored list instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import RedisCluster
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from gateway.cache import AnyRedis

__all__ = ["NotificationHub"]

log = logging.getLogger(__name__)

#: Messages one subscriber may have waiting before the oldest are dropped (a
#: subscriber that does not read must not hold the process's memory).
_QUEUE_LIMIT = 100
_RETRY_S = 1.0


class NotificationHub:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._listeners: dict[str, set[asyncio.Queue[str]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of the messages published on ``channel`` while the block runs."""
        queue: asyncio.Queue[str] = asyncio.Queue(_QUEUE_LIMIT)
        async with self._lock:
            listeners = self._listeners.setdefault(channel, set())
            listeners.add(queue)
            if len(listeners) == 1:
                try:
                    await self._subscribe(channel)
                except BaseException:  # failed or cancelled: not listening after all
                    listeners.discard(queue)
                    del self._listeners[channel]
                    raise
        try:
            yield queue
        finally:
            async with self._lock:
                listeners.discard(queue)
                if not listeners:
                    del self._listeners[channel]
                    await self._unsubscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            if isinstance(self._redis, RedisCluster):
                # A cluster's pub/sub picks its node from the slots map, which a
                # client builds on its first command.
                await self._redis.initialize()
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _unsubscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except RedisError as exc:
                log.info("unsubscribe from %s failed: %s", channel, type(exc).__name__)

    async def _read(self) -> None:
        while self._listeners:
            pubsub = self._pubsub
            assert pubsub is not None
            try:
                message = await pubsub.get_message(timeout=1.0)
            except RedisError as exc:
                log.warning("live notifications interrupted: %s", type(exc).__name__)
                await asyncio.sleep(_RETRY_S)
                try:
                    async with self._lock:
                        channels = list(self._listeners)
                        if channels:
                            await pubsub.subscribe(*channels)
                except RedisError:
                    pass
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            data = message["data"]
            text = data.decode() if isinstance(data, bytes) else str(data)
            for queue in list(self._listeners.get(channel, ())):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(text)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
