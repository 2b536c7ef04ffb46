"""Applying a correction to a whole image in bounded memory.

The image is processed in bands of rows: each band is linearised (lookup tables), transformed
(``cv2.transform`` for matrices; for the polynomial methods, images of three terms per pixel
made with OpenCV's per-element operations, each mapped by its own ``cv2.transform``), then
re-encoded into a preallocated output array. The scale to the re-encoding index is folded into the
coefficients, OpenCV's saturating float→uint16 conversion does the clipping and rounding in one
pass, and ``cv2.LUT`` looks the 16-bit indices up, so an 8-bit matrix correction costs four passes
over each band. Bands run on a small thread pool (OpenCV releases the GIL). Peak memory is the
output array plus a few band-sized buffers per worker, whatever the image size.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.engine.fit import Correction, MethodSpec
from chromaline.engine.icc import OutputSpace, working_to_output
from chromaline.engine.image_io import DecodedImage, never_negative, to_linear_rows
from chromaline.engine.lut import ENCODE_INDEX, BitDepth, EncodeIndex, output_encode_table

BAND_PIXELS = 1 << 16
"""Pixels per band when the caller does not choose: 768 KB of float32 RGB, so a band's few
intermediate images stay in the CPU's cache between passes (bands of 1 Mpx were 2.5× slower)."""

EncodedPixels = NDArray[np.uint8] | NDArray[np.uint16]


def band_rows(width: int, rows: int | None = None) -> int:
    return max(1, rows if rows is not None else BAND_PIXELS // max(1, width))


def _encode_indices(scaled: NDArray[np.float32], index: EncodeIndex) -> NDArray[np.uint16]:
    """Lookup indices from linear light already multiplied by ``index.scale`` (overwrites it)."""
    if index.square_root:
        cv2.threshold(scaled, 0.0, 0.0, cv2.THRESH_TOZERO, dst=scaled)
        cv2.sqrt(scaled, dst=scaled)
    rounded = cv2.addWeighted(scaled, 1.0, scaled, 0.0, 0.0, dtype=cv2.CV_16U)
    return np.asarray(rounded, dtype=np.uint16)


_ROTATE_ONE = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)
"""Channel permutation r, g, b → g, b, r (as a ``cv2.transform`` matrix)."""
_ROTATE_TWO = np.ascontiguousarray(_ROTATE_ONE @ _ROTATE_ONE)
"""r, g, b → b, r, g."""

TermBlock = tuple[NDArray[np.float32], tuple[int, ...]]
"""An image of one to three terms per pixel and the coefficient columns of those terms."""


def _f32(array: object) -> NDArray[np.float32]:
    """OpenCV's float32 result typed as such (no copy)."""
    return np.asarray(array, dtype=np.float32)


def _term_blocks(linear: NDArray[np.float32], spec: MethodSpec, non_negative: bool) -> list[TermBlock]:
    """The non-linear terms of ``spec`` as interleaved images, three terms (or one) per pixel.

    Products of channels come from multiplying the image by a channel-rotated copy of itself:
    (r, g, b) × (g, b, r) = (rg, gb, br). Every operation is one OpenCV pass over the band, and the
    column indices follow :func:`chromaline.engine.fit.term_planes`.
    """
    if spec.method == "polynomial":
        channel_products = _f32(cv2.multiply(linear, cv2.transform(linear, _ROTATE_ONE)))
        return [(channel_products, (3, 5, 4)), (_f32(cv2.multiply(linear, linear)), (6, 7, 8))]
    # Roots of negative noise would be NaN; the root terms see the non-negative part only.
    positive = linear if non_negative else _f32(cv2.threshold(linear, 0.0, 0.0, cv2.THRESH_TOZERO)[1])
    rotated = cv2.transform(positive, _ROTATE_ONE)
    products = cv2.multiply(positive, rotated)
    blocks: list[TermBlock] = [(_f32(cv2.sqrt(products)), (3, 4, 5))]
    if spec.degree == 3:
        twice_rotated = cv2.transform(positive, _ROTATE_TWO)
        one_square = cv2.multiply(positive, cv2.multiply(rotated, rotated))
        two_square = cv2.multiply(positive, cv2.multiply(twice_rotated, twice_rotated))
        red, green, blue = cv2.split(positive)
        product_all = cv2.multiply(cv2.multiply(red, green), blue)
        # NumPy's cube root is several times faster than cv2.pow's exp(log(x) / 3).
        blocks += [
            (np.cbrt(one_square), (6, 7, 11)),
            (np.cbrt(two_square), (8, 9, 10)),
            (np.cbrt(product_all), (12,)),
        ]
    return blocks


@dataclass(frozen=True)
class ScaledCorrection:
    """A correction's coefficients times the index scale, in float32, prepared once per image."""

    spec: MethodSpec
    is_matrix: bool
    affine: NDArray[np.float32]
    """(3, 4): the linear terms and the constant, if any."""
    coefficients: NDArray[np.float32]
    """(3, K): every term's coefficients, for the non-linear term blocks."""

    @classmethod
    def of(cls, correction: Correction, scale: float, *, bgr: bool = False) -> ScaledCorrection:
        """``bgr`` reverses the output channels (the rows), to blue, green, red."""
        if correction.is_matrix:
            affine = correction.matrix_3x4() * scale
        else:
            affine = np.zeros((3, 4))
            affine[:, :3] = correction.coefficients[:, :3] * scale
            if correction.spec.method == "polynomial":
                affine[:, 3] = correction.coefficients[:, 9] * scale
        rows = slice(None, None, -1) if bgr else slice(None)
        return cls(
            correction.spec,
            correction.is_matrix,
            np.ascontiguousarray(affine[rows], dtype=np.float32),
            np.ascontiguousarray(correction.coefficients[rows] * scale, dtype=np.float32),
        )


def transform_band(
    linear: NDArray[np.float32], correction: ScaledCorrection, *, non_negative: bool = False
) -> NDArray[np.float32]:
    """The scaled, corrected band, float32, same shape as ``linear`` (rows, width, 3).

    ``non_negative`` says ``linear`` has no negative value (so the root terms need no clipping).
    """
    result = _f32(cv2.transform(linear, correction.affine))
    if correction.is_matrix:
        return result
    for terms, columns in _term_blocks(linear, correction.spec, non_negative):
        block = np.ascontiguousarray(correction.coefficients[:, list(columns)])
        cv2.add(result, cv2.transform(terms, block), dst=result)
    return result


def in_output_space(correction: Correction, space: OutputSpace) -> Correction:
    """The correction followed by the change from the working space to ``space``'s linear RGB."""
    if space == "srgb":
        return correction
    coefficients = working_to_output(space) @ correction.coefficients
    return Correction(correction.method, coefficients, correction.degree, objective=correction.objective)


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def apply_correction(
    image: DecodedImage,
    correction: Correction,
    *,
    bit_depth: BitDepth = 8,
    rows_per_band: int | None = None,
    workers: int | None = None,
    bgr: bool = False,
    output_space: OutputSpace = "srgb",
) -> EncodedPixels:
    """The corrected image, encoded at ``bit_depth`` in ``output_space``, (H, W, 3) RGB (blue,
    green, red when ``bgr``: what OpenCV's encoders take).

    ``workers`` threads share the bands (by default one per core, at most four).
    """
    index = ENCODE_INDEX[bit_depth]
    scaled = ScaledCorrection.of(in_output_space(correction, output_space), index.scale, bgr=bgr)
    table = output_encode_table(bit_depth, output_space)
    non_negative = never_negative(image)
    output: EncodedPixels = np.empty(image.pixels.shape, dtype=table.dtype)
    step = band_rows(image.width, rows_per_band)
    starts = range(0, image.height, step)
    workers = min(workers or _workers(), len(starts))

    def correct_bands(worker: int) -> None:
        for start in starts[worker::workers]:
            stop = min(start + step, image.height)
            band = transform_band(to_linear_rows(image, start, stop), scaled, non_negative=non_negative)
            cv2.LUT(_encode_indices(band, index), table, dst=output[start:stop])

    if workers == 1:
        correct_bands(0)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(correct_bands, range(workers)))
    return output


def apply_to_linear(
    linear: NDArray[np.float32], correction: Correction, *, bit_depth: BitDepth = 8
) -> EncodedPixels:
    """Correct and encode an already linear (H, W, 3) array in one band (small images, tests)."""
    index = ENCODE_INDEX[bit_depth]
    linear32 = np.ascontiguousarray(linear, dtype=np.float32)
    scaled = transform_band(linear32, ScaledCorrection.of(correction, index.scale))
    encoded = cv2.LUT(_encode_indices(scaled, index), output_encode_table(bit_depth, "srgb"))
    return np.asarray(encoded, dtype=np.uint8) if bit_depth == 8 else np.asarray(encoded, dtype=np.uint16)
