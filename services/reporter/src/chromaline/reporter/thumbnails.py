"""Small previews of large photographs, with the chart and its patches outlined.

Photos reach 50 MP, so JPEGs are decoded at a reduced scale by libjpeg itself (a fraction of
the work of a full decode) and only then resized with area averaging. Other formats have no
reduced decode and are decoded in full. Previews are upright (EXIF orientation applied), the
same frame as the detector's coordinates.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from chromaline.engine.apply import apply_to_linear
from chromaline.engine.fit import Correction
from chromaline.engine.image_io import UnsupportedImageError, decode_image, reduced, sniff_format, to_linear

THUMBNAIL_LONGEST_SIDE = 800
OPENCV_FORMATS = frozenset({"jpeg", "png", "tiff"})
"""Containers OpenCV decodes upright (it applies their EXIF orientation)."""
JPEG_QUALITY = 85

BgrImage = NDArray[np.uint8]
Point = tuple[float, float]

_REDUCED_JPEG_FLAGS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)
_SUBPIXEL_SHIFT = 4
"""Points are drawn with 4 fractional bits so quads land where they were measured."""


class ThumbnailError(ValueError):
    """The bytes could not be decoded as an image."""


def _header_size(data: bytes) -> tuple[str, int, int] | None:
    """Format and stored size from the header alone (no pixel decode)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return str(image.format), image.width, image.height
    except (UnidentifiedImageError, OSError):
        return None


def _decode_flags(data: bytes, longest_side: int) -> int:
    header = _header_size(data)
    if header is None:
        return cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    image_format, width, height = header
    if image_format == "JPEG":
        for factor, flag in _REDUCED_JPEG_FLAGS:
            if max(width, height) // factor >= longest_side:
                return int(flag)
    return cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH


def _to_8bit(pixels: NDArray[np.generic]) -> BgrImage:
    if pixels.dtype == np.uint8:
        return np.asarray(pixels, dtype=np.uint8)
    if pixels.dtype == np.uint16:
        return np.asarray(np.right_shift(np.asarray(pixels, dtype=np.uint16), 8), dtype=np.uint8)
    scaled = np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5
    return scaled.astype(np.uint8)


def _reduced(pixels: NDArray[np.integer[Any]], longest_side: int) -> NDArray[np.integer[Any]]:
    height, width = pixels.shape[:2]
    scale = longest_side / max(height, width)
    if scale >= 1.0:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))


def _engine_thumbnail(data: bytes, longest_side: int) -> BgrImage:
    """WebP, HEIC, AVIF and RAW files, which OpenCV reads without their orientation or not at all:
    decoded by the engine, reduced, then
    shown as sRGB (a RAW as its camera RGB, without white balance or colour matrix)."""
    try:
        image = decode_image(data)
    except UnsupportedImageError as error:
        raise ThumbnailError(f"the image could not be decoded: {error.message}") from None
    small = reduced(image, longest_side)
    rgb = apply_to_linear(to_linear(small), Correction.identity(), bit_depth=8)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])


def make_thumbnail(data: bytes, longest_side: int = THUMBNAIL_LONGEST_SIDE) -> BgrImage:
    """An upright 8-bit BGR preview whose longest side is at most ``longest_side`` pixels."""
    try:
        container = sniff_format(data)
    except UnsupportedImageError as error:
        raise ThumbnailError(f"the image could not be decoded: {error.message}") from None
    if container not in OPENCV_FORMATS:
        return _engine_thumbnail(data, longest_side)
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(buffer, _decode_flags(data, longest_side))
    if decoded is None:
        raise ThumbnailError("the image could not be decoded")
    return np.asarray(_reduced(_to_8bit(decoded), longest_side), dtype=np.uint8)


def shrink(thumbnail: BgrImage, longest_side: int) -> BgrImage:
    """A smaller copy of a preview (area-averaged), so a second size needs no second decode."""
    return np.asarray(_reduced(thumbnail, longest_side), dtype=np.uint8)


def scale_points(points: Sequence[Point], image_size: tuple[int, int], thumbnail: BgrImage) -> list[Point]:
    """Map points from the full image (``image_size`` = width, height) onto ``thumbnail``."""
    width, height = image_size
    scale_x = thumbnail.shape[1] / width
    scale_y = thumbnail.shape[0] / height
    return [(x * scale_x, y * scale_y) for x, y in points]


def line_thickness(thumbnail: BgrImage) -> int:
    return max(1, round(max(int(thumbnail.shape[0]), int(thumbnail.shape[1])) / 400))


def draw_polygon(
    thumbnail: BgrImage, points: Sequence[Point], colour_bgr: tuple[int, int, int], thickness: int
) -> None:
    """Draw a closed polygon in place, with sub-pixel placement."""
    fixed = np.round(np.asarray(points, dtype=np.float64) * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)
    cv2.polylines(
        thumbnail, [fixed.reshape(-1, 1, 2)], True, colour_bgr, thickness, cv2.LINE_AA, _SUBPIXEL_SHIFT
    )


def encode_jpeg(thumbnail: BgrImage) -> bytes:
    ok, encoded = cv2.imencode(".jpg", thumbnail, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ThumbnailError("the preview could not be encoded as JPEG")
    return bytes(encoded.tobytes())


def to_rgb(thumbnail: BgrImage) -> NDArray[np.uint8]:
    return np.ascontiguousarray(thumbnail[:, :, ::-1])
