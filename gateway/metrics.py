"""Prometheus metrics, served at ``/metrics`` to the networks in METRICS_ALLOWED_NETWORKS.

Per process (one uvicorn worker each): requests by route, method and status and their
time, Redis document lookups by hit or miss, and MongoDB reads that failed, by source.
Labels take only values from fixed sets (routes, methods, statuses, sources), so no
client can grow the series. Nothing a client sent (arguments, USCCs) becomes a label.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission import error_body, in_networks, networks

__all__ = [
    "CACHE_HITS",
    "CACHE_MISSES",
    "REGISTRY",
    "SOURCE_ERRORS",
    "MetricsEndpoint",
    "observe_request",
]

REGISTRY = CollectorRegistry(auto_describe=True)
_ROUTES = frozenset(("/graphql", "/healthz", "/readyz", "/metrics"))
_METHODS = frozenset(("GET", "POST", "OPTIONS", "HEAD"))

_REQUESTS = Counter(
    "integrity_gateway_requests",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
_SECONDS = Histogram(
    "integrity_gateway_request_seconds",
    "Time from a request's arrival to the end of its answer, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
_LOOKUPS = Counter(
    "integrity_gateway_cache_lookups",
    "Documents looked up in Redis by the loaders, by result.",
    ["result"],
    registry=REGISTRY,
)
CACHE_HITS = _LOOKUPS.labels(result="hit")
CACHE_MISSES = _LOOKUPS.labels(result="miss")
SOURCE_ERRORS = Counter(
    "integrity_gateway_source_errors",
    "MongoDB reads that failed (down or out of time), by source.",
    ["source"],
    registry=REGISTRY,
)


def observe_request(path: str, method: str, status: int, seconds: float) -> None:
    route = path if path in _ROUTES else "other"
    _REQUESTS.labels(route, method if method in _METHODS else "other", str(status)).inc()
    _SECONDS.labels(route).observe(seconds)


class MetricsEndpoint:
    """``GET /metrics``: the text exposition format, or 404 to any other network."""

    def __init__(self, allowed_networks: Sequence[str]) -> None:
        self.allowed = networks(allowed_networks)

    async def respond(self, request: Request) -> Response:
        # The address admission worked out (X-Forwarded-For from trusted proxies only).
        address = request.scope.get("state", {}).get("client_address", "-")
        if not in_networks(address, self.allowed):
            return Response(
                error_body("NOT_FOUND", "Not Found"), status_code=404, media_type="application/json"
            )
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
