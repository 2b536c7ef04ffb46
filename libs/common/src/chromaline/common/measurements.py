"""The measurements document: what was measured on a chart, before and after correction.

The corrector stores it as JSON beside the corrected image; the reporter renders it and the
gateway serves it. Like the events, it is a contract shared by services, so it lives here.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MEASUREMENTS_VERSION = 1
OBJECTIVE_LABELS = {"least_squares": "least squares in linear RGB", "delta_e2000": "minimum mean ΔE2000"}
"""What a fit minimised, in words, for people."""


def method_label(method: str, objective: str | None) -> str:
    """The method and, when known, what its fit minimised: ``linear3x3, fitted by least squares
    in linear RGB``."""
    if objective is None:
        return method
    return f"{method}, fitted by {OBJECTIVE_LABELS.get(objective, objective)}"


class Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Summary(Document):
    mean: float
    median: float
    p95: float
    max: float


class DeltaESummaries(Document):
    """ΔE statistics over the patches used for the fit, by formula."""

    cie1976: Summary
    cie1994: Summary
    cie2000: Summary


class PatchResult(Document):
    index: int = Field(ge=0)
    name: str
    reference_lab: tuple[float, float, float] = Field(description="Reference CIE Lab (D50).")
    before_lab: tuple[float, float, float] = Field(description="Measured CIE Lab (D50) before correction.")
    after_lab: tuple[float, float, float] = Field(description="CIE Lab (D50) after correction.")
    before_srgb: tuple[int, int, int] = Field(description="Measured colour, 8-bit sRGB, for display.")
    after_srgb: tuple[int, int, int]
    reference_srgb: tuple[int, int, int]
    delta_e76: tuple[float, float] = Field(description="(before, after)")
    delta_e94: tuple[float, float] = Field(description="(before, after)")
    delta_e2000: tuple[float, float] = Field(description="(before, after)")
    flags: list[str] = []
    used_in_fit: bool
    quad: list[tuple[float, float]] = Field(min_length=4, max_length=4)


WarningCode = Literal[
    "patch_worse_after", "cross_validated_above_limit", "patches_dropped", "small_patches", "profile_mismatch"
]
"""``profile_mismatch``: a saved profile applied to a photo it was not made for (another camera, or
a RAW file's linear RGB against an encoded photo's)."""


class ResultWarning(Document):
    """A reason to doubt a finished correction, for people and for code."""

    code: WarningCode
    message: str


class OtherChart(Document):
    """A chart found in the photo besides the one fitted. The correction is checked on it: none of
    its patches was fitted, so its ΔE2000 after correction is an independent estimate of how the
    photo's other colours fare."""

    chart_type: str
    corners: list[tuple[float, float]] = Field(
        min_length=4, max_length=4, description="Patch grid corners, clockwise from patch 1's."
    )
    confidence: float = Field(ge=0, le=1)
    patches_compared: int = Field(default=0, ge=0, description="Its patches usable for the check.")
    delta_e2000_before: Summary | None = None
    delta_e2000_after: Summary | None = Field(
        default=None, description="ΔE2000 of its patches with the correction fitted to the other chart."
    )


class Measurements(Document):
    version: int = MEASUREMENTS_VERSION
    job_id: uuid.UUID | None = None
    filename: str
    chart_type: str | None
    reference_edition: str | None
    method: str
    objective: str | None = Field(
        default=None,
        description="What the correction's fit minimised: least_squares (in linear RGB) or delta_e2000.",
    )
    corners: list[tuple[float, float]] | None
    image_size: tuple[int, int]
    patches: list[PatchResult]
    before: DeltaESummaries | None
    after: DeltaESummaries | None
    cross_validated_delta_e2000: float | None
    rating_before: str | None
    rating_after: str | None
    rating_guideline: str | None = Field(
        default=None, description="The guideline the ratings are against (e.g. FADGI 2016)."
    )
    timings_ms: dict[str, float] = {}
    warnings: list[ResultWarning] = []
    other_charts: list[OtherChart] = Field(
        default=[], description="Other charts found in the photo, most confident first; checked, not fitted."
    )
