"""The Redis read-through: a warm request costs no MongoDB query; a dead Redis costs nothing."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from gateway.embedded import free_port
from gateway.settings import Settings
from tests.conftest import CommandRecorder, graphql, serving
from tests.test_archive import ARCHIVE, HANGZHOU, HANGZHOU_ARCHIVE


async def test_second_identical_request_is_served_from_redis(
    client: httpx.AsyncClient, cold_cache: None, recorder: CommandRecorder, redis: Redis
) -> None:
    cold = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
    assert recorder.finds() == [("registry", "enterprises"), ("registry", "change_records")]
    assert sorted(await redis.keys("ig:*")) == [
        f"ig:2:registry:change_records:uscc:{HANGZHOU}".encode(),
        f"ig:2:registry:enterprises:_id:{HANGZHOU}".encode(),
    ]
    ttl = await redis.ttl(f"ig:2:registry:enterprises:_id:{HANGZHOU}")
    assert 0 < ttl <= 300

    recorder.clear()
    warm = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
    assert recorder.commands == []
    assert warm == cold == {"data": {"enterprise": HANGZHOU_ARCHIVE}}


async def test_unknown_enterprise_is_cached_as_absent(
    client: httpx.AsyncClient, cold_cache: None, recorder: CommandRecorder
) -> None:
    query = "query($u: USCC!) { enterprise(uscc: $u) { name } }"
    await graphql(client, query, {"u": "91110000600037341L"})
    recorder.clear()
    again = await graphql(client, query, {"u": "91110000600037341L"})
    assert again == {"data": {"enterprise": None}}
    assert recorder.commands == []


async def test_dead_redis_still_serves_from_mongodb(
    settings: Settings, seeded: list[str], recorder: CommandRecorder
) -> None:
    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with serving(dead) as client:
        recorder.clear()
        first = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
        second = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
        ready = await client.get("/readyz")

    assert first == second == {"data": {"enterprise": HANGZHOU_ARCHIVE}}
    # No cache to fall back on: every request goes to MongoDB.
    assert recorder.finds() == [("registry", "enterprises"), ("registry", "change_records")] * 2
    assert ready.status_code == 200
    assert ready.json()["redis"] == "down: ConnectionError"


async def test_connections_redis_closed_are_replaced_without_a_miss(
    client: httpx.AsyncClient, cold_cache: None, recorder: CommandRecorder, redis: Redis
) -> None:
    """Redis closing the gateway's connections (a restart, a proxy, ``CLIENT KILL``)
    costs no miss: the round trip is made again on a fresh connection."""
    cold = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
    warm = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
    killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    recorder.clear()
    after = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
    again = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})

    assert killed >= 1  # the gateway's own, at least the one its reads were kept on
    assert recorder.commands == []
    assert after == again == warm == cold == {"data": {"enterprise": HANGZHOU_ARCHIVE}}
