"""The gateway's tables, in its own schema: jobs, batches, saved profiles, custom chart
definitions, pending uploads, notifications, notification preferences, webhooks and their
deliveries, its copy of each organisation's retention period, and each organisation's processing
settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ENDED_STATES = ("done", "failed")
"""A job's outcome; after its organisation's retention period an ended job expires."""
TERMINAL_STATES = (*ENDED_STATES, "expired", "deleted")
"""No event moves a job out of these."""
DELETED = "deleted"
"""A job deleted on request: its files are gone and the API answers 404 for it, as for no job."""
RUNNING_STATES = ("queued", "detecting", "correcting")
"""A stage in progress; the watchdog fails a job that stays in one past its deadline."""
JobState = Literal["queued", "detecting", "correcting", "done", "failed", "expired"]
STATES: tuple[str, ...] = get_args(JobState)
"""The states the API shows (a deleted job is shown as no job at all)."""
ReportState = Literal["pending", "ready", "failed"]
"""A done job's report, made after the job is done: the corrected image does not wait for it."""


class Base(DeclarativeBase):
    pass


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    organisation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    """The user who uploaded the job: whose notification preferences apply when it ends."""
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB)
    original: Mapped[dict[str, str]] = mapped_column(JSONB)
    results: Mapped[dict[str, dict[str, str]]] = mapped_column(JSONB, default=dict)
    chart_type: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(32))
    delta_e_before: Mapped[float | None] = mapped_column(Float)
    delta_e_after: Mapped[float | None] = mapped_column(Float)
    rating: Mapped[str | None] = mapped_column(String(64))
    candidate: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """With reason ``low_confidence``: the box the detector offers for confirmation."""
    other_charts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    """The charts found in the photo besides the one it was corrected with (``chart.detected``)."""
    warnings: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    """Doubts about a finished job's result (``code`` and ``message`` each)."""
    stage_times: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    report_state: Mapped[str | None] = mapped_column(String(16), index=True)
    """None until the corrected image exists (or the reporter answers first), then a ``ReportState``."""
    report_reason: Mapped[str | None] = mapped_column(String(64))
    report_message: Mapped[str | None] = mapped_column(Text)
    report_pdf_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the gateway last asked the reporter for the PDF report, which is made on first request."""
    report_html_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the gateway last asked the reporter for the HTML report and its figures, which are
    drawn on first request."""
    sent_again_from: Mapped[uuid.UUID | None] = mapped_column()
    """The job whose photo this job's is, sent again by its owner (corners marked by hand, or
    another chart of the photo chosen); None for a photo uploaded anew."""
    report_figures_on_request: Mapped[list[str]] = mapped_column(JSONB, default=list)
    """The figures (``report.ready`` version 3) to be drawn with the HTML report on request."""
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    progressed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    """When the job was created or last moved forward: the watchdog's deadlines count from here."""
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When its files were deleted (after retention, or on request); the row stays as the job's
    tombstone, so events still in flight for it change nothing."""


class OrganisationRetention(Base):
    """The gateway's copy of an organisation's retention period, kept from
    ``organisation.retention_changed`` (the auth service owns the setting)."""

    __tablename__ = "organisation_retention"

    organisation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    days: Mapped[int | None]
    """None: the deployment's default (``retention_default_days``)."""
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the change was made at the auth service; an older change arriving late is ignored."""


class OrganisationSettings(Base):
    """An organisation's processing settings, owned by the gateway (its admins change them)."""

    __tablename__ = "organisation_settings"

    organisation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    guideline: Mapped[str] = mapped_column(String(32))
    """The rating guideline a job's report leads with when the upload names none."""
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(String(64))


class SavedProfile(Base):
    __tablename__ = "profiles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(120))
    source_job_id: Mapped[uuid.UUID]
    blob: Mapped[dict[str, str]] = mapped_column(JSONB)
    cube: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    method: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChartRecord(Base):
    """A custom chart an organisation uploaded: its checked definition and the CGATS text it came from.

    Both live in the row (the text is at most ``cgats.MAX_BYTES``), so a chart is stored and
    deleted in one transaction. Jobs carry the definition in their options, so deleting a chart
    changes no job."""

    __tablename__ = "custom_charts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The ``CustomChart`` contract, as the jobs' options carry it."""
    filename: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    """The CGATS.17 text as uploaded."""
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PendingUpload(Base):
    """A presigned upload handed to a client, waiting for its confirmation."""

    __tablename__ = "pending_uploads"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    blob: Mapped[dict[str, str]] = mapped_column(JSONB)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_job_id: Mapped[uuid.UUID | None]


class Notification(Base):
    """An in-app notice for one user about a job or batch that ended."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID | None]
    batch_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationPreferences(Base):
    """What one user wants to hear of (kinds) and how (channels); absent means every default."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    webhooks: Mapped[bool] = mapped_column(Boolean, default=True)
    job_finished: Mapped[bool] = mapped_column(Boolean, default=True)
    job_failed: Mapped[bool] = mapped_column(Boolean, default=True)
    batch_finished: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Webhook(Base):
    """An organisation's endpoint for job and batch events.

    Its signing secret is not stored: it is derived from the gateway's signing secret and
    ``secret_salt`` (see :func:`chromaline.gateway.webhooks.webhook_secret`).
    """

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64), index=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDelivery(Base):
    """One event on its way to one webhook, with a log of every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UploadBucket(Base):
    """One user's or API key's upload token bucket, shared by every replica (see ``rate_limit``)."""

    __tablename__ = "upload_buckets"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    granted: Mapped[bool] = mapped_column(Boolean)
    """Whether the last take was granted (read back by the take that wrote it)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
