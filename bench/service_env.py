"""The environment the benches give each ``chromaline serve`` process they start."""

from __future__ import annotations

import os

BENCH_SIGNING_SECRET = "bench-signing-secret-4d2f9a"


def service_env(amqp_url: str, database_url: str, blob_url: str, **extra: str) -> dict[str, str]:
    """This process's environment with the run's own stores, quiet logs and ``extra`` on top
    (``CHROMALINE_…`` names to values)."""
    return {
        **os.environ,
        "CHROMALINE_ENVIRONMENT": "test",
        "CHROMALINE_SIGNING_SECRET": BENCH_SIGNING_SECRET,
        "CHROMALINE_BUS_URL": amqp_url,
        "CHROMALINE_DATABASE_URL": database_url,
        "CHROMALINE_BLOB_URL": blob_url,
        "CHROMALINE_LOG_LEVEL": "WARNING",
        **extra,
    }
