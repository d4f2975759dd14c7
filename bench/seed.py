"""Seeding throughput against a fresh embedded server: `python bench/seed.py [N]`.

Not a test: prints wall time and documents per second for a fresh seed and for a
re-seed over the same data (which first drops what is there).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

from gateway.embedded import EmbeddedMongo
from gateway.pii import Keyring
from gateway.settings import Source
from gateway.sources import Sources
from loaders.seed import seed


async def run(enterprises: int, data_dir: Path) -> None:
    with EmbeddedMongo(data_dir / "mongodb") as server:
        assert isinstance(server, EmbeddedMongo)
        sources = Sources(
            {source: server.url for source in Source},
            timeout_ms=5000,
            bulk=True,
            keyring=Keyring([("bench", secrets.token_bytes(32))]),
        )
        try:
            for label in ("fresh", "re-seed"):
                started = time.perf_counter()
                report = await seed(sources, enterprises=enterprises, random_seed=1)
                seconds = time.perf_counter() - started
                total = sum(report.documents.values())
                print(
                    f"{label:8} {enterprises} enterprises, {total} documents: "
                    f"{seconds:.1f}s ({total / seconds:,.0f} documents/s)"
                )
        finally:
            await sources.close()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(count, Path(tmp)))
