"""Instructions per warm request, in process: `python bench/instructions.py [scenario ...]`.

Requests per second move by a tenth from run to run on a shared machine; the
instructions a request costs hardly move. This starts embedded stores, seeds 2,000
enterprises, warms Redis with every request body of each scenario (bench/scenarios.py,
bodies drawn as `make bench` draws them), then drives the gateway's ASGI app in process
(no HTTP server; 16 requests at a time, 4 for pages of badges or search hits) under
valgrind's callgrind twice, for 320 and for 1,600 requests, and prints the difference
divided by 1,280: what one warm request costs, start-up excluded. The Redis and MongoDB
servers run outside valgrind and are not counted. Needs valgrind (Debian: `apt-get
install valgrind`); about two minutes a scenario. Every run has the same hash seed
(`PYTHONHASHSEED=0`). Compare two versions of the code by
running this from each checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import speed  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402

ENTERPRISES = 2000
CONCURRENCY = 16
SMALL, LARGE = 320, 1600
DRIVEN_DEADLINE_MS = 120_000  # the most the setting allows


async def _drive(environment: Path, scenario: str, count: int) -> None:
    """Run ``count`` requests of ``scenario`` through the app (the child, under valgrind)."""
    setup = json.loads(environment.read_text())
    os.environ.update(setup["env"])
    # Under valgrind a request runs some fifty times slower: a page of 50 search hits,
    # 16 at a time, outlasts the bench's deadline.
    os.environ["REQUEST_DEADLINE_MS"] = str(DRIVEN_DEADLINE_MS)
    from gateway.app import create_app
    from gateway.metrics import CACHE_MISSES
    from gateway.settings import Settings

    app = create_app(Settings(), freeze=True)
    bodies = [json.dumps(body).encode() for body in setup["bodies"][scenario]]
    headers = [(b"host", b"bench"), (b"content-type", b"application/json")]
    if SCENARIOS[scenario].viewer == "member":
        headers.append((b"authorization", setup["member"].encode()))
    rng = random.Random(scenario)

    async def one() -> None:
        body = rng.choice(bodies)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql",
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000), "state": {},
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }  # fmt: skip
        messages: list[dict[str, Any]] = []
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if given:
                await asyncio.Event().wait()  # no disconnect: the answer is sent first
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)
        if messages[0]["status"] != 200:
            raise RuntimeError(f"{scenario}: {messages}")

    async def client(requests: int) -> None:
        for _ in range(requests):
            await one()

    # Under valgrind sixteen pages of 100 badges at a time keep a read from Redis
    # waiting past its 0.5 s socket timeout (the request then misses, and fails the
    # count below): those scenarios run four at a time.
    concurrency = CONCURRENCY if SCENARIOS[scenario].usccs in (0, 1) else 4
    async with app.router.lifespan_context(app):
        await asyncio.gather(*(client(count // concurrency) for _ in range(concurrency)))
    # Every document was warm: a miss means Redis was given up on (its reads time out
    # after 0.5 s, which valgrind's pace can reach) and MongoDB's work was counted.
    if CACHE_MISSES.value:
        raise RuntimeError(f"{scenario}: requests missed Redis; their count is not a warm one")


def _instructions(environment: Path, scenario: str, count: int) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--drive", str(environment), scenario, str(count),
    ]  # fmt: skip
    # One hash seed for every run: a random one moves start-up's count, and with it the
    # difference of two runs, by some 10 k instructions a request.
    environment_of_run = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=environment_of_run
    )
    output = done.stderr
    found = re.search(r"Collected : (\d+)", output)
    if done.returncode or found is None:
        raise RuntimeError(
            f"the driven requests failed, or callgrind printed no total:\n{output[-2000:]}"
        )
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help="default: every warm scenario")
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        environment, scenario, count = args.drive
        import uvloop  # the loop `serve` runs on

        uvloop.run(_drive(Path(environment), scenario, int(count)))
        return 0
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    chosen = args.scenarios or list(SCENARIOS)
    from gateway.devkeys import dev_jwks, mint_role_token
    from gateway.embedded import EmbeddedMongo, EmbeddedRedis
    from gateway.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        data = Path(tmp)
        with EmbeddedMongo(data / "mongodb") as mongo, EmbeddedRedis(data / "redis") as red:
            assert isinstance(mongo, EmbeddedMongo) and isinstance(red, EmbeddedRedis)
            usccs = speed.seed_store(mongo.url, ENTERPRISES)
            dev = Settings(mongodb_url=mongo.url, redis_url=red.url, gateway_data_dir=data)
            jwks = data / "jwks.json"
            jwks.write_text(json.dumps(dev_jwks(dev.dev_keys_dir)))
            member = f"Bearer {mint_role_token(dev, 'member', subject='bench')}"
            env = speed.gateway_environment(mongo.url, red.url, jwks, data)
            bodies = {
                name: speed.bodies(SCENARIOS[name], usccs, speed.CURSOR_SECRET.encode())
                for name in chosen
            }
            environment = data / "environment.json"
            environment.write_text(json.dumps({"env": env, "member": member, "bodies": bodies}))
            port = speed.free_port()
            command = [str(ROOT / ".venv/bin/integrity-gateway"), "serve", "--port", str(port)]
            with speed.process(command, env, port, data / "gateway.log"):
                url = f"http://127.0.0.1:{port}/graphql"
                for name in chosen:  # every body warm: no request goes to MongoDB
                    member_only = SCENARIOS[name].viewer == "member"
                    warm_headers = {"authorization": member} if member_only else {}
                    asyncio.run(speed.post_all(url, bodies[name], warm_headers))
            for name in chosen:
                small = _instructions(environment, name, SMALL)
                large = _instructions(environment, name, LARGE)
                per_request = (large - small) / (LARGE - SMALL)
                print(f"{name:15} {per_request / 1000:8.0f} k instructions per request", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
