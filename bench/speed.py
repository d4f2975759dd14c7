"""`make bench`: the gateway against the floor of its stack, scenario by scenario.

Starts embedded MongoDB-wire and Redis servers, seeds 10,000 enterprises, then runs the
gateway in production settings (dev mode off, a JWKS file, one uvicorn worker, rate
limits raised so the limiter is measured but never refuses, a cache TTL of a day so
what was warmed stays warm) and the floor
(bench/floor.py) against the same stores. For each scenario (bench/scenarios.py) it
warms Redis through the gateway, checks that floor and gateway answer byte-identical
JSON for a sample of requests, then drives each with wrk (bodies drawn at random from
the seeded USCCs), interleaved F, G, F, G, F, G, and reports medians: requests/s, p50,
p99, the gateway/floor ratio, MongoDB finds, Redis commands and round trips (as the
gateway counts them: a pipeline is one) per gateway request, the MongoDB finds of all
its wrk runs (warm: none), and the gateway's RSS, then samples RSS every 10 s of a 60 s
whole-archive soak.
`archive-cold` flushes Redis before each request (gateway only: the floor has no answer
without Redis), and so does `search-cold`: six search pages (keyword, a keyword no name
has, region, page 5 without filters, two combined filters), on the 10,000 enterprises and
again on a store of its own with 100,000 (`--large`, 0 to skip: seeding takes minutes).
Results go to bench/results/latest.json (`--search-only`: search-cold.json).

Needs wrk (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scenarios import SCENARIOS, Scenario  # noqa: E402
from gateway.devkeys import dev_jwks, mint_role_token  # noqa: E402
from gateway.embedded import EmbeddedMongo, EmbeddedRedis, free_port  # noqa: E402
from gateway.pii import Keyring  # noqa: E402
from gateway.settings import Settings, Source  # noqa: E402
from gateway.sources import Sources  # noqa: E402
from loaders.search import Criteria  # noqa: E402
from loaders.seed import seed  # noqa: E402
from resolvers.search import encode_cursor  # noqa: E402

CURSOR_SECRET = "bench-cursor-secret"
#: The run's key for ID numbers at rest: the seeder seals with it, the gateway opens.
PII_KEYS = f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
UNLIMITED = "1000000000/minute"
BODIES = {"badge": 2000, "badges-100": 300, "archive-public": 2000, "archive-whole": 1000}
SEARCH_BODIES = 100


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


@contextmanager
def process(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    with log.open("w") as out:
        child = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=out)
        try:
            wait_for_port(port)
            yield child.pid
        finally:
            child.terminate()
            child.wait(timeout=30)


def bodies(scenario: Scenario, usccs: list[str], key: bytes) -> list[dict[str, Any]]:
    rng = random.Random(scenario.name)
    if scenario.usccs is None:  # a search page after a random enterprise
        ordered = sorted(usccs)
        starts = rng.sample(ordered[:-60], SEARCH_BODIES)
        return [
            {"query": scenario.query, "variables": {"a": encode_cursor(key, Criteria(), u, 1)}}
            for u in starts
        ]
    count = BODIES[scenario.name]
    if scenario.usccs == 0:
        return [
            {"query": scenario.query, "variables": {"u": rng.choice(usccs)}} for _ in range(count)
        ]
    return [
        {"query": scenario.query, "variables": {"u": rng.sample(usccs, scenario.usccs)}}
        for _ in range(count)
    ]


LUA = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(auth)s
function init(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)) end
function request() return wrk.format(nil, "%(path)s", nil, bodies[math.random(#bodies)]) end
"""


def parse_wrk(output: str) -> dict[str, float]:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": ms(re.search(r"\s50%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        "p99": ms(re.search(r"\s99%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
    }


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse_wrk(output)


async def post_all(
    url: str, payloads: list[dict[str, Any]], headers: dict[str, str], concurrency: int = 8
) -> list[bytes]:
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120) as http:

        async def one(payload: dict[str, Any]) -> bytes:
            async with semaphore:
                response = await http.post(url, json=payload, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
                return response.content

        return await asyncio.gather(*(one(payload) for payload in payloads))


#: The commands the gateway sends itself (MGET for documents, EVALSHA for rate limits;
#: a warm request writes nothing). The scripts' own GETs and SETs, which INFO also
#: counts, run inside Redis.
COMMANDS = ("cmdstat_mget", "cmdstat_evalsha", "cmdstat_eval", "cmdstat_ping")
#: The gateway's count of its Redis round trips for reads (a pipeline is one: the MGET
#: of its turn's documents, with its turn's rate-limit charges).
CACHE_READS = "integrity_gateway_cache_reads_total"


def mongodb_finds(mongo: MongoClient[Any]) -> int:
    """The finds MongoDB has answered so far."""
    return int(mongo.admin.command("serverStatus")["opcounters"]["query"])


def counters(mongo: MongoClient[Any], redis: Redis, metrics_url: str) -> tuple[int, int, float]:
    """MongoDB finds and the gateway's Redis commands so far, as the servers count
    them, and the gateway's Redis round trips for reads, as it counts them."""
    stats: Any = redis.info("commandstats")
    commands = sum(int(stats[name]["calls"]) for name in COMMANDS if name in stats)
    exposed = text_string_to_metric_families(httpx.get(metrics_url).text)
    trips = next(
        (
            sample.value
            for family in exposed
            for sample in family.samples
            if sample.name == CACHE_READS
        ),
        None,
    )
    if trips is None:
        raise RuntimeError(f"{metrics_url} does not expose {CACHE_READS}")
    return mongodb_finds(mongo), commands, trips


COLD_SEARCH = """query($f: EnterpriseFilter, $a: String) {
  enterprises(filter: $f, first: 50, after: $a) { edges { node { uscc name
    identityAuthentication { verified } integrityLevel { grade }
    businessFiles { platform storeCount } } } pageInfo { hasNextPage endCursor } } }"""
#: (label, filter, page): the cold search pages of `make bench`, issue 9's table.
COLD_SEARCHES: list[tuple[str, dict[str, str] | None, int]] = [
    ("keyword 服饰", {"keyword": "服饰"}, 1),
    ("keyword no name has (量子)", {"keyword": "量子"}, 1),
    ("region 33", {"region": "33"}, 1),
    ("page 5, no filter", None, 5),
    ("keyword 有限公司 + region 44 + 1688", {"keyword": "有限公司", "region": "44",
                                           "platform": "ALIBABA_1688"}, 1),
    ("status REVOKED + region 3301", {"status": "REVOKED", "region": "3301"}, 1),
]  # fmt: skip
COLD_SAMPLES = 15


def cold_searches(url: str, redis: Redis, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each search page with Redis flushed before every request: median and worst of
    ``COLD_SAMPLES``, one client, and how many hits the page held."""
    rows: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=120) as http:

        def page(filter_: dict[str, str] | None, after: str | None) -> dict[str, Any]:
            response = http.post(
                url,
                json={"query": COLD_SEARCH, "variables": {"f": filter_, "a": after}},
                headers=headers,
            )
            response.raise_for_status()
            body = response.json()
            if body.get("data") is None or body["data"]["enterprises"] is None:
                raise RuntimeError(f"search failed: {body}")
            connection: dict[str, Any] = body["data"]["enterprises"]
            return connection

        for label, filter_, number in COLD_SEARCHES:
            after = None
            for _ in range(number - 1):
                after = page(filter_, after)["pageInfo"]["endCursor"]
            samples = []
            for _ in range(COLD_SAMPLES):
                redis.flushdb()
                begun = time.perf_counter()
                hits = len(page(filter_, after)["edges"])
                samples.append((time.perf_counter() - begun) * 1000)
            rows[label] = {"p50": statistics.median(samples), "max": max(samples), "hits": hits}
    return rows


def print_cold_searches(enterprises: int, rows: dict[str, dict[str, Any]]) -> None:
    for label, row in rows.items():
        print(
            f"{'search-cold':15} {enterprises:>7} enterprises  {label:34} "
            f"p50 {row['p50']:6.1f} ms  max {row['max']:6.1f} ms  hits {row['hits']}",
            flush=True,
        )


def seed_store(url: str, enterprises: int) -> list[str]:
    """Seed ``enterprises`` into the store at ``url``; their USCCs."""
    started = time.perf_counter()

    async def seeded() -> list[str]:
        sources = Sources(
            dict.fromkeys(Source, url),
            timeout_ms=60_000,
            bulk=True,
            keyring=Keyring.parse(PII_KEYS),
        )
        try:
            await seed(sources, enterprises=enterprises, random_seed=1)
            cursor = sources.db(Source.REGISTRY)["enterprises"].find({}, {"_id": 1})
            return [doc["_id"] async for doc in cursor]
        finally:
            await sources.close()

    usccs = asyncio.run(seeded())
    print(f"seeded {len(usccs)} enterprises in {time.perf_counter() - started:.0f}s", flush=True)
    return usccs


def gateway_environment(mongo_url: str, redis_url: str, jwks: Path, data: Path) -> dict[str, str]:
    """The gateway in production settings, its limits raised so they never refuse."""
    return {
        "MONGODB_URL": mongo_url,
        "REDIS_URL": redis_url,
        "GATEWAY_DEV_MODE": "false",
        "AUTH_JWKS_FILE": str(jwks),
        "GATEWAY_DATA_DIR": str(data),
        "GATEWAY_SEED_ENTERPRISES": "0",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "CURSOR_SECRET": CURSOR_SECRET,
        "PII_ENCRYPTION_KEYS": PII_KEYS,
        "RATE_LIMIT_ANONYMOUS": UNLIMITED,
        "RATE_LIMIT_MEMBER": UNLIMITED,
        "RATE_LIMIT_SERVICE": UNLIMITED,
        "MONGODB_TIMEOUT_MS": "10000",
        "REQUEST_DEADLINE_MS": "30000",
        # Warm stays warm for the whole run: with the default 300 s, entries a
        # scenario found already cached expired under a later one, and the
        # floor (which reads Redis only) had nothing to answer with.
        "CACHE_TTL_SECONDS": "86400",
        # The upkeep's reads every few seconds (audit spool, disclosure notices) are no
        # request's: they would be counted among the finds per request.
        "UPKEEP_INTERVAL_SECONDS": "0",
    }


def large_cold_searches(enterprises: int) -> dict[str, dict[str, Any]]:
    """The cold search pages on a store of its own with ``enterprises`` enterprises."""
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        data = Path(tmp)
        with EmbeddedMongo(data / "mongodb") as mongo, EmbeddedRedis(data / "redis") as red:
            assert isinstance(mongo, EmbeddedMongo) and isinstance(red, EmbeddedRedis)
            seed_store(mongo.url, enterprises)
            dev = Settings(mongodb_url=mongo.url, redis_url=red.url, gateway_data_dir=data)
            jwks = data / "jwks.json"
            jwks.write_text(json.dumps(dev_jwks(dev.dev_keys_dir)))
            member = {"authorization": f"Bearer {mint_role_token(dev, 'member', subject='bench')}"}
            port = free_port()
            command = [str(ROOT / ".venv/bin/integrity-gateway"), "serve", "--port", str(port)]
            environment = gateway_environment(mongo.url, red.url, jwks, data)
            redis = Redis.from_url(red.url)
            try:
                with process(command, environment, port, data / "gateway.log"):
                    rows = cold_searches(f"http://127.0.0.1:{port}/graphql", redis, member)
            finally:
                redis.close()
    print_cold_searches(enterprises, rows)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enterprises", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="F, G pairs per scenario")
    parser.add_argument("--only", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument(
        "--soak", type=int, default=60, help="seconds of whole-archive load, RSS sampled (0: skip)"
    )
    parser.add_argument(
        "--large",
        type=int,
        default=100_000,
        metavar="N",
        help="also measure cold search pages on a store of N enterprises "
        "(seeding 100,000 takes about four minutes; 0: skip)",
    )
    parser.add_argument(
        "--search-only", action="store_true", help="only the cold search pages (no wrk runs)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("make bench needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    chosen = [] if args.search_only else [SCENARIOS[name] for name in (args.only or SCENARIOS)]
    results: dict[str, Any] = {"enterprises": args.enterprises, "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        data = Path(tmp)
        with EmbeddedMongo(data / "mongodb") as mongo, EmbeddedRedis(data / "redis") as red:
            assert isinstance(mongo, EmbeddedMongo) and isinstance(red, EmbeddedRedis)
            dev = Settings(
                mongodb_url=mongo.url,
                redis_url=red.url,
                gateway_data_dir=data,
                gateway_seed_enterprises=0,
            )
            usccs = seed_store(mongo.url, args.enterprises)
            jwks = data / "jwks.json"
            jwks.write_text(json.dumps(dev_jwks(dev.dev_keys_dir)))
            member = {"authorization": f"Bearer {mint_role_token(dev, 'member', subject='bench')}"}
            gateway_port, floor_port = free_port(), free_port()
            gateway_env = gateway_environment(mongo.url, red.url, jwks, data)
            gateway_cmd = [
                str(ROOT / ".venv/bin/integrity-gateway"),
                "serve",
                "--port",
                str(gateway_port),
            ]
            floor_cmd = [
                sys.executable, str(ROOT / "bench/floor.py"), "--port", str(floor_port),
                "--redis", red.url, "--cursor-secret", CURSOR_SECRET,
            ]  # fmt: skip
            mongo_client: MongoClient[Any] = MongoClient(mongo.url)
            redis = Redis.from_url(red.url)
            with (
                process(
                    gateway_cmd, gateway_env, gateway_port, data / "gateway.log"
                ) as gateway_pid,
                process(floor_cmd, {"PYTHONPATH": str(ROOT)}, floor_port, data / "floor.log"),
            ):
                rss_start = rss_mb(gateway_pid)
                gateway_url = f"http://127.0.0.1:{gateway_port}/graphql"
                metrics_url = f"http://127.0.0.1:{gateway_port}/metrics"
                for scenario in chosen:
                    floor_url = f"http://127.0.0.1:{floor_port}/{scenario.name}"
                    headers = member if scenario.viewer == "member" else {}
                    payloads = bodies(scenario, usccs, CURSOR_SECRET.encode())
                    asyncio.run(post_all(gateway_url, payloads, headers))  # warm Redis
                    sample = payloads[:: max(1, len(payloads) // 50)]
                    via_gateway = asyncio.run(post_all(gateway_url, sample, headers))
                    via_floor = asyncio.run(post_all(floor_url, sample, headers))
                    for payload, ours, theirs in zip(sample, via_gateway, via_floor, strict=True):
                        if ours != theirs:
                            print(f"{scenario.name}: floor and gateway differ for {payload}")
                            at = next(
                                (
                                    i
                                    for i, (a, b) in enumerate(zip(ours, theirs, strict=False))
                                    if a != b
                                ),
                                min(len(ours), len(theirs)),
                            )
                            start = max(0, at - 200)
                            print(f"first difference at byte {at}:")
                            print(f"gateway: {ours[start : at + 300].decode(errors='replace')}")
                            print(f"floor:   {theirs[start : at + 300].decode(errors='replace')}")
                            return 1
                    # Round trips of one warm request, measured over the sample.
                    before = counters(mongo_client, redis, metrics_url)
                    asyncio.run(post_all(gateway_url, sample, headers, concurrency=1))
                    after = counters(mongo_client, redis, metrics_url)
                    finds = (after[0] - before[0]) / len(sample)
                    commands = (after[1] - before[1]) / len(sample)
                    trips = (after[2] - before[2]) / len(sample)
                    body_file = data / f"{scenario.name}.jsonl"
                    body_file.write_text(
                        "\n".join(json.dumps(p, ensure_ascii=False) for p in payloads)
                    )
                    auth = (
                        f'wrk.headers["Authorization"] = "{headers["authorization"]}"'
                        if headers
                        else ""
                    )
                    runs: dict[str, list[dict[str, float]]] = {"floor": [], "gateway": []}
                    # The floor never reads MongoDB: every find from here on is the gateway's.
                    finds_before_load = mongodb_finds(mongo_client)
                    for _ in range(args.rounds):
                        for target, url, path in (
                            ("floor", f"http://127.0.0.1:{floor_port}", f"/{scenario.name}"),
                            ("gateway", f"http://127.0.0.1:{gateway_port}", "/graphql"),
                        ):
                            script = data / f"{scenario.name}-{target}.lua"
                            script.write_text(
                                LUA % {"bodies": body_file, "auth": auth, "path": path}
                            )
                            runs[target].append(
                                run_wrk(url, script, args.duration, args.connections)
                            )
                    finds_under_load = mongodb_finds(mongo_client) - finds_before_load
                    summary = {
                        target: {
                            metric: statistics.median(run[metric] for run in samples)
                            for metric in ("rps", "p50", "p99")
                        }
                        for target, samples in runs.items()
                    }
                    row = {
                        "description": scenario.description,
                        **summary,
                        "ratio": summary["gateway"]["rps"] / summary["floor"]["rps"],
                        "mongodb_finds_per_request": finds,
                        "mongodb_finds_under_load": finds_under_load,
                        "redis_commands_per_request": commands,
                        "redis_round_trips_per_request": trips,
                        "gateway_rss_mb": rss_mb(gateway_pid),
                    }
                    results["scenarios"][scenario.name] = row
                    print(
                        f"{scenario.name:15} floor {summary['floor']['rps']:7.0f} req/s   "
                        f"gateway {summary['gateway']['rps']:7.0f} req/s "
                        f"(p50 {summary['gateway']['p50']:6.1f} ms, "
                        f"p99 {summary['gateway']['p99']:6.1f} ms)"
                        f"   gateway/floor {row['ratio']:.2f}   finds/req {finds:.2f} "
                        f"(under load: {finds_under_load})   "
                        f"redis commands/req {commands:.2f} trips/req {trips:.2f}   "
                        f"RSS {row['gateway_rss_mb']:.0f} MB",
                        flush=True,
                    )
                if args.soak and "archive-whole" in results["scenarios"]:
                    # Memory under sustained load, after the warm-up above: RSS every 10 s.
                    script = data / "archive-whole-gateway.lua"
                    soak = subprocess.Popen(
                        ["wrk", "-t1", f"-c{args.connections}", f"-d{args.soak}s", "-s",
                         str(script), f"http://127.0.0.1:{gateway_port}"],
                        stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                    samples_mb = [rss_mb(gateway_pid)]
                    for _ in range(args.soak // 10):
                        time.sleep(10)
                        samples_mb.append(rss_mb(gateway_pid))
                    soak.wait()
                    results["soak_rss_mb"] = samples_mb
                    print(
                        f"{'soak':15} {args.soak}s of archive-whole: gateway RSS every 10 s "
                        + " ".join(f"{mb:.0f}" for mb in samples_mb)
                        + " MB",
                        flush=True,
                    )
                # Cold: Redis flushed before each request, one client, gateway only.
                rows = cold_searches(gateway_url, redis, member)
                print_cold_searches(args.enterprises, rows)
                results["search_cold"] = {str(args.enterprises): rows}
                whole = SCENARIOS["archive-whole"]
                cold_payloads = bodies(whole, usccs, CURSOR_SECRET.encode())[:50]
                samples = []
                with httpx.Client(timeout=60) as http:
                    for payload in cold_payloads:
                        redis.flushdb()
                        begun = time.perf_counter()
                        http.post(gateway_url, json=payload, headers=member).raise_for_status()
                        samples.append((time.perf_counter() - begun) * 1000)
                cold = statistics.median(samples)
                results["scenarios"]["archive-cold"] = {
                    "description": "whole archive, member, Redis flushed before each request",
                    "gateway": {"p50": cold},
                }
                print(
                    f"{'archive-cold':15} gateway p50 {cold:.1f} ms "
                    "(one client, Redis flushed before each request)"
                )
                results["gateway_rss_mb"] = {"start": rss_start, "end": rss_mb(gateway_pid)}
            redis.close()
            mongo_client.close()
    if args.large:
        results["search_cold"][str(args.large)] = large_cold_searches(args.large)
    # A partial run (--search-only) does not replace the full run's results.
    out = ROOT / "bench/results" / ("search-cold.json" if args.search_only else "latest.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
