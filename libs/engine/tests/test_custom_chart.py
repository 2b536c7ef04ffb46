"""Custom charts: reference values checked against colour-science, found by their layout, fitted."""

from __future__ import annotations

import numpy as np
import pytest

from chromaline.common.cgats import parse_cgats
from chromaline.engine.charts import reference_lab, reference_linear_rgb, reference_xyz
from chromaline.engine.colour_science import colour
from chromaline.engine.correct import EngineError, correct_photo
from chromaline.engine.custom_chart import ChartDefinition, illuminant_xy
from chromaline.engine.custom_detect import custom_detection_from_corners, detect_custom_chart
from chromaline.engine.custom_render import render_custom_chart
from chromaline.engine.detect import NotAChartError
from chromaline.engine.image_io import decode_image

D65 = "CIE 1931 2 Degree Standard Observer"


def cgats(fields: str, rows: list[tuple[str, float, float, float]], header: str = "") -> str:
    data = "".join(f"{sample_id}\t{a:.6f}\t{b:.6f}\t{c:.6f}\n" for sample_id, a, b, c in rows)
    return (
        f'CGATS.17\nORIGINATOR "test"\n{header}NUMBER_OF_FIELDS 4\nBEGIN_DATA_FORMAT\nSAMPLE_ID {fields}\n'
        f"END_DATA_FORMAT\nNUMBER_OF_SETS {len(rows)}\nBEGIN_DATA\n{data}END_DATA\n"
    )


def definition(text: str, rows: int = 4, columns: int = 6, gap: float = 0.1) -> ChartDefinition:
    return ChartDefinition.from_table(
        parse_cgats(text), name="studio", rows=rows, columns=columns, gap=gap, margin=0.4
    )


def classic24_as_lab_d50() -> str:
    lab = reference_lab("classic24")
    return cgats(
        "LAB_L LAB_A LAB_B", [(f"A{i + 1}", *row) for i, row in enumerate(lab)], 'ILLUMINANT "D50"\n'
    )


def test_lab_d50_file_of_the_classic24_gives_the_builtin_reference() -> None:
    reference = definition(classic24_as_lab_d50()).reference
    # The dataset's D50 is the ICC's rounded (0.3457, 0.3585), the file's the CIE's: 1e-4 apart.
    np.testing.assert_allclose(reference.rgb, reference_linear_rgb("classic24"), atol=1e-4)
    np.testing.assert_allclose(reference.lab, reference_lab("classic24"), atol=1e-5)
    np.testing.assert_allclose(reference.white_xy, reference_xyz("classic24")[1], atol=1e-4)


def test_xyz_under_d65_is_adapted_with_bradford_to_the_same_working_rgb() -> None:
    xyz_d50, white_d50 = reference_xyz("classic24")
    white_d65 = colour.CCS_ILLUMINANTS[D65]["D65"]
    xyz_d65 = colour.chromatic_adaptation(
        xyz_d50,
        colour.xy_to_XYZ(white_d50),
        colour.xy_to_XYZ(white_d65),
        method="Von Kries",
        transform="Bradford",
    )
    text = cgats(
        "XYZ_X XYZ_Y XYZ_Z",
        [(f"A{i + 1}", *(100 * row)) for i, row in enumerate(xyz_d65)],
        "ILLUMINANT D65\n",
    )
    reference = definition(text).reference
    np.testing.assert_allclose(reference.white_xy, white_d65)
    np.testing.assert_allclose(reference.lab, colour.XYZ_to_Lab(xyz_d65, white_d65), atol=1e-5)
    np.testing.assert_allclose(reference.rgb, reference_linear_rgb("classic24"), atol=1e-4)


def test_a_file_without_illuminant_is_read_under_d50() -> None:
    text = cgats("LAB_L LAB_A LAB_B", [(f"p{i}", 50.0 + i, 0.0, 0.0) for i in range(6)])
    chart = definition(text, rows=2, columns=3)
    assert chart.illuminant == "D50"
    np.testing.assert_allclose(chart.white_xy, illuminant_xy("D50"))
    neutral = chart.reference.rgb
    np.testing.assert_allclose(
        neutral[:, 0], neutral[:, 2], rtol=1e-3
    )  # D50 neutrals stay neutral in D65 RGB


def test_mismatched_patch_count_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 30 reference values"):
        definition(classic24_as_lab_d50(), rows=5, columns=6)


def random_chart(
    rows: int = 5, columns: int = 7, seed: int = 3, body_dark: tuple[int, ...] = ()
) -> ChartDefinition:
    """Random colours from L* 15 up; the patches ``body_dark`` are a neutral as dark as the body."""
    rng = np.random.default_rng(seed)
    count = rows * columns
    lab = np.column_stack(
        [rng.uniform(15, 95, count), rng.uniform(-55, 55, count), rng.uniform(-55, 55, count)]
    )
    lab[list(body_dark)] = (12.0, 0.0, 0.0)
    text = cgats(
        "LAB_L LAB_A LAB_B", [(f"P{i}", *row) for i, row in enumerate(lab)], 'DESCRIPTOR "studio D50"\n'
    )
    return definition(text, rows, columns, gap=0.2)


@pytest.mark.parametrize("upside_down", [False, True])
def test_rendered_custom_chart_is_found_and_corrected(upside_down: bool) -> None:
    chart = random_chart()
    photo = render_custom_chart(chart, seed=1, upside_down=upside_down)
    outcome = detect_custom_chart(decode_image(photo.image_bytes), chart)
    detection = outcome.detections[0]
    assert detection.orientation_degrees == (180 if upside_down else 0)
    patch_px = float(np.linalg.norm(photo.corners[1] - photo.corners[0])) / (chart.columns * 1.2)
    assert float(np.linalg.norm(detection.corners - photo.corners, axis=1).max()) < 0.1 * patch_px
    assert detection.confidence >= 0.9
    result = correct_photo(photo.image_bytes, chart=chart)
    assert result.report is not None
    before = result.report.before["CIE 2000"].mean
    after = result.report.after["CIE 2000"].mean
    assert before > 5.0
    assert after < 1.5
    assert result.profile.chart_type == "custom"
    assert result.measurement is not None
    assert [patch.name for patch in result.measurement.patches][:2] == ["P0", "P1"]


@pytest.mark.parametrize(("seed", "body_dark"), [(0, ()), (3, (8,)), (4, (17,)), (6, (3,)), (1, (0, 34))])
def test_a_chart_with_dark_patches_is_found(seed: int, body_dark: tuple[int, ...]) -> None:
    """Dark patches merged their neighbours into one region, so charts with a few of them (or one
    neutral as dark as the body) were not found at all: ``no_chart``."""
    chart = random_chart(seed=seed, body_dark=body_dark)
    photo = render_custom_chart(chart, seed=seed)

    outcome = detect_custom_chart(decode_image(photo.image_bytes), chart)

    assert outcome.detections, outcome.message
    patch_px = float(np.linalg.norm(photo.corners[1] - photo.corners[0])) / (chart.columns * 1.2)
    assert float(np.linalg.norm(outcome.detections[0].corners - photo.corners, axis=1).max()) < 0.1 * patch_px


def test_a_photo_of_another_layout_has_no_custom_chart() -> None:
    chart = random_chart()
    other = render_custom_chart(random_chart(rows=3, columns=3, seed=9), seed=2)
    with pytest.raises(EngineError) as caught:
        correct_photo(other.image_bytes, chart=chart)
    assert caught.value.code in {"no_chart", "low_confidence"}


def test_corners_by_hand_are_checked_against_the_values() -> None:
    chart = random_chart()
    photo = render_custom_chart(chart, seed=4, upside_down=True)
    image = decode_image(photo.image_bytes)
    given = np.roll(photo.corners, 2, axis=0)  # the right box, named from the wrong corner
    detection = custom_detection_from_corners(image, chart, given)
    np.testing.assert_allclose(detection.corners, photo.corners)
    with pytest.raises(NotAChartError):
        custom_detection_from_corners(
            image, chart, [(10.0, 10.0), (300.0, 10.0), (300.0, 200.0), (10.0, 200.0)]
        )
