"""Limits: what one operation may be, and what each client may spend per window.

The operation budget (tokens, depth, aliases, root fields, directives, operations per
document, cost per viewer kind) is checked by resolvers/limits/ before anything
executes. Rate limits spend an operation's cost in a sliding window per client, on
the `limits` library: kept in Redis, so every worker and replica shares them; when
Redis fails, counted in this process's memory instead (still a limit, per worker
rather than global), never not at all. A request's charge, every window at once
with the library's own script, goes to Redis in the round trip of its first read,
which the requests that arrive together share (``_Charges``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from limits import RateLimitItem, parse, parse_many
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import NoScriptError

from gateway.cache import DocumentCache, ScriptCall
from gateway.settings import Settings
from gateway.viewer import Anonymous, ServiceClient, Viewer

__all__ = ["Allowance", "Charge", "Limits", "OperationBudget"]

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
        headers = {"ratelimit-policy": _policy(self.policies)}
        if not self.allowed:
            headers["ratelimit-limit"] = str(self.limit.amount)
            headers["ratelimit-remaining"] = str(max(self.remaining, 0))
            headers["ratelimit-reset"] = str(self.retry_after)
            headers["retry-after"] = str(self.retry_after)
        return headers


def _acquire_all(acquire_one: str) -> str:
    """A script that spends the charges of many requests, each in its windows in order
    and stopping at the first window that refuses, with the library's own script
    (``acquire_sliding_window``) as the step of one window. Its keys are each window's
    (previous, current) pair; its arguments, per charge, the number of windows, then
    each window's (limit, expiry, cost). It answers, per charge, 0 when every window
    took the cost, else the number (from 1) of the window that refused; the windows
    before it keep their charge, as when the library's script is run once per window."""
    return (
        "local function acquire(KEYS, ARGV)\n"
        f"{acquire_one}\n"
        "end\n"
        "local answers = {}\n"
        "local key, argument = 1, 1\n"
        "while argument <= #ARGV do\n"
        "  local windows = tonumber(ARGV[argument])\n"
        "  argument = argument + 1\n"
        "  local refused = 0\n"
        "  for window = 1, windows do\n"
        "    if refused == 0 and not acquire({KEYS[key], KEYS[key + 1]},\n"
        "        {ARGV[argument], ARGV[argument + 1], ARGV[argument + 2]}) then\n"
        "      refused = window\n"
        "    end\n"
        "    key, argument = key + 2, argument + 3\n"
        "  end\n"
        "  answers[#answers + 1] = refused\n"
        "end\n"
        "return answers\n"
    )


def _text(script: str | bytes) -> str:
    """A script's text, as redis-py keeps it (bytes, or str)."""
    return script.decode() if isinstance(script, bytes) else script


@dataclass(slots=True)
class Charge:
    """One request's cost, spent in its windows: ``answer`` is 0 when every window took
    it, else the number (from 1) of the window that refused."""

    windows: Sequence[RateLimitItem]
    who: tuple[str, str]
    answer: asyncio.Future[int]


@dataclass(slots=True)
class _Group:
    """The charges asked for in one turn of the event loop: one script call."""

    keys: list[str] = field(default_factory=list)
    arguments: list[int] = field(default_factory=list)
    #: Per charge: its windows, who, its cost, the future of its answer.
    charges: list[tuple[Sequence[RateLimitItem], tuple[str, str], int, asyncio.Future[int]]] = (
        field(default_factory=list)
    )


#: Clients whose windows' keys are kept (``_Charges._learn``); all forgotten when full.
_KNOWN_CLIENTS = 10_000
#: What counts a group's charges when Redis failed them: (windows, who, cost) -> answer.
Fallback = Callable[[Sequence[RateLimitItem], tuple[str, str], int], Awaitable[int]]


def _policy(windows: Sequence[RateLimitItem]) -> str:
    """``RateLimit-Policy`` for these windows, written once per list of windows (each
    kind's and client's, built from the settings)."""
    known = _POLICIES.get(id(windows))
    if known is not None and known[0] is windows:
        return known[1]
    policy = ", ".join(f"{item.amount};w={item.get_expiry()}" for item in windows)
    if len(_POLICIES) >= _POLICIES_KEPT:
        _POLICIES.clear()
    _POLICIES[id(windows)] = (windows, policy)
    return policy


#: By the id of a list of windows: the list (so a reused id is never taken for it), and
#: its policy.
_POLICIES: dict[int, tuple[Sequence[RateLimitItem], str]] = {}
_POLICIES_KEPT = 256


class _Charges:
    """The charges asked for in one turn of the event loop, sent in one call of one
    script (``_acquire_all``) in the Redis round trip of that turn's reads
    (``DocumentCache.run_script``): a request's charge travels with its first MGET, and
    the requests that arrive together share both. A script Redis does not hold (a
    restarted server) is loaded and run again; charges Redis failed are reported
    (``failed``) and counted by ``fallback`` (in memory)."""

    def __init__(
        self,
        storage: RedisStorage,
        cache: DocumentCache,
        failed: Callable[[Exception], None],
        fallback: Fallback,
    ) -> None:
        bridge: Any = storage.bridge
        self._storage = storage
        self._prefixed = bridge.prefixed_key
        self._script = bridge.get_connection().register_script(
            _acquire_all(_text(bridge.lua_acquire_sliding_window.script))
        )
        self._cache = cache
        self._failed = failed
        self._fallback = fallback
        self._group: _Group | None = None
        #: By (windows, client): the keys and sizes of its windows (``_learn``).
        self._known: dict[tuple[int, tuple[str, str]], tuple[list[str], list[tuple[int, int]]]] = {}
        #: Groups being run again (held here so none is collected before it answers).
        self._retrying: set[asyncio.Task[None]] = set()

    @classmethod
    def of(
        cls,
        storage: RedisStorage,
        cache: DocumentCache | None,
        failed: Callable[[Exception], None],
        fallback: Fallback,
    ) -> _Charges | None:
        """Charges with the reads, for a single server's storage on redis-py, the
        cache's server; None for anything else (a cluster: its keys lie on many nodes)."""
        if (
            cache is None
            or cache.cluster
            or type(storage) is not RedisStorage
            or not isinstance(storage.bridge, RedispyBridge)
        ):
            return None
        return cls(storage, cache, failed, fallback)

    def send(
        self, windows: Sequence[RateLimitItem], who: tuple[str, str], units: int
    ) -> asyncio.Future[int]:
        """The future of the charge's answer (``Charge.answer``)."""
        group = self._group
        if group is None:
            group = self._group = _Group()
            self._cache.run_script(
                functools.partial(self._sealed, group), functools.partial(self._answered, group)
            )
        known = self._known.get((id(windows), who))
        if known is None:
            known = self._learn(windows, who)
        keys, sizes = known
        group.keys += keys
        arguments = group.arguments
        arguments.append(len(windows))
        for amount, expiry in sizes:
            arguments += (amount, expiry, units)
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        group.charges.append((windows, who, units, answer))
        return answer

    def _learn(
        self, windows: Sequence[RateLimitItem], who: tuple[str, str]
    ) -> tuple[list[str], list[tuple[int, int]]]:
        """The keys of a client's windows and their (limit, expiry), kept for the
        client's next request (the windows are the settings', built once)."""
        storage, keys = self._storage, []
        for item in windows:
            key = item.key_for(*who)
            keys.append(self._prefixed(storage._previous_window_key(key)))
            keys.append(self._prefixed(storage._current_window_key(key)))
        known = keys, [(item.amount, item.get_expiry()) for item in windows]
        if len(self._known) >= _KNOWN_CLIENTS:
            self._known.clear()
        self._known[id(windows), who] = known
        return known

    def _sealed(self, group: _Group) -> ScriptCall:
        """The group's call, as its pipeline is sent: later charges start a group."""
        if self._group is group:
            self._group = None
        return self._script.sha, group.keys, group.arguments

    def _answered(self, group: _Group, sent: Any) -> None:
        """The script's answer, or the error it or its round trip failed with."""
        if self._group is group:  # failed before it was sent
            self._group = None
        if isinstance(sent, asyncio.CancelledError):  # the cache closed
            for *_, answer in group.charges:
                answer.cancel()
            return
        if not isinstance(sent, BaseException):
            _settle(group, sent)
            return
        task = asyncio.get_running_loop().create_task(self._again(group, sent))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    async def _again(self, group: _Group, error: BaseException) -> None:
        """A group whose script Redis did not hold, run again after loading it; one
        that failed otherwise, counted by the fallback."""
        if isinstance(error, NoScriptError):
            try:
                _settle(group, await self._script(group.keys, group.arguments))
                return
            except Exception as exc:
                error = exc
        self._failed(error if isinstance(error, Exception) else RuntimeError(error))
        for windows, who, units, answer in group.charges:
            try:
                refused = await self._fallback(windows, who, units)
            except Exception as exc:
                if not answer.done():
                    answer.set_exception(exc)
                continue
            if not answer.done():
                answer.set_result(refused)


def _settle(group: _Group, answers: Sequence[Any]) -> None:
    """Give each charge of the group its answer."""
    for (*_, answer), refused in zip(group.charges, answers, strict=True):
        if not answer.done():
            answer.set_result(int(refused))


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
        #: By the id of a list of windows (this object's own): its allowance.
        self._allowed: dict[int, Allowance] = {}
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
            self._charges = _Charges.of(storage, health, self._failed, self._in_memory)
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

    def charge(self, viewer: Viewer, client_address: str, cost: int) -> Charge:
        """Start spending ``cost`` in each window of the viewer, in order, stopping at
        the first that refuses (the earlier ones keep the charge: a client over its
        hourly budget also spends its minute's). A zero-cost operation (``__typename``)
        counts one unit: nobody gets an unlimited stream of requests.

        With Redis, the charge goes in the round trip of this turn's reads
        (``_Charges``); its answer arrives with theirs. When Redis fails, it is counted
        in this process's memory instead."""
        windows = self.windows(viewer)
        who = self.identity(viewer, client_address)
        units = max(cost, 1)
        charges = self._charges
        if charges is None or self._limiter() is not self._shared:
            task = asyncio.get_running_loop().create_task(self._in_turn(windows, who, units))
            return Charge(windows, who, task)
        return Charge(windows, who, charges.send(windows, who, units))

    async def _in_memory(
        self, windows: Sequence[RateLimitItem], who: tuple[str, str], units: int
    ) -> int:
        """A charge Redis failed, counted in memory."""
        return await _first_refusal(self._local.hit, windows, who, units)

    async def _in_turn(
        self, windows: Sequence[RateLimitItem], who: tuple[str, str], units: int
    ) -> int:
        """The library's own calls, one window after another (a cluster, or Redis given
        up on); counted in memory when Redis fails."""
        return await _first_refusal(functools.partial(self._call, "hit"), windows, who, units)

    async def allowance(self, charge: Charge) -> Allowance:
        """What the charge came to: allowed, or refused by a window (with its state)."""
        answer = charge.answer
        # Mostly here already: it arrived with the request's first read.
        refused = answer.result() if answer.done() else await answer
        windows = charge.windows
        if not refused:
            allowed = self._allowed.get(id(windows))
            if allowed is None:
                allowed = self._allowed[id(windows)] = Allowance(
                    allowed=True, limit=windows[0], policies=windows
                )
            return allowed
        item = windows[refused - 1]
        stats: Any = await self._call("get_window_stats", item, *charge.who)
        reset_time, remaining = stats
        return Allowance(
            allowed=False,
            limit=item,
            remaining=int(remaining),
            retry_after=max(1, math.ceil(float(reset_time) - time.time())),
            policies=windows,
        )

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one call; False when the caller is over the limit."""
        return bool(await self._call("hit", item, *identifiers))

    async def spend(self, viewer: Viewer, client_address: str, cost: int) -> Allowance:
        """Spend ``cost`` in the viewer's windows (``charge``) and wait for the answer."""
        return await self.allowance(self.charge(viewer, client_address, cost))


async def _first_refusal(
    hit: Callable[..., Awaitable[object]],
    windows: Sequence[RateLimitItem],
    who: tuple[str, str],
    units: int,
) -> int:
    """``units`` spent with ``hit`` in each window in order: 0 when every window took
    them, else the number (from 1) of the first that refused (the later ones untouched)."""
    for number, item in enumerate(windows, start=1):
        if not await hit(item, *who, cost=units):
            return number
    return 0
