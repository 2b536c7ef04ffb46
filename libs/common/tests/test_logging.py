"""Log lines name the span they were written in."""

from __future__ import annotations

from opentelemetry.trace import format_span_id, format_trace_id

from chromaline.common import tracing
from chromaline.common.logging import add_trace_ids


def test_a_line_written_in_a_span_carries_its_trace_and_span_ids() -> None:
    with tracing.tracer("detector").start_as_current_span("detect") as span:
        event = add_trace_ids(None, "info", {"event": "detector.examined"})
    context = span.get_span_context()
    assert event == {
        "event": "detector.examined",
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
    }
    assert len(event["trace_id"]) == 32
    assert len(event["span_id"]) == 16


def test_a_line_written_outside_any_span_carries_none() -> None:
    assert add_trace_ids(None, "info", {"event": "service.started"}) == {"event": "service.started"}
