"""CGATS.17 text for tests: a chart's reference values written as a chart maker publishes them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def made_up_lab(count: int) -> list[tuple[float, float, float]]:
    """``count`` distinct Lab values well inside sRGB: a lightness ramp turning round the hue circle
    at chroma 20, as a made-up chart of that many patches might have."""
    values = []
    for index in range(count):
        hue = math.radians(index * 137.5)
        values.append((35.0 + 50.0 * index / max(count - 1, 1), 20.0 * math.cos(hue), 20.0 * math.sin(hue)))
    return values


def cgats_text(
    values: Sequence[Sequence[float]], *, fields: str = "LAB_L LAB_A LAB_B", illuminant: str | None = "D50"
) -> str:
    """A CGATS.17 file with one row per value (sample ids ``P1``, ``P2``, …)."""
    header = f'ILLUMINANT "{illuminant}"\n' if illuminant else ""
    data = "".join(
        f"P{index}\t{first:.4f}\t{second:.4f}\t{third:.4f}\n"
        for index, (first, second, third) in enumerate(values, start=1)
    )
    return (
        f'CGATS.17\nORIGINATOR "Chromaline tests"\n{header}NUMBER_OF_FIELDS 4\nBEGIN_DATA_FORMAT\n'
        f"SAMPLE_ID {fields}\nEND_DATA_FORMAT\nNUMBER_OF_SETS {len(values)}\nBEGIN_DATA\n{data}END_DATA\n"
    )
