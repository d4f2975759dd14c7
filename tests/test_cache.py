"""The Redis read-through: a warm request costs no MongoDB query; a dead Redis costs nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import uvloop
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.cache import DocumentCache
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


# --- The link the reads travel on (gateway/redislink.py) ----------------------------------


async def test_round_trips_of_several_turns_are_in_flight_on_one_link_at_once(
    settings: Settings, redis: Redis
) -> None:
    """Each turn's MGET goes out as soon as its turn ends, before the one before it is
    answered; the answers come back in order, each to its own callers."""
    assert settings.redis_url is not None
    await redis.mset({"ig:test:link:a": b"A", "ig:test:link:b": b"B", "ig:test:link:c": b""})
    cache = DocumentCache.from_url(settings.redis_url, ttl_seconds=60)
    try:
        assert await cache.get_many(["ig:test:link:a"]) == {"ig:test:link:a": b"A"}
        link = cache._link
        first = asyncio.ensure_future(cache.get_many(["ig:test:link:a", "ig:test:link:c"]))
        await asyncio.sleep(0)  # the first turn ends: its MGET is written
        await asyncio.sleep(0)
        second = asyncio.ensure_future(cache.get_many(["ig:test:link:b", "ig:test:link:x"]))
        same_turn = asyncio.ensure_future(cache.get_many(["ig:test:link:a"]))
        answers = await asyncio.gather(first, second, same_turn)
        assert answers == [
            {"ig:test:link:a": b"A"},  # the tombstone reads as absent
            {"ig:test:link:b": b"B"},
            {"ig:test:link:a": b"A"},
        ]
        assert cache._link is link  # no new connection for any of them
    finally:
        await cache.close()
        await redis.delete("ig:test:link:a", "ig:test:link:b", "ig:test:link:c")


async def test_a_turns_callers_share_what_its_mget_answered(
    settings: Settings, redis: Redis
) -> None:
    """``read_many`` gives every caller of a turn the turn's whole answer, misses and
    tombstones held as they came (None, empty), with no copy of its own; ``get_many``
    gives each caller its own keys that hold a value."""
    assert settings.redis_url is not None
    await redis.mset({"ig:test:shared:a": b"A", "ig:test:shared:t": b""})
    cache = DocumentCache.from_url(settings.redis_url, ttl_seconds=60)
    try:
        first = asyncio.ensure_future(cache.read_many(["ig:test:shared:a"]))
        second = asyncio.ensure_future(cache.read_many(["ig:test:shared:t", "ig:test:shared:x"]))
        own = asyncio.ensure_future(cache.get_many(["ig:test:shared:t", "ig:test:shared:a"]))
        shared, also, mine = await asyncio.gather(first, second, own)
        assert shared is also
        assert dict(shared) == {
            "ig:test:shared:a": b"A",
            "ig:test:shared:t": b"",
            "ig:test:shared:x": None,
        }
        assert mine == {"ig:test:shared:a": b"A"}
        assert await cache.read_many([]) == {}
    finally:
        await cache.close()
        await redis.delete("ig:test:shared:a", "ig:test:shared:t")


async def test_a_round_trip_on_a_link_closed_under_it_is_sent_again(
    settings: Settings, redis: Redis
) -> None:
    assert settings.redis_url is not None
    await redis.set("ig:test:link:again", b"kept")
    cache = DocumentCache.from_url(settings.redis_url, ttl_seconds=60)
    try:
        assert await cache.get_many(["ig:test:link:again"]) == {"ig:test:link:again": b"kept"}
        closed = cache._link
        assert closed is not None
        asking = asyncio.ensure_future(cache.get_many(["ig:test:link:again"]))
        await asyncio.sleep(0)  # written on the link...
        await asyncio.sleep(0)
        closed._transport.abort()  # type: ignore[union-attr]  # ...which is then lost
        assert await asking == {"ig:test:link:again": b"kept"}
        assert isinstance(closed.failed, RedisConnectionError)
        assert cache._link is not closed and cache.available
    finally:
        await cache.close()
        await redis.delete("ig:test:link:again")


async def test_a_redis_that_never_answers_fails_the_read_after_its_timeout(
    silent_server: str,
) -> None:
    """A read is a miss once the read timeout passes without an answer; the link is
    given up (its later answers could match no read)."""
    port = silent_server.split(":")[2].split("/")[0]
    cache = DocumentCache.from_url(f"redis://127.0.0.1:{port}/0", ttl_seconds=60, timeout_s=0.2)
    try:
        assert await cache.get_many(["k"]) == {}
        assert cache._link is not None
        assert isinstance(cache._link.failed, RedisTimeoutError)
        assert str(cache._link.failed) == "Timeout reading from Redis."
    finally:
        await cache.close()


async def test_a_link_logs_in_and_selects_the_database_its_url_names(settings: Settings) -> None:
    """The link speaks as the pool's connections would: AUTH with the URL's user and
    password, SELECT its database; a wrong password is a miss, never a wrong answer."""
    assert settings.redis_url is not None
    admin = Redis.from_url(settings.redis_url)
    other = Redis.from_url(settings.redis_url.rsplit("/", 1)[0] + "/3")
    user = f"link-{uuid.uuid4().hex[:8]}"
    await admin.execute_command("ACL", "SETUSER", user, "on", ">s3cret", "~*", "+@all")
    await other.set("ig:test:link:db3", b"three")
    address = settings.redis_url.split("//", 1)[1].split("/", 1)[0]
    cache = DocumentCache.from_url(f"redis://{user}:s3cret@{address}/3", ttl_seconds=60)
    refused = DocumentCache.from_url(f"redis://{user}:wrong@{address}/3", ttl_seconds=60)
    try:
        assert await cache.get_many(["ig:test:link:db3"]) == {"ig:test:link:db3": b"three"}
        assert await refused.get_many(["ig:test:link:db3"]) == {}
        assert refused._link is None  # never opened: the login failed
    finally:
        await cache.close()
        await refused.close()
        await other.delete("ig:test:link:db3")
        await admin.execute_command("ACL", "DELUSER", user)
        await other.aclose()
        await admin.aclose()


def test_reads_and_scripts_travel_on_the_link_under_uvloop(settings: Settings) -> None:
    """``serve`` runs on uvloop, whose transports are not asyncio's classes."""
    assert settings.redis_url is not None
    url = settings.redis_url

    async def main() -> tuple[dict[str, bytes], list[Any]]:
        client = Redis.from_url(url)
        cache = DocumentCache.from_url(url, ttl_seconds=60)
        try:
            await client.set("ig:test:link:uvloop", b"fast")
            sha = await client.script_load("return {KEYS[1], ARGV[1]}")
            answered: list[Any] = []
            cache.run_script(lambda: (sha, ["k"], ["v"]), answered.append)
            found = await cache.get_many(["ig:test:link:uvloop", "ig:test:link:none"])
            return found, answered
        finally:
            await client.delete("ig:test:link:uvloop")
            await cache.close()
            await client.aclose()

    found, answered = uvloop.run(main())
    assert found == {"ig:test:link:uvloop": b"fast"}
    assert answered == [[b"k", b"v"]]


async def test_a_read_asked_of_a_closed_cache_is_cancelled_and_opens_nothing(
    settings: Settings,
) -> None:
    """Shutting down: reads in flight, and any asked after, are cancelled, as the
    request that asked them is being; no connection is opened for them."""
    assert settings.redis_url is not None
    cache = DocumentCache.from_url(settings.redis_url, ttl_seconds=60)
    assert await cache.get_many(["ig:test:closed"]) == {}
    link = cache._link
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await cache.get_many(["ig:test:closed"])
    assert cache._link is link and link is not None
    assert isinstance(link.failed, asyncio.CancelledError)


async def test_a_login_that_gets_no_answer_misses_quietly(
    silent_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The link's setup (AUTH here) waits no longer than the connect timeout; the
    answer that never came is given to nobody, and nothing is logged as an error."""
    port = silent_server.split(":")[2].split("/")[0]
    url = f"redis://someone:secret@127.0.0.1:{port}/0"
    cache = DocumentCache.from_url(url, ttl_seconds=60, timeout_s=0.2)
    try:
        with caplog.at_level("ERROR"):
            assert await cache.get_many(["k"]) == {}
            await asyncio.sleep(0)
        assert cache._link is None  # never set up
        assert [record.getMessage() for record in caplog.records] == []
    finally:
        await cache.close()
