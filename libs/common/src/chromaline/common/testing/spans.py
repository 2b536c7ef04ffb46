"""Spans recorded in memory, for tests that look at traces."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chromaline.common import tracing


@functools.cache
def span_recorder() -> InMemorySpanExporter:
    """The exporter that, once asked for, receives every finished span of every service in this
    process; one per process, so tests clear it (``clear()``) rather than make their own."""
    exporter = InMemorySpanExporter()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def spans_named(spans: Sequence[ReadableSpan], name: str, service: str | None = None) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name and (service is None or service_of(span) == service)]
