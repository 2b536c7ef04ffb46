"""Colour charts we know: their layout and their reference values.

Reference values come from colour-science's datasets (xyY under the dataset's own illuminant,
D50 for the X-Rite editions) and are adapted to the working space's white with the Bradford
transform; nothing is typed in by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.colour_science import colour

Edition = Literal["2005", "2014"]
WORKING_SPACE = "sRGB"
"""Linear working space of the engine: sRGB primaries, D65 white, linear transfer."""


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    rows: int
    columns: int
    datasets: dict[str, str]
    """colour-science dataset name per reference edition."""

    @property
    def patch_count(self) -> int:
        return self.rows * self.columns


CLASSIC24 = ChartSpec(
    key="classic24",
    title="ColorChecker Classic 24",
    rows=4,
    columns=6,
    datasets={
        "2005": "ColorChecker24 - Before November 2014",
        "2014": "ColorChecker24 - After November 2014",
    },
)
DIGITAL_SG = ChartSpec(
    key="digital_sg",
    title="ColorChecker Digital SG",
    rows=10,
    columns=14,
    datasets={
        "2005": "ColorCheckerSG - Before November 2014",
        "2014": "ColorCheckerSG - After November 2014",
    },
)
CHARTS: dict[str, ChartSpec] = {CLASSIC24.key: CLASSIC24, DIGITAL_SG.key: DIGITAL_SG}


def chart_spec(key: str) -> ChartSpec:
    """The spec of a chart type; ArUco-framed charts carry a Classic 24 inside the frame."""
    base = "classic24" if key == "aruco_classic24" else key
    try:
        return CHARTS[base]
    except KeyError:
        raise ValueError(f"no reference data for chart type {key!r}") from None


@cache
def reference_names(key: str, edition: Edition = "2014") -> tuple[str, ...]:
    spec = chart_spec(key)
    return tuple(colour.CCS_COLOURCHECKERS[spec.datasets[edition]].data.keys())


@cache
def _reference_xyz(key: str, edition: Edition) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    spec = chart_spec(key)
    checker = colour.CCS_COLOURCHECKERS[spec.datasets[edition]]
    xyy = np.array(list(checker.data.values()), dtype=np.float64)
    return np.asarray(colour.xyY_to_XYZ(xyy), dtype=np.float64), np.asarray(
        checker.illuminant, dtype=np.float64
    )


def reference_xyz(key: str, edition: Edition = "2014") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reference XYZ (Y of white = 1) and the xy chromaticity of the illuminant they are given under."""
    xyz, white = _reference_xyz(key, edition)
    return xyz.copy(), white.copy()


def reference_lab(key: str, edition: Edition = "2014") -> NDArray[np.float64]:
    """Reference CIE Lab under the dataset's own illuminant (D50 for the X-Rite editions)."""
    xyz, white = _reference_xyz(key, edition)
    return np.asarray(colour.XYZ_to_Lab(xyz, white), dtype=np.float64)


def reference_linear_rgb(key: str, edition: Edition = "2014") -> NDArray[np.float64]:
    """Reference values as linear RGB in the working space, Bradford-adapted to its white (D65)."""
    return _reference_linear_rgb(key, edition).copy()


@cache
def _reference_linear_rgb(key: str, edition: Edition) -> NDArray[np.float64]:
    """Made once per chart: detection compares every candidate box against these values, and
    colour-science's conversion costs about a millisecond a call."""
    xyz, white = _reference_xyz(key, edition)
    space = colour.RGB_COLOURSPACES[WORKING_SPACE]
    rgb = colour.XYZ_to_RGB(
        xyz, space, illuminant=white, chromatic_adaptation_transform="Bradford", apply_cctf_encoding=False
    )
    return np.asarray(rgb, dtype=np.float64)
