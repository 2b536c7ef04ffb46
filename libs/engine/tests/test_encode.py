from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import tifffile
from numpy.typing import NDArray
from PIL import Image

from chromaline.engine.encode import EncodeError, JpegStripEncoder, encode_image, srgb_icc_profile

EXIF_IFD = 0x8769


def _camera_exif(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Nikon"
    exif[0x0110] = "D5100"
    exif[0x0112] = orientation
    exif.get_ifd(EXIF_IFD)[0x829A] = (1, 125)
    exif.get_ifd(EXIF_IFD)[0x8827] = 400
    return b"Exif\x00\x00" + exif.tobytes()


def _pixels(dtype: type[np.unsignedinteger]) -> NDArray[np.unsignedinteger]:
    rng = np.random.default_rng(0)
    return rng.integers(0, np.iinfo(dtype).max, (24, 32, 3), dtype=dtype)


@pytest.mark.parametrize(
    ("output_format", "dtype"),
    [("jpeg", np.uint8), ("png", np.uint8), ("png", np.uint16), ("tiff", np.uint8), ("tiff", np.uint16)],
)
def test_encoded_file_keeps_icc_and_exif(output_format: str, dtype: type[np.unsignedinteger]) -> None:
    encoded = encode_image(_pixels(dtype), output_format, exif=_camera_exif())  # type: ignore[arg-type]
    with Image.open(io.BytesIO(encoded.data)) as image:
        assert image.format == {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}[output_format]
        assert image.size == (32, 24)
        assert image.info.get("icc_profile") == srgb_icc_profile()
        exif = image.getexif()
        assert exif.get(0x010F) == "Nikon"
        assert exif.get(0x0110) == "D5100"
        assert exif.get(0x0112, 1) == 1, "pixels are upright, so the orientation must say so"
        assert exif.get_ifd(EXIF_IFD).get(0x829A) == (1, 125)
        assert exif.get_ifd(EXIF_IFD).get(0x8827) == 400
    assert encoded.bit_depth == (8 if dtype == np.uint8 else 16)


@pytest.mark.parametrize(
    ("output_format", "dtype"),
    [("png", np.uint8), ("png", np.uint16), ("tiff", np.uint8), ("tiff", np.uint16)],
)
def test_lossless_formats_keep_pixels_exactly(output_format: str, dtype: type[np.unsignedinteger]) -> None:
    pixels = _pixels(dtype)
    encoded = encode_image(pixels, output_format, exif=_camera_exif())  # type: ignore[arg-type]
    if output_format == "tiff":
        decoded = tifffile.imread(io.BytesIO(encoded.data))
    else:
        decoded = np.asarray(cv2.imdecode(np.frombuffer(encoded.data, np.uint8), cv2.IMREAD_UNCHANGED))[
            :, :, ::-1
        ]
    np.testing.assert_array_equal(decoded, pixels)


def test_jpeg_refuses_16_bit_pixels() -> None:
    with pytest.raises(EncodeError, match="8 bits") as raised:
        encode_image(_pixels(np.uint16), "jpeg")
    assert raised.value.code == "unsupported_bit_depth"


def test_missing_or_unreadable_exif() -> None:
    plain = encode_image(_pixels(np.uint8), "png")
    with Image.open(io.BytesIO(plain.data)) as image:
        assert image.info.get("icc_profile") == srgb_icc_profile()
        assert len(image.getexif()) == 0
    broken = encode_image(_pixels(np.uint8), "jpeg", exif=b"Exif\x00\x00not a tiff header")
    assert broken.notes == ["the original EXIF could not be read and was not copied"]
    assert broken.content_type == "image/jpeg"
    assert broken.extension == ".jpg"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(EncodeError) as raised:
        encode_image(_pixels(np.uint8), "webp")  # type: ignore[arg-type]
    assert raised.value.code == "unsupported_format"


def test_jpeg_is_byte_for_byte_what_pillow_writes_with_the_same_settings() -> None:
    pixels = np.random.default_rng(6).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x010F] = "Camera maker"
    encoded = encode_image(pixels, "jpeg", exif=exif.tobytes())
    exif[0x0112] = 1
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(
        buffer, "JPEG", quality=95, subsampling=0, icc_profile=srgb_icc_profile(), exif=exif.tobytes()
    )
    assert encoded.data == buffer.getvalue()


def test_jpeg_refuses_exif_too_long_for_its_segment() -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000
    with pytest.raises(EncodeError) as raised:
        encode_image(np.zeros((8, 8, 3), dtype=np.uint8), "jpeg", exif=exif.tobytes())
    assert raised.value.code == "exif_too_long"


@pytest.mark.parametrize(("width", "height", "strip_rows"), [(160, 120, 32), (203, 77, 16), (64, 64, 64)])
def test_jpeg_from_strips_decodes_to_the_whole_image_encoding(
    width: int, height: int, strip_rows: int
) -> None:
    pixels = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 3
    encoder = JpegStripEncoder(width, height, exif.tobytes(), strip_rows=strip_rows)
    for number in reversed(range(encoder.strip_count)):
        encoder.encode(number, pixels[encoder.rows(number)])
    from_strips = encoder.finish()
    whole = encode_image(pixels, "jpeg", exif=exif.tobytes())
    with Image.open(io.BytesIO(from_strips.data)) as image:
        assert image.size == (width, height)
        assert image.info.get("icc_profile") == srgb_icc_profile()
        assert image.getexif()[0x0112] == 1
        strip_pixels = np.asarray(image.convert("RGB"))
    with Image.open(io.BytesIO(whole.data)) as image:
        assert np.array_equal(strip_pixels, np.asarray(image.convert("RGB")))


def test_strip_encoder_refuses_strips_that_do_not_fit() -> None:
    encoder = JpegStripEncoder(32, 40, None, strip_rows=16)
    assert encoder.strip_count == 3
    with pytest.raises(EncodeError):
        encoder.encode(0, np.zeros((8, 32, 3), dtype=np.uint8))
    encoder.encode(0, np.zeros((16, 32, 3), dtype=np.uint8))
    encoder.encode(2, np.zeros((8, 32, 3), dtype=np.uint8))
    with pytest.raises(EncodeError):
        encoder.finish()
    with pytest.raises(EncodeError):
        encoder.encode(1, np.zeros((16, 31, 3), dtype=np.uint8))
    with pytest.raises(EncodeError):
        encoder.encode(3, np.zeros((16, 32, 3), dtype=np.uint8))
