"""The detector's table, in its own schema: one row per job it looked at."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Detection(Base):
    __tablename__ = "detections"

    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    chart_type: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    corners: Mapped[list[Any] | None] = mapped_column(JSONB)
    charts_found: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
