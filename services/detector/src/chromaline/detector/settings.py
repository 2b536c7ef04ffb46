from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from chromaline.common.settings import ServiceSettings


class DetectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    port: int = 8081
    max_pixels: int = 150_000_000
    fetch_max_bytes: int = 200 * 1024 * 1024
    """Largest photo fetched from a partner's ``source_url``."""
    fetch_timeout_seconds: float = 30.0
    fetch_allow_private_urls: bool = False
    """Fetch ``source_url`` from loopback, private and link-local addresses too (off: a partner's
    URL reaches nothing inside the deployment)."""
    sample_margin: float = 0.25
