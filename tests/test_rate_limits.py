"""Rate limits in cost units: shared through Redis, per process without it, per client.

Each test counts a client of its own (an address behind a trusted proxy, or a token
subject of its own), since the counters live in the session's Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from limits.aio.storage import memory as limits_memory
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.cache import DocumentCache
from gateway.embedded import free_port
from gateway.limits import Limits
from gateway.redislink import Link
from gateway.settings import Settings, Source
from gateway.sources import GATE, ChargeGate, NotAdmittedError, Sources, admitted
from gateway.viewer import Anonymous
from tests.conftest import CommandRecorder, bearer, serving
from tests.test_archive import HANGZHOU

pytestmark = pytest.mark.usefixtures("seeded")

NAME = "query($u: USCC!) { enterprise(uscc: $u) { name } }"  # costs 10
_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


@pytest.fixture
def address() -> str:
    """A client address no other test uses."""
    return next(_addresses)


def limited(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32"], **update})


async def lookup(client: httpx.AsyncClient, address: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": NAME, "variables": {"u": HANGZHOU}},
        # The left hop is what the client claimed; the proxy appended the real one.
        headers={"x-forwarded-for": f"198.51.100.7, {address}", **headers},
    )


async def test_over_budget_is_429_with_retry_after_and_ratelimit_headers(
    settings: Settings, address: str
) -> None:
    # 10.0.0.9 is not a trusted proxy here, so it would be the client: trust it too.
    update = {
        "rate_limit_anonymous": "25/minute",
        "trusted_proxies": ["127.0.0.1/32", "10.0.0.9/32"],
    }
    async with serving(settings.model_copy(update=update)) as client:
        first, second = await lookup(client, address), await lookup(client, address)
        refused = await lookup(client, address)

    assert first.status_code == second.status_code == 200
    assert first.headers["ratelimit-policy"] == "25;w=60"
    assert refused.status_code == 429
    body = refused.json()
    assert "data" not in body
    [error] = body["errors"]
    retry_after = int(refused.headers["retry-after"])
    assert error == {
        "message": f"Rate limit 25 per 1 minute (cost units) reached; retry in {retry_after}s.",
        "extensions": {"code": "RATE_LIMITED"},
    }
    assert 1 <= retry_after <= 60
    assert refused.headers["ratelimit-limit"] == "25"
    assert refused.headers["ratelimit-remaining"] == "5"
    assert refused.headers["ratelimit-reset"] == str(retry_after)


async def test_two_app_instances_share_one_budget_through_redis(
    settings: Settings, address: str
) -> None:
    shared = limited(settings, rate_limit_anonymous="30/minute")
    async with serving(shared) as one, serving(shared) as two:
        spent = [(await lookup(c, address)).status_code for c in (one, two, one)]
        refused = await lookup(two, address)
        other_client = await lookup(two, next(_addresses))

    assert spent == [200, 200, 200]
    assert refused.status_code == 429
    assert other_client.status_code == 200


async def test_without_redis_each_process_still_limits(settings: Settings, address: str) -> None:
    dead = limited(
        settings,
        rate_limit_anonymous="20/minute",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    async with serving(dead) as client:
        codes = [(await lookup(client, address)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(settings: Settings) -> None:
    untrusted = settings.model_copy(
        update={"rate_limit_anonymous": "21/minute", "trusted_proxies": ["192.0.2.1/32"]}
    )
    # The test client's peer (127.0.0.1) is no trusted proxy: a forged header is
    # ignored and every request counts against the peer.
    async with serving(untrusted) as client:
        codes = [(await lookup(client, next(_addresses))).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_members_are_counted_per_user_and_service_clients_per_client(
    settings: Settings,
) -> None:
    ann, bob, small, big = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("ann", "bob", "s", "b"))
    update = {
        "rate_limit_member": "20/minute",
        "rate_limit_service": "1000/minute",
        "rate_limit_service_clients": {small: "10/minute"},
    }
    async with serving(settings.model_copy(update=update)) as client:

        async def codes(role: str, subject: str, times: int) -> list[int]:
            headers = bearer(settings, role, subject=subject)
            payload = {"query": NAME, "variables": {"u": HANGZHOU}}
            return [
                (await client.post("/graphql", json=payload, headers=headers)).status_code
                for _ in range(times)
            ]

        assert await codes("member", ann, 3) == [200, 200, 429]
        assert await codes("member", bob, 2) == [200, 200]
        assert await codes("service", small, 2) == [200, 429]
        assert await codes("service", big, 5) == [200] * 5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@asynccontextmanager
async def in_process_limits(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose rate limits count in this process (the fallback), on a fake clock."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        app.state.runtime = dataclasses.replace(runtime, limits=Limits(settings, None))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


SEARCH = """
query($f: EnterpriseFilter, $a: String) {
  enterprises(filter: $f, first: 10, after: $a) {
    edges { node { uscc name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_a_crawler_gets_no_more_than_its_hourly_share(
    settings: Settings, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harvest strategy of the issue: search filters (region × kind × status),
    then a snowball over harvested names; waits out every 429 on a fake clock."""
    clock = FakeClock()
    monkeypatch.setattr(limits_memory, "time", clock)
    hourly = 1200  # a search page of 10 costs 112: at most 10 pages, 100 enterprises
    crawl = settings.model_copy(update={"rate_limit_anonymous": f"600/minute;{hourly}/hour"})
    harvested: dict[str, float] = {}
    refusals = 0
    async with in_process_limits(crawl) as client:
        kinds = ("ENTERPRISE", "INDIVIDUAL_BUSINESS", "COOPERATIVE")
        filters: list[dict[str, Any]] = [
            {},
            *({"kind": kind} for kind in kinds),
            *({"region": region, "kind": kind} for region in ("11", "31", "33") for kind in kinds),
        ]
        started = clock.now
        while filters and clock.now - started < 2 * 3600:
            criteria = filters.pop(0)
            after, pages = None, 0
            while pages < 5:  # an anonymous viewer may read five pages of a search
                response = await client.post(
                    "/graphql", json={"query": SEARCH, "variables": {"f": criteria, "a": after}}
                )
                if response.status_code == 429:
                    refusals += 1
                    clock.now += int(response.headers["retry-after"])
                    continue
                pages += 1
                clock.now += 1
                page = response.json()["data"]["enterprises"]
                for edge in page["edges"]:
                    uscc, name = edge["node"]["uscc"], edge["node"]["name"]
                    if uscc not in harvested:
                        harvested[uscc] = clock.now
                        filters.append({"keyword": name[:2]})  # snowball on names
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]

    first_hour = [at for at in harvested.values() if at < started + 3600]
    assert refusals > 0
    assert len(first_hour) <= hourly // 112 * 10
    # The limit is a rate, not a wall: the crawler went on harvesting in the next hour.
    assert len(harvested) > len(first_hour)


async def test_probing_for_unknown_usccs_costs_like_a_lookup_and_misses_expire_soon(
    settings: Settings, address: str, redis: Redis
) -> None:
    unknown = "91110000600037341L"  # valid, in no enterprise of the seed
    probe = "query($u: [String!]!) { integrityBadges(usccs: $u) { name } }"
    async with serving(limited(settings, rate_limit_anonymous="250/minute")) as client:
        codes = []
        for _ in range(3):
            response = await client.post(
                "/graphql",
                json={"query": probe, "variables": {"u": [unknown] * 10}},
                headers={"x-forwarded-for": address},
            )
            codes.append(response.status_code)
    assert codes == [200, 200, 429]  # 100 units each, hit or miss
    ttl = await redis.ttl(f"ig:2:registry:enterprises:_id:{unknown}")
    assert 0 < ttl <= settings.cache_miss_ttl_seconds


async def test_charges_go_to_redis_in_the_round_trip_of_the_reads_of_their_turn(
    settings: Settings, address: str, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines: list[list[bytes]] = []  # the commands of each round trip, by name
    send = Link.send

    def counted(self: Link, packed: bytes, count: int, answered: Any) -> None:
        pipelines.append(re.findall(rb"(?:^|\r\n)\*\d+\r\n\$\d+\r\n([A-Z]+)\r\n", packed))
        send(self, packed, count, answered)

    monkeypatch.setattr(Link, "send", counted)
    cache = DocumentCache.from_url(settings.redis_url, ttl_seconds=60)
    windows = limited(settings, rate_limit_anonymous="25/minute;30/hour")
    limits = Limits(windows, settings.redis_url, health=cache)
    try:
        charges = [limits.charge(Anonymous(), address, 10) for _ in range(4)]
        found = await cache.get_many(["ig:test:absent"])
        spent = [await limits.allowance(charge) for charge in charges]
        # One round trip: the turn's MGET and one script call for the four charges.
        assert pipelines == [[b"MGET", b"EVALSHA"]]
        assert found == {}
        # Spent in the order asked, window by window, by the library's script: 10 + 10
        # fit in both; the third does not fit the minute's 25, so the hour is not charged.
        assert [allowance.allowed for allowance in spent] == [True, True, False, False]
        assert (str(spent[2].limit), spent[2].remaining) == ("25 per 1 minute", 5)
        minute = f"LIMITS:{{LIMITER/ip/{address}/25/1/minute}}"
        hour = f"LIMITS:{{LIMITER/ip/{address}/30/1/hour}}"
        assert (await redis.get(minute), await redis.get(hour)) == (b"20", b"20")

        # A later window refuses: the earlier ones keep the charge.
        other = next(_addresses)
        hourly = Limits(
            limited(settings, rate_limit_anonymous="25/minute;15/hour"),
            settings.redis_url,
            health=cache,
        )
        try:
            first, second = [await hourly.spend(Anonymous(), other, 10) for _ in range(2)]
        finally:
            await hourly.close()
        assert (first.allowed, second.allowed, str(second.limit)) == (True, False, "15 per 1 hour")
        assert await redis.get(f"LIMITS:{{LIMITER/ip/{other}/25/1/minute}}") == b"20"
        assert await redis.get(f"LIMITS:{{LIMITER/ip/{other}/15/1/hour}}") == b"10"

        # Redis forgot the script (a restart): it is loaded and run again. A charge with
        # no read in its turn goes alone.
        await redis.script_flush()
        third = next(_addresses)
        assert (await limits.spend(Anonymous(), third, 10)).allowed
        assert await redis.get(f"LIMITS:{{LIMITER/ip/{third}/25/1/minute}}") == b"10"
        assert pipelines[-1] == [b"EVALSHA"]
    finally:
        await limits.close()
        await cache.close()


async def test_a_refused_query_reads_no_source_and_writes_nothing(
    settings: Settings, seeded: list[str], address: str, redis: Redis, recorder: CommandRecorder
) -> None:
    """A query runs while its charge travels with its first read: a refused one has read
    Redis, and nothing else."""
    allowed_uscc, refused_uscc = seeded[-1], seeded[-2]
    keys = [f"ig:2:registry:enterprises:_id:{uscc}" for uscc in (allowed_uscc, refused_uscc)]
    await redis.delete(*keys)
    async with serving(limited(settings, rate_limit_anonymous="15/minute")) as client:
        payload = {"query": NAME, "variables": {"u": allowed_uscc}}
        headers = {"x-forwarded-for": address}
        await client.post("/graphql", json=payload, headers=headers)  # the plan is compiled
        recorder.clear()
        payload["variables"] = {"u": refused_uscc}
        refused = await client.post("/graphql", json=payload, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED"}
    assert recorder.finds() == []
    assert await redis.exists(keys[1]) == 0  # no write-back


async def test_sources_are_closed_to_a_request_its_charge_has_not_admitted(
    settings: Settings,
) -> None:
    sources = Sources.from_settings(settings, None)
    loop = asyncio.get_running_loop()
    gate, answer = ChargeGate(), loop.create_future()
    gate.hold(answer)
    held = GATE.set(gate)
    try:
        with pytest.raises(NotAdmittedError):
            sources.collection(Source.REGISTRY, "enterprises")
        waiting = asyncio.ensure_future(admitted())
        await asyncio.sleep(0)
        assert not waiting.done()
        answer.set_result(0)  # every window took the cost
        await waiting
        assert sources.collection(Source.REGISTRY, "enterprises").name == "enterprises"

        refused, answer = ChargeGate(), loop.create_future()
        refused.hold(answer)
        answer.set_result(2)  # the second window refused
        GATE.set(refused)
        with pytest.raises(NotAdmittedError):
            await admitted()
        with pytest.raises(NotAdmittedError):
            sources.gateway  # noqa: B018
    finally:
        GATE.reset(held)
        await sources.close()
