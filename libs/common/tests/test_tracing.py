"""Trace context: in envelopes and HTTP headers, and the spans made around events and requests."""

from __future__ import annotations

import functools
import io
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from chromaline.common import tracing
from chromaline.common.events.contracts import BlobRef, ImageUploaded
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.http import create_app
from chromaline.common.settings import ServiceSettings
from chromaline.common.testing.spans import service_of, span_recorder, spans_named

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    recorder = span_recorder()
    recorder.clear()
    yield recorder
    recorder.clear()


def _uploaded() -> ImageUploaded:
    return ImageUploaded(job_id=uuid.uuid4(), filename="a.jpg", original=BlobRef(bucket="originals", key="a"))


def _ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format_trace_id(span.context.trace_id), format_span_id(span.context.span_id)


def _named_ids(traceparent: str) -> tuple[str, str]:
    """The trace and span ids a ``traceparent`` header names."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def _parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format_span_id(span.parent.span_id)


def test_an_envelope_made_in_a_span_carries_its_trace_context(spans: InMemorySpanExporter) -> None:
    with tracing.tracer("gateway").start_as_current_span("upload") as span:
        envelope = make_envelope("gateway", "job-1", _uploaded())
    context = span.get_span_context()
    assert list(envelope.trace_context) == ["traceparent"]
    assert _named_ids(envelope.trace_context["traceparent"]) == (
        format_trace_id(context.trace_id),
        format_span_id(context.span_id),
    )
    assert RawEnvelope.model_validate_json(envelope.model_dump_json()) == envelope


def test_an_envelope_made_outside_any_span_carries_none() -> None:
    envelope = make_envelope("gateway", "job-1", _uploaded())
    assert envelope.trace_context == {}
    assert RawEnvelope.model_validate_json(envelope.model_dump_json()).trace_context == {}


def test_an_envelope_without_the_field_still_parses() -> None:
    body = json.loads(make_envelope("partner", "job-1", _uploaded()).model_dump_json())
    del body["trace_context"]
    assert RawEnvelope.model_validate(body).trace_context == {}


def test_context_round_trips_through_a_carrier() -> None:
    with tracing.tracer("detector").start_as_current_span("work") as span:
        carrier = tracing.current_trace_context()
    extracted = tracing.context_from(carrier)
    assert trace.get_current_span(extracted).get_span_context().span_id == span.get_span_context().span_id
    assert not trace.get_current_span(tracing.context_from({})).get_span_context().is_valid
    assert (
        not trace.get_current_span(tracing.context_from({"traceparent": "garbage"}))
        .get_span_context()
        .is_valid
    )


def test_publish_and_consume_spans_follow_the_event(spans: InMemorySpanExporter) -> None:
    with tracing.tracer("gateway").start_as_current_span("upload"):
        made = make_envelope("gateway", "job-1", _uploaded())
    with tracing.publishing("gateway", made) as sent:
        pass
    assert sent.event_id == made.event_id
    assert sent.trace_context != made.trace_context
    with tracing.consuming("detector", sent):
        pass
    upload = spans_named(spans.get_finished_spans(), "upload")[0]
    publish = spans_named(spans.get_finished_spans(), "publish image.uploaded")[0]
    consume = spans_named(spans.get_finished_spans(), "consume image.uploaded")[0]
    assert (publish.kind, consume.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert (service_of(publish), service_of(consume)) == ("gateway", "detector")
    assert _ids(upload)[0] == _ids(publish)[0] == _ids(consume)[0]
    assert _parent_id(publish) == _ids(upload)[1]
    assert _parent_id(consume) == _ids(publish)[1]
    assert consume.attributes is not None
    assert consume.attributes["messaging.message.id"] == str(made.event_id)


def test_an_event_without_context_starts_a_trace_of_its_own(spans: InMemorySpanExporter) -> None:
    with tracing.tracer("gateway").start_as_current_span("unrelated work"):
        envelope = make_envelope("partner", "job-1", _uploaded()).model_copy(update={"trace_context": {}})
        with tracing.consuming("detector", envelope):
            pass
    consume = spans_named(spans.get_finished_spans(), "consume image.uploaded")[0]
    unrelated = spans_named(spans.get_finished_spans(), "unrelated work")[0]
    assert consume.parent is None
    assert _ids(consume)[0] != _ids(unrelated)[0]


def test_a_failing_handler_marks_its_span(spans: InMemorySpanExporter) -> None:
    envelope = make_envelope("gateway", "job-1", _uploaded())
    with pytest.raises(RuntimeError), tracing.consuming("detector", envelope):
        raise RuntimeError("broken photo")
    (consume,) = spans.get_finished_spans()
    assert not consume.status.is_ok
    assert [event.name for event in consume.events] == ["exception"]


async def test_outgoing_requests_carry_the_current_trace(spans: InMemorySpanExporter) -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(204)

    client = tracing.propagate_trace(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    assert tracing.propagate_trace(client).event_hooks["request"] == [tracing.inject_trace_headers]
    async with client:
        await client.get("http://auth/untraced")
        with tracing.tracer("gateway").start_as_current_span("request") as span:
            await client.get("http://auth/traced")
    context = span.get_span_context()
    assert seen[0] is None
    assert seen[1] is not None
    assert _named_ids(seen[1]) == (format_trace_id(context.trace_id), format_span_id(context.span_id))


async def test_server_spans_continue_the_callers_trace_and_skip_probes(spans: InMemorySpanExporter) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    app = create_app(service, readiness={})

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"made": json.dumps(make_envelope(service, thing_id, _uploaded()).trace_context)}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        answer = await client.get("/things/7", headers={"traceparent": TRACEPARENT})
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    finished = [span for span in spans.get_finished_spans() if service_of(span) == service]
    (server,) = finished
    assert server.name == "GET /things/{thing_id}"
    assert server.kind == SpanKind.SERVER
    caller_trace, caller_span = _named_ids(TRACEPARENT)
    assert _ids(server)[0] == caller_trace
    assert _parent_id(server) == caller_span
    made = json.loads(answer.json()["made"])
    assert _named_ids(made["traceparent"]) == _ids(server)


def test_the_console_exporter_prints_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    printed = io.StringIO()
    monkeypatch.setattr(tracing, "ConsoleSpanExporter", functools.partial(ConsoleSpanExporter, out=printed))
    monkeypatch.setattr(tracing, "_exporter_installed", False)
    monkeypatch.setattr(tracing, "_processors", [])
    monkeypatch.setattr(tracing, "_providers", {})
    tracing.configure_tracing(ServiceSettings(tracing_exporter="console", service_name="reporter"))
    tracing.configure_tracing(ServiceSettings(tracing_exporter="console", service_name="reporter"))
    assert len(tracing._processors) == 1
    with tracing.tracer("reporter").start_as_current_span("render"):
        pass
    tracing.provider_for("reporter").force_flush()
    assert '"name": "render"' in printed.getvalue()


def test_no_exporter_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_exporter_installed", False)
    monkeypatch.setattr(tracing, "_processors", [])
    tracing.configure_tracing(ServiceSettings())
    assert tracing._processors == []
