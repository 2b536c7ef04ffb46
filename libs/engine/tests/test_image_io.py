"""Decoding and linearisation against colour-science's reference implementations."""

from __future__ import annotations

import io
import struct

import colour
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from chromaline.engine.image_io import (
    DecodedImage,
    UnsupportedImageError,
    decode_image,
    decode_preview,
    never_negative,
    parse_icc_profile,
    to_linear,
    to_linear_rows,
)

D50 = np.array([0.9642, 1.0, 0.8249])


def _png_bytes(rgb: NDArray[np.generic]) -> bytes:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return encoded.tobytes()


def _matrix_trc_profile(
    colourspace_name: str,
    gamma: float | tuple[float, float, float],
    colour_space: bytes = b"RGB ",
    *,
    colorants: NDArray[np.float64] | None = None,
    curve: bytes | None = None,
) -> bytes:
    """A minimal ICC v2 matrix/TRC profile for a colour-science RGB space (colorants adapted to D50),
    with one gamma for every channel or one each; ``colorants`` and a raw ``curve`` tag (for all
    three channels) replace the space's own."""
    space = colour.RGB_COLOURSPACES[colourspace_name]
    white_xyz = colour.xy_to_XYZ(space.whitepoint)
    adapt = colour.adaptation.matrix_chromatic_adaptation_VonKries(white_xyz, D50, transform="Bradford")
    if colorants is None:
        colorants = adapt @ space.matrix_RGB_to_XYZ

    def xyz_tag(xyz: NDArray[np.float64]) -> bytes:
        return b"XYZ \0\0\0\0" + struct.pack(">3i", *(round(v * 65536) for v in xyz))

    gammas = gamma if isinstance(gamma, tuple) else (gamma, gamma, gamma)
    red, green, blue = (
        curve or b"curv\0\0\0\0" + struct.pack(">IH", 1, round(g * 256)) + b"\0\0" for g in gammas
    )
    tags = [
        (b"rXYZ", xyz_tag(colorants[:, 0])),
        (b"gXYZ", xyz_tag(colorants[:, 1])),
        (b"bXYZ", xyz_tag(colorants[:, 2])),
        (b"wtpt", xyz_tag(D50)),
        (b"rTRC", red),
        (b"gTRC", green),
        (b"bTRC", blue),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += struct.pack(">4sII", signature, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = bytearray(128)
    struct.pack_into(">I", header, 0, size)
    header[8:12] = b"\x02\x10\0\0"
    header[12:16] = b"mntr"
    header[16:20] = colour_space
    header[20:24] = b"XYZ "
    header[36:40] = b"acsp"
    return bytes(header) + struct.pack(">I", len(tags)) + table + body


def test_srgb_8bit_matches_colour_science_on_every_code() -> None:
    codes = np.arange(256, dtype=np.uint8)
    pixels = np.stack([codes, codes[::-1], codes], axis=1).reshape(16, 16, 3)
    image = decode_image(_png_bytes(pixels))
    assert image.bit_depth == 8
    assert image.transfer == "sRGB (assumed)"
    expected = colour.cctf_decoding(pixels / 255.0, function="sRGB")
    np.testing.assert_allclose(to_linear(image), expected, atol=2e-7)


def test_srgb_16bit_matches_colour_science_on_every_code() -> None:
    codes = np.arange(65536, dtype=np.uint16)
    pixels = np.stack([codes, codes[::-1], codes], axis=1).reshape(256, 256, 3)
    image = decode_image(_png_bytes(pixels))
    assert image.bit_depth == 16
    expected = colour.cctf_decoding(pixels / 65535.0, function="sRGB")
    np.testing.assert_allclose(to_linear(image), expected, atol=2e-7)


def test_adobe_rgb_tagged_image_is_converted_to_the_working_space() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(
        buffer, format="PNG", icc_profile=_matrix_trc_profile("Adobe RGB (1998)", 563 / 256)
    )
    image = decode_image(buffer.getvalue())
    assert image.icc_profile is not None
    expected = colour.RGB_to_RGB(
        pixels / 255.0,
        "Adobe RGB (1998)",
        "sRGB",
        chromatic_adaptation_transform="Bradford",
        apply_cctf_decoding=True,
        apply_cctf_encoding=False,
    )
    np.testing.assert_allclose(to_linear(image), expected, atol=2e-3)


def test_a_profile_with_a_curve_per_channel_decodes_each_channel_with_its_own() -> None:
    gammas = (1.8, 2.2, 2.6)
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(
        buffer, format="PNG", icc_profile=_matrix_trc_profile("Adobe RGB (1998)", gammas)
    )
    image = decode_image(buffer.getvalue())
    source_linear = (pixels / 255.0) ** np.array(gammas)
    expected = colour.RGB_to_RGB(
        source_linear, "Adobe RGB (1998)", "sRGB", chromatic_adaptation_transform="Bradford"
    )
    np.testing.assert_allclose(to_linear(image), expected, atol=2e-3)


def test_only_images_without_a_matrix_to_the_working_space_never_linearise_below_zero() -> None:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    assert never_negative(decode_image(_png_bytes(pixels)))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(
        buffer, format="PNG", icc_profile=_matrix_trc_profile("Adobe RGB (1998)", 2.2)
    )
    assert not never_negative(decode_image(buffer.getvalue()))


def test_pillow_srgb_profile_linearises_like_untagged_srgb() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    codes = np.arange(256, dtype=np.uint8)
    pixels = np.stack([codes, codes, codes], axis=1).reshape(16, 16, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", icc_profile=profile)
    image = decode_image(buffer.getvalue())
    assert image.transfer.startswith("ICC")
    np.testing.assert_allclose(to_linear(image), colour.cctf_decoding(pixels / 255.0, "sRGB"), atol=2e-3)


def test_rows_chunk_matches_whole_image() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    image = DecodedImage(pixels, 8, "sRGB", None, None, "png")
    np.testing.assert_array_equal(to_linear_rows(image, 10, 25), to_linear(image)[10:25])


def test_grey_and_alpha_images_become_rgb() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    ok, encoded = cv2.imencode(".png", grey)
    assert ok
    decoded = decode_image(encoded.tobytes())
    assert decoded.pixels.shape == (8, 8, 3)
    np.testing.assert_array_equal(decoded.pixels[:, :, 1], grey)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    assert decode_image(buffer.getvalue()).pixels[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpegs_decode_to_rgb_like_pillow(mode: str) -> None:
    """Colour, grey and CMYK JPEGs come out as red, green, blue (the decoder writes RGB itself)."""
    rng = np.random.default_rng(3)
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    rgb[:, :16, 0] = rgb[:, 16:32, 1] = rgb[:, 32:48, 2] = 230
    rgb[:, 48:] = rng.integers(0, 256, (48, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buffer, format="JPEG", quality=95)
    decoded = decode_image(buffer.getvalue()).pixels
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected).max() <= 2


def test_exif_orientation_is_applied() -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    image = decode_image(buffer.getvalue())
    assert image.pixels.shape[:2] == (40, 20)
    assert image.pixels[5, 10, 0] > 200
    assert image.pixels[35, 10, 0] < 50
    assert image.exif is not None


def _exif_orientation_entry(type_code: int, count: int, value: bytes) -> bytes:
    """EXIF holding one orientation entry as written, whatever its type (Pillow writes only valid ones)."""
    entry_end = 8 + 2 + 12 + 4
    inline = value if len(value) <= 4 else struct.pack("<I", entry_end)
    ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, type_code, count) + inline.ljust(4, b"\0")
    return (
        b"Exif\0\0II*\0"
        + struct.pack("<I", 8)
        + ifd
        + struct.pack("<I", 0)
        + (value if len(value) > 4 else b"")
    )


@pytest.mark.parametrize(
    "entry",
    [
        (2, 4, b"abc\0"),  # text
        (12, 1, struct.pack("<d", float("nan"))),  # a NaN double
        (5, 1, struct.pack("<II", 1, 0)),  # a fraction over zero
        (3, 1, struct.pack("<H", 9)),  # out of range
    ],
)
@pytest.mark.parametrize("image_format", ["JPEG", "WEBP"])
def test_an_unreadable_orientation_tag_leaves_the_photo_as_shot(
    entry: tuple[int, int, bytes], image_format: str
) -> None:
    """A damaged tag (text, NaN, a fraction over zero) failed the whole photo as a corrupt file."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(
        buffer, format=image_format, exif=_exif_orientation_entry(*entry), quality=95
    )
    assert decode_image(buffer.getvalue()).pixels.shape[:2] == (20, 40)


def _para(function_type: int, *params: float) -> bytes:
    return (
        b"para\0\0\0\0"
        + struct.pack(">HH", function_type, 0)
        + b"".join(struct.pack(">i", round(value * 65536)) for value in params)
    )


@pytest.mark.parametrize(
    ("gamma", "colorants", "curve"),
    [
        (0.0, None, None),
        (255.9, None, None),
        (2.2, None, b"curv\0\0\0\0" + struct.pack(">I", 4) + struct.pack(">4H", 30000, 30000, 30000, 30000)),
        (2.2, None, b"curv\0\0\0\0" + struct.pack(">I", 1_000_000) + b"\0\0"),
        (2.2, None, _para(1, 2.2, 0.0, 0.0)),
        (2.2, None, _para(0, -2.2)),
        (2.2, np.zeros((3, 3)), None),
        (2.2, np.ones((3, 3)) / 3, None),
        (2.2, np.array([[30000.0, -30000.0, 0.5], [0.2, 0.7, 0.1], [0.0, 0.1, 0.7]]), None),
    ],
    ids=[
        "gamma-0",
        "gamma-256",
        "constant-table",
        "table-past-the-end",
        "para-a-0",
        "negative-gamma",
        "zero-colorants",
        "singular-colorants",
        "huge-colorants",
    ],
)
def test_a_profile_no_camera_or_editor_writes_is_refused(
    gamma: float, colorants: NDArray[np.float64] | None, curve: bytes | None
) -> None:
    """Such profiles failed the workers with errors they did not name (a division by zero, a
    struct error) or made a garbage photo that was then corrected and reported done."""
    profile = _matrix_trc_profile("sRGB", gamma, colorants=colorants, curve=curve)
    with pytest.raises(UnsupportedImageError) as refused:
        parse_icc_profile(profile)
    assert refused.value.code == "unsupported_icc_profile"


@pytest.mark.parametrize("name", ["sRGB", "Adobe RGB (1998)", "ProPhoto RGB", "Display P3"])
def test_the_profiles_of_common_rgb_spaces_are_read(name: str) -> None:
    assert parse_icc_profile(_matrix_trc_profile(name, 2.2)).curves is not None


def test_preview_is_the_upright_photo_reduced_by_a_power_of_two() -> None:
    rng = np.random.default_rng(4)
    blocks = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    pixels = np.repeat(np.repeat(blocks, 32, axis=0), 32, axis=1)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95, subsampling=0)
    full = decode_image(buffer.getvalue()).pixels
    preview = decode_preview(buffer.getvalue(), min_side=250)
    assert preview is not None
    reduced, reduction = preview
    assert reduction == 4
    assert reduced.shape == (256, 192, 3)
    block_means = full.reshape(256, 4, 192, 4, 3).mean(axis=(1, 3))
    assert np.abs(reduced.astype(float) - block_means).mean() < 3.0


def test_no_preview_for_small_jpegs_and_other_formats() -> None:
    small = np.full((300, 400, 3), 128, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="JPEG")
    assert decode_preview(buffer.getvalue(), min_side=250) is None
    assert decode_preview(_png_bytes(np.zeros((1000, 1000, 3), dtype=np.uint8)), min_side=250) is None
    assert decode_preview(b"\xff\xd8\xff\xe0 not really a jpeg", min_side=250) is None


def _jpeg() -> bytes:
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"Hello, this is a text file.\n" * 20, "unsupported_format"),
        (_jpeg()[: len(_jpeg()) // 2], "decode_error"),
        (_png_bytes(np.zeros((64, 64, 3), np.uint8))[:60], "decode_error"),
    ],
)
def test_bad_files_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(UnsupportedImageError) as caught:
        decode_image(data)
    assert caught.value.code == code
    assert caught.value.message


def test_cmyk_and_lut_profiles_are_refused() -> None:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    cmyk = _matrix_trc_profile("sRGB", 2.2, colour_space=b"CMYK")
    lut_based = _matrix_trc_profile("sRGB", 2.2).replace(b"rTRC", b"A2B0")
    for profile in (cmyk, lut_based):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", icc_profile=profile)
        with pytest.raises(UnsupportedImageError) as caught:
            decode_image(buffer.getvalue())
        assert caught.value.code == "unsupported_icc_profile"


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(UnsupportedImageError) as caught:
        decode_image(_png_bytes(np.zeros((100, 100, 3), np.uint8)), max_pixels=5000)
    assert caught.value.code == "too_many_pixels"


def test_sixteen_bit_tiff_decodes() -> None:
    pixels = (np.arange(48, dtype=np.uint16).reshape(4, 4, 3) * 1000).astype(np.uint16)
    ok, encoded = cv2.imencode(".tiff", pixels[:, :, ::-1])
    assert ok
    image = decode_image(encoded.tobytes())
    assert image.format == "tiff"
    assert image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, pixels)
