from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from chromaline.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Gateway limits; every value can be set with ``CHROMALINE_GATEWAY_<NAME>`` or ``CHROMALINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 200 * 1024 * 1024
    max_files_per_batch: int = 200
    max_pixels: int = 150_000_000
    max_zip_entries: int = 500
    max_zip_uncompressed_bytes: int = 4 * 1024**3
    max_zip_ratio: float = 100.0
    job_deadline_seconds: float = 900.0
    watchdog_interval_seconds: float = 15.0
    presigned_expiry_seconds: int = 900
    cors_origins: tuple[str, ...] = ()
    auth_url: str = "http://127.0.0.1:8084"
    """The auth service: ``/api/v1/auth/*`` is forwarded there, the JWKS and API keys checked there."""
    auth_issuer: str = "chromaline-auth"
    auth_audience: str = "chromaline"
    auth_timeout_seconds: float = 10.0
    jwks_cache_seconds: float = 300.0
    """How long the public keys are trusted before they are fetched again."""
    jwks_refetch_seconds: float = 5.0
    """A token signed by an unknown key fetches the keys again, at most this often."""
    upload_rate_per_minute: float = 120.0
    """Uploads each user or API key may start per minute, sustained; ``upload_burst`` at once."""
    upload_burst: int = 30
    security_headers: bool = True
    hsts_seconds: int = 31_536_000
    """Sent as Strict-Transport-Security on requests that arrived over HTTPS (0: never)."""
