"""The FastAPI app factory every service starts from.

``/healthz`` says the process is alive; ``/readyz`` asks each dependency (database, bus, blob
store) and answers 503 while one does not; ``/metrics`` serves Prometheus metrics. Each request
runs with a correlation id taken from ``X-Correlation-ID`` or freshly made, echoed back, and in a
server span of FastAPI's own telemetry that continues the caller's ``traceparent``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp

from chromaline.common import correlation, tracing
from chromaline.common.metrics import HTTP_LATENCY, HTTP_REQUESTS

ReadinessCheck = Callable[[], Awaitable[bool]]
CORRELATION_HEADER = "X-Correlation-ID"
READINESS_TIMEOUT_SECONDS = 3.0
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes, which would bury the traces worth reading."""


class CorrelationMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, service: str) -> None:
        super().__init__(app)
        self._service = service

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        correlation_id = request.headers.get(CORRELATION_HEADER) or correlation.new_correlation_id()
        started = time.perf_counter()
        with correlation.bound(correlation_id[:64]):
            response = await call_next(request)
        route = request.scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(self._service, request.method, route_path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(self._service, request.method, route_path).observe(time.perf_counter() - started)
        response.headers[CORRELATION_HEADER] = correlation_id[:64]
        return response


async def _run_check(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), READINESS_TIMEOUT_SECONDS)
    except Exception:
        return False


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def create_app(
    service: str,
    *,
    readiness: Mapping[str, ReadinessCheck],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    title: str | None = None,
    metrics_dependencies: Sequence[Any] = (),
) -> FastAPI:
    """A FastAPI app with health, readiness and metrics endpoints, correlation ids and server spans.

    ``metrics_dependencies`` run before ``/metrics`` answers (the gateway, on a public port, checks
    a token there)."""
    app = FastAPI(
        title=title or f"Chromaline {service}",
        lifespan=lifespan,
        telemetry={
            "tracer_provider": tracing.provider_for(service),
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
            "exclude": _untraced,
        },
    )
    app.add_middleware(CorrelationMiddleware, service=service)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        names = list(readiness)
        results = await asyncio.gather(*(_run_check(readiness[name]) for name in names))
        checks = dict(zip(names, results, strict=True))
        ready = all(results)
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False, dependencies=list(metrics_dependencies))
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
