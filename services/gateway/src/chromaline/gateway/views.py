"""What the API shows of jobs, batches and profiles."""

from __future__ import annotations

import uuid
from typing import Any

from chromaline.gateway.charts import chart_summary
from chromaline.gateway.models import DELETED, TERMINAL_STATES, Batch, Job, SavedProfile

RESULT_FILES = {
    "original": "original",
    "corrected": "corrected",
    "measurements": "measurements",
    "profile.json": "profile",
    "profile.cube": "profile_cube",
    "report.json": "report_json",
    "report.html": "report_html",
    "report.pdf": "report_pdf",
    "chromaticity.svg": "figure_chromaticity",
    "tone-response.svg": "figure_tone_response",
    "patch-pairs.svg": "figure_patch_pairs",
    "delta-e.svg": "figure_delta_e",
    "thumbnail.jpg": "thumbnail",
}
PROGRESS = {
    "queued": 0.0,
    "detecting": 0.25,
    "correcting": 0.5,
    "done": 1.0,
    "failed": 1.0,
    "expired": 1.0,
    "deleted": 1.0,
}


def profile_source_job_id(options: dict[str, Any] | None) -> str | None:
    """The job a saved profile applied to this job was made from: profiles are stored under their
    source job's results (``<job id>/profile.json``), so the key names it."""
    profile = (options or {}).get("profile")
    if not isinstance(profile, dict):
        return None
    head, _, _ = str(profile.get("key", "")).partition("/")
    try:
        return str(uuid.UUID(head))
    except ValueError:
        return None


def shown_options(options: dict[str, Any]) -> dict[str, Any]:
    """A job's options as the API shows them: a custom chart as its summary, not its values."""
    custom = options.get("custom_chart")
    return {**options, "custom_chart": chart_summary(custom)} if isinstance(custom, dict) else options


def available_results(job: Job) -> set[str]:
    """The job's results one may download; the HTML and PDF reports and the figures count once
    the report is ready, as they are made when they are first downloaded."""
    available = set(job.results) | ({"original"} if job.original else set())
    if "report_json" not in job.results:
        return available
    return available | {
        "report_pdf",
        "report_html",
        *(f"figure_{name}" for name in job.report_figures_on_request),
    }


def job_view(job: Job) -> dict[str, Any]:
    """A job; an expired one is its tombstone: no files, the summary kept."""
    available = available_results(job)
    return {
        "id": str(job.id),
        "batch_id": str(job.batch_id) if job.batch_id else None,
        "filename": job.filename,
        "state": job.state,
        "progress": PROGRESS[job.state],
        "reason": job.reason,
        "message": job.message,
        "options": shown_options(job.options),
        "profile_source_job_id": profile_source_job_id(job.options),
        "sent_again_from": str(job.sent_again_from) if job.sent_again_from else None,
        "chart_type": job.chart_type,
        "method": job.method,
        "delta_e2000_before": job.delta_e_before,
        "delta_e2000_after": job.delta_e_after,
        "rating": job.rating,
        "warnings": job.warnings or [],
        "candidate": job.candidate,
        "other_charts": job.other_charts or [],
        "report": report_view(job),
        "stage_times": job.stage_times,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "expired_at": job.expired_at.isoformat() if job.expired_at else None,
        "files": {
            name: f"/api/v1/jobs/{job.id}/files/{name}"
            for name, result in RESULT_FILES.items()
            if result in available
        },
    }


def deleted_job_view(job: Job) -> dict[str, Any]:
    """What a batch still says of a job deleted on request: that it was there and is deleted."""
    return {
        "id": str(job.id),
        "batch_id": str(job.batch_id) if job.batch_id else None,
        "filename": None,
        "state": DELETED,
        "progress": PROGRESS[DELETED],
    }


def report_view(job: Job) -> dict[str, Any] | None:
    """The report of a done job: ``pending`` while the reporter works, then ``ready`` or ``failed``
    (with a reason); None before the job is done or when it failed."""
    if job.report_state is None or job.state == "failed":
        return None
    return {"state": job.report_state, "reason": job.report_reason, "message": job.report_message}


def batch_view(batch: Batch, jobs: list[Job]) -> dict[str, Any]:
    """The batch as its ``jobs`` stand; a job deleted on request is counted and listed by its id
    and state alone: nothing of what it was (its name, options, results) is told any more."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    finished = sum(counts.get(state, 0) for state in TERMINAL_STATES)
    return {
        "id": str(batch.id),
        "total": batch.total,
        "finished": finished,
        "states": counts,
        "progress": sum(PROGRESS[job.state] for job in jobs) / max(len(jobs), 1),
        "done": finished == batch.total,
        "reports_pending": sum(1 for job in jobs if job.state == "done" and job.report_state == "pending"),
        "jobs": [deleted_job_view(job) if job.state == DELETED else job_view(job) for job in jobs],
        "archive": f"/api/v1/batches/{batch.id}/archive",
    }


def profile_view(profile: SavedProfile) -> dict[str, Any]:
    return {
        "id": str(profile.id),
        "name": profile.name,
        "method": profile.method,
        "source_job_id": str(profile.source_job_id),
        "created_at": profile.created_at.isoformat() if profile.created_at else None,
        "files": {
            "json": f"/api/v1/profiles/{profile.id}/profile.json",
            **({"cube": f"/api/v1/profiles/{profile.id}/profile.cube"} if profile.cube else {}),
        },
    }
