"""The one read-through batch every loader uses (DESIGN §3).

For a batch of keys: one Redis MGET; one MongoDB ``$in`` find for the misses; one
pipelined write-back with the TTL. Results are mapped by key, never by position.
A failed source puts a ``SourceUnavailableError`` in each missed key's slot, so only
the fields that needed it fail.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar, overload

import bson
import pymongo
from aiodataloader import DataLoader
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from pymongo.errors import PyMongoError

from gateway.cache import DocumentCache
from gateway.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    LOADER_BATCH,
    MONGODB_FINDS,
    SOURCE_ERRORS,
    HistogramSeries,
)
from gateway.settings import Source
from gateway.sources import Sources, admitted
from gateway.tracing import span
from loaders.contracts import contract, violation

__all__ = [
    "MISSING",
    "DeadlineExceededError",
    "Document",
    "SourceLoader",
    "SourceUnavailableError",
    "cache_key",
    "cache_prefix",
    "exact_decimal",
    "load_together",
    "pack",
    "unpack",
]

log = logging.getLogger(__name__)

Document = dict[str, Any]
#: Bump when the cached shape of documents changes, so old entries are never read.
CACHE_FORMAT = 2
_CODEC: CodecOptions[Document] = CodecOptions(tz_aware=True)


class SourceUnavailableError(Exception):
    """A source could not answer; its fields resolve to null with this code."""

    def __init__(self, source: Source) -> None:
        super().__init__(f"The {source.value} source is unavailable; try again later.")
        self.extensions = {"code": "SOURCE_UNAVAILABLE", "source": source.value}


class DeadlineExceededError(Exception):
    """The request's deadline passed before a source answered; only its fields are null."""

    def __init__(self, source: Source) -> None:
        super().__init__(
            f"The request ran out of time waiting for the {source.value} source; "
            "its fields are left null."
        )
        self.extensions = {"code": "TIMEOUT", "source": source.value}


def source_timeout(sources: Sources, deadline: float | None) -> AbstractContextManager[None]:
    """Bound the MongoDB operations inside by the source's timeout and by what is left
    of the request's deadline (``time.monotonic()``; ``None``: no deadline). pymongo's
    client-side operation timeout covers server selection, the one retry and the read
    together, so a failing source costs one timeout, not two."""
    limits = [sources.timeout_s]
    if deadline is not None:
        limits.append(max(deadline - time.monotonic(), 0.001))
    bounded = [limit for limit in limits if limit is not None]
    return pymongo.timeout(min(bounded) if bounded else None)


def source_error(source: Source, deadline: float | None) -> Exception:
    """What a failed read means: the request ran out of time, or the source is down."""
    if deadline is not None and time.monotonic() >= deadline:
        return DeadlineExceededError(source)
    return SourceUnavailableError(source)


def pack(value: Any) -> bytes:
    """A cache entry: the value (a document, a list of them, None, ...) as BSON."""
    return bson.encode({"v": value})


#: ``bson.decode`` without its Python frame (it checks the options' type and calls
#: this, the C decoder when pymongo has it): a whole archive decodes sixteen entries.
_decode: Callable[[bytes, CodecOptions[Document]], Document] = getattr(
    bson, "_bson_to_dict", lambda raw, options: bson.decode(raw, codec_options=options)
)


def unpack(raw: bytes) -> Any:
    return _decode(raw, _CODEC)["v"]


def exact_decimal(value: Any) -> Decimal:
    """A stored amount (BSON Decimal128, or a number) as a ``Decimal``, equal to what
    ``Decimal128.to_decimal`` gives, digits and exponent alike; read off its 128 bits
    in one step where bson's own walks them byte by byte (a whole archive holds some
    forty amounts). Infinities, NaNs and the rare long-significand form are left to
    bson."""
    if not isinstance(value, Decimal128):
        return Decimal(value)
    high, low = value.__getstate__()
    if high & _D128_SPECIAL == _D128_SPECIAL:
        return value.to_decimal()
    coefficient = ((high & _D128_COEFFICIENT_HIGH) << 64) | low
    if coefficient > _D128_MAX_COEFFICIENT:
        return value.to_decimal()
    exponent = ((high & _D128_EXPONENT) >> 49) - 6176
    return Decimal(f"{'-' if high & _D128_SIGN else ''}{coefficient}E{exponent}")


#: IEEE 754 decimal128, binary integer encoding, the high 64 bits: the sign; the two
#: combination bits that mark an infinity, a NaN or a long significand; the exponent
#: and the significand's top bits otherwise.
_D128_SIGN = 1 << 63
_D128_SPECIAL = 3 << 61
_D128_EXPONENT = 0x7FFF800000000000
_D128_COEFFICIENT_HIGH = 0x0001FFFFFFFFFFFF
_D128_MAX_COEFFICIENT = 10**34 - 1


def cache_key(source: Source, collection: str, key_field: str, key: Hashable) -> str:
    """Names the field too: two loaders of one collection by different keys never collide."""
    return f"{_key_prefix(source, collection, key_field)}{key}"


@functools.cache
def _key_prefix(source: Source, collection: str, key_field: str) -> str:
    """What the cache keys of one loader's documents start with (``cache_key``)."""
    return f"{cache_prefix(source, collection)}{key_field}:"


def cache_prefix(source: Source, collection: str | None = None) -> str:
    """What every cache key of a collection (or of a whole source) starts with."""
    prefix = f"ig:{CACHE_FORMAT}:{source.value}:"
    return prefix if collection is None else f"{prefix}{collection}:"


#: A key whose document (or one of whose list's documents) breaks its contract.
_BROKEN: Any = object()
#: Documents already reported as breaking their contract (logged once each).
_REPORTED: set[tuple[str, str, str]] = set()
_REPORTED_MAX = 10_000


def _report_broken(source: Source, collection: str, key: Any, wrong: str) -> None:
    """Log a document that breaks its contract, once: its key and the rule, no value."""
    seen = (source.value, collection, str(key))
    if seen in _REPORTED:
        return
    if len(_REPORTED) < _REPORTED_MAX:
        _REPORTED.add(seen)
    log.error(
        "%s.%s %s breaks its contract (%s): its fields answer SOURCE_UNAVAILABLE",
        source.value,
        collection,
        key,
        wrong,
    )


@functools.cache
def _shape(loader: Any, source: Source) -> tuple[str, HistogramSeries]:
    """What every loader of a class and source shares: its cache keys' prefix
    (``cache_key``) and the batch-size histogram of its collection."""
    prefix = _key_prefix(source, loader.collection, loader.key_field)
    return prefix, LOADER_BATCH.labels(f"{source.value}.{loader.collection}")


#: What ``SourceLoader.peek`` answers for a key that has not been loaded.
MISSING: Any = object()
T = TypeVar("T")
Owner = TypeVar("Owner")


class built_once(Generic[Owner, T]):
    """``functools.cached_property`` without its lock: on Python 3.11 every first read
    takes an RLock, and a request builds a loader on first use, some twenty of them.
    A request's loaders live on its event loop's thread, so there is nothing to lock
    against. The value is kept in the instance's ``__dict__``, where later reads find
    it without calling this."""

    def __init__(self, build: Callable[[Owner], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> built_once[Owner, T]: ...
    @overload
    def __get__(self, instance: Owner, owner: type | None = None) -> T: ...
    def __get__(self, instance: Owner | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.build(instance)
        return value


class SourceLoader(DataLoader[Hashable, Any]):
    """Documents of one (source, collection) by one key field.

    Subclasses name the source, the collection and the key field. With ``many`` the
    loader returns, per key, the list of documents whose key field equals it, in
    ``sort`` order (``[]`` when there are none); otherwise one document or ``None``.
    """

    #: Set by the class, or per instance for collections several sources share.
    source: Source
    collection: ClassVar[str]
    key_field: ClassVar[str] = "_id"
    many: ClassVar[bool] = False
    sort: ClassVar[Sequence[tuple[str, int]] | None] = None
    #: The keys come straight from clients (a USCC, an id) and may name nothing: a miss
    #: is kept only for the miss TTL, so probing for codes that exist nowhere cannot
    #: fill Redis. Other loaders are asked only about what exists; their misses (no
    #: integrity level yet) are kept like documents.
    client_keys: ClassVar[bool] = False

    def __init__(
        self,
        sources: Sources,
        cache: DocumentCache,
        *,
        source: Source | None = None,
        deadline: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``source`` picks one of several databases that share the collection's shape
        (the four platforms); otherwise the class names its source. ``deadline``
        (``time.monotonic()``) bounds every MongoDB read of the request. ``loop``: the
        running loop, when the caller has it (on Python 3.11 asking for it is a
        ``getpid`` system call).

        What ``DataLoader.__init__`` sets up, without its checks of the class (that
        ``batch_load_fn`` is a coroutine function, made once for all at import): a
        request builds up to thirty loaders."""
        self.loop = loop or asyncio.get_running_loop()
        self._cache = {}
        self._queue = []
        #: Values loaded together (``load_together``), kept as they are: a future is
        #: made for one only when a field loads it.
        self._primed: dict[Hashable, Any] = {}
        if source is not None:
            self.source = source
        #: What the cache keys of its documents start with, and its batch-size series
        #: (shared by every loader of its class and source).
        shape = _shape(self.__class__, self.source)  # type: ignore[arg-type]  # a class hashes
        self._prefix, self._batches = shape
        self._sources = sources
        self._documents = cache
        self._deadline = deadline

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.iscoroutinefunction(cls.batch_load_fn):
            raise TypeError(f"{cls.__name__}.batch_load_fn must be a coroutine function")

    @staticmethod
    def get_cache_key(key: Hashable) -> Hashable:
        """Keys are their own cache keys (``DataLoader``'s default)."""
        return key

    def peek(self, key: Hashable) -> Any:
        """The value already loaded for ``key`` (raising the error it failed with), or
        ``MISSING`` when it has not been loaded (or is still loading)."""
        value = self._primed.get(key, MISSING)
        if value is not MISSING:
            if isinstance(value, BaseException):
                raise value
            return value
        future = self._cache.get(key)
        if future is None or not future.done():
            return MISSING
        return future.result()

    def load(self, key: Hashable) -> asyncio.Future[Any]:
        """``DataLoader.load``, a value loaded together given as a done future."""
        value = self._primed.pop(key, MISSING)
        if value is not MISSING and key not in self._cache:
            future = self.loop.create_future()
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)
            self._cache[key] = future
        return super().load(key)

    def clear(self, key: Hashable) -> SourceLoader:
        """``DataLoader.clear``, a value loaded together forgotten too."""
        self._primed.pop(key, None)
        super().clear(key)
        return self

    def clear_all(self) -> SourceLoader:
        """``DataLoader.clear_all``, the values loaded together forgotten too."""
        self._primed.clear()
        super().clear_all()
        return self

    def then(self, key: Hashable, build: Callable[[Any], T]) -> Any:
        """``build(value)``: at once when a parent already loaded ``key`` (so the field
        resolves without a task of its own), else an awaitable of it (which
        graphql-core awaits). Typed ``Any`` because it is either."""
        value = self.peek(key)
        if value is not MISSING:
            return build(value)

        async def later() -> T:
            return build(await self.load(key))

        return later()

    def transform(self, doc: Document) -> Document:
        """Shape a document before it is cached or returned; by default, as stored."""
        return doc

    async def batch_load_fn(self, keys: Sequence[Hashable]) -> list[Any]:
        cache_keys = self._cache_keys(keys)
        hits = await self._documents.read_many(cache_keys)
        found, misses = self._cached(keys, hits, cache_keys)
        CACHE_HITS.inc(len(found))
        if misses:
            found.update(await self._from_source(misses))
        return [found[key] for key in keys]

    def _cache_keys(self, keys: Sequence[Hashable]) -> list[str]:
        prefix = self._prefix
        return [f"{prefix}{key}" for key in keys]

    def _cached(
        self, keys: Sequence[Hashable], hits: Mapping[str, bytes | None], cache_keys: list[str]
    ) -> tuple[dict[Hashable, Any], list[Hashable]]:
        """What Redis held of ``keys`` (decoded), and the keys it did not hold (the
        callers count the hits)."""
        self._batches.observe(len(keys))
        found: dict[Hashable, Any] = {}
        misses: list[Hashable] = []
        for key, ckey in zip(keys, cache_keys, strict=True):
            raw = hits.get(ckey)
            if not raw:  # absent, or a miss or a tombstone (``read_many``)
                misses.append(key)
            else:
                found[key] = unpack(raw)
        return found, misses

    async def _from_source(self, misses: list[Hashable]) -> dict[Hashable, Any]:
        """Each missed key's value from MongoDB (written back to Redis), or the error
        that its field will raise: the source failed, or its document breaks its
        contract. Not before the request's charge admits it (``admitted``)."""
        await admitted()
        CACHE_MISSES.inc(len(misses))
        MONGODB_FINDS.labels(self.source.value).inc()
        try:
            with source_timeout(self._sources, self._deadline):
                fetched = await self._fetch(misses)
        except PyMongoError as exc:
            SOURCE_ERRORS.labels(self.source.value).inc()
            log.warning(
                "%s.%s unavailable: %s", self.source.value, self.collection, type(exc).__name__
            )
            return dict.fromkeys(misses, source_error(self.source, self._deadline))
        broken = {key for key, value in fetched.items() if value is _BROKEN}
        if broken:
            # Documents that break their source's contract: their fields answer
            # SOURCE_UNAVAILABLE, and nothing of them is cached.
            error = source_error(self.source, self._deadline)
            for key in broken:
                fetched[key] = error
        cache_keys = dict(zip(misses, self._cache_keys(misses), strict=True))
        await self._documents.set_many(
            {cache_keys[key]: pack(fetched[key]) for key in misses if key not in broken},
            misses=[cache_keys[key] for key in misses if fetched[key] is None]
            if self.client_keys
            else (),
        )
        return fetched

    async def _fetch(self, keys: list[Hashable]) -> dict[Hashable, Any]:
        collection = self._sources.collection(self.source, self.collection)
        cursor = collection.find({self.key_field: {"$in": keys}})
        if self.sort:
            cursor = cursor.sort(list(self.sort))
        attributes = {
            "db.system": "mongodb",
            "db.namespace": self.source.value,
            "db.collection.name": self.collection,
            "db.operation.name": "find",
            "db.operation.batch.size": len(keys),
        }
        with span(f"mongodb find {self.source.value}.{self.collection}", attributes):
            found = await cursor.to_list(None)
        shape = contract(self.source, self.collection)
        broken: set[Hashable] = set()
        if shape is not None:
            for doc in found:
                wrong = violation(shape, doc)
                if wrong is not None:
                    broken.add(doc.get(self.key_field))
                    _report_broken(self.source, self.collection, doc.get("_id"), wrong)
        documents: Iterable[Document] = [
            self.transform(doc) for doc in found if doc.get(self.key_field) not in broken
        ]
        if not self.many:
            by_key: dict[Hashable, Any] = dict.fromkeys(keys)
            for doc in documents:
                by_key[doc[self.key_field]] = doc
        else:
            grouped: defaultdict[Hashable, list[Document]] = defaultdict(list)
            for doc in documents:
                grouped[doc[self.key_field]].append(doc)
            by_key = {key: grouped.get(key, []) for key in keys}
        for key in broken:
            if key in by_key:
                by_key[key] = _BROKEN
        return by_key


async def load_together(
    requests: Sequence[tuple[SourceLoader, Sequence[Hashable]]],
    *,
    guard: tuple[SourceLoader, Sequence[Hashable]] | None = None,
) -> list[dict[Hashable, Any]]:
    """The documents of several loaders' keys in one step, without a batch (a task, a
    future per key and a gather) per loader: one MGET for every key (shared with the
    rest of the tick), then one MongoDB find per loader that missed, all at once. Each
    value is primed into its loader, where fields find it (``SourceLoader.then``).

    Per request, key -> document (None: there is none), or the exception its field
    will raise (a failed source, a document that breaks its contract). Keys a loader
    has already been asked for are taken from it (awaited if still loading).

    ``guard``: a loader and keys (the enterprises) whose documents decide which keys of
    the requests are loaded at all: its keys are read in the same MGET, and its result
    comes first; of the requests' keys, only those whose guard document exists are
    kept, asked of MongoDB when Redis missed them, and primed (so codes that exist
    nowhere leave no misses of other collections in Redis)."""
    if guard is not None:
        requests = [guard, *requests]
    if not requests:
        return []
    results: list[dict[Hashable, Any]] = []
    asked: list[_Asked] = []
    pending: list[_Pending] = []
    wanted: list[str] = []  # every cache key asked, in one list
    for index, (loader, keys) in enumerate(requests):
        known: dict[Hashable, Any] = {}
        results.append(known)
        primed, loading = loader._primed, loader._cache
        fresh: Sequence[Hashable]
        if not primed and not loading:  # nothing asked of it yet: every key is new
            fresh = keys if len(keys) == 1 else list(dict.fromkeys(keys))
        else:
            fresh = []
            waiting: list[Hashable] = []
            for key in dict.fromkeys(keys):
                value = primed.get(key, MISSING)
                if value is not MISSING:
                    known[key] = value
                    continue
                future = loading.get(key)
                if future is None:
                    fresh.append(key)
                elif not future.done():
                    waiting.append(key)
                else:
                    known[key] = future.exception() or future.result()
            if waiting:
                pending.append((index, loader, waiting))
        if fresh:  # ``loader._cache_keys(fresh)``, in line
            prefix = loader._prefix
            if len(fresh) == 1:  # an archive's every loader: no comprehension's frame
                ckeys = [f"{prefix}{fresh[0]}"]
            else:
                ckeys = [f"{prefix}{key}" for key in fresh]
            wanted += ckeys
            asked.append((index, loader, fresh, ckeys))
    hits: Mapping[str, bytes | None] = {}
    if asked:
        hits = await asked[0][1]._documents.read_many(wanted)
    if guard is None:
        if (rest := _settled(results, asked, pending, hits)) is not None:
            await rest
        return results
    # The guard's entries come first (index 0), if it has any.
    head = 1 if asked and asked[0][0] == 0 else 0
    waits = 1 if pending and pending[0][0] == 0 else 0
    if (rest := _settled(results, asked[:head], pending[:waits], hits)) is not None:
        await rest
    exists = {key for key, value in results[0].items() if isinstance(value, dict)}
    if len(exists) == len(results[0]):  # every guard key exists: nothing to leave out
        if (rest := _settled(results, asked[head:], pending[waits:], hits)) is not None:
            await rest
        return results
    kept: list[_Asked] = []
    for index, loader, fresh, ckeys in asked:
        pairs = [(key, ckey) for key, ckey in zip(fresh, ckeys, strict=True) if key in exists]
        if index and pairs:
            kept.append((index, loader, [key for key, _ in pairs], [ckey for _, ckey in pairs]))
    waiting_kept: list[_Pending] = [
        (index, loader, [key for key in waiting if key in exists])
        for index, loader, waiting in pending
        if index
    ]
    if (rest := _settled(results, kept, waiting_kept, hits)) is not None:
        await rest
    return results


#: A loader's keys not asked of it before: (request index, loader, keys, cache keys).
_Asked = tuple[int, "SourceLoader", Sequence[Hashable], list[str]]
#: A loader's keys already loading: (request index, loader, keys).
_Pending = tuple[int, "SourceLoader", list[Hashable]]


def _settled(
    results: list[dict[Hashable, Any]],
    asked: Sequence[_Asked],
    pending: Sequence[_Pending],
    hits: Mapping[str, bytes | None],
) -> Awaitable[None] | None:
    """Fill ``results`` with what Redis held (``hits``), decoded and primed into each
    loader at once (``SourceLoader._cached`` and ``_prime`` in one pass); what is left,
    the misses from MongoDB and the keys already loading, as an awaitable (None when
    nothing is, the common case: no coroutine is made for it)."""
    missed: list[tuple[int, SourceLoader, list[Hashable]]] = []
    cached = 0
    for index, loader, fresh, ckeys in asked:
        # ``loader._batches.observe(len(fresh))``, in line.
        batches = loader._batches
        size = len(fresh)
        batches.counts[bisect_left(batches.bounds, size)] += 1
        batches.sum += size
        known = results[index]
        loading, primed = loader._cache, loader._primed
        misses: list[Hashable] = []
        for key, ckey in zip(fresh, ckeys, strict=True):
            raw = hits.get(ckey)
            if not raw:  # absent, or a miss or a tombstone (``read_many``)
                misses.append(key)
                continue
            value = known[key] = _decode(raw, _CODEC)["v"]  # unpack(raw), in line
            if key not in loading:
                primed.setdefault(key, value)
        cached += size - len(misses)
        if misses:
            missed.append((index, loader, misses))
    if cached:
        CACHE_HITS.inc(cached)
    if missed or any(waiting for _, _, waiting in pending):
        return _rest(results, missed, pending)
    return None


async def _rest(
    results: list[dict[Hashable, Any]],
    missed: Sequence[tuple[int, SourceLoader, list[Hashable]]],
    pending: Sequence[_Pending],
) -> None:
    """The misses from MongoDB (one find per loader, all at once) and the keys already
    loading awaited, into ``results``; every value read here primed into its loader."""
    if missed:
        fetched_all = await asyncio.gather(
            *(loader._from_source(keys) for _, loader, keys in missed)
        )
        for (index, loader, _), fetched in zip(missed, fetched_all, strict=True):
            results[index].update(fetched)
            _prime(loader, fetched)
    for index, loader, waiting in pending:
        if not waiting:
            continue
        values = await asyncio.gather(
            *(loader.load(key) for key in waiting), return_exceptions=True
        )
        results[index].update(zip(waiting, values, strict=True))


def _prime(loader: SourceLoader, values: Mapping[Hashable, Any]) -> None:
    """Give ``values`` to the loader, where ``peek``, ``then`` and ``load`` find them
    (a key it began loading meanwhile keeps its own load). An error is kept as a value
    until a field asks for it, so asyncio never reports one nobody asked for."""
    cache, primed = loader._cache, loader._primed
    for key, value in values.items():
        if key not in cache:
            primed.setdefault(key, value)


async def newest_first(
    collection: Any,
    query: Document,
    first: int,
    before: Any | None,
    projection: Mapping[str, Any] | None = None,
) -> tuple[list[Document], bool]:
    """A page of what the gateway keeps itself, newest first (ids grow with time): up
    to ``first`` documents older than the cursor ``before``, and whether more follow."""
    if before is not None:
        query = {**query, "_id": {"$lt": before}}
    docs = await collection.find(query, projection).sort("_id", -1).limit(first + 1).to_list(None)
    return docs[:first], len(docs) > first
