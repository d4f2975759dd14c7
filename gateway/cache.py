"""The Redis document cache: bytes in, bytes out, and never fatal.

It holds source documents (encoded by the loaders), never responses, so an entry does
not depend on who asked. Any Redis failure degrades to "every key missed": the caller
goes to MongoDB. After a failure Redis is left alone for ``retry_after_s`` so a dead
cache costs one timeout per interval, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["DocumentCache"]

log = logging.getLogger(__name__)


class DocumentCache:
    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: int,
        retry_after_s: float = 5.0,
    ) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._retry_after_s = retry_after_s
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, *, ttl_seconds: int, timeout_s: float = 0.5) -> DocumentCache:
        redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        return cls(redis, ttl_seconds=ttl_seconds)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, operation: str, exc: RedisError) -> None:
        if self.available:
            log.warning(
                "redis %s failed (%s); serving from MongoDB for %.0fs",
                operation,
                type(exc).__name__,
                self._retry_after_s,
            )
        self._down_until = time.monotonic() + self._retry_after_s

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached values of ``keys`` that are present, in one MGET."""
        if not keys or not self.available:
            return {}
        try:
            values = await self._redis.mget(keys)
        except RedisError as exc:
            self._failed("MGET", exc)
            return {}
        return {
            key: value
            for key, value in zip(keys, values, strict=True)
            if isinstance(value, bytes)  # None: a miss (the client never decodes)
        }

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        """Write back with the TTL, in one pipelined round trip."""
        if not items or not self.available:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self._ttl)
                await pipe.execute()
        except RedisError as exc:
            self._failed("SET", exc)

    async def ping(self) -> str | None:
        """``None`` when Redis answers, else the error text (used by /readyz)."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            return type(exc).__name__
        return None

    async def close(self) -> None:
        await self._redis.aclose()
