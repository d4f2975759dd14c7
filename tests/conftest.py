"""Embedded stores started once per session, seeded once; an app per settings variant.

Every MongoDB command the gateway sends is recorded (a pymongo command listener,
registered before any client exists), so tests can assert how many round trips a
request cost.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from pymongo import AsyncMongoClient, monitoring
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.devkeys import mint_role_token
from gateway.embedded import EmbeddedMongo, EmbeddedRedis
from gateway.pii import dev_keys_path, dev_keys_value
from gateway.serving import uvicorn_options
from gateway.settings import Settings, Source
from gateway.sources import Sources
from loaders.seed import seed

SEEDED_ENTERPRISES = 120
RANDOM_SEED = 1


@dataclass
class CommandRecorder(monitoring.CommandListener):
    """The MongoDB commands started since the last ``clear()``."""

    commands: list[tuple[str, str, str]] = field(default_factory=list)
    #: The filter of each find, with its collection.
    find_filters: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        self.commands.append((event.command_name, event.database_name, str(collection)))
        if event.command_name == "find":
            self.find_filters.append((str(collection), dict(event.command.get("filter", {}))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()
        self.find_filters.clear()

    def finds(self) -> list[tuple[str, str]]:
        return [(db, coll) for name, db, coll in self.commands if name == "find"]


RECORDER = CommandRecorder()
monitoring.register(RECORDER)


@dataclass(frozen=True)
class Stores:
    mongodb_url: str
    redis_url: str
    data_dir: Path


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    data_dir = tmp_path_factory.mktemp("var")
    with EmbeddedMongo(data_dir / "mongodb") as mongo, EmbeddedRedis(data_dir / "redis") as redis:
        assert isinstance(mongo, EmbeddedMongo) and isinstance(redis, EmbeddedRedis)
        yield Stores(mongo.url, redis.url, data_dir)


@pytest.fixture(scope="session")
def settings(stores: Stores) -> Settings:
    return Settings(
        mongodb_url=stores.mongodb_url,
        redis_url=stores.redis_url,
        gateway_data_dir=stores.data_dir,
        gateway_seed_enterprises=0,
        # The suite sends thousands of requests from one address: the limiter still
        # counts (and is tested with its defaults in test_rate_limits.py), never refuses.
        rate_limit_anonymous="10000000/minute",
        rate_limit_member="10000000/minute",
        rate_limit_service="10000000/minute",
        # Tests count the MongoDB commands a request costs; a watcher's getMores would
        # be among them. tests/test_freshness.py runs the gateway with its watcher.
        watcher_enabled=False,
        # Nor the upkeep's reads every few seconds; tests/test_audit_trail.py calls
        # what it does directly.
        upkeep_interval_seconds=0,
    )


def in_production(settings: Settings, **updates: Any) -> Settings:
    """``settings`` with dev mode off, and the key the seed sealed ID numbers with
    given as PII_ENCRYPTION_KEYS (dev mode made it under the data directory)."""
    keys = SecretStr(dev_keys_value(dev_keys_path(settings)))
    return settings.model_copy(
        update={"gateway_dev_mode": False, "pii_encryption_keys": keys, **updates}
    )


@pytest.fixture(scope="session")
async def seeded(settings: Settings) -> list[str]:
    """The USCCs of the seeded enterprises, in seeding order."""
    sources = Sources.from_settings(settings, None, bulk=True)
    try:
        report = await seed(sources, enterprises=SEEDED_ENTERPRISES, random_seed=RANDOM_SEED)
        cursor = sources.db(Source.REGISTRY)["enterprises"].find({}, {"_id": 1})
        usccs = [doc["_id"] async for doc in cursor]
    finally:
        await sources.close()
    assert report.enterprises == SEEDED_ENTERPRISES
    return usccs


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its lifespan running, and an HTTP client bound to it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture(scope="session")
async def client(settings: Settings, seeded: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as http:
        yield http


@pytest.fixture
async def mongo(stores: Stores) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A client of the suite's store, for reading and changing it behind the gateway."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongodb_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def redis(stores: Stores) -> AsyncIterator[Redis]:
    connection = Redis.from_url(stores.redis_url)
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture
async def cold_cache(redis: Redis) -> None:
    """An empty Redis and a cleared command record: the next request starts cold."""
    await redis.flushdb()
    RECORDER.clear()


@pytest.fixture
def recorder() -> CommandRecorder:
    return RECORDER


def without_cost(response: httpx.Response) -> dict[str, Any]:
    """The body of an executed operation, less the cost report every one carries
    (tests/test_limits.py asserts exact costs; elsewhere only its presence)."""
    body: dict[str, Any] = response.json()
    extensions = body.pop("extensions", None)
    if extensions is not None or body.get("data") is not None:
        # Priced once validated: every operation that ran carries its cost.
        assert extensions is not None and set(extensions) == {"cost"}
        assert extensions["cost"]["requested"] >= 0
    return body


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return without_cost(response)


def codes(body: dict[str, Any]) -> list[str]:
    """The codes of an answer's errors, in order."""
    return [error["extensions"]["code"] for error in body.get("errors", ())]


def bearer(settings: Settings, role: str, **claims: Any) -> dict[str, str]:
    """Authorization header with a dev token for ``role``."""
    token = mint_role_token(settings, role, **claims)
    return {"authorization": f"Bearer {token}"}


async def graphql_as(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return without_cost(response)


@asynccontextmanager
async def live(settings: Settings) -> AsyncIterator[str]:
    """The gateway under uvicorn on a loopback port, run as ``serve`` runs it; its
    address."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", lifespan="on", **uvicorn_options()
    )
    uvicorn_server = uvicorn.Server(config)
    serving = asyncio.get_running_loop().create_task(uvicorn_server.serve(sockets=[listener]))
    while not uvicorn_server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        await serving
        listener.close()


@pytest.fixture(scope="module")
async def live_server(settings: Settings, seeded: list[str]) -> AsyncIterator[str]:
    """The gateway under uvicorn on a loopback port, speaking HTTP as ``serve`` does; its
    base URL."""
    async with live(settings) as address:
        yield address


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A MongoDB URL whose server accepts connections and never answers: a hung source."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        for writer in held:
            writer.close()
        server.close()
