"""Small pictures of a photo before and after correction, for reports and lists.

They are made where the full image is already decoded (the corrector), from an area-averaged
copy of its codes, so that no later step decodes the photo again: the reporter drew them from the
original and corrected files, a second and third decode of each photo (of a whole RAW file, too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chromaline.engine.apply import apply_correction
from chromaline.engine.encode import EncodedImage, encode_image
from chromaline.engine.fit import Correction
from chromaline.engine.image_io import DecodedImage, reduced

PHOTO_PREVIEW_LONG_SIDE = 800
"""The long side of the previews, in pixels: the report's pictures of the photo."""


@dataclass(frozen=True)
class PhotoPreviews:
    """The photo before and after correction, as upright 8-bit sRGB JPEGs."""

    original: EncodedImage
    """The photo as decoded, shown in sRGB (a RAW file as its camera RGB, as detection sees it)."""
    corrected: EncodedImage
    """The photo corrected, in sRGB whatever the output's colour space."""


def photo_previews(
    image: DecodedImage, correction: Correction, long_side: int = PHOTO_PREVIEW_LONG_SIDE
) -> PhotoPreviews:
    """Both previews of ``image``, from one reduced copy; its long side at most ``long_side``."""
    small = reduced(image, long_side)
    return PhotoPreviews(original=_jpeg(small, Correction.identity()), corrected=_jpeg(small, correction))


def _jpeg(small: DecodedImage, correction: Correction) -> EncodedImage:
    pixels = apply_correction(small, correction, bit_depth=8, workers=1)
    return encode_image(np.asarray(pixels, dtype=np.uint8), "jpeg")
