"""The app factory. Its lifespan owns every client the gateway holds open."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admission import Admission
from gateway.graphql_view import GraphQLView
from gateway.http import MetricsEndpoint, healthz, readyz
from gateway.ide import ASSET_PATH, ASSETS, dev_tokens, sample_usccs_or_none
from gateway.pii import Keyring
from gateway.runtime import Runtime, open_runtime
from gateway.settings import ConfigurationError, Settings
from gateway.sources import Sources
from gateway.subscriptions import SubscriptionEndpoint
from gateway.tracing import Tracing, configure_tracing, shutdown_tracing
from gateway.tracing import enabled as tracing_enabled
from loaders import writes
from loaders.audit import ensure_audit_indexes
from loaders.freshness import create_watcher
from loaders.indexes import ensure_indexes
from loaders.search import needs_rebuild, rebuild_facets
from loaders.seed import DEMO_RANDOM_SEED, holds_seed, registry_is_empty, seed
from loaders.writes import ensure_write_indexes
from resolvers.engine import Engine
from resolvers.permissions import check_platform_fields
from resolvers.schema import schema

__all__ = ["YOUNG_COLLECTION_THRESHOLD", "create_app", "settle_collector"]

log = logging.getLogger(__name__)

#: Where GraphQL is served, over HTTP and over WebSocket.
GRAPHQL_PATH = "/graphql"

#: Response headers a page on another origin may read: the request id and the rate limit.
EXPOSED_HEADERS = (
    "x-request-id",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
)


async def _seed_if_empty(runtime: Runtime, sources: Sources) -> None:
    settings = runtime.settings
    if settings.gateway_seed_enterprises == 0:
        return
    try:
        empty = not await holds_seed(sources) and await registry_is_empty(sources)
    except PyMongoError as exc:
        log.warning("registry unreachable at start-up, not seeding: %s", exc)
        return
    if not empty:
        return
    log.info("empty registry: seeding %d demo enterprises", settings.gateway_seed_enterprises)
    bulk = Sources.from_settings(settings, runtime.embedded_mongodb_url, bulk=True)
    try:
        report = await seed(
            bulk, enterprises=settings.gateway_seed_enterprises, random_seed=DEMO_RANDOM_SEED
        )
    finally:
        await bulk.close()
    log.info("seeded %d enterprises in %.1fs", report.enterprises, report.seconds)


async def _rebuild_search_facets(runtime: Runtime, sources: Sources) -> None:
    """Search documents an earlier version wrote get facets and statistics, once."""
    try:
        if not await needs_rebuild(sources):
            return
    except PyMongoError as exc:
        log.warning("registry unreachable at start-up, search facets not checked: %s", exc)
        return
    log.info("search documents of an earlier version: giving them this version's facets")
    bulk = Sources.from_settings(runtime.settings, runtime.embedded_mongodb_url, bulk=True)
    try:
        enterprises, facets = await rebuild_facets(bulk)
    finally:
        await bulk.close()
    log.info("search facets rebuilt: %d enterprises, %d facets", enterprises, facets)


def _banner(settings: Settings, examples: list[str]) -> None:
    base = f"http://{settings.gateway_host}:{settings.gateway_port}"
    lines = [
        "",
        f"  integrity-gateway is ready: GraphiQL at {base}/graphql",
        f"  health: {base}/healthz   readiness: {base}/readyz",
        "  example USCCs (enterprise, individual business, cooperative):",
        *(f"    {uscc}" for uscc in examples),
    ]
    if settings.gateway_dev_mode and examples:
        lines += [
            '  dev tokens, 8 hours (GraphiQL headers: {"Authorization": "Bearer <token>"}):',
            *(f"    {role:9} {token}" for role, token in dev_tokens(settings, examples[0])),
        ]
    lines.append("")
    print("\n".join(lines), flush=True)


async def _upkeep(runtime: Runtime) -> None:
    """Every UPKEEP_INTERVAL_SECONDS: spooled audit records into the trail, and the
    disclosure notices that came due."""
    interval = runtime.settings.upkeep_interval_seconds
    if not interval:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            await writes.upkeep(runtime.sources, runtime.cache)
        except (PyMongoError, RedisError) as exc:
            log.warning("upkeep (audit spool, disclosure notices) failed: %s", exc)


class _Dispatch:
    """GraphQL over HTTP straight to its view; everything else (the GraphQL WebSocket,
    health, metrics, GraphiQL's files) to Starlette's own stack and router."""

    def __init__(self, graphql: ASGIApp, rest: ASGIApp) -> None:
        self.graphql = graphql
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == GRAPHQL_PATH:
            await self.graphql(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


class Gateway(Starlette):
    """A Starlette app whose own middleware (``front``: tracing, admission with the
    access log, CORS) is outermost, and whose GraphQL endpoint over HTTP takes no
    route of the router: it is the one path almost every request takes, and
    Starlette's error and exception layers and its route matching cost a badge 9 % of
    its instructions (bench/instructions.py). Admission answers an exception nobody
    handled, as Starlette's error layer would have."""

    def __init__(self, *, graphql: ASGIApp, front: list[Middleware], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graphql = graphql
        self.front = front

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = _Dispatch(self.graphql, super().build_middleware_stack())
        for cls, args, kwargs in reversed(self.front):
            app = cls(app, *args, **kwargs)
        return app


#: Container objects allocated (net of those freed) before the collector's youngest
#: pass: Python's default is 700.
YOUNG_COLLECTION_THRESHOLD = 5_000


def settle_collector() -> None:
    """Keep the cyclic garbage collector out of a serving process's way.

    The schema, the modules, the clients and their pools live as long as the process;
    frozen, the collector's full passes no longer walk them (each walked them all,
    every few hundred requests). And the youngest pass waits for 5,000 net new objects
    instead of 700: requests in flight hold a few thousand between them, so at 700
    the pass ran every ten badges or so and found next to nothing to free (under wrk,
    one worker, 16 connections, 10 s: 5,042 young passes, 390 ms, and 458 middle ones,
    82 ms, freeing 1,361 and 1,579 objects in all; at 5,000, 266 young and 24 middle
    passes, 20 and 19 ms, start-up's included), while what requests leave in cycles
    is still freed as it builds up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def create_app(
    settings: Settings | None = None, *, banner: bool = False, freeze: bool = False
) -> Starlette:
    """``banner``: print where the gateway listens (``serve``). ``freeze``: the process
    serves this one app (``serve``): once it has started, what start-up built is moved
    out of the garbage collector's way (``gc.freeze``)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Traces, if an exporter is configured (and none was set up before: the suite's).
        owns_tracing = not tracing_enabled() and configure_tracing(settings)
        try:
            async with _serving(app):
                yield
        finally:
            if owns_tracing:
                shutdown_tracing()

    @asynccontextmanager
    async def _serving(app: Starlette) -> AsyncIterator[None]:
        # No start without the keys of the ID numbers at rest, nor with a platform's
        # field set naming what cannot be hidden (ConfigurationError).
        Keyring.from_settings(settings)
        try:
            check_platform_fields(schema._schema, settings.platform_hidden_fields)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        async with open_runtime(settings) as runtime:
            # Start-up work has time of its own: an index build on a large collection
            # may take far longer than a request may wait (a down source is still
            # given up after MONGODB_TIMEOUT_MS).
            startup = Sources.from_settings(
                settings,
                runtime.embedded_mongodb_url,
                socket_timeout_ms=settings.startup_timeout_ms,
            )
            examples: list[str] = []
            try:
                # Seeding replaces the collections, indexes included, so it goes first.
                await _seed_if_empty(runtime, startup)
                await _rebuild_search_facets(runtime, startup)
                await ensure_indexes(startup)
                await ensure_audit_indexes(startup, settings)
                await ensure_write_indexes(startup, settings)
                if banner:
                    examples = await sample_usccs_or_none(startup)
                    _banner(settings, examples)
            finally:
                await startup.close()
            app.state.runtime = runtime
            if banner and examples:
                # Whose owner token GraphiQL offers (else found on its first request).
                app.state.example_uscc = examples[0]
            watcher = create_watcher(runtime.sources, runtime.cache)
            app.state.watcher = watcher if settings.watcher_enabled else None
            if settings.watcher_enabled:
                watcher.start()
                # Serve once every stream is open and any gap's entries are evicted, so
                # no answer comes from an entry the watcher was about to evict; a source
                # that is down does not hold start-up (its stream keeps trying).
                closed = await watcher.wait_settled(settings.startup_timeout_ms / 1000)
                if closed:
                    names = ", ".join(source.value for source in closed)
                    log.warning("serving before the change streams of %s are open", names)
            if freeze:
                settle_collector()
            upkeep = asyncio.get_running_loop().create_task(_upkeep(runtime))
            try:
                yield
            finally:
                upkeep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep
                await watcher.stop()

    engine = Engine(schema)
    view = GraphQLView(engine)
    routes = [
        # Taken by the dispatch before the router; listed so the router still knows
        # the path (``/graphql/`` is redirected to it).
        Route(GRAPHQL_PATH, view, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        WebSocketRoute(GRAPHQL_PATH, SubscriptionEndpoint(engine)),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route(
            "/metrics", MetricsEndpoint(settings.metrics_allowed_networks).respond, methods=["GET"]
        ),
    ]
    if settings.gateway_dev_mode:
        # GraphiQL's own files: it works without internet (gateway/ide.py).
        routes.append(Mount(ASSET_PATH, app=StaticFiles(directory=ASSETS)))
    middleware = [
        Middleware(Tracing),  # a no-op unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        Middleware(
            Admission,
            max_in_flight=settings.max_in_flight,
            max_header_bytes=settings.limit_header_bytes,
            trusted_proxies=settings.trusted_proxies,
        ),
    ]
    if settings.cors_allowed_origins:
        # Inside admission: a preflight is counted, capped and given a request id too.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_allowed_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "x-request-id"],  # content-type: always
                allow_credentials=settings.cors_allow_credentials,
                expose_headers=list(EXPOSED_HEADERS),
                max_age=settings.cors_max_age_seconds,
            )
        )
    return Gateway(graphql=view, front=middleware, routes=routes, lifespan=lifespan)
