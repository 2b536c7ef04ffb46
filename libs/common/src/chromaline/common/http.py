"""The FastAPI app factory every service starts from.

``/healthz`` says the process is alive; ``/readyz`` asks each dependency (database, bus, blob
store) and answers 503 while one does not; ``/metrics`` serves Prometheus metrics. Each request
runs with a correlation id taken from ``X-Correlation-ID`` or freshly made, echoed back, and in a
server span of FastAPI's own telemetry that continues the caller's ``traceparent``.

Every error is a problem document (:mod:`chromaline.common.problems`): an error the routes did
not expect becomes a 503 with ``Retry-After`` when a dependency is down, otherwise a 500 with
the code ``internal_error`` and the correlation id to quote, its traceback only in the log.
"""

from __future__ import annotations

import asyncio
import re
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
from chromaline.common.idempotency import StoredResponse
from chromaline.common.logging import get_logger
from chromaline.common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from chromaline.common.outages import RETRY_AFTER_SECONDS, unavailable_dependency
from chromaline.common.problems import install_problem_handlers, problem

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""A caller's correlation id kept as given; any other (too long, other characters) is replaced by
a new one rather than written into logs and echoed back."""
READINESS_TIMEOUT_SECONDS = 3.0
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes, which would bury the traces worth reading."""


class CorrelationMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, service: str) -> None:
        super().__init__(app)
        self._service = service

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.headers.get(CORRELATION_HEADER, "")
        correlation_id = given if _CORRELATION_ID.fullmatch(given) else correlation.new_correlation_id()
        started = time.perf_counter()
        with correlation.bound(correlation_id):
            try:
                response = await call_next(request)
            except Exception as error:
                response = unexpected_error_problem(error, correlation_id)
        route = request.scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(self._service, request.method, route_path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(self._service, request.method, route_path).observe(time.perf_counter() - started)
        response.headers[CORRELATION_HEADER] = correlation_id
        return response


def unexpected_error_problem(error: Exception, correlation_id: str) -> Response:
    """The problem document for an error no handler turned into a response."""
    dependency = unavailable_dependency(error)
    if dependency is not None:
        log.warning("http.dependency_unavailable", dependency=dependency, error=repr(error))
        return problem(
            503,
            "dependency_unavailable",
            f"the {dependency} is not available right now; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            dependency=dependency,
            correlation_id=correlation_id,
        )
    log.exception("http.unexpected_error")
    return problem(
        500,
        "internal_error",
        "an unexpected error occurred; quote the correlation id when reporting it",
        correlation_id=correlation_id,
    )


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
    install_problem_handlers(app)

    @app.exception_handler(StoredResponse)
    async def replay(request: Request, stored: StoredResponse) -> Response:
        return stored.response()

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
