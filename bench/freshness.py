"""How long a change made straight in MongoDB takes to show through GraphQL.

Starts embedded MongoDB-wire and Redis servers, seeds enterprises, and runs the gateway
in production settings (bench/speed.py's) twice: once with its own change-stream
watcher, once with `WATCHER_ENABLED=false` beside a separate `integrity-gateway watch`
process (the way one watcher serves many replicas). For each sample it warms an
enterprise's archive in Redis through the gateway, changes the source document with
pymongo (as the registry sync or an operator script would), and asks the gateway
again and again until the answer shows the change: the delay runs from the write's
acknowledgement to the first answer that shows it. Three kinds of change: a registered
address updated, a service suspended (the grade must be withheld), an enterprise
deleted (the archive must be null). Prints p50, p95 and max per kind and writes
bench/results/freshness.json. A control run with no watcher at all shows the delays are
the watcher's doing: there, updates are still hidden five seconds after they were made.

    .venv/bin/python bench/freshness.py [--samples 40] [--enterprises 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.speed import gateway_environment, process, seed_store  # noqa: E402
from gateway.devkeys import dev_jwks, mint_role_token  # noqa: E402
from gateway.embedded import EmbeddedMongo, EmbeddedRedis, free_port  # noqa: E402
from gateway.settings import Settings  # noqa: E402

ARCHIVE = """query ($u: USCC!) {
  enterprise(uscc: $u) { registeredAddress serviceStatus { state } integrityLevel { grade } }
}"""
#: A guard: a change not shown after this long is reported as a failure.
PATIENCE_S = 30.0
CONTROL_S = 5.0
CONTROL_SAMPLES = 5


def ask(http: httpx.Client, uscc: str) -> dict[str, Any]:
    response = http.post("/graphql", json={"query": ARCHIVE, "variables": {"u": uscc}})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def delay_ms(http: httpx.Client, uscc: str, shown: Callable[[dict[str, Any]], bool]) -> float:
    """Milliseconds from now until the gateway's answer for ``uscc`` is ``shown``."""
    started = time.perf_counter()
    while True:
        if shown(ask(http, uscc)):
            return (time.perf_counter() - started) * 1000
        if time.perf_counter() - started > PATIENCE_S:
            raise RuntimeError(f"{uscc}: the change did not show within {PATIENCE_S}s")


def measure(
    http: httpx.Client, mongo: MongoClient[Any], usccs: list[str]
) -> dict[str, list[float]]:
    registry, integrity = mongo["registry"], mongo["integrity"]
    delays: dict[str, list[float]] = {"address updated": [], "suspended": [], "deleted": []}
    for n, uscc in enumerate(usccs):
        warm = ask(http, uscc)["data"]["enterprise"]
        kind = list(delays)[n % 3]
        if kind == "address updated":
            address = f"{warm['registeredAddress']}（第 {n} 次更正）"
            registry["enterprises"].update_one({"_id": uscc}, {"$set": {"address": address}})

            def corrected(body: dict[str, Any], want: str = address) -> bool:
                return bool(body["data"]["enterprise"]["registeredAddress"] == want)

            delays[kind].append(delay_ms(http, uscc, corrected))
        elif kind == "suspended":
            if warm["serviceStatus"] is None or warm["serviceStatus"]["state"] != "ACTIVE":
                continue
            integrity["service_status"].update_one(
                {"_id": uscc}, {"$set": {"status": "SUSPENDED", "reason": "核查中"}}
            )
            delays[kind].append(
                delay_ms(
                    http,
                    uscc,
                    lambda b: (
                        b["data"]["enterprise"]["integrityLevel"] is None
                        and b["data"]["enterprise"]["serviceStatus"] == {"state": "SUSPENDED"}
                    ),
                )
            )
        else:
            registry["enterprises"].delete_one({"_id": uscc})
            delays[kind].append(delay_ms(http, uscc, lambda b: b["data"]["enterprise"] is None))
    return delays


def still_stale(http: httpx.Client, mongo: MongoClient[Any], usccs: list[str]) -> int:
    """The control: with no watcher anywhere, how many of these updates the gateway
    still hides ``CONTROL_S`` after they were written (the cache TTL is a day)."""
    registry = mongo["registry"]["enterprises"]
    changed = {}
    for uscc in usccs:
        ask(http, uscc)
        changed[uscc] = f"对照组地址 {uscc}"
        registry.update_one({"_id": uscc}, {"$set": {"address": changed[uscc]}})
    time.sleep(CONTROL_S)
    return sum(
        ask(http, uscc)["data"]["enterprise"]["registeredAddress"] != address
        for uscc, address in changed.items()
    )


def summary(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {
        "samples": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enterprises", type=int, default=500)
    parser.add_argument("--samples", type=int, default=45, help="changes per watcher setup")
    args = parser.parse_args()
    results: dict[str, Any] = {"enterprises": args.enterprises, "setups": {}}
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as tmp:
        data = Path(tmp)
        with EmbeddedMongo(data / "mongodb") as mongo, EmbeddedRedis(data / "redis") as red:
            assert isinstance(mongo, EmbeddedMongo) and isinstance(red, EmbeddedRedis)
            usccs = seed_store(mongo.url, args.enterprises)
            random.Random(7).shuffle(usccs)
            dev = Settings(mongodb_url=mongo.url, redis_url=red.url, gateway_data_dir=data)
            jwks = data / "jwks.json"
            jwks.write_text(json.dumps(dev_jwks(dev.dev_keys_dir)))
            token = mint_role_token(dev, "member", subject="bench")
            environment = gateway_environment(mongo.url, red.url, jwks, data)
            environment["CACHE_TTL_SECONDS"] = "86400"  # only the watcher can make it fresh
            mongo_client: MongoClient[Any] = MongoClient(mongo.url)
            cli = str(ROOT / ".venv/bin/integrity-gateway")
            setups = {
                "watcher in the gateway": ({}, None),
                "separate `integrity-gateway watch`": (
                    {"WATCHER_ENABLED": "false"},
                    [cli, "watch"],
                ),
                "no watcher (control)": ({"WATCHER_ENABLED": "false"}, None),
            }
            for round_, (name, (extra, watcher)) in enumerate(setups.items()):
                chosen = usccs[round_ * args.samples : (round_ + 1) * args.samples]
                port = free_port()
                command = [cli, "serve", "--port", str(port)]
                log = data / f"gateway-{round_}.log"
                with process(command, {**environment, **extra}, port, log):
                    watch = None
                    if watcher is not None:
                        watch = _start_watcher(watcher, environment, data / "watch.log")
                    try:
                        with httpx.Client(
                            base_url=f"http://127.0.0.1:{port}",
                            headers={"authorization": f"Bearer {token}"},
                            timeout=PATIENCE_S,
                        ) as http:
                            if name.endswith("(control)"):
                                stale = still_stale(http, mongo_client, chosen[:CONTROL_SAMPLES])
                            else:
                                delays = measure(http, mongo_client, chosen)
                    finally:
                        if watch is not None:
                            watch.terminate()
                            watch.wait(timeout=30)
                if name.endswith("(control)"):
                    results["setups"][name] = {
                        "address updates": CONTROL_SAMPLES,
                        f"still stale after {CONTROL_S:.0f} s": stale,
                    }
                    print(
                        f"{name:36} {stale} of {CONTROL_SAMPLES} address updates still stale "
                        f"{CONTROL_S:.0f} s after the write",
                        flush=True,
                    )
                    continue
                rows = {kind: summary(found) for kind, found in delays.items() if found}
                results["setups"][name] = rows
                for kind, row in rows.items():
                    print(
                        f"{name:36} {kind:16} n={row['samples']:3}  p50 {row['p50_ms']:7.1f} ms  "
                        f"p95 {row['p95_ms']:7.1f} ms  max {row['max_ms']:7.1f} ms",
                        flush=True,
                    )
            mongo_client.close()
    out = ROOT / "bench/results/freshness.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


def _start_watcher(
    command: list[str], environment: dict[str, str], log: Path
) -> subprocess.Popen[str]:
    """`integrity-gateway watch`, once it says its change streams are open."""
    out = log.open("w")
    child = subprocess.Popen(
        command, env={**os.environ, **environment}, stdout=subprocess.PIPE, stderr=out, text=True
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("watching"):
        child.terminate()
        raise RuntimeError(f"watch did not start: {line!r} (see {log})")
    return child


if __name__ == "__main__":
    raise SystemExit(main())
