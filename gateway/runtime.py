"""Everything a running gateway holds open, opened and closed in one place.

``open_runtime`` starts the embedded servers a configuration needs (no URL given),
connects the MongoDB sources and the Redis cache, and on exit closes them in
reverse order, also when start-up fails half-way.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from gateway.auth import Authenticator
from gateway.cache import DocumentCache
from gateway.embedded import EmbeddedMongo, EmbeddedRedis
from gateway.limits import Limits
from gateway.notifications import NotificationHub
from gateway.persisted import PersistedQueries, load_trusted_documents
from gateway.settings import Settings
from gateway.sources import Sources

__all__ = ["Runtime", "open_runtime", "open_sources"]


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    sources: Sources
    cache: DocumentCache
    authenticator: Authenticator
    limits: Limits
    persisted: PersistedQueries
    cursor_key: bytes
    #: Set when the sources are on the embedded server (so seeding can reach it too).
    embedded_mongodb_url: str | None
    #: Live notifications for subscriptions, on the cache's Redis.
    notifications: NotificationHub


async def _embedded_mongodb(settings: Settings, stack: AsyncExitStack) -> str | None:
    if not settings.needs_embedded_mongodb:
        return None
    server = EmbeddedMongo(settings.gateway_data_dir / "mongodb")
    await asyncio.to_thread(server.start)
    stack.push_async_callback(asyncio.to_thread, server.stop)
    return server.url


@asynccontextmanager
async def open_sources(settings: Settings, *, bulk: bool = False) -> AsyncIterator[Sources]:
    """The sources alone (for the CLI's seed): no cache, no HTTP."""
    async with AsyncExitStack() as stack:
        url = await _embedded_mongodb(settings, stack)
        sources = Sources.from_settings(settings, url, bulk=bulk)
        stack.push_async_callback(sources.close)
        yield sources


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with AsyncExitStack() as stack:
        mongodb_url = await _embedded_mongodb(settings, stack)
        sources = Sources.from_settings(settings, mongodb_url)
        stack.push_async_callback(sources.close)
        redis_url = settings.redis_url
        if redis_url is None:
            redis = EmbeddedRedis(settings.gateway_data_dir / "redis")
            await asyncio.to_thread(redis.start)
            stack.push_async_callback(asyncio.to_thread, redis.stop)
            redis_url = redis.url
        cache = DocumentCache.from_url(
            redis_url,
            ttl_seconds=settings.cache_ttl_seconds,
            miss_ttl_seconds=settings.cache_miss_ttl_seconds,
            pool_size=settings.redis_pool_size,
            pool_timeout_s=settings.redis_pool_timeout_ms / 1000,
            eviction_grace_s=settings.eviction_grace_seconds,
            cluster=settings.redis_cluster,
        )
        stack.push_async_callback(cache.close)
        limits = Limits(settings, redis_url, health=cache, cluster=settings.redis_cluster)
        stack.push_async_callback(limits.close)
        notifications = NotificationHub(cache.client)
        stack.push_async_callback(notifications.close)
        yield Runtime(
            settings=settings,
            sources=sources,
            cache=cache,
            authenticator=Authenticator.from_settings(settings),
            limits=limits,
            persisted=PersistedQueries(
                cache,
                ttl_seconds=settings.persisted_query_ttl_seconds,
                trusted=load_trusted_documents(settings.trusted_documents_file)
                if settings.trusted_documents_file is not None
                else None,
            ),
            cursor_key=(
                settings.cursor_secret.get_secret_value().encode()
                if settings.cursor_secret is not None
                else secrets.token_bytes(32)
            ),
            embedded_mongodb_url=mongodb_url,
            notifications=notifications,
        )
