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
