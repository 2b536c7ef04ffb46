"""Charts an organisation defines: a grid layout and reference values from a CGATS.17 file.

The values are taken as the file gives them (Lab, or XYZ with the white's Y at 100) under the
file's illuminant, D50 when it names none (the graphic-arts measurement convention, ISO 13655).
As for the built-in charts (:mod:`chromaline.engine.charts`), the Lab under that illuminant is the
ΔE target and the linear working RGB (sRGB primaries, D65) is the fitting target, reached by
Bradford adaptation from the file's white; every conversion is colour-science's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from chromaline.common.cgats import Illuminant, ReferenceTable
from chromaline.common.events.contracts import CustomChart
from chromaline.engine.charts import WORKING_SPACE
from chromaline.engine.colour_science import colour
from chromaline.engine.geometry import ChartLayout
from chromaline.engine.metrics import CHROMATIC_ADAPTATION, ChartReference

CUSTOM_CHART_TYPE = "custom"
DEFAULT_ILLUMINANT: Illuminant = "D50"
PATCH_UNIT_MM = 10.0
"""A custom layout is given in shares of the patch side; the engine's layouts are in mm, so a
patch is drawn as this many (only the proportions matter)."""


def illuminant_xy(name: Illuminant) -> NDArray[np.float64]:
    """The CIE 1931 2° chromaticity of a named illuminant, from colour-science."""
    return np.asarray(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"][name], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ChartDefinition:
    """A custom chart's layout and its reference values (row-major from patch 0)."""

    name: str
    rows: int
    columns: int
    gap: float
    """Chart body between patches, as a share of the patch side."""
    margin: float
    """Chart body around the grid, as a share of the patch side."""
    sample_ids: tuple[str, ...]
    xyz: NDArray[np.float64]
    """(N, 3) reference XYZ under ``illuminant``, the white's Y at 1."""
    illuminant: Illuminant

    def __post_init__(self) -> None:
        if self.rows * self.columns != len(self.sample_ids) or self.xyz.shape != (len(self.sample_ids), 3):
            raise ValueError(
                f"a {self.rows}×{self.columns} chart needs {self.rows * self.columns} reference values"
            )

    @classmethod
    def from_table(
        cls, table: ReferenceTable, *, name: str, rows: int, columns: int, gap: float, margin: float
    ) -> ChartDefinition:
        illuminant = table.illuminant or DEFAULT_ILLUMINANT
        values = np.asarray(table.values, dtype=np.float64).reshape(-1, 3)
        if table.colour_space == "LAB":
            xyz = np.asarray(colour.Lab_to_XYZ(values, illuminant_xy(illuminant)), dtype=np.float64)
        else:
            xyz = values / 100.0
        return cls(name, rows, columns, gap, margin, table.sample_ids, xyz.reshape(-1, 3), illuminant)

    @classmethod
    def from_contract(cls, chart: CustomChart) -> ChartDefinition:
        table = ReferenceTable(
            colour_space=chart.colour_space,
            illuminant=chart.illuminant,
            sample_ids=tuple(chart.sample_ids),
            values=tuple(chart.values),
        )
        return cls.from_table(
            table, name=chart.name, rows=chart.rows, columns=chart.columns, gap=chart.gap, margin=chart.margin
        )

    @property
    def patch_count(self) -> int:
        return self.rows * self.columns

    @cached_property
    def white_xy(self) -> NDArray[np.float64]:
        return illuminant_xy(self.illuminant)

    @cached_property
    def layout(self) -> ChartLayout:
        grid_width = self.columns * (1 + self.gap) - self.gap
        grid_height = self.rows * (1 + self.gap) - self.gap
        outer = (
            (grid_width + 2 * self.margin) * PATCH_UNIT_MM,
            (grid_height + 2 * self.margin) * PATCH_UNIT_MM,
        )
        return ChartLayout(
            CUSTOM_CHART_TYPE,
            self.rows,
            self.columns,
            patch_mm=PATCH_UNIT_MM,
            gap_mm=self.gap * PATCH_UNIT_MM,
            outer_mm=outer,
        )

    @cached_property
    def reference(self) -> ChartReference:
        """Lab under the file's white (ΔE target) and Bradford-adapted linear working RGB (fit target)."""
        rgb = colour.XYZ_to_RGB(
            self.xyz,
            colour.RGB_COLOURSPACES[WORKING_SPACE],
            illuminant=self.white_xy,
            chromatic_adaptation_transform=CHROMATIC_ADAPTATION,
            apply_cctf_encoding=False,
        )
        reference = ChartReference(
            chart_type=CUSTOM_CHART_TYPE,
            edition="2014",
            names=self.sample_ids,
            rgb=np.asarray(rgb, dtype=np.float64),
            lab=np.asarray(colour.XYZ_to_Lab(self.xyz, self.white_xy), dtype=np.float64),
            white_xy=self.white_xy,
        )
        for array in (reference.rgb, reference.lab, reference.white_xy):
            array.flags.writeable = False
        return reference
