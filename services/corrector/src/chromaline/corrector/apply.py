"""Applying a correction to a whole image in bounded memory.

The image is processed in bands of rows: each band is linearised (lookup tables), transformed
(``cv2.transform`` for matrices, a float32 term expansion for the polynomial methods), then
re-encoded into a preallocated output array. The scale to the re-encoding index is folded into the
coefficients, and OpenCV's saturating float→uint16 conversion does the clipping and rounding in
one pass, so a matrix correction costs four passes over each band. Peak memory is the output
array plus a few band-sized buffers, whatever the image size.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.corrector.fit import Correction, term_planes
from chromaline.corrector.lut import ENCODE_LEVELS, BitDepth, srgb_encode_table
from chromaline.detector.image_io import DecodedImage, to_linear_rows

BAND_PIXELS = 1 << 20
"""Pixels per band when the caller does not choose: ~12 MB of float32 RGB."""

EncodedPixels = NDArray[np.uint8] | NDArray[np.uint16]


def band_rows(width: int, rows: int | None = None) -> int:
    return max(1, rows if rows is not None else BAND_PIXELS // max(1, width))


def _encode_indices(
    linear_scaled: NDArray[np.float32], levels: int
) -> NDArray[np.uint16] | NDArray[np.int32]:
    """Round and clip values already scaled to ``0..levels-1`` into lookup indices."""
    if levels <= 1 << 16:
        rounded = cv2.addWeighted(linear_scaled, 1.0, linear_scaled, 0.0, 0.0, dtype=cv2.CV_16U)
        return np.asarray(rounded, dtype=np.uint16)
    indices = np.asarray(
        cv2.addWeighted(linear_scaled, 1.0, linear_scaled, 0.0, 0.0, dtype=cv2.CV_32S), dtype=np.int32
    )
    np.clip(indices, 0, levels - 1, out=indices)
    return indices


def transform_band(linear: NDArray[np.float32], correction: Correction, scale: float) -> NDArray[np.float32]:
    """``scale`` × the corrected band, float32, same shape as ``linear`` (rows, width, 3)."""
    if correction.is_matrix:
        matrix = (correction.matrix_3x4() * scale).astype(np.float32)
        return np.asarray(cv2.transform(linear, matrix))
    # Planar layout: each term is one contiguous array, and one (3, K) @ (K, N) product.
    rows, width = linear.shape[:2]
    red, green, blue = (np.asarray(plane, dtype=np.float32).ravel() for plane in cv2.split(linear))
    terms = np.stack(term_planes(red, green, blue, correction.spec))
    coefficients = np.ascontiguousarray(correction.coefficients * scale, dtype=np.float32)
    planes = (coefficients @ terms).reshape(3, rows, width)
    return np.asarray(cv2.merge([planes[0], planes[1], planes[2]]))


def apply_correction(
    image: DecodedImage,
    correction: Correction,
    *,
    bit_depth: BitDepth = 8,
    rows_per_band: int | None = None,
) -> EncodedPixels:
    """The corrected image, sRGB-encoded at ``bit_depth``, (H, W, 3) RGB."""
    levels = ENCODE_LEVELS[bit_depth]
    table = srgb_encode_table(bit_depth)
    output: EncodedPixels = np.empty(image.pixels.shape, dtype=table.dtype)
    step = band_rows(image.width, rows_per_band)
    for start in range(0, image.height, step):
        stop = min(start + step, image.height)
        scaled = transform_band(to_linear_rows(image, start, stop), correction, float(levels - 1))
        output[start:stop] = table[_encode_indices(scaled, levels)]
    return output


def apply_to_linear(
    linear: NDArray[np.float32], correction: Correction, *, bit_depth: BitDepth = 8
) -> EncodedPixels:
    """Correct and encode an already linear (H, W, 3) array in one band (small images, tests)."""
    levels = ENCODE_LEVELS[bit_depth]
    scaled = transform_band(np.ascontiguousarray(linear, dtype=np.float32), correction, float(levels - 1))
    encoded: EncodedPixels = srgb_encode_table(bit_depth)[_encode_indices(scaled, levels)]
    return encoded
