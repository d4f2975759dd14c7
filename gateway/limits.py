"""Rate limits on the `limits` library: a moving window per client, kept in Redis.

When Redis fails, counting falls back to this process's memory (still a limit, per
worker instead of global) rather than failing open or failing every request.
"""

from __future__ import annotations

import logging

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

__all__ = ["RateLimits"]

log = logging.getLogger(__name__)


class RateLimits:
    def __init__(self, redis_url: str, *, verify: str) -> None:
        self.verify: RateLimitItem = parse(verify)
        storage = RedisStorage(
            f"async+{redis_url}",
            implementation="redispy",
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        self._shared = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one call; False when the caller is over the limit."""
        try:
            return await self._shared.hit(item, *identifiers)
        except Exception as exc:
            log.warning("rate-limit storage failed (%s); counting in memory", type(exc).__name__)
            return await self._local.hit(item, *identifiers)
