"""WebP, HEIC/HEIF and AVIF: decoded upright with their EXIF and ICC profile, damaged files refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from chromaline.engine.icc import output_icc_profile
from chromaline.engine.image_io import (
    UnsupportedImageError,
    decode_image,
    sniff_format,
    srgb_encode,
    to_linear,
)

PHONE_FORMATS = ("WEBP", "HEIF", "AVIF")
SNIFFED = {"WEBP": "webp", "HEIF": "heif", "AVIF": "avif"}


def _quadrants(height: int = 48, width: int = 64) -> NDArray[np.uint8]:
    """Red top-left, blue bottom-right, grey elsewhere: any turn or mirror moves a colour."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[: height // 2, : width // 2] = (220, 30, 30)
    pixels[height // 2 :, width // 2 :] = (30, 30, 220)
    return pixels


def _encoded(
    pixels: NDArray[np.uint8], image_format: str, *, orientation: int = 1, icc: bytes | None = None
) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0112] = orientation
    options: dict[str, object] = {"exif": exif.tobytes(), "quality": 95}
    if icc is not None:
        options["icc_profile"] = icc
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", PHONE_FORMATS)
def test_phone_formats_decode_to_their_pixels(image_format: str) -> None:
    pixels = _quadrants()
    data = _encoded(pixels, image_format)
    assert sniff_format(data) == SNIFFED[image_format]
    image = decode_image(data)
    assert image.format == SNIFFED[image_format]
    assert image.pixels.shape == pixels.shape
    assert np.abs(image.pixels.astype(int) - pixels).mean() < 3
    exif = Image.Exif()
    assert image.exif is not None
    exif.load(image.exif)
    assert exif.get(0x010F) == "PhoneMaker"


@pytest.mark.parametrize("image_format", PHONE_FORMATS)
@pytest.mark.parametrize(
    ("orientation", "upright"),
    [(3, lambda p: p[::-1, ::-1]), (6, lambda p: np.rot90(p, -1)), (8, lambda p: np.rot90(p, 1))],
)
def test_phone_formats_honour_the_orientation(image_format: str, orientation: int, upright: object) -> None:
    pixels = _quadrants()
    image = decode_image(_encoded(pixels, image_format, orientation=orientation))
    expected = upright(pixels)  # type: ignore[operator]
    assert image.pixels.shape == expected.shape
    assert np.abs(image.pixels.astype(int) - expected).mean() < 3


@pytest.mark.parametrize("image_format", PHONE_FORMATS)
def test_display_p3_is_decoded_into_the_working_space(image_format: str) -> None:
    """A P3 photo's colours, converted by LittleCMS to sRGB, match our linearisation of the codes."""
    rng = np.random.default_rng(4)
    flat = np.repeat(np.repeat(rng.integers(40, 216, (4, 4, 3)).astype(np.uint8), 16, axis=0), 16, axis=1)
    p3 = output_icc_profile("display-p3")
    image = decode_image(_encoded(flat, image_format, icc=p3))
    assert image.transfer == "ICC: Display P3"
    ours = srgb_encode(to_linear(image)[8::16, 8::16].astype(np.float64)) * 255
    decoded = Image.fromarray(image.pixels, "RGB")
    reference = ImageCms.profileToProfile(
        decoded,
        ImageCms.ImageCmsProfile(io.BytesIO(p3)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    assert reference is not None
    littlecms = np.asarray(reference, dtype=np.float64)[8::16, 8::16]
    in_gamut = (ours > 2).all(axis=2) & (ours < 253).all(axis=2)
    assert in_gamut.sum() >= 8
    assert np.abs(ours - littlecms)[in_gamut].max() <= 1.5


@pytest.mark.parametrize("image_format", PHONE_FORMATS)
@pytest.mark.parametrize("damage", ["truncated", "scrambled"])
def test_damaged_phone_files_are_refused_with_a_code(image_format: str, damage: str) -> None:
    data = _encoded(_quadrants(256, 256), image_format)
    if damage == "truncated":
        broken = data[: len(data) // 2]
    else:
        middle = bytearray(data)
        middle[64:] = bytes(np.random.default_rng(0).integers(0, 256, len(middle) - 64, dtype=np.uint8))
        broken = bytes(middle)
    with pytest.raises(UnsupportedImageError) as raised:
        decode_image(broken)
    assert raised.value.code == "decode_error"
    assert SNIFFED[image_format].upper() in raised.value.message


def test_unknown_bytes_name_every_accepted_format() -> None:
    with pytest.raises(UnsupportedImageError) as raised:
        decode_image(b"GIF89a" + b"\0" * 64)
    assert raised.value.code == "unsupported_format"
    assert "HEIC" in raised.value.message
    assert "DNG" in raised.value.message


def test_too_many_pixels_is_refused_before_decoding() -> None:
    data = _encoded(_quadrants(), "HEIF")
    with pytest.raises(UnsupportedImageError) as raised:
        decode_image(data, max_pixels=100)
    assert raised.value.code == "too_many_pixels"
