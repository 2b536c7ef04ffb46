"""One upload through the one-process system: one trace across all five services, metrics that move.

Spans are recorded in memory (every service of this process hands them to the span recorder);
metrics are read from the gateway's ``/metrics``, which in one process shows every service's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from chromaline.common.testing.spans import service_of, span_recorder

from .test_pipeline import chart_photo, upload, wait_batch

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

SERVICES = {"gateway", "auth", "detector", "corrector", "reporter"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    text = httpx.get(f"{base_url}/metrics", timeout=30).raise_for_status().text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.1)


def api_key_client(system: Any) -> httpx.Client:
    """A client with an API key, which the gateway verifies with auth on every request."""
    with system.client(system.sign_up("Observability")) as signed_in:
        created = signed_in.post("/api/v1/auth/api-keys", json={"name": "ci", "scopes": ["read", "upload"]})
        assert created.status_code == 201, created.text
    return httpx.Client(base_url=system.base_url, timeout=120, headers={"X-API-Key": created.json()["key"]})


class Trace:
    """The finished spans of one trace, looked up by service and name."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = spans

    def one(self, service: str, name: str) -> ReadableSpan:
        found = [span for span in self.spans if span.name == name and service_of(span) == service]
        assert len(found) == 1, f"{len(found)} spans {name!r} of {service}: {self.names()}"
        return found[0]

    def has(self, service: str, name: str) -> bool:
        return any(span.name == name and service_of(span) == service for span in self.spans)

    def names(self) -> list[tuple[str, str]]:
        return sorted((service_of(span), span.name) for span in self.spans)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def test_one_upload_is_one_trace_across_the_five_services_and_moves_the_metrics(
    standalone_system: Any,
) -> None:
    recorder = span_recorder()
    with api_key_client(standalone_system) as client:
        before = scrape(standalone_system.base_url)
        recorder.clear()
        batch = upload(client, [("traced.jpg", chart_photo(40))])
        job = wait_batch(client, batch["id"])["jobs"][0]
        assert job["state"] == "done", job

    def upload_trace() -> Trace:
        spans = recorder.get_finished_spans()
        roots = [span for span in spans if span.name == "POST /api/v1/jobs" and service_of(span) == "gateway"]
        assert len(roots) == 1, [span.name for span in spans]
        assert roots[0].context is not None
        trace_id = roots[0].context.trace_id
        return Trace(
            [span for span in spans if span.context is not None and span.context.trace_id == trace_id]
        )

    wait_for(lambda: upload_trace().has("gateway", "consume report.ready"), "the gateway saw report.ready")
    trace = upload_trace()
    assert {service_of(span) for span in trace.spans} == SERVICES

    request = trace.one("gateway", "POST /api/v1/jobs")
    assert request.kind == SpanKind.SERVER
    assert parent_id(request) is None
    key_check = trace.one("auth", "POST /internal/v1/api-keys/verify")
    assert (key_check.kind, parent_id(key_check)) == (SpanKind.SERVER, span_id(request))

    chain = [
        ("gateway", "image.uploaded", "detector"),
        ("detector", "chart.detected", "corrector"),
        ("corrector", "image.corrected", "reporter"),
        ("reporter", "report.ready", "gateway"),
    ]
    cause = request
    for producer, event_type, consumer in chain:
        publish = trace.one(producer, f"publish {event_type}")
        consume = trace.one(consumer, f"consume {event_type}")
        assert (publish.kind, consume.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
        assert parent_id(publish) == span_id(cause), f"publish {event_type} is not a child of {cause.name}"
        assert parent_id(consume) == span_id(publish), f"consume {event_type} is not a child of its publish"
        cause = consume
    assert parent_id(trace.one("gateway", "consume image.corrected")) == span_id(
        trace.one("corrector", "publish image.corrected")
    )
    detector_work = trace.one("detector", "consume image.uploaded")
    for stage in ("load", "decode", "detect", "sample"):
        assert parent_id(trace.one("detector", stage)) == span_id(detector_work)

    after = scrape(standalone_system.base_url)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    for service, event_type in [
        ("detector", "image.uploaded"),
        ("corrector", "chart.detected"),
        ("reporter", "image.corrected"),
        ("gateway", "report.ready"),
    ]:
        labels = {"service": service, "type": event_type}
        assert moved("chromaline_events_consumed_total", **labels, outcome="success") >= 1, labels
        assert moved("chromaline_event_handling_seconds_count", **labels) >= 1, labels
        assert moved("chromaline_event_queue_lag_seconds_count", **labels) >= 1, labels
    for service, event_type in [
        ("gateway", "image.uploaded"),
        ("detector", "chart.detected"),
        ("corrector", "image.corrected"),
        ("reporter", "report.ready"),
    ]:
        assert moved("chromaline_events_published_total", service=service, type=event_type) >= 1
    for service, stage in [
        ("detector", "decode"),
        ("detector", "detect"),
        ("corrector", "fit"),
        ("corrector", "apply"),
        ("reporter", "render"),
    ]:
        assert moved("chromaline_stage_seconds_count", service=service, stage=stage) >= 1, (service, stage)
    upload_labels = {"service": "gateway", "method": "POST", "route": "/api/v1/jobs"}
    assert moved("chromaline_http_requests_total", **upload_labels, status="202") == 1
    assert moved("chromaline_http_request_seconds_count", **upload_labels) == 1
    verify_labels = {"service": "auth", "method": "POST", "route": "/internal/v1/api-keys/verify"}
    assert moved("chromaline_http_requests_total", **verify_labels, status="200") >= 1
    for service in SERVICES:
        assert sample(after, "chromaline_db_pool_size", service=service) > 0, service
        assert ("chromaline_outbox_backlog", frozenset({("service", service)})) in after, service
