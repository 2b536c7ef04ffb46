"""Rating colour accuracy against published imaging guideline tolerances.

Each guideline is a table of levels, best first; a level counts when every limit it sets is met
(the mean CIEDE2000 over the chart's patches, and for some the largest). An image worse than every
level is "below" the lowest. The rating is about the chart patches only, not the whole photograph.

Sources, beside each table:

- FADGI 2016: Federal Agencies Digital Guidelines Initiative, "Technical Guidelines for Digitizing
  Cultural Heritage Materials: Creation of Raster Image Files", September 2016
  (https://www.digitizationguidelines.gov/), colour accuracy as mean CIEDE2000: 4-star ≤ 2,
  3-star ≤ 4, 2-star ≤ 5, 1-star ≤ 8.
- Metamorfoze 2.0: Metamorfoze Preservation Imaging Guidelines version 2.0, draft of June 2023, as
  published by their author at https://preservationimaging.com/version-2/ ("Color accuracy, ∆E*,
  is measured with formula CIE2000 SL=1"): Full mean ≤ 3 and max ≤ 7; Light mean ≤ 4 and max ≤ 14.
  That page gives no colour-accuracy figures for Extra Light, so that level is not rated.

Not included, for want of a primary source we could read: FADGI's 2023 (third) edition, with its
mean and 90th-percentile ΔE2000 per star, and ISO 19264-1 levels A/B/C (the standard is sold by
ISO; only secondary tables were found). Their numbers are not taken from secondary copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from chromaline.engine.metrics import Summary


@dataclass(frozen=True)
class Level:
    label: str
    rank: int
    """Higher is better; 0 is reserved for "below every level"."""
    mean_limit: float
    """Largest mean ΔE2000 allowed."""
    max_limit: float | None = None
    """Largest single-patch ΔE2000 allowed, when the guideline sets one."""

    def met_by(self, summary: Summary) -> bool:
        return summary.mean <= self.mean_limit and (self.max_limit is None or summary.max <= self.max_limit)


@dataclass(frozen=True)
class Guideline:
    key: str
    name: str
    citation: str
    levels: tuple[Level, ...]
    """Best level first."""
    below_label: str


FADGI_2016 = Guideline(
    key="fadgi2016",
    name="FADGI 2016",
    citation="FADGI, Technical Guidelines for Digitizing Cultural Heritage Materials, September 2016",
    levels=(
        Level("4-star", 4, 2.0),
        Level("3-star", 3, 4.0),
        Level("2-star", 2, 5.0),
        Level("1-star", 1, 8.0),
    ),
    below_label="below 1-star",
)
METAMORFOZE_2 = Guideline(
    key="metamorfoze2",
    name="Metamorfoze 2.0",
    citation="Metamorfoze Preservation Imaging Guidelines 2.0, draft June 2023, preservationimaging.com/version-2/",
    levels=(Level("Full", 2, 3.0, 7.0), Level("Light", 1, 4.0, 14.0)),
    below_label="below Light",
)
GUIDELINES: dict[str, Guideline] = {guideline.key: guideline for guideline in (FADGI_2016, METAMORFOZE_2)}
DEFAULT_GUIDELINE = FADGI_2016


@dataclass(frozen=True)
class Rating:
    guideline: str
    stars: int
    """The level's rank (FADGI: its stars); 0 when no level is met."""
    mean_delta_e2000: float
    next_level_limit: float | None
    """The mean ΔE2000 needed for the next level up; None at the top."""
    label: str

    def __str__(self) -> str:
        return f"{self.guideline} {self.label}"


def guideline_named(key: str) -> Guideline:
    try:
        return GUIDELINES[key]
    except KeyError:
        raise ValueError(f"unknown rating guideline {key!r}; known: {', '.join(GUIDELINES)}") from None


def lowest_mean_limit(guideline: Guideline) -> float:
    """The largest mean ΔE2000 that still earns the guideline's lowest level."""
    return max(level.mean_limit for level in guideline.levels)


def rate(summary: Summary, guideline: Guideline = DEFAULT_GUIDELINE) -> Rating:
    """The best level whose limits the summary meets."""
    next_limit: float | None = None
    for level in guideline.levels:
        if level.met_by(summary):
            return Rating(guideline.name, level.rank, summary.mean, next_limit, level.label)
        next_limit = level.mean_limit
    return Rating(guideline.name, 0, summary.mean, next_limit, guideline.below_label)
