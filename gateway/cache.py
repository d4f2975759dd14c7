"""The Redis document cache: bytes in, bytes out, and never fatal.

It holds source documents (encoded by the loaders), never responses, so an entry does
not depend on who asked. Any failed call degrades to "every key missed" for that call:
the caller goes to MongoDB.

A failed call is not taken for a dead Redis. A busy pool (every connection lent out)
makes a request wait, bounded, for a connection; a timeout can mean that Redis is gone
or only that this process's event loop was too late to read an answer that had
arrived. So a failure only *suspects* Redis: one probe, on a connection of its own,
asks Redis with a generous timeout, and only when the probe fails too is Redis left
alone for ``retry_after_s`` (a dead cache then costs one probe per interval, not one
timeout per request).

On a Redis Cluster (``from_url(cluster=True)``) the keys of one MGET lie on many slots:
it is sent as one MGET per slot, pipelined to each node at once (one round trip per
node, in parallel). A cluster client opens connections per node and fails, rather than
waits, when one node's are all lent out, so here at most ``pool_size`` commands are in
flight per process and a request waits (bounded) for its turn instead.

Eviction (writes through the gateway, and the change-stream watcher) leaves a
*tombstone* for a short grace, not a gap: an empty value that reads as a miss, and that
write-backs, which only ever add (``SET NX``), cannot replace. A request that read the
old document before the write and writes it back after the eviction is then refused,
as long as the grace outlasts a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any

from hiredis import pack_command
from opentelemetry.trace import SpanKind
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, RedisError

from gateway.metrics import CACHE_READS
from gateway.redislink import Link, open_link
from gateway.tracing import begun, span

__all__ = ["TOMBSTONE", "AnyRedis", "DocumentCache", "ScriptCall"]

log = logging.getLogger(__name__)

#: Keys one shared MGET may carry before the next call starts a batch of its own.
_MAX_BATCH_KEYS = 2000
#: What a read finds when there is nothing to read, or Redis is given up on.
_NOTHING: Mapping[str, bytes | None] = MappingProxyType({})
#: What an evicted key holds until its grace runs out: read as a miss.
TOMBSTONE = b""
#: Keys one eviction command carries.
_EVICT_CHUNK = 500
#: One Redis server, or a Redis Cluster.
AnyRedis = Redis | RedisCluster


#: A script's call: its SHA1, its keys, its arguments.
ScriptCall = tuple[str, Sequence[str], Sequence[Any]]


class _Batch:
    """The keys asked for in one turn of the event loop, and who waits for them; and
    the scripts asked to run in that turn (``run_script``), sent in the same round trip."""

    __slots__ = ("keys", "scripts", "waiters")

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        #: One future per ``get_many`` call: the values found.
        self.waiters: list[asyncio.Future[dict[str, bytes]]] = []
        #: (what builds the script's call, what is called with its answer)
        self.scripts: list[tuple[Callable[[], ScriptCall], Callable[[Any], None]]] = []


class _Trip:
    """A batch's round trip on the link: sent again once, on a new link, when the
    link it went out on was closed under it (Redis restarted, or closed it)."""

    __slots__ = ("batch", "cache", "count", "keys", "packed", "resent", "span")

    def __init__(
        self, cache: DocumentCache, batch: _Batch, keys: list[str], packed: bytes, count: int
    ) -> None:
        self.cache = cache
        self.batch = batch
        self.keys = keys
        self.packed = packed
        self.count = count
        self.resent = False
        self.span = begun("redis MGET", _redis_attributes("MGET", len(keys)), kind=SpanKind.CLIENT)

    def answered(self, answers: list[Any] | BaseException) -> None:
        cache = self.cache
        if (
            type(answers) is RedisConnectionError  # a closed link, not a timeout or refusal
            and not self.resent
            and not cache._closed
        ):
            self.resent = True
            cache._start(cache._send_on_new_link(self))
            return
        self.settle(answers)

    def settle(self, answers: list[Any] | BaseException) -> None:
        if self.span is not None:
            self.span.end()
        self.cache._settle(self.batch, self.keys, answers)


class DocumentCache:
    def __init__(
        self,
        redis: AnyRedis,
        *,
        ttl_seconds: int,
        miss_ttl_seconds: int | None = None,
        probe: AnyRedis | None = None,
        retry_after_s: float = 5.0,
        probe_timeout_s: float = 2.0,
        eviction_grace_s: int = 30,
        in_flight: int | None = None,
        in_flight_wait_s: float = 1.0,
        timeout_s: float = 0.5,
    ) -> None:
        """``in_flight``: at most this many commands at once (a cluster client's pools
        do not wait), a command waiting at most ``in_flight_wait_s`` for its turn.
        ``timeout_s``: the longest a read's round trip waits for its answers."""
        self._redis = redis
        self._cluster = isinstance(redis, RedisCluster)
        self._turns = asyncio.Semaphore(in_flight) if in_flight is not None else None
        self._turn_wait_s = in_flight_wait_s
        self._probe = probe or redis
        self._ttl = ttl_seconds
        self._miss_ttl = miss_ttl_seconds or ttl_seconds
        self._retry_after_s = retry_after_s
        self._probe_timeout_s = probe_timeout_s
        self._eviction_grace_s = eviction_grace_s
        self._down_until = 0.0
        self._probing: asyncio.Task[None] | None = None
        self._batch: _Batch | None = None
        self._timeout_s = timeout_s
        #: The connection the reads travel on (gateway/redislink.py), once opened.
        self._link: Link | None = None
        self._opening: asyncio.Task[Link] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl_seconds: int,
        miss_ttl_seconds: int | None = None,
        timeout_s: float = 0.5,
        pool_size: int = 64,
        pool_timeout_s: float = 1.0,
        eviction_grace_s: int = 30,
        cluster: bool = False,
    ) -> DocumentCache:
        if cluster:
            return cls(
                # Per node; the turns keep this process's commands within it (with
                # room for the notifications' subscription).
                RedisCluster.from_url(
                    url,
                    max_connections=pool_size + 2,
                    socket_timeout=timeout_s,
                    socket_connect_timeout=timeout_s,
                    health_check_interval=30,
                ),
                ttl_seconds=ttl_seconds,
                miss_ttl_seconds=miss_ttl_seconds,
                probe=RedisCluster.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0),
                eviction_grace_s=eviction_grace_s,
                in_flight=pool_size,
                in_flight_wait_s=pool_timeout_s,
            )
        # A blocking pool: when every connection is lent out a request waits (at most
        # pool_timeout_s) for one instead of failing, so load never looks like an outage.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=pool_timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        probe = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(
            Redis.from_pool(pool),  # owns the pool: closing the client closes it
            ttl_seconds=ttl_seconds,
            miss_ttl_seconds=miss_ttl_seconds,
            probe=probe,
            eviction_grace_s=eviction_grace_s,
            timeout_s=timeout_s,
        )

    @property
    def cluster(self) -> bool:
        """Whether this is a Redis Cluster (whose MGETs are split by slot)."""
        return self._cluster

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def suspect(self, operation: str, exc: Exception) -> None:
        """One call failed: this call misses; a probe decides whether Redis is down."""
        log.info("redis %s failed (%s); probing", operation, type(exc).__name__)
        if self._probing is None or self._probing.done():
            self._probing = asyncio.get_running_loop().create_task(self._confirm(operation))

    async def _confirm(self, operation: str) -> None:
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self._probe.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self._retry_after_s
            log.warning(
                "redis %s failed and a probe failed too (%s); serving from MongoDB for %.0fs",
                operation,
                type(exc).__name__,
                self._retry_after_s,
            )

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached values of ``keys`` that are present (a tombstone is absent).

        Every call made in the same turn of the event loop shares one MGET: the loaders
        of a request dispatch their batches together (aiodataloader schedules them on
        the same tick), so a whole archive page costs one round trip per level of
        the graph, not one per loader; concurrent requests share them too.
        """
        found = await self.read_many(keys)
        return {key: value for key in keys if (value := found.get(key))}

    async def read_many(self, keys: Sequence[str]) -> Mapping[str, bytes | None]:
        """``get_many`` without its copy: what the turn's whole MGET answered, ``keys``
        among it, shared by every caller of the turn, so only looked up, never changed
        or walked. A key absent, or held as None or as an empty value (a tombstone),
        is a miss."""
        if not keys or not self.available:
            return _NOTHING
        batch = self._batch
        if batch is None or len(batch.keys) >= _MAX_BATCH_KEYS:
            batch = self._open_batch()
        batch.keys.update(dict.fromkeys(keys))
        # A future of the caller's own: a caller cancelled leaves the others theirs.
        waiter: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        return await waiter

    def run_script(self, call: Callable[[], ScriptCall], answered: Callable[[Any], None]) -> None:
        """Run a script (``EVALSHA``) in the same pipeline, and round trip, as this
        turn's MGET: the rate-limit charges travel with the reads. ``call()`` gives
        the script's SHA1, keys and arguments when the pipeline is sent, so the caller
        may add to them until then. ``answered`` is called once, as soon as the answer
        is read, with Redis's answer, or the error Redis answered (``NoScriptError``:
        the caller loads the script), or the error the round trip failed with
        (``CancelledError`` when the cache closed before it was answered). A single
        server only: on a cluster the script's keys and the MGET's lie on different
        nodes."""
        if self._cluster:
            raise TypeError("run_script needs a single Redis server, not a cluster")
        batch = self._batch
        if batch is None or len(batch.keys) >= _MAX_BATCH_KEYS:
            batch = self._open_batch()
        batch.scripts.append((call, answered))

    def _open_batch(self) -> _Batch:
        batch = self._batch = _Batch()
        asyncio.get_running_loop().call_soon(self._flush, batch)
        return batch

    def _flush(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        if self._closed:  # asked as the cache closed: nothing is sent
            self._settle(batch, [], asyncio.CancelledError())
            return
        if self._cluster:
            self._start(self._mget_cluster(batch))
            return
        keys = list(batch.keys)
        commands: list[tuple[Any, ...]] = [("MGET", *keys)] if keys else []
        try:
            for call, _ in batch.scripts:
                sha, script_keys, arguments = call()
                commands.append(("EVALSHA", sha, len(script_keys), *script_keys, *arguments))
            packed = b"".join([pack_command(command) for command in commands])
        except TypeError as exc:  # an argument hiredis cannot send, as redis-py says it
            self._settle(batch, keys, DataError(str(exc)))
            return
        except Exception as exc:  # a script's caller failed: its turn misses, none hangs
            log.exception("a Redis round trip could not be built")
            self._settle(batch, keys, RedisError(f"the round trip could not be built: {exc!r}"))
            return
        CACHE_READS.inc()
        trip = _Trip(self, batch, keys, packed, len(commands))
        link = self._link
        if link is not None and link.usable:
            link.send(packed, trip.count, trip.answered)
        else:
            self._start(self._send_on_new_link(trip))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_on_new_link(self, trip: _Trip) -> None:
        """Open the link (one opening shared by every turn that needs it) and send."""
        try:
            link = await self._linked()
        except RedisError as exc:
            trip.settle(exc)
            return
        except Exception as exc:  # not Redis's answer: still only a miss
            log.warning("could not open a link to Redis", exc_info=True)
            trip.settle(RedisConnectionError(f"could not open a link to Redis: {exc!r}"))
            return
        except BaseException:
            trip.settle(asyncio.CancelledError())
            raise
        link.send(trip.packed, trip.count, trip.answered)

    async def _linked(self) -> Link:
        link = self._link
        if link is not None and link.usable:
            return link
        opening = self._opening
        if opening is None or opening.done():
            pool = self._redis.connection_pool  # type: ignore[union-attr]  # one server's
            opening = self._opening = asyncio.get_running_loop().create_task(
                open_link(pool.connection_class, pool.connection_kwargs, self._timeout_s)
            )
            # Its failure is each waiter's to handle; one left with no waiter is not news.
            opening.add_done_callback(lambda done: done.cancelled() or done.exception())
        link = await asyncio.shield(opening)
        if self._closed:
            link.fail(asyncio.CancelledError())
            raise asyncio.CancelledError
        self._link = link
        return link

    async def _mget_cluster(self, batch: _Batch) -> None:
        keys = list(batch.keys)
        CACHE_READS.inc()
        try:
            # The span is the first asker's (a batch serves every request of the tick).
            with span("redis MGET", _redis_attributes("MGET", len(keys)), kind=SpanKind.CLIENT):
                async with self._turn():
                    values = await self._redis.mget_nonatomic(keys)  # type: ignore[union-attr]
        except RedisError as exc:
            self._settle(batch, keys, exc)
            return
        except BaseException:
            self._settle(batch, keys, asyncio.CancelledError())  # shut down mid-flight
            raise
        self._settle(batch, keys, [values])

    def _settle(self, batch: _Batch, keys: list[str], answers: list[Any] | BaseException) -> None:
        """Give each asker of the batch its answer: the MGET's values to every waiter
        (none when the round trip failed: the caller misses), each script's answer
        to its sender."""
        if isinstance(answers, asyncio.CancelledError):  # the cache closed mid-flight
            for waiter in batch.waiters:
                waiter.cancel()
            for _, answered in batch.scripts:
                answered(answers)
            return
        if isinstance(answers, BaseException):
            self.suspect("MGET", answers)  # type: ignore[arg-type]
            found: dict[str, bytes] = {}
            for _, answered in batch.scripts:
                answered(answers)
        else:
            values = answers[0] if keys else None
            for (_, answered), answer in zip(
                batch.scripts, answers[1:] if keys else answers, strict=True
            ):
                answered(answer)
            if values is None:
                found = {}
            elif isinstance(values, RedisError):  # Redis refused the MGET itself
                self.suspect("MGET", values)
                found = {}
            else:
                # None: a miss (the client never decodes); empty: a tombstone. Both are
                # kept, and read as misses (``read_many``): a dict made in one step.
                found = dict(zip(keys, values, strict=True))
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(found)

    async def set_many(
        self,
        items: Mapping[str, bytes],
        *,
        misses: Sequence[str] = (),
        ttl_seconds: int | None = None,
        replace: bool = False,
    ) -> None:
        """Write back in one pipelined round trip: documents with the TTL (or
        ``ttl_seconds``), and the keys in ``misses`` (known to have no document) with
        the shorter miss TTL, so probing for unknown keys cannot fill Redis.

        Only where a key holds nothing (``SET NX``): an entry already there is as
        fresh, and a tombstone means the document changed since it may have been read.
        ``replace``: overwrite whatever is there (entries that carry their own
        validity, such as search pages)."""
        if not items or not self.available:
            return
        short = set(misses)
        ttl = ttl_seconds or self._ttl
        try:
            with span("redis SET", _redis_attributes("SET", len(items)), kind=SpanKind.CLIENT):
                async with self._turn(), self._redis.pipeline(transaction=False) as pipe:
                    for key, value in items.items():
                        expiry = self._miss_ttl if key in short else ttl
                        pipe.set(key, value, ex=expiry, nx=not replace)
                    await pipe.execute()
        except RedisError as exc:
            self.suspect("SET", exc)

    async def evict(self, keys: Sequence[str]) -> None:
        """Replace ``keys`` by tombstones for the eviction grace: the next read of each
        goes to MongoDB, and no write-back of what was read before is kept.

        Raises ``RedisError``: a caller that could not evict must know (the watcher
        retries; a mutation fails rather than leave a stale answer behind)."""
        for start in range(0, len(keys), _EVICT_CHUNK):
            async with self._turn(), self._redis.pipeline(transaction=False) as pipe:
                for key in keys[start : start + _EVICT_CHUNK]:
                    pipe.set(key, TOMBSTONE, ex=self._eviction_grace_s)
                await pipe.execute()

    async def evict_prefix(self, prefix: str) -> int:
        """Tombstone every key that starts with ``prefix`` (a whole source, when its
        change stream cannot resume); the number of keys. Walks the key space with
        SCAN, so Redis is never blocked. Raises ``RedisError``."""
        evicted = 0
        batch: list[str] = []
        async for key in self._redis.scan_iter(match=f"{_glob_escape(prefix)}*", count=1000):
            batch.append(key.decode() if isinstance(key, bytes) else key)
            if len(batch) >= _EVICT_CHUNK:
                await self.evict(batch)
                evicted += len(batch)
                batch = []
        if batch:
            await self.evict(batch)
            evicted += len(batch)
        return evicted

    async def start(self, key: str, value: bytes) -> bytes | None:
        """``key`` := ``value`` with no TTL unless it holds one already (a marker, such
        as a generation, that concurrent callers start at once); the value it holds
        then, or None when Redis could not answer."""
        if not self.available:
            return None
        try:
            async with self._turn(), self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, value, nx=True)
                pipe.get(key)
                _, held = await pipe.execute()
        except RedisError as exc:
            self.suspect("SET", exc)
            return None
        return held if isinstance(held, bytes) and held != TOMBSTONE else None

    async def put(self, key: str, value: bytes) -> None:
        """``key`` := ``value``, no TTL. Raises ``RedisError``."""
        async with self._turn():
            await self._redis.set(key, value)

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish to a channel (live notifications). Raises ``RedisError``."""
        async with self._turn():
            # On a cluster, a node forwards what it is sent to every other node.
            await self._redis.publish(channel, message)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This process's turn to send a command (always, without a cap on commands
        in flight); waiting longer than the pool wait is a failed call."""
        if self._turns is None:
            yield
            return
        try:
            async with asyncio.timeout(self._turn_wait_s):
                await self._turns.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
        try:
            yield
        finally:
            self._turns.release()

    @property
    def client(self) -> AnyRedis:
        """The Redis client itself, for pub/sub subscriptions."""
        return self._redis

    async def ping(self) -> str | None:
        """``None`` when Redis answers, else the error text (used by /readyz)."""
        try:
            await self._probe.ping()
        except RedisError as exc:
            return type(exc).__name__
        return None

    async def close(self) -> None:
        self._closed = True
        if self._link is not None:
            self._link.fail(asyncio.CancelledError())  # the reads in flight are cancelled
        for task in (self._opening, *self._sending):
            if task is not None and not task.done():
                task.cancel()
        if self._probing is not None and not self._probing.done():
            self._probing.cancel()
        await self._redis.aclose()
        if self._probe is not self._redis:
            await self._probe.aclose()


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def _redis_attributes(operation: str, keys: int) -> dict[str, Any]:
    return {"db.system": "redis", "db.operation.name": operation, "db.operation.batch.size": keys}
