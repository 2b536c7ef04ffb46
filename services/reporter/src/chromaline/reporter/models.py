"""The reporter's table, in its own schema: one row per report written."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Float, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Report(Base):
    __tablename__ = "reports"

    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(200))
    rating: Mapped[str | None] = mapped_column(String(64))
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
