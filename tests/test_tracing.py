"""OpenTelemetry traces: an HTTP span continuing the caller's trace, an operation span
under it, and spans for the Redis and MongoDB calls the operation made; off unless an
exporter is configured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from gateway import tracing
from gateway.settings import Settings
from tests.conftest import serving

HANGZHOU = "91330110MAJPDCW44H"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exported(settings: Settings) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(settings, SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


async def test_a_request_is_one_trace_with_its_operation_and_its_calls(
    settings: Settings, seeded: list[str], redis: Redis, exported: InMemorySpanExporter
) -> None:
    async with serving(settings) as client:
        await redis.flushdb()
        exported.clear()  # start-up's own
        response = await client.post(
            "/graphql",
            json={
                "query": "query Archive($u: USCC!) { enterprise(uscc: $u) { name } }",
                "variables": {"u": HANGZHOU},
            },
            headers={
                "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
                "x-request-id": "traced-request-1",
            },
        )
    assert response.status_code == 200
    spans = {span.name: span for span in exported.get_finished_spans()}
    assert set(spans) == {
        "POST /graphql",
        "graphql.operation",
        "redis MGET",
        "mongodb find registry.enterprises",
        "redis SET",
    }
    http, operation = spans["POST /graphql"], spans["graphql.operation"]
    assert http.kind is SpanKind.SERVER
    assert f"{http.context.trace_id:032x}" == TRACE_ID  # the caller's trace, continued
    assert http.parent is not None and f"{http.parent.span_id:016x}" == CALLER_SPAN
    assert operation.parent is not None and operation.parent.span_id == http.context.span_id
    for name in ("redis MGET", "mongodb find registry.enterprises", "redis SET"):
        parent = spans[name].parent
        assert parent is not None and parent.span_id == operation.context.span_id, name
    assert dict(http.attributes or {}) == {
        "request.id": "traced-request-1",
        "http.request.method": "POST",
        "http.route": "/graphql",
        "http.response.status_code": 200,
    }
    assert dict(operation.attributes or {}) == {
        "request.id": "traced-request-1",
        "graphql.operation.name": "Archive",
        "graphql.outcome": "ok",
        "graphql.errors": 0,
        "graphql.cost": 10,
        "viewer.kind": "anonymous",
    }
    assert dict(spans["mongodb find registry.enterprises"].attributes or {}) == {
        "request.id": "traced-request-1",
        "db.system": "mongodb",
        "db.namespace": "registry",
        "db.collection.name": "enterprises",
        "db.operation.name": "find",
        "db.operation.batch.size": 1,
    }
    # Nothing a client sent becomes an attribute.
    assert HANGZHOU not in str([dict(span.attributes or {}) for span in spans.values()])


async def test_without_an_exporter_nothing_is_traced(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.otel_exporter_otlp_endpoint is None
    assert not tracing.enabled()
    assert tracing.configure_tracing(settings) is False
    with tracing.span("anything") as current:
        assert current is None
    response = await client.get(
        "/healthz", headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
    )
    assert response.status_code == 200
