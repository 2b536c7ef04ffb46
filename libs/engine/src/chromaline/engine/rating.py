"""Rating colour accuracy against published imaging guideline tolerances.

Source: Federal Agencies Digital Guidelines Initiative (FADGI), "Technical Guidelines for
Digitizing Cultural Heritage Materials: Creation of Raster Image Files", September 2016
(https://www.digitizationguidelines.gov/), colour accuracy performance levels, expressed as the
mean CIEDE2000 over the target's patches: 4-star ≤ 2, 3-star ≤ 4, 2-star ≤ 5, 1-star ≤ 8.

The 2023 revision keeps the four-star system. The stored copies we could search held the
document's title pages but not its tables, so the limits above are the 2016 document's as we
read them, and they live in this one table to be checked and changed in one place.

A star level only counts if the mean is within its limit; an image worse than every level is
"below 1-star". The rating is about the chart patches only, not the whole photograph.
"""

from __future__ import annotations

from dataclasses import dataclass

from chromaline.engine.metrics import Summary


@dataclass(frozen=True)
class Guideline:
    name: str
    citation: str
    mean_delta_e2000_limits: tuple[tuple[int, float], ...]
    """(stars, largest mean ΔE2000 allowed), best level first."""


FADGI_2016 = Guideline(
    name="FADGI 2016",
    citation="FADGI, Technical Guidelines for Digitizing Cultural Heritage Materials, September 2016",
    mean_delta_e2000_limits=((4, 2.0), (3, 4.0), (2, 5.0), (1, 8.0)),
)


DEFAULT_GUIDELINE = FADGI_2016


@dataclass(frozen=True)
class Rating:
    guideline: str
    stars: int
    """0 when no level is met."""
    mean_delta_e2000: float
    next_level_limit: float | None
    """The mean ΔE2000 needed for one more star; None at the top."""

    @property
    def label(self) -> str:
        return f"{self.stars}-star" if self.stars else "below 1-star"

    def __str__(self) -> str:
        return f"{self.guideline} {self.label}"


def lowest_mean_limit(guideline: Guideline) -> float:
    """The largest mean ΔE2000 that still earns the guideline's lowest level."""
    return max(limit for _, limit in guideline.mean_delta_e2000_limits)


def rate(summary: Summary, guideline: Guideline = FADGI_2016) -> Rating:
    """The best star level whose mean ΔE2000 limit the summary meets."""
    stars = 0
    next_limit: float | None = None
    for level, limit in guideline.mean_delta_e2000_limits:
        if summary.mean <= limit:
            stars = level
            break
        next_limit = limit
    return Rating(guideline.name, stars, summary.mean, next_limit)
