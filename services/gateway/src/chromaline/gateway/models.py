"""The gateway's tables, in its own schema: jobs, batches, saved profiles, pending uploads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TERMINAL_STATES = ("done", "failed")
STATES = ("queued", "detecting", "correcting", "reporting", *TERMINAL_STATES)


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
    stage_times: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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
