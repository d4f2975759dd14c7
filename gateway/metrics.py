"""Prometheus metrics, served at ``/metrics`` (gateway/http.py) to METRICS_ALLOWED_NETWORKS.

Per process (one uvicorn worker each): requests by route, method and status and their
time; GraphQL operations by name and outcome and their time; errors in answers by code
(denials among them); loader batch sizes and MongoDB finds, by source and collection;
Redis document lookups by hit or miss (their ratio is the hit ratio); and MongoDB reads
that failed, by source. Labels take values from fixed sets (routes, methods, statuses,
sources, collections, error codes), or, for operation names, which clients choose, from
the first ``_MAX_OPERATION_NAMES`` well-formed names a process sees, then ``other``: no
client can grow the series without bound. Nothing else a client sent (arguments, USCCs)
becomes a label.

The counters and histograms are kept as plain numbers (``Counter``, ``Histogram``
below) and exposed as prometheus_client's own would be: a request updates some
twenty series, and prometheus_client takes a lock for every update, which costs more
than the rest of the update. Every update and every scrape runs on the event loop's
thread, so there is nothing to lock against.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from resolvers.errors import ErrorCode

__all__ = [
    "CACHE_HITS",
    "CACHE_MISSES",
    "CACHE_READS",
    "LOADER_BATCH",
    "MONGODB_FINDS",
    "REGISTRY",
    "SOURCE_ERRORS",
    "observe_operation",
    "observe_request",
    "route_label",
]

REGISTRY = CollectorRegistry(auto_describe=True)


class CounterSeries:
    """One labelled series of a counter."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class HistogramSeries:
    """One labelled series of a histogram: a count per bucket (not cumulative; the
    last bucket is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # A bucket counts the values at most its bound: the first bound >= value.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family:
    """A labelled metric: its series by label values, registered for scrapes."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], Any] = {}
        registry.register(self)

    def _new(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: str, **named: str) -> Any:
        """The series of these label values (made on first use)."""
        if named:
            values = tuple(named[label] for label in self.labelnames)
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}")
            key = tuple(map(str, values))
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = self._new()
        return series

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, series in list(self._series.items()):
            self._add(family, list(values), series)
        yield family

    def _family(self) -> Metric:
        raise NotImplementedError

    def _add(self, family: Any, values: list[str], series: Any) -> None:
        raise NotImplementedError


class Counter(_Family):
    """``prometheus_client.Counter`` with labels, kept without a lock."""

    def _new(self) -> CounterSeries:
        return CounterSeries()

    def _family(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Any, values: list[str], series: CounterSeries) -> None:
        family.add_metric(values, series.value, created=series.created)


class Histogram(_Family):
    """``prometheus_client.Histogram`` with labels, kept without a lock."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.bounds = (*sorted(buckets), math.inf)
        self.bucket_labels = [floatToGoString(bound) for bound in self.bounds]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def _new(self) -> HistogramSeries:
        return HistogramSeries(self.bounds)

    def _family(self) -> Metric:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Any, values: list[str], series: HistogramSeries) -> None:
        cumulative = itertools.accumulate(series.counts)
        family.add_metric(
            values, list(zip(self.bucket_labels, cumulative, strict=True)), series.sum
        )
        family.samples.append(
            Sample(
                f"{self.name}_created",
                dict(zip(self.labelnames, values, strict=True)),
                series.created,
            )
        )


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
#: One a round trip, however many documents, charges, loaders and requests it served.
CACHE_READS = Counter(
    "integrity_gateway_cache_reads",
    "Round trips to Redis for reads: one pipeline per turn of the event loop, shared by "
    "every loader and request of that turn (an MGET of the documents they asked for, and "
    "their rate-limit charges).",
    [],
    registry=REGISTRY,
).labels()
SOURCE_ERRORS = Counter(
    "integrity_gateway_source_errors",
    "MongoDB reads that failed (down or out of time), by source.",
    ["source"],
    registry=REGISTRY,
)


_OPERATIONS = Counter(
    "integrity_gateway_operations",
    "GraphQL operations, by operation name and outcome: ok, partial (data with errors), "
    "refused (not run: a request, validation or limit error) or failed.",
    ["operation", "outcome"],
    registry=REGISTRY,
)
_OPERATION_SECONDS = Histogram(
    "integrity_gateway_operation_seconds",
    "Time to run a GraphQL operation, by operation name.",
    ["operation"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
_ERRORS = Counter(
    "integrity_gateway_errors",
    "Errors in GraphQL answers, by code (UNAUTHENTICATED and FORBIDDEN are denials; "
    "none: a syntax or validation error).",
    ["code"],
    registry=REGISTRY,
)
LOADER_BATCH = Histogram(
    "integrity_gateway_loader_batch_size",
    "Keys per loader batch, by source collection.",
    ["collection"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
    registry=REGISTRY,
)
MONGODB_FINDS = Counter(
    "integrity_gateway_mongodb_finds",
    "MongoDB finds the loaders sent (what Redis did not hold), by source.",
    ["source"],
    registry=REGISTRY,
)
_MAX_OPERATION_NAMES = 200
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
_named: set[str] = set()
#: Error codes a label may take; anything else counts as "other".
_CODES = frozenset(code.value for code in ErrorCode) | {
    "BAD_REQUEST",
    "INTERNAL_SERVER_ERROR",
    "METHOD_NOT_ALLOWED",
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_NOT_IN_LIST",
    "PERSISTED_QUERY_NOT_SUPPORTED",
    "QUERY_NOT_IN_SAFELIST",
    "SUBSCRIPTIONS_UNAVAILABLE",
}


def operation_label(name: str | None) -> str:
    """An operation's label: its name while names are few, else ``other``."""
    if not name:
        return "-"
    if name in _named:
        return name
    if len(_named) < _MAX_OPERATION_NAMES and _OPERATION_NAME.fullmatch(name):
        _named.add(name)
        return name
    return "other"


def observe_operation(
    name: str | None, outcome: str, seconds: float, errors: Sequence[Any]
) -> None:
    label = operation_label(name)
    _OPERATIONS.labels(label, outcome).inc()
    _OPERATION_SECONDS.labels(label).observe(seconds)
    for error in errors:
        code = (error.get("extensions") or _NONE).get("code") if error.__class__ is dict else None
        series = _ERROR_SERIES.get(code)
        if series is None:
            # Syntax and validation errors carry no code (graphql-core's own): "none".
            label = "none" if code is None else code if code in _CODES else "other"
            series = _ERRORS.labels(label)
            if code is None or code in _CODES:  # the codes are few; other ones are not kept
                _ERROR_SERIES[code] = series
        series.value += 1  # ``series.inc()``, in line: a whole archive counts seven


#: The series of ``_ERRORS`` by the code an error carries (None: none), looked up once.
_ERROR_SERIES: dict[str | None, Any] = {}
_NONE: dict[str, Any] = {}


def route_label(path: str) -> str:
    """A request's route as labels and spans name it: one of the gateway's, or other."""
    return path if path in _ROUTES else "other"


def observe_request(path: str, method: str, status: int, seconds: float) -> None:
    route = route_label(path)
    _REQUESTS.labels(route, method if method in _METHODS else "other", str(status)).inc()
    _SECONDS.labels(route).observe(seconds)
