"""The Prometheus metrics of every service, in the process's default registry (served on ``/metrics``).

Every series is labelled with its ``service``: in standalone mode all five services share one
process and so one registry. ``docs/observability.md`` lists each metric with its meaning.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from chromaline.common import tracing
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.envelope import RawEnvelope

WORK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds, for handlers and stages: from a database update to decoding a 50 MP photo."""
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
"""Seconds, for the wait between an event's occurrence and its handling (retries wait minutes)."""

HTTP_REQUESTS = Counter(
    "chromaline_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "chromaline_http_request_seconds", "HTTP request latency", ["service", "method", "route"]
)
EVENTS_CONSUMED = Counter(
    "chromaline_events_consumed_total",
    "Events a service's handler took, by outcome: success; failed (retried, dead-lettered after the "
    "delivery limit); rejected (permanent error, dead-lettered at once)",
    ["service", "type", "outcome"],
)
EVENT_HANDLING = Histogram(
    "chromaline_event_handling_seconds",
    "Time a handler took over one delivery of an event, whatever its outcome",
    ["service", "type"],
    buckets=WORK_BUCKETS,
)
EVENT_QUEUE_LAG = Histogram(
    "chromaline_event_queue_lag_seconds",
    "Time from an event's occurred_at to the start of its handling (outbox, broker queue and retries)",
    ["service", "type"],
    buckets=LAG_BUCKETS,
)
EVENTS_DEAD_LETTERED = Counter(
    "chromaline_events_dead_lettered_total",
    "Messages parked in a service's dead-letter queue (type: the routing key)",
    ["service", "type"],
)
EVENTS_PUBLISHED = Counter(
    "chromaline_events_published_total",
    "Events the outbox relay published and the broker confirmed",
    ["service", "type"],
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "chromaline_outbox_publish_failures_total",
    "Publishes of the outbox relay the broker did not confirm (the event stays in the outbox)",
    ["service", "type"],
)
OUTBOX_BACKLOG = Gauge(
    "chromaline_outbox_backlog", "Outbox rows not yet published, as the relay last counted them", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "chromaline_outbox_oldest_unsent_seconds",
    "Age of the oldest outbox row not yet published (0 when none), as the relay last measured it",
    ["service"],
)
ORPHANS_DELETED = Counter(
    "chromaline_orphans_deleted_total",
    "Blobs the orphan sweep deleted, by reason: no_job (an original no job or upload refers to), "
    "unconfirmed_upload (a presigned upload never confirmed), write_leftover (a .partial file)",
    ["service", "reason"],
)
ROWS_PRUNED = Counter(
    "chromaline_rows_pruned_total",
    "Rows the periodic pruning deleted: outbox (published, past outbox_retention_seconds), inbox "
    "(handled, past inbox_retention_seconds), idempotency_keys (past 24 hours)",
    ["service", "table"],
)
STAGE_DURATION = Histogram(
    "chromaline_stage_seconds",
    "Time one stage of a handler took (load, decode, detect, sample, fit, apply, encode, render, store)",
    ["service", "stage"],
    buckets=WORK_BUCKETS,
)


@contextlib.contextmanager
def consuming(service: str, envelope: RawEnvelope) -> Iterator[None]:
    """Count and time one handling of ``envelope``, and how long it waited for it.

    An interrupted handler (cancelled at shutdown, its message requeued) is not counted.
    """
    occurred_at = envelope.occurred_at
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    lag = (datetime.now(UTC) - occurred_at).total_seconds()
    EVENT_QUEUE_LAG.labels(service, envelope.type).observe(max(lag, 0.0))
    started = time.perf_counter()

    def record(outcome: str) -> None:
        EVENT_HANDLING.labels(service, envelope.type).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(service, envelope.type, outcome).inc()

    try:
        yield
    except PermanentError:
        record("rejected")
        raise
    except Exception:
        record("failed")
        raise
    record("success")


@contextlib.contextmanager
def stage(service: str, name: str) -> Iterator[None]:
    """One stage of a handler: timed into ``chromaline_stage_seconds`` and traced as a span of its own."""
    with tracing.tracer(service).start_as_current_span(name, attributes={"chromaline.stage": name}):
        started = time.perf_counter()
        try:
            yield
        finally:
            STAGE_DURATION.labels(service, name).observe(time.perf_counter() - started)


def observe_stage_times(service: str, timings_ms: Mapping[str, float]) -> None:
    """Record stage times the colour engine measured itself (milliseconds per stage)."""
    for name, milliseconds in timings_ms.items():
        STAGE_DURATION.labels(service, name).observe(milliseconds / 1000.0)


class DatabasePools:
    """Reads the connection pools of the watched engines at each scrape.

    ``chromaline_db_pool_checked_out`` above ``chromaline_db_pool_size`` means the service runs on
    overflow connections; once overflow is used up too, sessions wait for a connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[str, list[AsyncEngine]] = {}

    def watch(self, service: str, engine: AsyncEngine) -> None:
        with self._lock:
            self._engines.setdefault(service, []).append(engine)

    def forget(self, service: str, engine: AsyncEngine) -> None:
        with self._lock:
            engines = self._engines.get(service, [])
            if engine in engines:
                engines.remove(engine)
            if not engines:
                self._engines.pop(service, None)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        size, checked_out, overflow = families
        with self._lock:
            watched = {service: list(engines) for service, engines in self._engines.items()}
        for service, engines in sorted(watched.items()):
            pools = [engine.sync_engine.pool for engine in engines]
            queue_pools = [pool for pool in pools if isinstance(pool, QueuePool)]
            size.add_metric([service], sum(pool.size() for pool in queue_pools))
            checked_out.add_metric([service], sum(pool.checkedout() for pool in queue_pools))
            overflow.add_metric([service], sum(max(pool.overflow(), 0) for pool in queue_pools))
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "chromaline_db_pool_size", "Connections the pool keeps open (pool_size)", labels=["service"]
            ),
            GaugeMetricFamily(
                "chromaline_db_pool_checked_out", "Pooled connections in use right now", labels=["service"]
            ),
            GaugeMetricFamily(
                "chromaline_db_pool_overflow",
                "Connections open beyond pool_size right now (max_overflow caps them)",
                labels=["service"],
            ),
        ]


DATABASE_POOLS = DatabasePools()
REGISTRY.register(DATABASE_POOLS)
