from __future__ import annotations

import colour
import numpy as np
import pytest

from chromaline.engine.metrics import ChartReference, Summary, compare, delta_e, working_rgb_to_lab
from chromaline.engine.rating import FADGI_2016, METAMORFOZE_2, rate

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Color Res. Appl. 30(1), Table 1:
# (L1, a1, b1, L2, a2, b2, ΔE00) for pairs 1, 2, 3, 7, 8, 17, 18, 25, 26 and 34.
SHARMA_PAIRS = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_delta_e2000_matches_sharma_table() -> None:
    table = np.array(SHARMA_PAIRS)
    np.testing.assert_allclose(delta_e(table[:, 0:3], table[:, 3:6], "CIE 2000"), table[:, 6], atol=5e-5)


def test_delta_e1976_is_euclidean_distance_in_lab() -> None:
    table = np.array(SHARMA_PAIRS)
    expected = np.linalg.norm(table[:, 0:3] - table[:, 3:6], axis=1)
    np.testing.assert_allclose(delta_e(table[:, 0:3], table[:, 3:6], "CIE 1976"), expected, rtol=1e-12)


def test_reference_round_trips_through_the_working_space() -> None:
    reference = ChartReference.for_chart("classic24", "2014")
    lab = working_rgb_to_lab(reference.rgb, reference.white_xy)
    assert delta_e(reference.lab, lab).max() < 0.01


def test_working_lab_is_d50_lab_after_bradford_adaptation() -> None:
    rgb = np.array([[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]])
    d50 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D50"]
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    xyz_d65 = colour.RGB_to_XYZ(rgb, "sRGB", apply_cctf_decoding=False, chromatic_adaptation_transform=None)
    xyz_d50 = colour.chromatic_adaptation(
        xyz_d65, colour.xy_to_XYZ(d65), colour.xy_to_XYZ(d50), method="Von Kries", transform="Bradford"
    )
    expected = colour.XYZ_to_Lab(xyz_d50, d50)
    np.testing.assert_allclose(working_rgb_to_lab(rgb, d50), expected, atol=1e-6)
    # Working white lands on the D50 neutral axis (to the rounding of the published chromaticities).
    np.testing.assert_allclose(working_rgb_to_lab(rgb, d50)[1], [100.0, 0.0, 0.0], atol=0.02)


def test_compare_reports_each_formula_before_and_after() -> None:
    reference = ChartReference.for_chart("classic24", "2014")
    rng = np.random.default_rng(0)
    before = reference.rgb * np.array([1.1, 1.0, 0.8])
    after = np.clip(reference.rgb + rng.normal(0, 0.003, reference.rgb.shape), 0, None)
    used = np.ones(reference.patch_count, dtype=bool)
    used[5] = False
    report = compare(before, after, reference, used)
    lab_before = working_rgb_to_lab(before, reference.white_xy)
    for method in ("CIE 1976", "CIE 1994", "CIE 2000"):
        expected = colour.delta_E(reference.lab, lab_before, method=method)
        assert report.patches[5].before[method] == pytest.approx(expected[5])
        assert report.before[method].mean == pytest.approx(np.mean(np.delete(expected, 5)))
        assert report.after[method].mean < report.before[method].mean
    assert not report.patches[5].used
    assert report.patches[0].name == reference.names[0]


def test_summary_statistics() -> None:
    values = np.arange(1.0, 101.0)
    summary = Summary.of(values)
    assert (summary.mean, summary.median, summary.max) == (50.5, 50.5, 100.0)
    assert summary.p95 == pytest.approx(95.05)
    with pytest.raises(ValueError, match="empty"):
        Summary.of(np.array([]))


@pytest.mark.parametrize(
    ("mean", "stars", "next_limit"),
    [(0.5, 4, None), (2.0, 4, None), (2.01, 3, 2.0), (4.5, 2, 4.0), (7.9, 1, 5.0), (8.5, 0, 8.0)],
)
def test_fadgi_rating_levels(mean: float, stars: int, next_limit: float | None) -> None:
    rating = rate(Summary(mean=mean, median=mean, p95=mean, max=mean), FADGI_2016)
    assert rating.stars == stars
    assert rating.next_level_limit == next_limit
    assert str(rating).startswith("FADGI 2016")


@pytest.mark.parametrize(
    ("mean", "largest", "label"),
    [
        (2.5, 6.0, "Full"),
        (2.5, 8.0, "Light"),
        (3.5, 6.0, "Light"),
        (3.5, 15.0, "below Light"),
        (4.5, 5.0, "below Light"),
    ],
)
def test_metamorfoze_levels_need_both_the_mean_and_the_largest_within_limits(
    mean: float, largest: float, label: str
) -> None:
    rating = rate(Summary(mean=mean, median=mean, p95=largest, max=largest), METAMORFOZE_2)
    assert rating.label == label
    assert str(rating) == f"Metamorfoze 2.0 {label}"
