"""A card in the Classic 24's layout carrying another chart's colours is told apart by its hues.

The other colours are the Preferred Memory Colour chart's (Luo, M. R. (2024), "The new preferred
memory color (PMC) chart", as published in colour-science's ``SDS_COLOURCHECKERS["PMC"]``): its
first 18 coloured patches in the Classic's colour rows, its six greys (white to black) in the grey
row, so only the hues differ from a Classic 24 in the same place.
"""

from __future__ import annotations

import colour
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from chromaline.engine.charts import reference_linear_rgb
from chromaline.engine.detect import MIN_HUE_ORDER, detect_charts, hue_order_score
from chromaline.engine.geometry import patch_quads
from chromaline.engine.synthetic import render_scene

pytestmark = pytest.mark.filterwarnings("ignore:Trimming:colour.utilities.ColourRuntimeWarning")
PMC_COLOURED = 18
PMC_GREYS = slice(24, 30)


def _pmc_linear_srgb() -> NDArray[np.float64]:
    """(24, 3) linear sRGB of the PMC patches placed on the card, under D65."""
    spectra = colour.SDS_COLOURCHECKERS["PMC"]
    names = list(spectra)
    chosen = names[:PMC_COLOURED] + names[PMC_GREYS]
    d65 = colour.SDS_ILLUMINANTS["D65"]
    xyz = np.array([colour.sd_to_XYZ(spectra[name], illuminant=d65) / 100 for name in chosen])
    return np.clip(colour.XYZ_to_RGB(xyz, "sRGB", apply_cctf_encoding=False), 0.0, 1.0)


def _card_photo(patch_linear: NDArray[np.float64]) -> NDArray[np.uint8]:
    """A rendered Classic 24 scene whose patches are painted over with ``patch_linear`` colours."""
    scene = render_scene(3, rotation=0, tilt_degrees=3, chart_scale=0.5, size=(1600, 1200), blur_sigma=0)
    pixels = scene.pixels.copy()
    for quad, linear in zip(patch_quads("classic24", scene.corners, margin=0.0), patch_linear, strict=True):
        code = np.round(np.asarray(colour.cctf_encoding(0.85 * linear)) * 255)
        cv2.fillConvexPoly(pixels, np.round(quad).astype(np.int32), [int(c) for c in code])
    return pixels


def test_the_classic_reference_keeps_its_hue_order_through_a_gain_and_a_white_balance_error() -> None:
    reference = reference_linear_rgb("classic24")
    assert hue_order_score(reference, reference) == 1.0
    assert hue_order_score(reference * np.array([0.5, 0.7, 0.9]), reference) == 1.0


def test_another_charts_colours_score_below_the_threshold() -> None:
    assert hue_order_score(_pmc_linear_srgb(), reference_linear_rgb("classic24")) < MIN_HUE_ORDER


def test_a_card_of_other_colours_is_an_unknown_chart_not_a_classic_24() -> None:
    outcome = detect_charts(_card_photo(_pmc_linear_srgb()))
    assert outcome.detections == []
    assert outcome.reason == "unknown_chart"


def test_the_same_card_painted_with_the_classic_colours_is_found() -> None:
    outcome = detect_charts(_card_photo(reference_linear_rgb("classic24")))
    assert [d.chart_type for d in outcome.detections] == ["classic24"]
