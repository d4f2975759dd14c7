"""The change-stream watcher: writes by other systems reach the graph at once (DESIGN §6).

One change stream per source database (the sources may live on different clusters),
with each document's image before (where the collection keeps pre-images) and after.
Every change is handed to ``handle`` (evict what holds it, keep search in step, tell the
enterprise); only then does its resume token count as done. Tokens are stored in the
gateway's own database (``integrity_gateway.resume_tokens``, one per source), at most
every ``_SAVE_EVERY_S`` and whenever the stream falls quiet, so a restart goes on
where the last one stopped (repeating at most a moment's changes: handling is
idempotent).

When a stream cannot resume (no token stored yet, the token is unknown to the server,
the oplog rolled past it, the database was dropped) nobody knows what changed in the
gap: ``lost`` evicts the source's entries (and resynchronises search) after the new
stream is open, so nothing changed since is missed either.

Errors never stop the watcher: a source that is down is retried with backoff; a
change that cannot be handled (Redis down) is retried before its token is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError
from redis.exceptions import RedisError

from gateway.settings import Source
from gateway.sources import Sources

__all__ = ["RESUME_TOKENS", "Watcher"]

log = logging.getLogger(__name__)

RESUME_TOKENS = "resume_tokens"
#: Server codes that mean "this token can never resume": history lost (286), token
#: invalid (260) or unparseable (9), stream fatal (280).
_CANNOT_RESUME = {9, 260, 280, 286}
_SAVE_EVERY_S = 0.5
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: How long a getMore waits for a change before the stream counts as quiet.
_MAX_AWAIT_MS = 500

Event = Mapping[str, Any]
Handler = Callable[[Source, Event], Awaitable[None]]
Lost = Callable[[Source, str], Awaitable[None]]


class Watcher:
    def __init__(
        self,
        sources: Sources,
        *,
        handle: Handler,
        lost: Lost,
        skip_collections: Mapping[Source, tuple[str, ...]] | None = None,
        pre_images: Mapping[Source, tuple[str, ...]] | None = None,
    ) -> None:
        """``skip_collections``: collections a source's stream ignores (those the
        gateway derives itself). ``pre_images``: collections to ask to keep pre-images
        (a delete can then say which list held the document)."""
        self._sources = sources
        self._handle = handle
        self._lost = lost
        self._skip = skip_collections or {}
        self._pre_images = pre_images or {}
        self._open: dict[Source, asyncio.Event] = {source: asyncio.Event() for source in Source}
        #: Set once a source's stream opened or its first attempt failed.
        self._settled: dict[Source, asyncio.Event] = {source: asyncio.Event() for source in Source}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        #: Changes handled since start, per source (for logs and tests).
        self.handled: dict[Source, int] = dict.fromkeys(Source, 0)

    def start(self) -> None:
        self._stopping.clear()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(source), name=f"watch-{source.value}")
            for source in Source
        ]

    async def wait_open(self, timeout_s: float = 30.0) -> None:
        """Until every source's stream is open (and any eviction for a gap done)."""
        async with asyncio.timeout(timeout_s):
            for event in self._open.values():
                await event.wait()

    async def wait_settled(self, timeout_s: float) -> list[Source]:
        """Until each source's stream opened or failed once (a source that is down does
        not hold start-up); the sources not open then."""
        try:
            async with asyncio.timeout(timeout_s):
                for event in self._settled.values():
                    await event.wait()
        except TimeoutError:
            pass
        return [source for source, event in self._open.items() if not event.is_set()]

    async def stop(self) -> None:
        """Let each stream finish its getMore and close (cancelling one mid-getMore can
        leave the driver waiting on the server); cancel what has not ended by then."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=_MAX_AWAIT_MS / 1000 * 4)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_MAX_AWAIT_MS / 1000 * 4)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    async def run_forever(self) -> None:
        """``start``, then wait until cancelled (the CLI's ``watch``)."""
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    # --- one source ---------------------------------------------------------------

    def _tokens(self) -> Any:
        return self._sources.gateway[RESUME_TOKENS]

    async def _load_token(self, source: Source) -> Mapping[str, Any] | None:
        doc = await self._tokens().find_one({"_id": source.value})
        return None if doc is None else doc["token"]

    async def _save_token(self, source: Source, token: Mapping[str, Any]) -> None:
        await self._tokens().replace_one(
            {"_id": source.value},
            {"_id": source.value, "token": dict(token), "at": time.time()},
            upsert=True,
        )

    async def _forget_token(self, source: Source) -> None:
        await self._tokens().delete_one({"_id": source.value})

    async def _keep_pre_images(self, source: Source) -> bool:
        """Ask the source to keep pre-images of the listed collections (MongoDB 6.0+,
        needs ``collMod``); whether the stream may ask for them."""
        database = self._sources.db(source)
        try:
            existing = set(await database.list_collection_names())
            for name in self._pre_images.get(source, ()):
                if name in existing:
                    await database.command(
                        {"collMod": name, "changeStreamPreAndPostImages": {"enabled": True}}
                    )
        except OperationFailure as exc:
            log.info(
                "%s: pre-images not kept (%s); a delete from a list evicts the whole list's "
                "collection",
                source.value,
                exc.code,
            )
            return False
        return True

    async def _follow(self, source: Source) -> None:
        failures = 0
        pre_images: bool | None = None
        #: Why the stream would start without a token: said to ``lost``.
        gap = "no resume token stored"
        while not self._stopping.is_set():
            try:
                if pre_images is None:
                    pre_images = await self._keep_pre_images(source)
                token = await self._load_token(source)
                await self._stream(source, token, pre_images, gap)
                failures = 0
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in _CANNOT_RESUME:
                    log.warning(
                        "%s: the change stream cannot resume (%s, code %s); its cached "
                        "entries will be evicted",
                        source.value,
                        exc.details.get("codeName") if exc.details else "-",
                        exc.code,
                    )
                    await self._retrying(source, self._forget_token)
                    gap = f"the stream could not resume (code {exc.code})"
                    continue
                if pre_images and "fullDocumentBeforeChange" in str(exc):
                    pre_images = False  # a server that does not know pre-images
                    continue
                failures += 1
                log.warning("%s: change stream failed: %s", source.value, exc)
                self._settled[source].set()
            except PyMongoError as exc:
                failures += 1
                log.warning("%s: change stream unavailable (%s)", source.value, type(exc).__name__)
                self._settled[source].set()
            await self._pause(_BACKOFF_S[min(failures, len(_BACKOFF_S)) - 1])

    async def _stream(
        self, source: Source, token: Mapping[str, Any] | None, pre_images: bool, gap: str
    ) -> None:
        pipeline: list[dict[str, Any]] = []
        skipped = self._skip.get(source, ())
        if skipped:
            pipeline.append({"$match": {"ns.coll": {"$nin": list(skipped)}}})
        options: dict[str, Any] = {"full_document": "updateLookup"}
        if pre_images:
            options["full_document_before_change"] = "whenAvailable"
        if token is not None:
            options["start_after"] = token  # also past an invalidate
        database = self._sources.db(source)
        async with await database.watch(
            pipeline, max_await_time_ms=_MAX_AWAIT_MS, **options
        ) as stream:
            if token is None:
                # Open first, then evict: a change from now on is in the stream.
                if not await self._retrying(source, lambda s: self._lost(s, gap)):
                    return
                opened_at = stream.resume_token
                if opened_at is not None:
                    await self._retrying(source, partial(self._save_token, token=opened_at))
            self._open[source].set()
            self._settled[source].set()
            saved_at = time.monotonic()
            unsaved = False
            while stream.alive and not self._stopping.is_set():
                change = await stream.try_next()
                if change is not None:
                    if not await self._retrying(source, partial(_handle_one, self._handle, change)):
                        return  # stopping: this change's token is not stored
                    self.handled[source] += 1
                    unsaved = True
                    if change.get("operationType") == "invalidate":
                        break
                quiet = change is None
                if unsaved and (quiet or time.monotonic() - saved_at >= _SAVE_EVERY_S):
                    resume = stream.resume_token
                    if resume is not None:
                        await self._save_token(source, resume)
                    saved_at, unsaved = time.monotonic(), False

    async def _retrying(self, source: Source, work: Callable[[Source], Awaitable[Any]]) -> bool:
        """Run ``work`` until it succeeds (a change is never skipped); False when the
        watcher stopped first."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await work(source)
                return True
            except (RedisError, PyMongoError, OSError) as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "%s: could not apply a change (%s); retrying",
                        source.value,
                        type(exc).__name__,
                    )
                await self._pause(_BACKOFF_S[min(failures, len(_BACKOFF_S)) - 1])
        return False


async def _handle_one(handle: Handler, event: Event, source: Source) -> None:
    await handle(source, event)
