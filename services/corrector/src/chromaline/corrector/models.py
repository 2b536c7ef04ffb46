"""The corrector's table, in its own schema: one row per job it corrected or refused."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Correction(Base):
    __tablename__ = "corrections"

    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(32))
    delta_e_before: Mapped[float | None] = mapped_column(Float)
    delta_e_after: Mapped[float | None] = mapped_column(Float)
    cross_validated: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    timings_ms: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
