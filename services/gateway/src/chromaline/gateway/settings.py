from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from chromaline.common.settings import ServiceSettings
from chromaline.gateway.models import RUNNING_STATES


class GatewaySettings(ServiceSettings):
    """Gateway limits; every value can be set with ``CHROMALINE_GATEWAY_<NAME>`` or ``CHROMALINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 200 * 1024 * 1024
    max_files_per_batch: int = 200
    max_batch_upload_bytes: int = 4 * 1024**3
    """The most one multipart upload may send in all: past it the upload is refused (413) as the
    bytes arrive, rather than spooled to disk whole before the per-file limits are checked."""
    max_pixels: int = 150_000_000
    max_zip_entries: int = 500
    max_zip_uncompressed_bytes: int = 4 * 1024**3
    max_zip_ratio: float = 100.0
    job_deadline_seconds: float = 900.0
    """How long a job may stay in one stage without progress before the watchdog fails it, for
    the stages ``stage_deadline_seconds`` does not name."""
    stage_deadline_seconds: dict[str, float] = Field(default_factory=dict)
    """Deadlines of particular stages (``detecting``, ``correcting``, and ``report``: how long a
    done job's report may stay pending), e.g.
    ``CHROMALINE_GATEWAY_STAGE_DEADLINE_SECONDS='{"correcting": 1800}'``."""
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
    """Uploads each user (with all their tokens and API keys) may start per minute, sustained;
    ``upload_burst`` at once."""
    upload_burst: int = 30
    max_progress_sockets_per_user: int = Field(default=20, ge=1)
    """Progress WebSockets one user (with any of their tokens and keys) may hold open at once in
    one replica; one more is closed with 4429 ``too_many_connections``."""
    max_uploads_in_progress_per_user: int = Field(default=4, ge=1)
    """Uploads (multipart or streamed) one user may be sending at once to one replica; one more
    answers 429 ``too_many_uploads`` before its body is read."""
    progress_socket_recheck_seconds: float = Field(default=30.0, gt=0)
    """How often an open progress WebSocket checks its caller's credential again: it closes (1008)
    once the access token has expired or the API key was revoked."""
    max_archive_builds_per_user: int = Field(default=2, ge=1)
    """Batch archives one user may have built at once in one replica; one more answers 429."""
    metrics_token: SecretStr | None = None
    """When set, ``/metrics`` answers only ``Authorization: Bearer <token>`` (Prometheus'
    ``authorization`` credentials); unset, anyone reaching the port may read it."""
    security_headers: bool = True
    hsts_seconds: int = 31_536_000
    """Sent as Strict-Transport-Security on requests that arrived over HTTPS (0: never)."""
    webhook_timeout_seconds: float = 5.0
    """The longest one webhook call may take, connection to last byte."""
    webhook_retry_delays_seconds: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0, 7200.0)
    """Waits before the 2nd, 3rd, … attempt; the last one repeats if attempts remain."""
    webhook_max_attempts: int = 6
    """Attempts before a delivery is marked failed."""
    webhook_concurrency: int = 16
    """Deliveries in flight at once per gateway replica (at most one per webhook)."""
    webhook_poll_seconds: float = 1.0
    """How often the delivery worker looks for due deliveries."""
    webhook_allow_private_urls: bool = False
    """Allow webhook URLs on loopback, private and link-local addresses (off: SSRF protection)."""
    retention_sweep_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often this gateway expires jobs past their organisation's retention period; 0 turns the
    periodic sweep off (when a CronJob runs ``chromaline retention sweep`` instead)."""
    retention_sweep_batch_size: int = Field(default=100, ge=1, le=10_000)
    """Jobs expired per transaction."""
    report_wait_seconds: float = Field(default=30.0, ge=0)
    """How long a download of a report's HTML, figure or PDF not made yet waits for the reporter
    before answering 202 (they are made on first request); a batch archive waits as long for all
    its reports."""
    report_request_repeat_seconds: float = Field(default=60.0, gt=0)
    """A job's HTML or PDF report is asked for again only when the earlier request is older than this."""
    orphan_sweep_interval_seconds: float = Field(default=600.0, ge=0)
    """How often this gateway deletes originals no job refers to, unconfirmed presigned uploads
    and the leftovers of interrupted writes; 0 turns the sweep off."""
    orphan_grace_seconds: float = Field(default=3600.0, gt=0)
    """How old a blob without a job (or an expired, unconfirmed upload) must be before it is
    deleted: longer than any upload takes between storing its original and committing its job."""

    def stage_deadlines(self) -> dict[str, timedelta]:
        """The deadline of each running stage."""
        return {
            state: timedelta(seconds=self.stage_deadline_seconds.get(state, self.job_deadline_seconds))
            for state in RUNNING_STATES
        }

    def report_deadline(self) -> timedelta:
        """How long a done job's report may stay pending before the watchdog marks it failed."""
        return timedelta(seconds=self.stage_deadline_seconds.get("report", self.job_deadline_seconds))
