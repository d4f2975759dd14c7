"""OpenTelemetry traces: a span per HTTP request, per GraphQL operation, and per Redis
and MongoDB call the loaders make, exported over OTLP/HTTP when
OTEL_EXPORTER_OTLP_ENDPOINT is set, and nothing at all otherwise.

Off (the default), ``span`` is a shared no-op context: no span objects, no context
switches on the hot path. On, the HTTP span continues a trace the caller started (W3C
``traceparent``, as a router or a frontend sends it), and every span carries the request
id. Attributes are fixed names and counts: never a query's text, its variables, a USCC or
anything else a client sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import REQUEST_ID
from gateway.metrics import route_label
from gateway.settings import Settings

__all__ = ["Tracing", "begun", "configure_tracing", "enabled", "shutdown_tracing", "span"]

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_NOTHING = contextlib.nullcontext()


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(settings: Settings, processor: SpanProcessor | None = None) -> bool:
    """Start exporting spans if OTEL_EXPORTER_OTLP_ENDPOINT is set (or ``processor`` is
    given: the suite's in-memory one); whether tracing is on."""
    global _tracer, _provider
    if processor is None:
        if not settings.otel_exporter_otlp_endpoint:
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
        processor = BatchSpanProcessor(exporter)
    _provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("integrity-gateway")
    return True


def shutdown_tracing() -> None:
    """Flush what is pending and stop (the app's shutdown)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Any = None,
) -> contextlib.AbstractContextManager[Any]:
    """A span under the current one, or a no-op when tracing is off."""
    if _tracer is None:
        return _NOTHING
    return _started(_tracer, name, attributes, kind, parent)


def begun(
    name: str, attributes: Mapping[str, Any], *, kind: SpanKind = SpanKind.INTERNAL
) -> trace.Span | None:
    """A span under the current one that the caller ends (``.end()``) when the work it
    covers is answered, in a callback rather than a block; None when tracing is off."""
    if _tracer is None:
        return None
    return _tracer.start_span(
        name, kind=kind, attributes={"request.id": REQUEST_ID.get(), **attributes}
    )


@contextlib.contextmanager
def _started(
    tracer: trace.Tracer,
    name: str,
    attributes: Mapping[str, Any] | None,
    kind: SpanKind,
    parent: Any,
) -> Iterator[trace.Span]:
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes={"request.id": REQUEST_ID.get()}
    ) as current:
        if attributes:
            current.set_attributes(dict(attributes))
        yield current


class Tracing:
    """The HTTP span: outermost but for admission's request id, which it records."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        parent = propagate.extract(carrier) if carrier else None
        route = route_label(scope["path"])
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with span(
            f"{scope['method']} {route}",
            {"http.request.method": scope["method"], "http.route": route},
            kind=SpanKind.SERVER,
            parent=parent,
        ) as current:
            try:
                await self.app(scope, receive, observe)
            finally:
                current.set_attribute("http.response.status_code", status)
                current.set_attribute("request.id", REQUEST_ID.get())
                if status >= 500:
                    current.set_status(Status(StatusCode.ERROR))
