"""moto's S3 server on :9000, answering MinIO's liveness and readiness paths.

Takes (and ignores) MinIO's arguments, so it runs under the same command as the real server.
"""

from collections.abc import Callable, Iterable
from typing import Any

from moto.server import create_backend_app  # type: ignore[attr-defined]  # moto re-exports it untyped
from werkzeug.serving import run_simple

HEALTH_PATHS = frozenset({"/minio/health/live", "/minio/health/ready"})
PORT = 9000

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_minio_health(app: WsgiApp) -> WsgiApp:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in HEALTH_PATHS:
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    return serve


if __name__ == "__main__":
    run_simple("0.0.0.0", PORT, with_minio_health(create_backend_app("s3")), threaded=True)
