from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from chromaline.engine.apply import _encode_indices, apply_correction, apply_to_linear
from chromaline.engine.fit import Correction
from chromaline.engine.image_io import DecodedImage, srgb_encode, to_linear
from chromaline.engine.lut import ENCODE_INDEX, INDEX_LEVELS, srgb_encode_table
from chromaline.engine.metrics import delta_e, working_rgb_to_lab

MATRIX = np.array([[1.2, -0.15, -0.05], [-0.1, 1.15, -0.05], [0.02, -0.2, 1.18]])
CORRECTIONS = {
    "linear3x3": Correction("linear3x3", MATRIX),
    "affine3x4": Correction("affine3x4", np.hstack([MATRIX, np.array([[0.01], [0.0], [-0.01]])])),
    "root_polynomial": Correction("root_polynomial", np.hstack([MATRIX, np.full((3, 10), 0.01)]), degree=3),
    "root_polynomial2": Correction("root_polynomial", np.hstack([MATRIX, np.full((3, 3), -0.03)]), degree=2),
    "polynomial": Correction("polynomial", np.hstack([MATRIX, np.full((3, 7), -0.02)]), degree=2),
}


def _image(height: int, width: int, bit_depth: int = 8, seed: int = 0) -> DecodedImage:
    rng = np.random.default_rng(seed)
    if bit_depth == 8:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        return DecodedImage(pixels, 8, "sRGB (assumed)", None, None, "png")
    wide = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16)
    return DecodedImage(wide, 16, "sRGB (assumed)", None, None, "png")


@pytest.mark.parametrize("name", sorted(CORRECTIONS))
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_banded_equals_whole_image(name: str, bit_depth: int) -> None:
    image = _image(61, 47, bit_depth=bit_depth)
    correction = CORRECTIONS[name]
    banded = apply_correction(image, correction, bit_depth=8 if bit_depth == 8 else 16, rows_per_band=7)
    whole = apply_to_linear(to_linear(image), correction, bit_depth=8 if bit_depth == 8 else 16)
    np.testing.assert_array_equal(banded, whole)


@pytest.mark.parametrize("name", sorted(CORRECTIONS))
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_result_matches_float64_reference_within_one_code(name: str, bit_depth: int) -> None:
    image = _image(40, 30)
    correction = CORRECTIONS[name]
    out = apply_correction(image, correction, bit_depth=bit_depth)  # type: ignore[arg-type]
    linear = np.asarray(to_linear(image), dtype=np.float64).reshape(-1, 3)
    corrected = np.asarray(correction.apply_to_pixels(linear), dtype=np.float64)
    max_code = 255 if bit_depth == 8 else 65535
    expected = np.rint(srgb_encode(corrected) * max_code).reshape(out.shape)
    assert out.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    assert np.abs(out.astype(np.int64) - expected).max() <= 1


@pytest.mark.parametrize("name", sorted(CORRECTIONS))
def test_blue_green_red_output_is_the_rgb_output_reversed(name: str) -> None:
    image = _image(40, 30)
    rgb = apply_correction(image, CORRECTIONS[name])
    np.testing.assert_array_equal(apply_correction(image, CORRECTIONS[name], bgr=True), rgb[:, :, ::-1])


def test_identity_leaves_8bit_pixels_unchanged() -> None:
    image = _image(50, 64)
    np.testing.assert_array_equal(apply_correction(image, Correction.identity()), image.pixels)


def test_out_of_range_values_are_clipped() -> None:
    image = _image(8, 8)
    bright = Correction("linear3x3", np.eye(3) * 4.0)
    negative = Correction("linear3x3", -np.eye(3))
    assert apply_correction(image, bright).max() == 255
    assert apply_correction(image, negative).max() == 0


def test_peak_memory_is_bounded_by_a_few_image_sizes() -> None:
    """A 3×3 correction needs the output plus a few bands, not float copies of the whole image."""
    image = _image(1200, 1600)
    apply_correction(image, CORRECTIONS["linear3x3"], rows_per_band=64)
    tracemalloc.start()
    try:
        apply_correction(image, CORRECTIONS["linear3x3"], rows_per_band=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_float_copy = image.pixels.size * 4
    assert peak <= 3 * image.pixels.nbytes
    assert peak < whole_float_copy


@pytest.mark.parametrize(("bit_depth", "code_error"), [(8, 0.05), (16, 0.75)])
def test_encoding_through_the_lookup_table_is_far_below_a_visible_error(
    bit_depth: int, code_error: float
) -> None:
    """The table re-encodes quantised linear light: the quantisation moves the code by at most
    ``code_error`` before rounding, and the colour by less than 0.04 ΔE2000 (the worst case is a dark,
    saturated colour at 8 bits: 0.03)."""
    rng = np.random.default_rng(9)
    ramp = np.linspace(0.0, 1.0, 200_001)
    linear = np.concatenate([np.stack([ramp] * 3, axis=1), rng.random((200_000, 3)) ** 3])
    index = ENCODE_INDEX[bit_depth]  # type: ignore[index]
    scaled = np.asarray(linear * index.scale, dtype=np.float32).reshape(-1, 1, 3)
    indices = _encode_indices(scaled.copy(), index).reshape(-1, 3)
    table = srgb_encode_table(bit_depth)  # type: ignore[arg-type]
    max_code = 255 if bit_depth == 8 else 65535
    exact = srgb_encode(linear) * max_code
    assert np.abs(table[indices] - exact).max() <= 0.5 + code_error
    level = indices / (INDEX_LEVELS - 1)
    represented = level * level if index.square_root else level
    white = np.array([0.3127, 0.3290])
    error = delta_e(working_rgb_to_lab(linear, white), working_rgb_to_lab(represented, white))
    assert error.max() < 0.04
