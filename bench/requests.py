"""Request cost, in process (httpx over ASGI), against embedded stores: `python bench/requests.py`.

Not a test. Prints, for an archive page, a search page of 50 and badge batches, the median
time warm (Redis holds every document) and cold (Redis flushed before each request), and
the ratios that matter: cold/warm, and 100 badges against 10.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scenarios import WHOLE
from gateway.app import create_app
from gateway.devkeys import mint_role_token
from gateway.embedded import EmbeddedMongo, EmbeddedRedis
from gateway.settings import Settings, Source
from gateway.sources import Sources
from loaders.seed import seed

ENTERPRISES = 2000
SEARCH = """{ enterprises(first: 50) { edges { node { uscc name identityAuthentication { verified }
  integrityLevel { grade } businessFiles { platform storeCount } } } } }"""
BADGES = "query($u: [String!]!) { integrityBadges(usccs: $u) { uscc verified grade serviceState } }"


async def _median_ms(
    run: Callable[[], Awaitable[Any]], before: Callable[[], Awaitable[Any]] | None, times: int
) -> float:
    samples = []
    for _ in range(times):
        if before is not None:
            await before()
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def main(data_dir: Path) -> None:
    with EmbeddedMongo(data_dir / "mongodb") as mongo, EmbeddedRedis(data_dir / "redis") as red:
        assert isinstance(mongo, EmbeddedMongo) and isinstance(red, EmbeddedRedis)
        settings = Settings(
            mongodb_url=mongo.url, redis_url=red.url, gateway_data_dir=data_dir,
            gateway_seed_enterprises=0,
            # Measured, never refused: this measures request cost, not the limits.
            rate_limit_member="1000000000/minute", cost_limit_operator=1_000_000,
        )  # fmt: skip
        bulk = Sources.from_settings(settings, None, bulk=True)
        await seed(bulk, enterprises=ENTERPRISES, random_seed=1)
        usccs = [doc["_id"] async for doc in bulk.db(Source.REGISTRY)["enterprises"].find()]
        await bulk.close()
        operator = {"authorization": f"Bearer {mint_role_token(settings, 'operator')}"}
        owner = {
            "authorization": f"Bearer {mint_role_token(settings, 'owner', enterprise=usccs[0])}"
        }
        redis = Redis.from_url(red.url)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:

                def post(
                    query: str, variables: dict[str, Any], headers: dict[str, str] = operator
                ) -> Callable[[], Awaitable[Any]]:
                    async def run() -> None:
                        payload = {"query": query, "variables": variables}
                        response = await client.post("/graphql", json=payload, headers=headers)
                        assert response.status_code == 200

                    return run

                cases = {
                    # The operator's reads of sensitive fields are written to the audit
                    # trail before the response; the owner's are not recorded at all.
                    "archive page (every field)": post(WHOLE, {"u": usccs[0]}),
                    "the same, as its owner": post(WHOLE, {"u": usccs[0]}, owner),
                    "search page of 50": post(SEARCH, {}),
                    "10 badges": post(BADGES, {"u": usccs[:10]}),
                    "100 badges": post(BADGES, {"u": usccs[:100]}),
                }
                results = {}
                for name, run in cases.items():
                    await run()
                    warm = await _median_ms(run, None, 100)
                    cold = await _median_ms(run, redis.flushdb, 30)
                    results[name] = (warm, cold)
                    print(f"{name:28} warm {warm:7.2f} ms   cold {cold:7.2f} ms   "
                          f"cold/warm {cold / warm:5.2f}")  # fmt: skip
                for label, index in (("warm", 0), ("cold", 1)):
                    ratio = results["100 badges"][index] / results["10 badges"][index]
                    print(f"100 badges / 10 badges, {label}: {ratio:.2f}")
                audited = results["archive page (every field)"][0]
                unaudited = results["the same, as its owner"][0]
                print(f"archive page, audited (operator) / unaudited (owner), warm: "
                      f"{audited / unaudited:.2f}")  # fmt: skip
        await redis.aclose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
    sys.exit(0)
