"""Health and readiness endpoints."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.embedded import free_port
from gateway.settings import Settings
from tests.conftest import graphql, serving

ALL_OK = {
    "registry": "ok",
    "identity": "ok",
    "integrity": "ok",
    "platform_1688": "ok",
    "platform_taobao": "ok",
    "platform_tmall": "ok",
    "platform_alibaba_com": "ok",
}


async def test_healthz_says_the_process_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_every_source_and_redis(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "mongodb": ALL_OK, "redis": "ok"}


async def test_readyz_is_503_when_a_source_is_down_and_the_rest_still_serves(
    settings: Settings, seeded: list[str]
) -> None:
    down = settings.model_copy(
        update={
            "mongodb_url_platform_tmall": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
            "mongodb_timeout_ms": 200,
        }
    )
    async with serving(down) as client:
        response = await client.get("/readyz")
        archive = await graphql(client, '{ enterprise(uscc: "91330110MAJPDCW44H") { name } }')

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "mongodb": ALL_OK | {"platform_tmall": "down: ServerSelectionTimeoutError"},
        "redis": "ok",
    }
    assert archive == {"data": {"enterprise": {"name": "杭州万邦网络科技有限公司"}}}


async def test_access_log_never_carries_the_query_string(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="integrity_gateway.access")
    response = await client.get(
        "/graphql",
        params={"query": '{ enterprise(uscc: "91330110MAJPDCW44H") { name } }'},
        headers={"x-request-id": "access-log-1"},
    )
    [record] = [r for r in caplog.records if r.name == "integrity_gateway.access"]
    assert response.status_code == 200
    assert record.getMessage().startswith("GET /graphql 200 ")
    assert record.getMessage().endswith("ms")
    assert (record.request_id, record.status, record.path) == ("access-log-1", 200, "/graphql")
    assert "91330110MAJPDCW44H" not in caplog.text
