"""Limits: what one operation may be, and what each client may spend per window.

The operation budget (tokens, depth, aliases, root fields, directives, operations per
document, cost per viewer kind) is checked by resolvers/limits/ before anything
executes. Rate limits spend an operation's cost in a sliding window per client, on
the `limits` library: kept in Redis, so every worker and replica shares them; when
Redis fails, counted in this process's memory instead (still a limit, per worker
rather than global), never not at all. The charges of requests that arrive together
go to Redis together: the library's own script for each, one pipeline per turn of the
event loop (``_Charges``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from limits import RateLimitItem, parse, parse_many
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import NoScriptError

from gateway.cache import DocumentCache
from gateway.settings import Settings
from gateway.viewer import Anonymous, ServiceClient, Viewer

__all__ = ["Allowance", "Limits", "OperationBudget"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OperationBudget:
    """The largest operation each setting allows (README "Limits")."""

    tokens: int
    depth: int
    aliases: int
    root_fields: int
    directives: int
    fields: int
    operations: int
    #: Largest cost of one operation, by viewer kind.
    cost: Mapping[str, int]

    @classmethod
    def from_settings(cls, settings: Settings) -> OperationBudget:
        member = settings.cost_limit_member
        return cls(
            tokens=settings.limit_tokens,
            depth=settings.limit_depth,
            aliases=settings.limit_aliases,
            root_fields=settings.limit_root_fields,
            directives=settings.limit_directives,
            fields=settings.limit_fields,
            operations=settings.limit_operations,
            cost={
                "anonymous": settings.cost_limit_anonymous,
                "member": member,
                "owner": member,
                "service": settings.cost_limit_service,
                "operator": settings.cost_limit_operator,
            },
        )


@dataclass(frozen=True, slots=True)
class Allowance:
    """The outcome of spending an operation's cost against a client's windows."""

    allowed: bool
    #: The window that refused (when refused), else the first of the viewer's windows.
    limit: RateLimitItem | None = None
    #: Units left in the refusing window (only known, and only sent, when refused).
    remaining: int = 0
    #: Seconds until the window has room again (0 when allowed).
    retry_after: int = 0
    policies: Sequence[RateLimitItem] = field(default_factory=tuple)

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` (IETF draft) and, when refused, ``Retry-After``."""
        if self.limit is None:
            return {}
        headers = {
            "ratelimit-policy": ", ".join(
                f"{item.amount};w={item.get_expiry()}" for item in self.policies
            )
        }
        if not self.allowed:
            headers["ratelimit-limit"] = str(self.limit.amount)
            headers["ratelimit-remaining"] = str(max(self.remaining, 0))
            headers["ratelimit-reset"] = str(self.retry_after)
            headers["retry-after"] = str(self.retry_after)
        return headers


class _Charges:
    """Sliding-window charges sent to Redis together: every charge asked for in one
    turn of the event loop (the requests that arrived together) goes in one pipeline
    of the library's own script (``acquire_sliding_window``, its keys and arguments, as
    ``RedisStorage.acquire_sliding_window_entry`` sends them), instead of a round trip
    each. Its answers are the script's; a pipeline that fails fails each charge in it.
    A script Redis does not hold (a restarted server) is loaded and run again by the
    library's own call."""

    def __init__(self, storage: RedisStorage) -> None:
        bridge: Any = storage.bridge
        self._storage = storage
        self._script = bridge.lua_acquire_sliding_window
        self._prefixed = bridge.prefixed_key
        self._client = bridge.get_connection()
        self._queued: list[tuple[list[str], list[int], asyncio.Future[bool]]] | None = None
        #: Pipelines on their way (held here so none is collected before it answers).
        self._sending: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, storage: RedisStorage) -> _Charges | None:
        """Batched charges for a single server's storage on redis-py; None when the
        storage is anything else (a cluster: its keys lie on many nodes)."""
        if type(storage) is not RedisStorage or not isinstance(storage.bridge, RedispyBridge):
            return None
        return cls(storage)

    def hit(self, item: RateLimitItem, identifiers: tuple[str, str], cost: int) -> Any:
        """An awaitable of whether ``cost`` fitted in ``item``'s window (and was spent)."""
        storage = self._storage
        key = item.key_for(*identifiers)
        keys = [
            self._prefixed(storage._previous_window_key(key)),
            self._prefixed(storage._current_window_key(key)),
        ]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if self._queued is None:
            self._queued = []
            loop.call_soon(self._flush)
        self._queued.append((keys, [item.amount, item.get_expiry(), cost], future))
        return future

    def _flush(self) -> None:
        queued, self._queued = self._queued or [], None
        task = asyncio.get_running_loop().create_task(self._send(queued))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[tuple[list[str], list[int], asyncio.Future[bool]]]) -> None:
        sha = self._script.sha
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for keys, arguments, _ in queued:
                    pipe.evalsha(sha, len(keys), *keys, *arguments)
                answers = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for *_, future in queued:
                if not future.done():
                    future.set_exception(exc)
            return
        for (keys, arguments, future), answer in zip(queued, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, NoScriptError):
                try:
                    answer = await self._script(keys, arguments)  # loads it, runs it
                except Exception as exc:
                    answer = exc
                if future.done():  # its request gave up meanwhile
                    continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(bool(answer))


def _cluster_uri(redis_url: str) -> str:
    """The `limits` library's name for the cluster a node's ``redis://`` (or
    ``rediss://``) URL is in: a cluster has no database number."""
    return urlunsplit(("async+redis+cluster", urlsplit(redis_url).netloc, "", "", ""))


class Limits:
    """The operation budget and the rate limiters of one process."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str | None,
        *,
        health: DocumentCache | None = None,
        cluster: bool = False,
    ) -> None:
        self.operation = OperationBudget.from_settings(settings)
        self.verify: RateLimitItem = parse(settings.verify_rate_limit)
        self._windows = {
            "anonymous": parse_many(settings.rate_limit_anonymous),
            "member": parse_many(settings.rate_limit_member),
            "service": parse_many(settings.rate_limit_service),
        }
        self._clients = {
            client: parse_many(limit)
            for client, limit in settings.rate_limit_service_clients.items()
        }
        self._shared: SlidingWindowCounterRateLimiter | None = None
        self._storage: RedisStorage | None = None
        self._charges: _Charges | None = None
        if redis_url is not None:
            storage = self._storage = (
                # The library keeps a client's windows on one slot (a hash tag).
                RedisClusterStorage(
                    _cluster_uri(redis_url),
                    implementation="redispy",
                    socket_timeout=0.5,
                    socket_connect_timeout=0.5,
                    ssl=redis_url.startswith("rediss:"),
                )
                if cluster
                else RedisStorage(
                    f"async+{redis_url}",
                    implementation="redispy",
                    socket_timeout=0.5,
                    socket_connect_timeout=0.5,
                )
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
            self._charges = _Charges.of(storage)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        #: Whose view of Redis's health to share: a dead Redis costs no timeout here.
        self._health = health

    async def close(self) -> None:
        """Close the shared storage's connections (the library has no call for it)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

    def windows(self, viewer: Viewer) -> list[RateLimitItem]:
        """The windows a viewer's requests are counted in."""
        if isinstance(viewer, ServiceClient):
            return self._clients.get(viewer.subject, self._windows["service"])
        if isinstance(viewer, Anonymous):
            return self._windows["anonymous"]
        return self._windows["member"]

    @staticmethod
    def identity(viewer: Viewer, client_address: str) -> tuple[str, str]:
        """Who is counted: anonymous viewers by address, everyone else by subject."""
        if isinstance(viewer, Anonymous):
            return ("ip", client_address)
        return (viewer.kind, viewer.subject)

    def _limiter(self) -> SlidingWindowCounterRateLimiter:
        if self._shared is None or (self._health is not None and not self._health.available):
            return self._local
        return self._shared

    async def _call(self, method: str, *args: object, **kwargs: object) -> object:
        limiter = self._limiter()
        try:
            return await getattr(limiter, method)(*args, **kwargs)
        except Exception as exc:
            if limiter is self._local:
                raise
            self._failed(exc)
            return await getattr(self._local, method)(*args, **kwargs)

    def _failed(self, exc: Exception) -> None:
        """Redis failed a rate-limit call: say so, and let the cache's probe decide
        whether Redis is down (this call is counted in memory)."""
        log.warning("rate-limit storage failed (%s); counting in memory", type(exc).__name__)
        if self._health is not None:
            self._health.suspect("rate limit", exc)

    async def _charge(self, item: RateLimitItem, who: tuple[str, str], units: int) -> bool:
        """The limiter's ``hit``, batched with the other requests' when the shared
        storage allows it; counted in memory when Redis fails, as ``_call``."""
        charges = self._charges
        if charges is None or self._limiter() is not self._shared:
            return bool(await self._call("hit", item, *who, cost=units))
        try:
            return bool(await charges.hit(item, who, units))
        except Exception as exc:
            self._failed(exc)
            return bool(await self._local.hit(item, *who, cost=units))

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one call; False when the caller is over the limit."""
        return bool(await self._call("hit", item, *identifiers))

    async def spend(self, viewer: Viewer, client_address: str, cost: int) -> Allowance:
        """Spend ``cost`` units in each window of the viewer, in order, or refuse.

        One charge per window, sent with the other requests' (``_Charges``): the
        library's script deducts only when the cost fits.
        When a later window refuses, the earlier ones keep the charge (so a client over
        its hourly budget also spends its minute's). A zero-cost operation
        (``__typename``) counts one unit: nobody gets an unlimited stream of requests.
        """
        windows = self.windows(viewer)
        who = self.identity(viewer, client_address)
        units = max(cost, 1)
        for item in windows:
            if not await self._charge(item, who, units):
                stats: Any = await self._call("get_window_stats", item, *who)
                reset_time, remaining = stats
                return Allowance(
                    allowed=False,
                    limit=item,
                    remaining=int(remaining),
                    retry_after=max(1, math.ceil(float(reset_time) - time.time())),
                    policies=windows,
                )
        return Allowance(allowed=True, limit=windows[0], policies=windows)
