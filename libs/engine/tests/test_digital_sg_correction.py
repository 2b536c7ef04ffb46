"""A photo of a ColorChecker Digital SG corrects well end to end: found by its patch lattice,
sampled, fitted and applied by the corrector's engine."""

from __future__ import annotations

import pytest

from chromaline.engine.correct import correct_photo
from chromaline.engine.synthetic import render_scene

AFTER_BOUND = 2.5
"""Mean ΔE2000 after correction. The rendered cameras other than the ideal one do not see colour
as the standard observer does (their sensitivities are not a mix of the colour-matching functions),
so no per-pixel correction maps every one of the 140 patches exactly: on rendered scenes the
residual is 0.5 to 1.5. The bound leaves room for noise and JPEG losses while staying well under
the uncorrected 2.3 to 7."""


@pytest.mark.parametrize(
    ("camera", "illuminant"),
    [("Nikon 5100 (NPL)", "A"), ("Sigma SDMerill (NPL)", "FL2"), ("ideal", "LED-B3")],
)
def test_digital_sg_photo_corrects_to_a_small_error(camera: str, illuminant: str) -> None:
    scene = render_scene(41, chart="digital_sg", size=(2000, 1500), camera=camera, illuminant=illuminant)
    result = correct_photo(scene.image_bytes, chart_type="digital_sg")
    assert result.measurement is not None
    assert result.measurement.detection.chart_type == "digital_sg"
    assert result.report is not None
    after = result.report.after["CIE 2000"].mean
    assert after <= AFTER_BOUND
    assert after < result.report.before["CIE 2000"].mean
