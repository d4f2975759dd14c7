"""What `make run` does: no URLs configured, so embedded servers, seeding, and clean exit."""

from __future__ import annotations

import socket
from pathlib import Path

from gateway.settings import Settings
from tests.conftest import graphql, serving


def _listening(url: str) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


async def test_no_urls_means_embedded_servers_seeded_and_stopped(tmp_path: Path) -> None:
    settings = Settings(
        mongodb_url=None, redis_url=None, gateway_data_dir=tmp_path, gateway_seed_enterprises=3
    )
    async with serving(settings) as client:
        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        mongodb_url = runtime.embedded_mongodb_url
        body = await graphql(client, '{ enterprise(uscc: "91330110MAJPDCW44H") { name } }')
        ready = (await client.get("/readyz")).json()
        assert _listening(mongodb_url)

    assert body == {"data": {"enterprise": {"name": "杭州万邦网络科技有限公司"}}}
    assert ready["status"] == "ready" and ready["redis"] == "ok"
    assert not _listening(mongodb_url)
    assert (tmp_path / "mongodb" / "wiredtiger").is_dir()
