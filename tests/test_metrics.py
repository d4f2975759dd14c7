"""/metrics: Prometheus text for the allowed networks only, counting what happened."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from gateway.settings import Settings
from tests.conftest import serving

pytestmark = pytest.mark.usefixtures("seeded")

HANGZHOU = "91330110MAJPDCW44H"


async def _samples(
    client: httpx.AsyncClient,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_requests_and_cache_lookups_are_counted(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    query = {"query": f'{{ enterprise(uscc: "{HANGZHOU}") {{ name }} }}'}
    await redis.flushdb()
    before = await _samples(client)
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/nowhere")).status_code == 404
    cold = await client.post("/graphql", json=query)
    middle = await _samples(client)
    warm = await client.post("/graphql", json=query)
    after = await _samples(client)
    bare = await client.post("/graphql", json={"query": "{ __typename }"})
    last = await _samples(client)
    assert (
        cold.json()["data"]
        == warm.json()["data"]
        == {"enterprise": {"name": "杭州万邦网络科技有限公司"}}
    )

    requests = "integrity_gateway_requests_total"
    assert _delta(before, after, requests, route="/healthz", method="GET", status="200") == 1
    assert _delta(before, after, requests, route="other", method="GET", status="404") == 1
    assert _delta(before, after, requests, route="/graphql", method="POST", status="200") == 2
    # The scrape before this one is counted too, once it has been answered.
    assert _delta(before, after, requests, route="/metrics", method="GET", status="200") == 2
    seconds = "integrity_gateway_request_seconds_count"
    assert _delta(before, after, seconds, route="/graphql") == 2
    lookups = "integrity_gateway_cache_lookups_total"
    # Cold: the enterprise missed; warm: it was found.
    assert _delta(before, middle, lookups, result="miss") == 1
    assert _delta(before, middle, lookups, result="hit") == 0
    assert _delta(middle, after, lookups, result="hit") == 1
    assert _delta(middle, after, lookups, result="miss") == 0
    # One round trip each: the enterprise's MGET, the request's rate-limit charge with it.
    reads = "integrity_gateway_cache_reads_total"
    assert _delta(before, middle, reads) == 1
    assert _delta(middle, after, reads) == 1
    # Nothing to read: the charge makes the round trip alone.
    assert bare.json()["data"] == {"__typename": "Query"}
    assert _delta(after, last, reads) == 1


@pytest.mark.parametrize("networks", [["10.0.0.0/8"], []])
async def test_other_networks_get_404(settings: Settings, networks: list[str]) -> None:
    async with serving(settings.model_copy(update={"metrics_allowed_networks": networks})) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert response.json() == {
        "errors": [{"message": "Not Found", "extensions": {"code": "NOT_FOUND"}}]
    }


def test_networks_are_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(metrics_allowed_networks=["localhost"])


async def test_operations_denials_batches_and_finds_are_counted(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    from tests.conftest import bearer

    await redis.flushdb()
    before = await _samples(client)
    ok = await client.post(
        "/graphql",
        json={
            "query": "query Archive($u: USCC!) { enterprise(uscc: $u) { name } }",
            "variables": {"u": HANGZHOU},
        },
    )
    denied = await client.post(
        "/graphql",
        json={
            "query": "query Level($u: USCC!) { enterprise(uscc: $u) { integrityLevel { grade } } }",
            "variables": {"u": HANGZHOU},
        },
    )
    broken = await client.post("/graphql", json={"query": "query Broken { enterprise(uscc: "})
    unnamed = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers=bearer(settings, "member")
    )
    after = await _samples(client)
    assert [r.status_code for r in (ok, denied, broken, unnamed)] == [200, 200, 200, 200]

    operations = "integrity_gateway_operations_total"
    assert _delta(before, after, operations, operation="Archive", outcome="ok") == 1
    assert _delta(before, after, operations, operation="Level", outcome="partial") == 1
    assert _delta(before, after, operations, operation="-", outcome="ok") == 1
    seconds = "integrity_gateway_operation_seconds_count"
    assert _delta(before, after, seconds, operation="Archive") == 1
    errors = "integrity_gateway_errors_total"
    assert _delta(before, after, errors, code="UNAUTHENTICATED") == 1
    assert _delta(before, after, errors, code="none") == 1  # the syntax error
    # A document that does not parse has no name to give.
    assert _delta(before, after, operations, operation="-", outcome="refused") == 1
    # Redis was empty: the archive's enterprise was one batch of one key, one find.
    batches = "integrity_gateway_loader_batch_size_count"
    assert _delta(before, after, batches, collection="registry.enterprises") == 2
    finds = "integrity_gateway_mongodb_finds_total"
    assert _delta(before, after, finds, source="registry") == 1


def test_series_are_exposed_as_prometheus_client_exposes_them() -> None:
    """The lockless counters and histograms: what a scrape reads of them, exactly."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    from gateway.metrics import Counter, Histogram

    registry = CollectorRegistry(auto_describe=True)
    counter = Counter("c", "A counter.", ["kind"], registry=registry)
    histogram = Histogram("h", "A histogram.", ["route"], buckets=(1, 5), registry=registry)
    counter.labels("a").inc()
    counter.labels(kind="a").inc(2)
    counter.labels("b")
    for value in (0.5, 1, 1.5, 5, 7):  # a bound counts in its own bucket
        histogram.labels("/x").observe(value)
    with pytest.raises(ValueError, match="counters only go up"):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError, match=r"takes the labels \('kind',\)"):
        counter.labels("a", "b")

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert samples == {
        ("c_total", (("kind", "a"),)): 3.0,
        ("c_total", (("kind", "b"),)): 0.0,
        ("h_bucket", (("le", "1.0"), ("route", "/x"))): 2.0,
        ("h_bucket", (("le", "5.0"), ("route", "/x"))): 4.0,
        ("h_bucket", (("le", "+Inf"), ("route", "/x"))): 5.0,
        ("h_count", (("route", "/x"),)): 5.0,
        ("h_sum", (("route", "/x"),)): 15.0,
    }
    created = [
        sample.name
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name.endswith("_created")
    ]
    assert created == ["c_created", "c_created", "h_created"]
