"""Settings shared by every service, read from the environment with a per-service prefix.

Every external part is chosen by URL, so the same code runs on embedded defaults or on
RabbitMQ/Postgres/MinIO: ``bus_url`` (``memory://`` or ``amqp://``), ``database_url``
(``embedded://<dir>`` or ``postgresql+asyncpg://``) and ``blob_url`` (``file://<dir>`` or ``s3://``).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "password", "dev-secret", "minioadmin"}
)

Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    """Base settings; each service subclasses it with its own ``env_prefix``.

    Values not found under the service prefix fall back to the shared ``CHROMALINE_`` variables,
    so one ``CHROMALINE_BUS_URL`` configures every service while ``CHROMALINE_DETECTOR_BUS_URL``
    overrides it for the detector alone.
    """

    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    service_name: str = "chromaline"
    environment: Environment = "development"
    bus_url: str = "memory://"
    database_url: str = "embedded://.chromaline/postgres"
    blob_url: str = "file://.chromaline/blobs"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    tracing_exporter: Literal["none", "otlp", "console"] = "none"
    """Where spans go: nowhere (they are still made, and their ids logged), an OTLP collector, or stdout."""
    tracing_endpoint: str = ""
    """OTLP/HTTP traces URL, e.g. ``http://otel-collector:4318/v1/traces``; empty: the exporter's
    default (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or localhost)."""
    signing_secret: SecretStr = SecretStr("dev-secret")
    partners: str = ""
    """Comma-separated RabbitMQ users of the partners allowed to publish ``image.uploaded``."""
    internal_bus_users: str = ""
    """Comma-separated RabbitMQ users of our own services, besides the one in ``bus_url``."""
    retention_default_days: int = Field(default=365, ge=1, le=3650)
    """How long a job's files are kept after it ends, for organisations that chose no period of
    their own (auth shows it, the gateway applies it; see docs/retention.md)."""
    connect_retry_max_seconds: float = Field(default=15.0, gt=0)
    """The longest wait between two attempts to reach the database, bus and blob store at start
    (waits double from half a second up to this, with jitter)."""
    prune_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often the service prunes its outbox, inbox and idempotency keys; 0 never."""
    outbox_retention_seconds: float = Field(default=7 * 86400.0, gt=0)
    """How long a published outbox row is kept (to see what was sent) before pruning."""
    inbox_retention_seconds: float = Field(default=7 * 86400.0, ge=86400.0)
    """How long an inbox claim is kept: far longer than any redelivery of its event can arrive
    (at least a day), so that a late duplicate is still recognised."""
    max_request_body_bytes: int = Field(default=256 * 1024, ge=1024)
    """The largest request body any route reads (413 past it); upload routes have their own limits."""
    migrate_on_start: bool = True
    """Upgrade the service's schema when it starts. Off where a separate step migrates first
    (``chromaline migrate <service>``, the Kubernetes migration Jobs)."""

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "development":
            return self
        for name, field in type(self).model_fields.items():
            if field.annotation is SecretStr:
                value: SecretStr = getattr(self, name)
                if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} holds a placeholder secret; set a real one outside development")
        return self

    @classmethod
    def for_service(cls, service: str) -> Self:
        """Read settings for ``service``: ``CHROMALINE_<SERVICE>_*`` first, then ``CHROMALINE_*``."""
        shared = cls()
        specific = cls(_env_prefix=f"CHROMALINE_{service.upper()}_")
        merged = shared.model_dump() | specific.model_dump(include=specific.model_fields_set)
        merged["service_name"] = service
        return cls.model_validate(merged)
