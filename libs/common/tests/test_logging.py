"""Log lines name the span they were written in, and carry no credential from a URL."""

from __future__ import annotations

from opentelemetry.trace import format_span_id, format_trace_id

from chromaline.common import tracing
from chromaline.common.logging import REDACTED, add_trace_ids, redact_credentials


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


def test_an_access_token_in_a_logged_url_is_blanked() -> None:
    """The server logs each WebSocket it accepts with its path and query, where the browser put
    the access token: a full, valid token landed in the service log."""
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
    line = (
        f'127.0.0.1:40000 - "WebSocket /api/v1/jobs/j/events?access_token={token}&organisation=o" [accepted]'
    )
    event = redact_credentials(None, "info", {"event": line, "level": "info"})
    assert token not in event["event"]
    assert event["event"] == line.replace(token, REDACTED)
    assert event["level"] == "info"
