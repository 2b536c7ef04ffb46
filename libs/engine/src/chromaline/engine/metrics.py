"""Colour differences between measured patches and a chart's reference.

Comparison space: chart references are published as CIE Lab under D50 (the X-Rite datasets in
colour-science), so measured values are compared there too. Linear working RGB (sRGB primaries,
D65) is converted to XYZ, Bradford-adapted to the reference illuminant and converted to Lab with
that illuminant as the white. The reference Lab is used as published, never re-adapted, so a
reference patch pushed through the working space and back gives ΔE ≈ 0.

ΔE itself always comes from ``colour.delta_E``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.charts import (
    WORKING_SPACE,
    Edition,
    reference_lab,
    reference_linear_rgb,
    reference_names,
    reference_xyz,
)
from chromaline.engine.colour_science import colour

DeltaEMethod = Literal["CIE 1976", "CIE 1994", "CIE 2000"]
DELTA_E_METHODS: tuple[DeltaEMethod, ...] = ("CIE 1976", "CIE 1994", "CIE 2000")
CHROMATIC_ADAPTATION = "Bradford"

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ChartReference:
    """A chart's reference values in the two forms the engine needs.

    ``rgb`` is linear working RGB (the least-squares target); ``lab`` is Lab under the white
    ``white_xy`` (the ΔE target).
    """

    chart_type: str
    edition: Edition
    names: tuple[str, ...]
    rgb: FloatArray
    lab: FloatArray
    white_xy: FloatArray

    @classmethod
    def for_chart(cls, chart_type: str, edition: Edition = "2014") -> ChartReference:
        """The chart's reference, built once per chart and edition (its arrays are read-only)."""
        return _chart_reference(chart_type, edition)

    @property
    def patch_count(self) -> int:
        return len(self.names)

    def subset(self, mask: NDArray[np.bool_]) -> ChartReference:
        return ChartReference(
            chart_type=self.chart_type,
            edition=self.edition,
            names=tuple(name for name, keep in zip(self.names, mask, strict=True) if keep),
            rgb=self.rgb[mask],
            lab=self.lab[mask],
            white_xy=self.white_xy,
        )


@cache
def _chart_reference(chart_type: str, edition: Edition) -> ChartReference:
    _, white = reference_xyz(chart_type, edition)
    reference = ChartReference(
        chart_type=chart_type,
        edition=edition,
        names=reference_names(chart_type, edition),
        rgb=reference_linear_rgb(chart_type, edition),
        lab=reference_lab(chart_type, edition),
        white_xy=white,
    )
    for array in (reference.rgb, reference.lab, reference.white_xy):
        array.flags.writeable = False
    return reference


@lru_cache(maxsize=16)
def working_to_xyz_matrix(white_xy: tuple[float, float]) -> FloatArray:
    """The 3×3 matrix taking linear working RGB to XYZ Bradford-adapted to ``white_xy``, as
    colour-science's ``RGB_to_XYZ`` computes it (the conversion is linear); read-only."""
    columns = colour.RGB_to_XYZ(
        np.eye(3),
        colour.RGB_COLOURSPACES[WORKING_SPACE],
        illuminant=np.asarray(white_xy),
        chromatic_adaptation_transform=CHROMATIC_ADAPTATION,
        apply_cctf_decoding=False,
    )
    matrix: FloatArray = np.ascontiguousarray(np.asarray(columns, dtype=np.float64).T)
    matrix.flags.writeable = False
    return matrix


def working_rgb_to_lab(rgb: NDArray[np.floating], white_xy: FloatArray) -> FloatArray:
    """Linear working RGB → Lab relative to ``white_xy`` (Bradford adaptation from D65)."""
    white = (float(white_xy[0]), float(white_xy[1]))
    xyz = np.asarray(rgb, dtype=np.float64) @ working_to_xyz_matrix(white).T
    return np.asarray(colour.XYZ_to_Lab(xyz, white_xy), dtype=np.float64)


def delta_e(lab_reference: FloatArray, lab_test: FloatArray, method: DeltaEMethod = "CIE 2000") -> FloatArray:
    """Per-row colour difference; CIE 1994 uses graphic-arts weights with the reference first."""
    return np.atleast_1d(np.asarray(colour.delta_E(lab_reference, lab_test, method=method), dtype=np.float64))


@dataclass(frozen=True)
class Summary:
    mean: float
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: NDArray[np.floating]) -> Summary:
        if values.size == 0:
            raise ValueError("cannot summarise an empty set of colour differences")
        return cls(
            mean=float(np.mean(values)),
            median=float(np.median(values)),
            p95=float(np.percentile(values, 95)),
            max=float(np.max(values)),
        )


@dataclass(frozen=True)
class PatchDeltaE:
    index: int
    name: str
    used: bool
    """False when the patch was excluded from the fit (flagged by the detector)."""
    before: dict[DeltaEMethod, float]
    after: dict[DeltaEMethod, float]


@dataclass(frozen=True)
class DeltaEReport:
    patches: list[PatchDeltaE]
    before: dict[DeltaEMethod, Summary]
    after: dict[DeltaEMethod, Summary]
    """Summaries over the patches used for the fit."""


def patch_delta_e(
    measured_rgb: NDArray[np.floating], reference: ChartReference
) -> dict[DeltaEMethod, FloatArray]:
    lab = working_rgb_to_lab(measured_rgb, reference.white_xy)
    return {method: delta_e(reference.lab, lab, method) for method in DELTA_E_METHODS}


def compare(
    before_rgb: NDArray[np.floating],
    after_rgb: NDArray[np.floating],
    reference: ChartReference,
    used: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> DeltaEReport:
    """ΔE 1976/1994/2000 per patch before and after correction, summarised over the used patches."""
    used_mask = np.ones(reference.patch_count, dtype=bool) if used is None else np.asarray(used, dtype=bool)
    if not used_mask.any():
        raise ValueError("no patch left to compare")
    # One conversion and one ΔE call per method for both sets: colour-science's per-call overhead
    # outweighs the arithmetic on a chart's few dozen rows.
    lab = working_rgb_to_lab(np.concatenate([before_rgb, after_rgb]), reference.white_xy)
    reference_lab = np.concatenate([reference.lab, reference.lab])
    differences = {method: delta_e(reference_lab, lab, method) for method in DELTA_E_METHODS}
    count = reference.patch_count
    before = {method: values[:count] for method, values in differences.items()}
    after = {method: values[count:] for method, values in differences.items()}
    patches = [
        PatchDeltaE(
            index=i,
            name=reference.names[i],
            used=bool(used_mask[i]),
            before={m: float(before[m][i]) for m in DELTA_E_METHODS},
            after={m: float(after[m][i]) for m in DELTA_E_METHODS},
        )
        for i in range(reference.patch_count)
    ]
    return DeltaEReport(
        patches=patches,
        before={m: Summary.of(before[m][used_mask]) for m in DELTA_E_METHODS},
        after={m: Summary.of(after[m][used_mask]) for m in DELTA_E_METHODS},
    )
