from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from chromaline.engine.correct import correct_photo
from chromaline.engine.fit import Correction
from chromaline.engine.image_io import decode_image, srgb_decode, srgb_encode
from chromaline.engine.lut import Cube, CubeFormatError, cube_text
from chromaline.engine.profile import (
    FitStatistics,
    Profile,
    ProfileError,
    dump_profile,
    load_profile,
    matrix_export,
    to_cube,
)
from chromaline.engine.synthetic import render_scene

MATRIX = np.array([[1.1, -0.07, -0.03], [-0.05, 1.08, -0.03], [0.02, -0.1, 1.08]])


def _profile(correction: Correction) -> Profile:
    return Profile.from_correction(
        correction,
        chart_type="classic24",
        reference_edition="2014",
        reference_white_xy=(0.3457, 0.3585),
        statistics=FitStatistics(training_delta_e2000=0.8, cross_validated_delta_e2000=1.1, patch_count=24),
        source_filename="IMG_0001.JPG",
    )


def test_profile_json_round_trip() -> None:
    profile = _profile(Correction("root_polynomial", np.arange(18.0).reshape(3, 6) / 10, degree=2))
    restored = load_profile(dump_profile(profile))
    assert restored == profile
    np.testing.assert_array_equal(restored.correction().coefficients, profile.correction().coefficients)
    assert restored.correction().spec == profile.correction().spec


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json at all", "must be JSON"),
        ("[1, 2, 3]", "not a Chromaline profile"),
        ('{"method": "linear3x3"}', "not a Chromaline profile"),
        ('{"version": 2}', "version 2 is not supported"),
        (b"\xff\xfe\x00garbage", "must be JSON"),
        ("[" * 100_000, "nested"),  # raised RecursionError, not a refusal
    ],
)
def test_load_refuses_garbage(document: str | bytes, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as raised:
        load_profile(document)
    assert raised.value.code == "invalid_profile"


def _valid_document() -> dict[str, object]:
    return dict(json.loads(dump_profile(_profile(Correction("linear3x3", MATRIX)))))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"coefficients": [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]}, "3 rows of 3"),
        ({"method": "sharpen"}, "method"),
        ({"degree": 5}, "degree"),
        ({"unexpected": True}, "unexpected"),
        ({"statistics": {"training_delta_e2000": -1, "patch_count": 24}}, "training_delta_e2000"),
        # finite, but the photo and its ΔE came out as NaN
        ({"coefficients": [[1e308, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}, "within"),
    ],
)
def test_load_refuses_invalid_fields(change: dict[str, object], message: str) -> None:
    document = _valid_document() | change
    with pytest.raises(ProfileError, match=message):
        load_profile(json.dumps(document))


def test_load_refuses_non_finite_coefficients() -> None:
    text = json.dumps(_valid_document()).replace("1.1,", "NaN,", 1)
    with pytest.raises(ProfileError, match="finite"):
        load_profile(text)


def test_identity_profile_gives_identity_cube() -> None:
    cube = Cube.parse(to_cube(_profile(Correction.identity()), size=9))
    axis = np.linspace(0, 1, 9)
    blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
    np.testing.assert_allclose(cube.table, np.stack([red, green, blue], axis=-1), atol=2e-6)
    assert cube.size == 9
    assert "linear3x3" in cube.title


def test_cube_lists_red_fastest() -> None:
    lines = to_cube(_profile(Correction.identity()), size=2).splitlines()
    body = [line for line in lines if line[0].isdigit()]
    assert body[:4] == [
        "0.000000 0.000000 0.000000",
        "1.000000 0.000000 0.000000",
        "0.000000 1.000000 0.000000",
        "1.000000 1.000000 0.000000",
    ]
    assert "LUT_3D_SIZE 2" in lines


def test_cube_rows_read_as_python_formats_them() -> None:
    """The rows are written as digit arrays; they must say what ``"%.6f"`` says of each value,
    rounding up into the units (0.9999996) and down to zero (4e-7) included."""
    values = np.concatenate(
        [
            np.random.default_rng(2).uniform(0.0, 1.0, (4 * 4 * 4 - 2, 3)),
            [[0.0, 1.0, 0.9999996], [4e-7, 0.5, 0.1234564]],
        ]
    )
    body = cube_text(lambda lattice: values, size=4, title="t").split("\n", 4)[4]
    assert body == "".join(f"{r:.6f} {g:.6f} {b:.6f}\n" for r, g, b in values)


def test_channel_swap_survives_the_cube_exactly() -> None:
    swap = Correction("linear3x3", np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    cube = Cube.parse(to_cube(_profile(swap), size=5))
    samples = np.random.default_rng(0).uniform(0, 1, (200, 3))
    np.testing.assert_allclose(cube.evaluate(samples), samples[:, [2, 0, 1]], atol=1e-5)


def test_cube_interpolation_matches_the_profile() -> None:
    """Away from black and clipping the 33-point lattice is well within half an 8-bit code.

    Near black the sRGB curve is steep and clipping puts kinks between lattice points, so the
    error there is larger (several codes at 33 points); it shrinks as the lattice grows.
    """
    profile = _profile(Correction("linear3x3", MATRIX))
    samples = np.random.default_rng(1).uniform(0.0, 1.0, (4000, 3))
    linear = np.asarray(profile.correction().apply_to_pixels(srgb_decode(samples)), dtype=np.float64)
    expected = srgb_encode(np.clip(linear, 0, 1))
    bulk = np.all((linear > 0.05) & (linear < 0.95), axis=1)
    errors = {
        size: np.abs(Cube.parse(to_cube(profile, size=size)).evaluate(samples) - expected).max(axis=1) * 255
        for size in (33, 65)
    }
    assert errors[33][bulk].max() < 0.5
    assert errors[33].mean() < 0.5
    assert errors[65].max() < errors[33].max()


def test_cube_parser_refuses_malformed_files() -> None:
    with pytest.raises(CubeFormatError, match="needs 8 rows"):
        Cube.parse("LUT_3D_SIZE 2\n0 0 0\n")
    with pytest.raises(CubeFormatError, match="domain"):
        Cube.parse("LUT_3D_SIZE 2\nDOMAIN_MAX 2 2 2\n")


def test_matrix_export() -> None:
    affine = np.hstack([MATRIX, np.array([[0.01], [0.0], [-0.02]])])
    profile = _profile(Correction("affine3x4", affine))
    rows = [[float(v) for v in line.split()] for line in matrix_export(profile).splitlines()]
    np.testing.assert_allclose(rows, affine, atol=1e-8)
    assert json.loads(matrix_export(profile, as_format="json"))["matrix"] == affine.tolist()
    polynomial = _profile(Correction("polynomial", np.zeros((3, 10)), degree=2))
    with pytest.raises(ProfileError, match="cube"):
        matrix_export(polynomial)


def test_a_profile_applied_to_a_photo_it_was_not_made_for_is_a_warning_of_the_result() -> None:
    """The mismatch was only a note, which the command line printed and the API, the web app and
    the report never showed: the job ended done with no word that its colours would be off."""
    scene = render_scene(3, size=(900, 600))
    profile = correct_photo(scene.image_bytes).profile
    as_raw = replace(decode_image(scene.image_bytes), linear_camera=True)
    result = correct_photo(as_raw, profile=profile)
    [mismatch] = [w for w in result.measurements("photo.dng").warnings if w.code == "profile_mismatch"]
    assert "colours will be off" in mismatch.message
    fitting = correct_photo(scene.image_bytes, profile=profile).measurements("photo.jpg").warnings
    assert "profile_mismatch" not in [warning.code for warning in fitting]
