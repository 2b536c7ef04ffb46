"""Auth settings: ``CHROMALINE_AUTH_<NAME>`` or ``CHROMALINE_<NAME>``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chromaline.common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    """Token lifetimes, password hashing cost, throttling and the reset link's base URL.

    The private signing keys are stored encrypted with ``signing_secret`` (a shared setting that
    must be a real secret outside development).
    """

    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    port: int = 8084
    issuer: str = "chromaline-auth"
    audience: str = "chromaline"
    access_token_seconds: int = Field(default=900, ge=30, le=3600)
    refresh_token_days: int = Field(default=7, ge=1, le=30)
    signing_key_days: int = Field(default=30, ge=1)
    """A signing key is replaced by a new one once it is this old; its public half stays published
    until the last token it signed has expired."""
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=64 * 1024, ge=8)
    argon2_parallelism: int = Field(default=2, ge=1)
    password_min_length: int = Field(default=10, ge=8)
    reset_token_seconds: int = Field(default=1800, ge=60, le=24 * 3600)
    public_base_url: str = "http://127.0.0.1:8080"
    """Where people reach the web app (the gateway's public address); links in e-mails start here,
    e.g. a reset link opens ``<public_base_url>/#/reset?token=…``."""
    reset_sink: str = "log"
    """Where reset links go: ``log`` writes them to the log (development)."""
    throttle_window_seconds: int = Field(default=900, ge=1)
    throttle_max_failures_per_account: int = Field(default=5, ge=1)
    throttle_max_failures_per_address: int = Field(default=20, ge=1)
    reset_throttle_window_seconds: int = Field(default=3600, ge=1)
    reset_max_per_account: int = Field(default=3, ge=1)
    """Reset links sent to one account per window; further requests send nothing (answered alike)."""
    reset_max_per_address: int = Field(default=10, ge=1)
    """Reset requests one client address may make per window; further ones answer 429."""
    sign_up_throttle_window_seconds: int = Field(default=3600, ge=1)
    sign_up_max_per_address: int = Field(default=30, ge=1)
    """Accounts one client address may register per window; further sign-ups answer 429."""
    trust_forwarded_for: bool = True
    """Take the client address from ``X-Forwarded-For``, as set by the gateway (the only caller)."""
    api_key_days_max: int = Field(default=365, ge=1, le=3650)
    """The longest an API key may live: a key asked for longer is refused (422), a key asked for
    with no expiry gets this."""
