"""The hardening issue's attacks, re-run against a live gateway (not a test).

Start a gateway that believes X-Forwarded-For from loopback, so each simulated client
has an address of its own, with the default limits:

    TRUSTED_PROXIES='["127.0.0.1/32"]' GATEWAY_DATA_DIR=/tmp/attack-var \
        .venv/bin/integrity-gateway serve --port 8123 &
    .venv/bin/python bench/attacks.py --url http://127.0.0.1:8123 \
        --pid $(pgrep -f 'serve --port 8123') --mongodb-pid $(pgrep -f attack-var/mongodb)

It prints, per attack: HTTP status, seconds, the gateway's RSS before and after, and
another client's median archive latency while the attack runs (against its median at
rest); then enterprises a crawler harvests in a minute, Redis keys left by a minute of
existence probing, and what a paused MongoDB does to requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from loaders.codes import uscc_check_chars

HANGZHOU = "91330110MAJPDCW44H"
ARCHIVE = "query($u: USCC!) { enterprise(uscc: $u) { name status registeredCapital { amount } } }"
SEARCH = """query($f: EnterpriseFilter, $a: String) { enterprises(filter: $f, first: 10, after: $a)
{ edges { node { uscc name } } pageInfo { hasNextPage endCursor } } }"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def client_headers(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address, "content-type": "application/json"}


async def timed(call: Awaitable[httpx.Response]) -> tuple[float, int]:
    started = time.perf_counter()
    response = await call
    return time.perf_counter() - started, response.status_code


async def bystander(http: httpx.AsyncClient, url: str, stop: asyncio.Event) -> list[float]:
    """Another client reading archive pages back to back (its own address)."""
    latencies: list[float] = []
    body = json.dumps({"query": ARCHIVE, "variables": {"u": HANGZHOU}})
    n = 0
    while not stop.is_set() and n < 2000:
        n += 1
        seconds, _ = await timed(
            http.post(url, content=body, headers=client_headers(f"198.51.100.{n % 200 + 1}"))
        )
        latencies.append(seconds * 1000)
        await asyncio.sleep(0.05)
    return latencies


async def under_attack(
    http: httpx.AsyncClient, url: str, pid: int, name: str, attack: Callable[[], Awaitable[Any]]
) -> None:
    before = rss_mb(pid)
    stop = asyncio.Event()
    other = asyncio.ensure_future(bystander(http, url, stop))
    started = time.perf_counter()
    statuses = []
    while time.perf_counter() - started < 5:  # the attack, repeated for five seconds
        statuses.append(await attack())
    seconds = (time.perf_counter() - started) / len(statuses)
    stop.set()
    latencies = await other
    print(
        f"{name:44} status {sorted(set(statuses))} {seconds * 1000:8.1f} ms each "
        f"({len(statuses)} sent)  RSS {before:.0f} -> {rss_mb(pid):.0f} MB  "
        f"other client p50 {statistics.median(latencies):.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument("--pid", type=int, required=True, help="the gateway's process id")
    parser.add_argument("--mongodb-pid", type=int, help="pause this MongoDB process 10 s")
    parser.add_argument(
        "--only-pause",
        action="store_true",
        help="only the paused-MongoDB part (needs --mongodb-pid)",
    )
    args = parser.parse_args()
    url = f"{args.url}/graphql"
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        if not args.only_pause:
            await attacks(http, url, args)
        if args.mongodb_pid:
            await paused_mongodb(url, args)


async def attacks(http: httpx.AsyncClient, url: str, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    stop_task = asyncio.ensure_future(bystander(http, url, stop))
    await asyncio.sleep(3)
    stop.set()
    print(f"other client p50 at rest: {statistics.median(await stop_task):.1f} ms")

    attacker = iter(range(1, 10**6))

    def sender(body: bytes) -> Callable[[], Awaitable[int]]:
        async def send() -> int:
            address = f"203.0.{next(attacker) % 250}.{next(attacker) % 250 + 1}"
            response = await http.post(url, content=body, headers=client_headers(address))
            return response.status_code

        return send

    usccs = json.dumps([HANGZHOU] * 100)
    for aliases in (1000, 10000):
        query = " ".join(
            f"a{i}: integrityBadges(usccs: {usccs}) {{ name }}" for i in range(aliases)
        )
        body = json.dumps({"query": "{" + query + "}"}).encode()
        await under_attack(
            http,
            url,
            args.pid,
            f"badges x100, {aliases} aliases ({len(body) >> 20} MB)",
            sender(body),
        )
    query = " ".join(f'a{i}: enterprise(uscc: "{HANGZHOU}") {{ name }}' for i in range(10000))
    await under_attack(
        http,
        url,
        args.pid,
        "10,000 aliases of enterprise",
        sender(json.dumps({"query": "{" + query + "}"}).encode()),
    )
    await under_attack(
        http,
        url,
        args.pid,
        "100 MB body",
        sender(b'{"query": "{ __typename }", "x": "' + b"a" * (100 << 20) + b'"}'),
    )
    await under_attack(
        http,
        url,
        args.pid,
        "one field repeated 100,000 times",
        sender(json.dumps({"query": "{" + " __typename" * 100_000 + "}"}).encode()),
    )
    # The largest shape the default limits let through, new text each time (so
    # neither the parse nor the validation cache helps): 59 × region { code } (119).
    variant = iter(range(10**6))

    async def widest() -> int:
        fields = "region { code } " * 58 + " " * next(variant) + "region { code }"
        query = f'{{ enterprise(uscc: "{HANGZHOU}") {{ {fields} }} }}'
        address = f"203.1.{next(variant) % 250}.{next(variant) % 250 + 1}"
        response = await http.post(
            url, content=json.dumps({"query": query}), headers=client_headers(address)
        )
        return response.status_code

    await under_attack(http, url, args.pid, "119 field selections, fresh text", widest)
    deep = '{"query": "{ __typename }", "variables": ' + '{"x":' * 990 + "1" + "}" * 991
    await under_attack(http, url, args.pid, "variables nested 990 deep", sender(deep.encode()))

    # A crawler from one address: filters, then a snowball over names, for a minute.
    harvested: set[str] = set()
    refused = 0
    filters: list[dict[str, Any]] = [
        {"kind": k} for k in ("ENTERPRISE", "INDIVIDUAL_BUSINESS", "COOPERATIVE")
    ]
    filters += [{"region": r} for r in ("11", "31", "32", "33", "44", "51")]
    started = time.perf_counter()
    while filters and time.perf_counter() - started < 60:
        criteria, after = filters.pop(0), None
        for _ in range(5):
            response = await http.post(
                url,
                json={"query": SEARCH, "variables": {"f": criteria, "a": after}},
                headers={"x-forwarded-for": "192.0.2.77"},
            )
            if response.status_code == 429:
                refused += 1
                await asyncio.sleep(1)
                continue
            page = response.json()["data"]["enterprises"]
            for edge in page["edges"]:
                if edge["node"]["uscc"] not in harvested:
                    harvested.add(edge["node"]["uscc"])
                    filters.append({"keyword": edge["node"]["name"][:2]})
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    print(f"crawler, one address, 60 s: {len(harvested)} enterprises, {refused} refusals (429)")

    # Existence probing with valid, unknown USCCs for a minute from one address.
    probed = 0
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        batch = []
        for _ in range(100):
            first16 = f"9133{random.randint(0, 9999):04d}MA{random.randint(0, 999_999):06d}"
            batch.append(first16 + uscc_check_chars(first16))
        response = await http.post(
            url,
            json={
                "query": "query($u: [String!]!) { integrityBadges(usccs: $u) { name } }",
                "variables": {"u": batch},
            },
            headers={"x-forwarded-for": "192.0.2.78"},
        )
        if response.status_code == 200:
            probed += 100
        else:
            await asyncio.sleep(1)
    print(f"existence probing, one address, 60 s: {probed} USCCs answered")


async def curl_seconds(url: str) -> float:
    """Time one GET with curl, a process of its own: this client's busy event loop (and
    httpx's pool, slow with hundreds of requests in flight) must not be what is timed."""
    child = await asyncio.create_subprocess_exec(
        "curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    return float(out)


async def paused_mongodb(url: str, args: argparse.Namespace) -> None:
    """Waves of 200 cold lookups while MongoDB is stopped, more than the in-flight cap;
    /healthz asked meanwhile by curl. Client-side latencies of the waves include httpx's
    own queueing; the gateway's access log has the server-side durations."""
    many = httpx.Limits(max_connections=1000)
    async with httpx.AsyncClient(timeout=60, limits=many) as http:
        os.kill(args.mongodb_pid, signal.SIGSTOP)
        paused = time.perf_counter()
        slowest = 0.0
        codes: set[int] = set()
        n = 0
        saturating = 0

        async def cold(n: int) -> tuple[float, int]:
            first16 = f"9133{n % 10000:04d}MA{random.randint(0, 999_999):06d}"
            return await timed(
                http.post(
                    url,
                    json={
                        "query": ARCHIVE,
                        "variables": {"u": first16 + uscc_check_chars(first16)},
                    },
                    headers={"x-forwarded-for": f"198.18.{n // 250 % 250}.{n % 250 + 1}"},
                )
            )

        health: list[float] = []
        while time.perf_counter() - paused < 10:
            # 200 cold lookups at once: more than the worker's in-flight cap (128).
            wave = [asyncio.ensure_future(cold(n + i)) for i in range(200)]
            n += 200
            await asyncio.sleep(0.3)
            for _ in range(3):
                health.append(await curl_seconds(f"{args.url}/healthz"))
            for seconds, code in await asyncio.gather(*wave):
                slowest, codes = max(slowest, seconds), codes | {code}
                saturating += code == 503
        os.kill(args.mongodb_pid, signal.SIGCONT)
        after, failed = [], 0
        for i in range(20):
            begun = time.perf_counter()
            response = await http.post(
                url,
                json={"query": ARCHIVE, "variables": {"u": HANGZHOU}},
                headers={"x-forwarded-for": f"198.18.1.{i + 1}"},
            )
            after.append(time.perf_counter() - begun)
            failed += "errors" in response.json()
        print(
            f"MongoDB paused 10 s: {n} cold lookups in waves of 200, slowest {slowest:.2f} s, "
            f"statuses {sorted(codes)} ({saturating} were 503), /healthz meanwhile slowest "
            f"{max(health) * 1000:.0f} ms; 20 cache hits right after: slowest "
            f"{max(after) * 1000:.0f} ms, {failed} with errors"
        )


if __name__ == "__main__":
    asyncio.run(main())
