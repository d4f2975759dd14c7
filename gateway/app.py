"""The app factory. Its lifespan owns every client the gateway holds open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.http import GatewayGraphQL, healthz, readyz
from gateway.runtime import Runtime, open_runtime
from gateway.settings import Settings
from gateway.sources import Sources
from loaders.indexes import ensure_indexes
from loaders.registry import sample_usccs
from loaders.seed import DEMO_RANDOM_SEED, registry_is_empty, seed
from resolvers.schema import schema

__all__ = ["create_app"]

log = logging.getLogger(__name__)


async def _seed_if_empty(runtime: Runtime) -> None:
    settings = runtime.settings
    if settings.gateway_seed_enterprises == 0:
        return
    try:
        empty = await registry_is_empty(runtime.sources)
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


async def _banner(runtime: Runtime) -> None:
    settings = runtime.settings
    try:
        examples = await sample_usccs(runtime.sources)
    except PyMongoError:
        examples = []
    base = f"http://{settings.gateway_host}:{settings.gateway_port}"
    lines = [
        "",
        f"  integrity-gateway is ready: GraphiQL at {base}/graphql",
        f"  health: {base}/healthz   readiness: {base}/readyz",
        "  example USCCs (enterprise, individual business, cooperative):",
        *(f"    {uscc}" for uscc in examples),
        "",
    ]
    print("\n".join(lines), flush=True)


def create_app(settings: Settings | None = None, *, banner: bool = False) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            await ensure_indexes(runtime.sources)
            await _seed_if_empty(runtime)
            app.state.runtime = runtime
            if banner:
                await _banner(runtime)
            yield

    routes = [
        Route("/graphql", GatewayGraphQL(schema, graphql_ide="graphiql")),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
