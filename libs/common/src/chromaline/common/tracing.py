"""OpenTelemetry tracing: one trace per piece of work, across HTTP calls and events.

Spans are made whether or not they leave the process; the settings choose where they go
(``tracing_exporter``: ``none`` by default, ``otlp`` or ``console``), installed once per process.
Each service gets a tracer provider of its own, so its spans carry its ``service.name`` even when
all five run in one process; the providers share the process's span processors.

The context travels as W3C trace context (``traceparent``, ``tracestate``): in HTTP headers (FastAPI
makes the server spans and reads it; :func:`inject_trace_headers` writes it on httpx requests)
and in each event's envelope (``trace_context``). A handler runs in a ``consume <type>`` span,
child of the ``publish <type>`` span in which the outbox relay sent the event, itself a child of
the work that made the event. An event that comes without context starts a trace of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chromaline.common.settings import ServiceSettings

if TYPE_CHECKING:
    from chromaline.common.events.envelope import RawEnvelope

SERVICE_NAMESPACE = "chromaline"
INSTRUMENTATION_NAME = "chromaline"

_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_processors: list[SpanProcessor] = []
_providers: dict[str, TracerProvider] = {}
_exporter_installed = False


def configure_tracing(settings: ServiceSettings) -> None:
    """Send spans where ``settings`` say; the first call of the process decides, later ones are ignored."""
    global _exporter_installed
    with _lock:
        if _exporter_installed:
            return
        _exporter_installed = True
    if settings.tracing_exporter == "none":
        return
    exporter: SpanExporter
    if settings.tracing_exporter == "otlp":
        exporter = OTLPSpanExporter(endpoint=settings.tracing_endpoint or None)
    else:
        exporter = ConsoleSpanExporter(service_name=settings.service_name)
    processor = BatchSpanProcessor(exporter)
    add_span_processor(processor)
    atexit.register(processor.shutdown)


def add_span_processor(processor: SpanProcessor) -> None:
    """Hand every span of every service, from now on, to ``processor`` as well."""
    with _lock:
        _processors.append(processor)
        providers = list(_providers.values())
    for provider in providers:
        provider.add_span_processor(processor)


def provider_for(service: str) -> TracerProvider:
    """The tracer provider of ``service`` in this process (made on first use)."""
    with _lock:
        provider = _providers.get(service)
        if provider is None:
            resource = Resource.create({"service.name": service, "service.namespace": SERVICE_NAMESPACE})
            provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            for processor in _processors:
                provider.add_span_processor(processor)
            _providers[service] = provider
    return provider


def tracer(service: str) -> Tracer:
    return provider_for(service).get_tracer(INSTRUMENTATION_NAME)


def current_trace_context() -> dict[str, str]:
    """The current span's W3C trace context (``traceparent``, maybe ``tracestate``); empty without one."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str]) -> Context:
    """The context whose span is the one ``carrier`` names; an empty one when it names none."""
    return _propagator.extract(carrier, context=Context())


async def inject_trace_headers(request: httpx.Request) -> None:
    """An httpx request hook: the request carries the current trace context, so the server it
    calls continues this trace."""
    request.headers.update(current_trace_context())


def propagate_trace(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Make every request of ``client`` carry the current trace context; returns the client."""
    hooks = client.event_hooks["request"]
    if inject_trace_headers not in hooks:
        hooks.append(inject_trace_headers)
    return client


def _event_attributes(envelope: RawEnvelope, operation: str) -> dict[str, str]:
    return {
        "messaging.operation.type": operation,
        "messaging.destination.name": envelope.type,
        "messaging.message.id": str(envelope.event_id),
        "messaging.message.conversation_id": envelope.correlation_id,
        "chromaline.event.producer": envelope.producer,
        "chromaline.event.subject": envelope.subject,
    }


@contextlib.contextmanager
def publishing(service: str, envelope: RawEnvelope) -> Iterator[RawEnvelope]:
    """A ``publish <type>`` PRODUCER span, child of the work that made ``envelope``; yields the
    envelope to send, carrying this span's context."""
    with tracer(service).start_as_current_span(
        f"publish {envelope.type}",
        context=context_from(envelope.trace_context),
        kind=SpanKind.PRODUCER,
        attributes=_event_attributes(envelope, "send"),
    ):
        yield envelope.model_copy(update={"trace_context": current_trace_context()})


@contextlib.contextmanager
def consuming(service: str, envelope: RawEnvelope) -> Iterator[Span]:
    """A ``consume <type>`` CONSUMER span around handling ``envelope``, child of its publish span."""
    with tracer(service).start_as_current_span(
        f"consume {envelope.type}",
        context=context_from(envelope.trace_context),
        kind=SpanKind.CONSUMER,
        attributes=_event_attributes(envelope, "process"),
    ) as span:
        yield span


def current_span_ids() -> tuple[str, str] | None:
    """The hex trace and span ids of the current span, if there is one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
