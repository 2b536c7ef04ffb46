"""Telling people that a job or a batch ended: in-app notifications and webhook deliveries.

A job's events concern the user who uploaded it. Their preferences choose which kinds they hear
of (``job_finished``, ``job_failed``, ``batch_finished``) and through which channels: ``in_app``
(a notification listed by the API) and ``webhooks`` (the organisation's webhooks subscribed to
the kind). Without saved preferences every kind and channel is on. A batch of two or more images
also ends with one ``batch.finished``; a single upload is told by its job's event alone.

A done job's report comes later: ``job.report_ready`` (heard with ``job_finished``, webhooks only:
the job's own notice already told the user) or ``job.report_failed`` (heard with ``job_failed``,
in the app too).

Everything here runs in the transaction that moves the job to its end, so a notification or a
delivery exists exactly when the job's end was committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.gateway import webhooks
from chromaline.gateway.models import TERMINAL_STATES, Batch, Job, Notification, NotificationPreferences
from chromaline.gateway.views import report_view

PREFERENCE_FLAGS = ("in_app", "webhooks", "job_finished", "job_failed", "batch_finished")
KIND_FLAGS = {
    "job.finished": "job_finished",
    "job.failed": "job_failed",
    "job.report_ready": "job_finished",
    "job.report_failed": "job_failed",
    "batch.finished": "batch_finished",
}


@dataclass(frozen=True)
class Preferences:
    in_app: bool = True
    webhooks: bool = True
    job_finished: bool = True
    job_failed: bool = True
    batch_finished: bool = True

    def wants(self, kind: str) -> bool:
        return bool(getattr(self, KIND_FLAGS[kind]))

    def as_dict(self) -> dict[str, bool]:
        return {flag: bool(getattr(self, flag)) for flag in PREFERENCE_FLAGS}


async def preferences_of(session: AsyncSession, user_id: str | None) -> Preferences:
    """A user's saved preferences, or the defaults (everything on)."""
    if not user_id:
        return Preferences()
    saved = await session.get(NotificationPreferences, user_id)
    if saved is None:
        return Preferences()
    return Preferences(**{flag: getattr(saved, flag) for flag in PREFERENCE_FLAGS})


async def save_preferences(session: AsyncSession, user_id: str, changes: dict[str, bool]) -> Preferences:
    await session.execute(
        insert(NotificationPreferences)
        .values(user_id=user_id, **Preferences().as_dict())
        .on_conflict_do_nothing(index_elements=[NotificationPreferences.user_id])
    )
    saved = await session.get(NotificationPreferences, user_id, with_for_update=True)
    assert saved is not None
    for flag, value in changes.items():
        if flag in PREFERENCE_FLAGS:
            setattr(saved, flag, value)
    await session.flush()
    return Preferences(**{flag: getattr(saved, flag) for flag in PREFERENCE_FLAGS})


def job_data(job: Job) -> dict[str, Any]:
    """What a job's event says about it (no file contents: those stay behind the API)."""
    return {
        "job": {
            "id": str(job.id),
            "batch_id": str(job.batch_id) if job.batch_id else None,
            "filename": job.filename,
            "state": job.state,
            "reason": job.reason,
            "message": job.message,
            "chart_type": job.chart_type,
            "method": job.method,
            "delta_e2000_before": job.delta_e_before,
            "delta_e2000_after": job.delta_e_after,
            "rating": job.rating,
            "report": report_view(job),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "url": f"/api/v1/jobs/{job.id}",
        }
    }


def _job_text(job: Job) -> tuple[str, str]:
    if job.state == "done":
        if job.delta_e_before is not None and job.delta_e_after is not None:
            detail = f"Mean ΔE2000 {job.delta_e_before:.2f} → {job.delta_e_after:.2f}."
        else:
            detail = "The corrected image is ready; its report follows."
        return f"{job.filename} is ready", detail
    return f"{job.filename} failed", job.message or job.reason or "The job failed."


async def announce_job_end(session: AsyncSession, job: Job) -> None:
    """Notify and queue webhook deliveries for ``job``, which has just reached done or failed."""
    kind = "job.finished" if job.state == "done" else "job.failed"
    preferences = await preferences_of(session, job.owner_id)
    title, body = _job_text(job)
    await _announce(session, preferences, job, kind, title, body, job_data(job))
    if job.batch_id is not None:
        await _announce_batch_end(session, preferences, job)


async def announce_report(session: AsyncSession, job: Job) -> None:
    """Queue webhook deliveries (and, for a failure, a notification) for the report of ``job``,
    which has just become ready or failed."""
    preferences = await preferences_of(session, job.owner_id)
    if job.report_state == "ready":
        title, body = (
            f"The report on {job.filename} is ready",
            "Its PDF, HTML and JSON reports can be downloaded.",
        )
        await _announce(
            session, preferences, job, "job.report_ready", title, body, job_data(job), in_app=False
        )
    else:
        title = f"The report on {job.filename} failed"
        body = f"The corrected image is ready; the report is not. {job.report_message or job.report_reason or ''}"
        await _announce(session, preferences, job, "job.report_failed", title, body.strip(), job_data(job))


async def _announce(
    session: AsyncSession,
    preferences: Preferences,
    job: Job,
    kind: str,
    title: str,
    body: str,
    data: dict[str, Any],
    *,
    in_app: bool = True,
) -> None:
    if not preferences.wants(kind):
        return
    if in_app and preferences.in_app and job.owner_id:
        session.add(
            Notification(
                id=uuid.uuid4(),
                user_id=job.owner_id,
                organisation_id=job.organisation_id,
                kind=kind,
                job_id=job.id if kind != "batch.finished" else None,
                batch_id=job.batch_id,
                title=title,
                body=body,
            )
        )
    if preferences.webhooks and job.organisation_id:
        event_id = uuid.uuid4()
        payload = webhooks.event_payload(kind, event_id, job.organisation_id, data)
        await webhooks.enqueue(session, job.organisation_id, kind, event_id, payload)


async def _announce_batch_end(session: AsyncSession, preferences: Preferences, job: Job) -> None:
    """Announce the batch if ``job`` was its last to end.

    The batch row is locked first, so of two last jobs ending at once the second waits and then
    counts the first as ended: exactly one of them announces the batch.
    """
    await session.flush()
    batch = await session.get(Batch, job.batch_id, with_for_update=True)
    if batch is None or batch.total < 2:
        return
    rows = await session.execute(
        select(Job.state, func.count()).where(Job.batch_id == batch.id).group_by(Job.state)
    )
    counts = {state: count for state, count in rows.all()}
    if any(state not in TERMINAL_STATES for state in counts):
        return
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    data = {
        "batch": {
            "id": str(batch.id),
            "total": batch.total,
            "done": done,
            "failed": failed,
            "url": f"/api/v1/batches/{batch.id}",
        }
    }
    title = f"Batch of {batch.total} images finished"
    body = f"{done} done, {failed} failed."
    await _announce(session, preferences, job, "batch.finished", title, body, data)


def notification_view(notification: Notification) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "kind": notification.kind,
        "job_id": str(notification.job_id) if notification.job_id else None,
        "batch_id": str(notification.batch_id) if notification.batch_id else None,
        "title": notification.title,
        "body": notification.body,
        "created_at": notification.created_at.isoformat() if notification.created_at else None,
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
    }
