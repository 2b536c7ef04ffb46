"""Decoding photographs and bringing them to linear light in the working space.

Pixels are decoded with OpenCV (fast, 8- and 16-bit); Pillow and tifffile only read the
metadata (ICC profile, EXIF). Linearisation goes through per-channel lookup tables built
once per (profile, bit depth) and a single 3×3 matrix to the working space (sRGB primaries,
D65), so a 12 MP photo linearises in tens of milliseconds.
"""

from __future__ import annotations

import io
import math
import numbers
import re
import struct
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal, cast

import cv2
import numpy as np
import pillow_heif
import tifffile
from numpy.typing import NDArray
from PIL import Image

from chromaline.engine.icc import output_icc_profile
from chromaline.engine.raw import (
    RawDecodeError,
    WhiteBalance,
    demosaic_linear,
    displayed,
    is_raw_signature,
    linear_preview,
    tiff_is_raw,
)

pillow_heif.register_heif_opener()

DEFAULT_MAX_PIXELS = 120_000_000
"""Largest image we decode; anything bigger is treated as a decompression bomb."""

ErrorCode = Literal["unsupported_format", "decode_error", "unsupported_icc_profile", "too_many_pixels"]

_D50_XYZ = np.array([0.9642, 1.0, 0.8249])
_D65_XYZ = np.array([0.95047, 1.0, 1.08883])
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]],
)
_XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


class UnsupportedImageError(Exception):
    """The bytes are not an image we can work on; ``code`` says why in machine terms."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    pixels: NDArray[np.uint8] | NDArray[np.uint16]
    """(H, W, 3) RGB, still encoded (not linear)."""
    bit_depth: Literal[8, 16]
    transfer: str
    """Human-readable description of the encoding, e.g. ``sRGB (assumed)``."""
    icc_profile: bytes | None
    exif: bytes | None
    format: str
    linear_camera: bool = False
    """True for demosaiced RAW: the codes are linear camera RGB (no curve, no matrix)."""
    camera_model: str | None = None
    """Make and model, when the file says (RAW files always do)."""
    display_matrix: NDArray[np.float64] | None = None
    """RAW files: linear camera RGB to linear sRGB as the camera would show it
    (:func:`~chromaline.engine.raw.display_matrix`), for chart detection's colour checks only."""

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def max_code(self) -> int:
        return 255 if self.bit_depth == 8 else 65535


# ---------------------------------------------------------------------------------------------
# Tone curves and ICC matrix/TRC profiles


def srgb_decode(encoded: NDArray[np.float64]) -> NDArray[np.float64]:
    """The sRGB (IEC 61966-2-1) decoding function on values in 0..1."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def srgb_encode(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    """The sRGB encoding function on values in 0..1 (clipped)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


@dataclass(frozen=True)
class ToneCurve:
    """An ICC ``curv`` or ``para`` tone curve, decoding 0..1 codes to 0..1 linear."""

    kind: Literal["identity", "gamma", "table", "parametric"]
    gamma: float = 1.0
    table: tuple[float, ...] = ()
    params: tuple[float, ...] = ()
    function_type: int = 0

    def evaluate(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.kind == "identity":
            return x.copy()
        if self.kind == "gamma":
            return np.asarray(np.power(x, self.gamma), dtype=np.float64)
        if self.kind == "table":
            grid = np.linspace(0.0, 1.0, len(self.table))
            return np.asarray(np.interp(x, grid, np.asarray(self.table)), dtype=np.float64)
        return _parametric(self.function_type, self.params, x)


def _parametric(function_type: int, p: tuple[float, ...], x: NDArray[np.float64]) -> NDArray[np.float64]:
    g = p[0]
    if function_type == 0:
        return np.power(x, g)
    a, b = p[1], p[2]
    base = np.maximum(a * x + b, 0.0)
    if function_type == 1:
        return np.where(x >= -b / a, np.power(base, g), 0.0)
    c = p[3]
    if function_type == 2:
        return np.where(x >= -b / a, np.power(base, g) + c, c)
    d = p[4]
    if function_type == 3:
        return np.where(x >= d, np.power(base, g), c * x)
    e, f = p[5], p[6]
    return np.where(x >= d, np.power(base, g) + e, c * x + f)


@dataclass(frozen=True)
class SourceEncoding:
    """How an image's codes map to linear working-space light."""

    description: str
    curves: tuple[ToneCurve, ToneCurve, ToneCurve] | None
    """None means the sRGB curve."""
    to_working: NDArray[np.float64] | None
    """3×3 matrix from the source's linear RGB to working-space linear RGB; None for identity."""


SRGB_ENCODING = SourceEncoding("sRGB (assumed)", None, None)
_IDENTITY = ToneCurve("identity")
LINEAR_CAMERA_ENCODING = SourceEncoding("linear camera RGB (RAW)", (_IDENTITY, _IDENTITY, _IDENTITY), None)


def _bradford(source_white: NDArray[np.float64], target_white: NDArray[np.float64]) -> NDArray[np.float64]:
    source_cone = _BRADFORD @ source_white
    target_cone = _BRADFORD @ target_white
    return np.asarray(np.linalg.inv(_BRADFORD) @ np.diag(target_cone / source_cone) @ _BRADFORD)


def _s15f16(data: bytes, offset: int, count: int) -> tuple[float, ...]:
    return tuple(v / 65536.0 for v in struct.unpack_from(f">{count}i", data, offset))


def _read_curve(data: bytes, offset: int) -> ToneCurve:
    signature = data[offset : offset + 4]
    if signature == b"curv":
        (count,) = struct.unpack_from(">I", data, offset + 8)
        if count == 0:
            return ToneCurve("identity")
        if count == 1:
            (raw,) = struct.unpack_from(">H", data, offset + 12)
            return ToneCurve("gamma", gamma=raw / 256.0)
        values = struct.unpack_from(f">{count}H", data, offset + 12)
        return ToneCurve("table", table=tuple(v / 65535.0 for v in values))
    if signature == b"para":
        (function_type,) = struct.unpack_from(">H", data, offset + 8)
        param_counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if function_type not in param_counts:
            raise UnsupportedImageError(
                "unsupported_icc_profile", f"unknown parametric curve type {function_type}"
            )
        params = _s15f16(data, offset + 12, param_counts[function_type])
        return ToneCurve("parametric", params=params, function_type=function_type)
    raise UnsupportedImageError(
        "unsupported_icc_profile", f"tone curve of type {signature!r} is not supported (only curv/para)"
    )


def _read_description(data: bytes, tags: dict[bytes, tuple[int, int]]) -> str:
    if b"desc" not in tags:
        return "embedded ICC profile"
    offset, _ = tags[b"desc"]
    kind = data[offset : offset + 4]
    if kind == b"desc":
        (length,) = struct.unpack_from(">I", data, offset + 8)
        return data[offset + 12 : offset + 12 + length].split(b"\0", 1)[0].decode("latin-1", "replace")
    if kind == b"mluc":
        (count,) = struct.unpack_from(">I", data, offset + 8)
        if count:
            length, string_offset = struct.unpack_from(">II", data, offset + 16 + 4)
            raw = data[offset + string_offset : offset + string_offset + length]
            return raw.decode("utf-16-be", "replace")
    return "embedded ICC profile"


@lru_cache(maxsize=32)
def parse_icc_profile(profile: bytes) -> SourceEncoding:
    """Read a matrix/TRC RGB profile; refuse anything we cannot turn into curves plus a 3×3 matrix,
    and a profile whose curves or colorants no camera or editor writes (:func:`_check_curves`,
    :func:`_check_colorants`)."""
    try:
        return _parsed_icc_profile(profile)
    except (struct.error, ValueError, ZeroDivisionError, OverflowError, np.linalg.LinAlgError):
        raise UnsupportedImageError(
            "unsupported_icc_profile", "the embedded ICC profile is malformed"
        ) from None


MID_GREY_RANGE = (0.5**10, 0.5**0.1)
"""Where a tone curve may take code 0.5: between gammas of 10 and 0.1, around every real one
(1.0 linear, 1.8 ProPhoto, 2.2, sRGB's, 3 for L*)."""
MAX_COLORANT_CONDITION = 1e3
WHITE_TOLERANCE = 0.2
"""How far (in XYZ, Y of white 1) the colorants' sum may be from the D50 white they are adapted to."""


def _check_curves(curves: tuple[ToneCurve, ToneCurve, ToneCurve]) -> None:
    """Refuse curves that do not rise from black to white (a gamma of 0, a constant table, NaN):
    such a profile turns the photo into garbage that is then corrected and reported as done."""
    codes = np.linspace(0.0, 1.0, 256)
    for curve in curves:
        with np.errstate(all="ignore"):
            values = curve.evaluate(codes)
        rising = np.all(np.isfinite(values)) and np.all(np.diff(values) >= -1e-3) and values[-1] > values[0]
        middle = float(curve.evaluate(np.array([0.5]))[0]) if rising else math.nan
        if not (rising and MID_GREY_RANGE[0] <= middle <= MID_GREY_RANGE[1]):
            raise UnsupportedImageError(
                "unsupported_icc_profile",
                "the embedded ICC profile's tone curves do not rise from black to white",
            )


def _check_colorants(colorants: NDArray[np.float64]) -> None:
    """Refuse colorants (columns: red, green, blue in D50 XYZ) that are singular, ill-conditioned or
    do not add up to a white."""
    white = colorants.sum(axis=1)
    if (
        not np.all(np.isfinite(colorants))
        or np.linalg.cond(colorants) > MAX_COLORANT_CONDITION
        or np.abs(white - _D50_XYZ).max() > WHITE_TOLERANCE
    ):
        raise UnsupportedImageError(
            "unsupported_icc_profile", "the embedded ICC profile's colorants do not describe an RGB space"
        )


def _parsed_icc_profile(profile: bytes) -> SourceEncoding:
    if len(profile) < 132 or profile[36:40] != b"acsp":
        raise UnsupportedImageError("unsupported_icc_profile", "the embedded ICC profile is malformed")
    colour_space = profile[16:20]
    if colour_space != b"RGB ":
        raise UnsupportedImageError(
            "unsupported_icc_profile",
            f"embedded ICC profile is for {colour_space.decode('latin-1').strip()} data; only RGB is supported",
        )
    (tag_count,) = struct.unpack_from(">I", profile, 128)
    tags: dict[bytes, tuple[int, int]] = {}
    for i in range(tag_count):
        signature, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * i)
        if offset + size > len(profile):
            raise UnsupportedImageError("unsupported_icc_profile", "the embedded ICC profile is truncated")
        tags[signature] = (offset, size)
    needed = [b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"]
    if any(tag not in tags for tag in needed):
        raise UnsupportedImageError(
            "unsupported_icc_profile",
            "embedded ICC profile is LUT-based; only matrix/TRC RGB profiles are supported",
        )
    columns = [_s15f16(profile, tags[tag][0] + 8, 3) for tag in needed[:3]]
    source_to_pcs = np.array(columns, dtype=np.float64).T
    curves = (
        _read_curve(profile, tags[b"rTRC"][0]),
        _read_curve(profile, tags[b"gTRC"][0]),
        _read_curve(profile, tags[b"bTRC"][0]),
    )
    _check_curves(curves)
    _check_colorants(source_to_pcs)
    # Colorants are stored adapted to the D50 PCS; bring them to D65 with Bradford.
    to_working = _XYZ_TO_SRGB @ _bradford(_D50_XYZ, _D65_XYZ) @ source_to_pcs
    return SourceEncoding(f"ICC: {_read_description(profile, tags)}", curves, to_working)


# ---------------------------------------------------------------------------------------------
# Decoding

_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
SUPPORTED_FORMATS = "JPEG, PNG, TIFF, WebP, HEIC/HEIF, AVIF, DNG or camera RAW"


def _iso_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file's ``ftyp`` box."""
    (box_size,) = struct.unpack_from(">I", data, 0)
    end = min(max(box_size, 16), len(data), 256)
    return {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}


def sniff_format(data: bytes) -> str:
    """The container by its first bytes: jpeg, png, tiff, webp, heif, avif or raw (DNG and the
    TIFF-based RAWs are told apart from plain TIFF by their tags)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if is_raw_signature(data):
        return "raw"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "raw" if tiff_is_raw(data) else "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) >= 16 and data[4:8] == b"ftyp":
        brands = _iso_brands(data)
        if brands & AVIF_BRANDS:
            return "avif"
        if brands & HEIF_BRANDS:
            return "heif"
    raise UnsupportedImageError("unsupported_format", f"not a {SUPPORTED_FORMATS} image")


def _jpeg_is_complete(data: bytes) -> bool:
    """Walk the JPEG's segments to its end-of-image marker; truncated files never reach it."""
    position = 2
    size = len(data)
    while position + 2 <= size:
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        if position + 4 > size:
            return False
        (length,) = struct.unpack_from(">H", data, position + 2)
        position += 2 + length
        if marker == 0xDA:
            found = _JPEG_MARKER.search(data, position)
            if found is None:
                return False
            position = found.start()
    return False


def exif_orientation(value: object) -> int:
    """The EXIF orientation tag's value as 1..8; 1 (as shot) for a missing or unreadable one (text,
    NaN, a fraction over zero, out of range): a damaged tag is no reason to refuse the photo."""
    try:
        orientation = int(float(value)) if isinstance(value, numbers.Real) else 1
    except (ValueError, OverflowError, ZeroDivisionError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _orient(pixels: NDArray[np.generic], orientation: int) -> NDArray[np.generic]:
    """Apply an EXIF orientation (1..8) so the pixels are upright."""
    transforms = {
        2: lambda p: p[:, ::-1],
        3: lambda p: p[::-1, ::-1],
        4: lambda p: p[::-1],
        5: lambda p: p.transpose(1, 0, 2),
        6: lambda p: np.rot90(p, -1),
        7: lambda p: np.rot90(p, 1)[::-1],
        8: lambda p: np.rot90(p, 1),
    }
    transform = transforms.get(orientation)
    return pixels if transform is None else np.ascontiguousarray(transform(pixels))


@dataclass(frozen=True)
class _Metadata:
    size: tuple[int, int] | None
    icc_profile: bytes | None
    exif: bytes | None
    orientation: int


def _read_metadata(data: bytes, image_format: str) -> _Metadata:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                exif = image.getexif()
                orientation = exif_orientation(exif.get(0x0112))
                exif_bytes = image.info.get("exif")
                if exif_bytes is None and len(exif):
                    exif_bytes = exif.tobytes()
                return _Metadata(image.size, image.info.get("icc_profile"), exif_bytes, orientation)
    except Image.DecompressionBombError as error:
        raise UnsupportedImageError("too_many_pixels", str(error)) from error
    except (OSError, ValueError, SyntaxError, struct.error):
        if image_format != "tiff":
            raise UnsupportedImageError(
                "decode_error", f"the {image_format.upper()} file is corrupt"
            ) from None
    return _read_tiff_metadata(data)


def _read_tiff_metadata(data: bytes) -> _Metadata:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            page = tiff.pages.first
            icc_tag = page.tags.get(34675)
            orientation_tag = page.tags.get(274)
            return _Metadata(
                (int(page.imagewidth), int(page.imagelength)),
                bytes(icc_tag.value) if icc_tag is not None else None,
                None,
                exif_orientation(orientation_tag.value if orientation_tag is not None else None),
            )
    except Exception as error:  # tifffile raises many unrelated types on damaged files
        raise UnsupportedImageError("decode_error", f"the TIFF file is corrupt: {error}") from error


def _to_rgb(pixels: NDArray[np.generic]) -> NDArray[np.generic]:
    if pixels.ndim == 2:
        return np.ascontiguousarray(np.repeat(pixels[:, :, None], 3, axis=2))
    channels = pixels.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if channels == 2:
        return np.ascontiguousarray(np.repeat(pixels[:, :, :1], 3, axis=2))
    if channels in (3, 4):
        # OpenCV swaps the channels six times faster than a NumPy copy of the reversed view.
        conversion = cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB
        return np.asarray(cv2.cvtColor(cast("NDArray[np.integer[Any]]", pixels), conversion))
    raise UnsupportedImageError("unsupported_format", f"images with {channels} channels are not supported")


JPEG_READ = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
"""A JPEG (colour or grey) decoded straight to RGB, turned upright from its EXIF afterwards: on a
12 MP photo the decoder's own RGB output saves the 6 ms a channel swap after it took."""


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, white_balance: WhiteBalance = "none"
) -> DecodedImage:
    """Decode a photo to upright RGB, keeping its ICC profile and EXIF.

    JPEG, PNG and TIFF (8 or 16 bit) go through OpenCV; WebP, HEIC/HEIF and AVIF through Pillow;
    DNG and camera RAW through LibRaw, to linear camera RGB (``white_balance`` says whether the
    camera's white balance is applied).
    """
    image_format = sniff_format(data)
    if image_format == "raw":
        try:
            return _decode_raw(data, max_pixels, white_balance)
        except UnsupportedImageError as error:
            # A TIFF taken for a RAW only by its camera make and sub-IFDs, that LibRaw does not
            # know, is decoded as the TIFF it may well be.
            if error.code != "unsupported_format" or data[:4] not in (b"II*\x00", b"MM\x00*"):
                raise
            image_format = "tiff"
    if image_format in PILLOW_FORMATS:
        return _decode_with_pillow(data, image_format, max_pixels)
    metadata = _read_metadata(data, image_format)
    if metadata.size is not None and metadata.size[0] * metadata.size[1] > max_pixels:
        width, height = metadata.size
        raise UnsupportedImageError(
            "too_many_pixels", f"{width}×{height} pixels is more than the limit of {max_pixels}"
        )
    encoding = parse_icc_profile(metadata.icc_profile) if metadata.icc_profile else SRGB_ENCODING
    if image_format == "jpeg" and not _jpeg_is_complete(data):
        raise UnsupportedImageError("decode_error", "the JPEG file is truncated")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if image_format == "jpeg":
        decoded = cv2.imdecode(buffer, JPEG_READ)
    else:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if decoded is None:
        raise UnsupportedImageError("decode_error", f"the {image_format.upper()} file could not be decoded")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise UnsupportedImageError("unsupported_format", f"{decoded.dtype} samples are not supported")
    rgb = decoded if image_format == "jpeg" else _to_rgb(decoded)
    pixels = _orient(rgb, metadata.orientation)
    return DecodedImage(
        pixels=pixels,  # type: ignore[arg-type]  # dtype checked above
        bit_depth=8 if pixels.dtype == np.uint8 else 16,
        transfer=encoding.description,
        icc_profile=metadata.icc_profile,
        exif=metadata.exif,
        format=image_format,
    )


PILLOW_FORMATS = {"webp": "WEBP", "heif": "HEIF", "avif": "AVIF"}
NCLX_DISPLAY_P3 = (12, 13)
"""HEIF colour description (primaries, transfer): DCI-P3 primaries with D65 and the sRGB curve,
what phones write when they describe Display P3 without an ICC profile."""


def _nclx_profile(info: dict[Any, Any]) -> bytes | None:
    nclx = info.get("nclx_profile")
    if not isinstance(nclx, dict):
        return None
    described = (nclx.get("color_primaries"), nclx.get("transfer_characteristics"))
    return output_icc_profile("display-p3") if described == NCLX_DISPLAY_P3 else None


def _decode_with_pillow(data: bytes, image_format: str, max_pixels: int) -> DecodedImage:
    """WebP, HEIC/HEIF and AVIF, decoded to 8-bit RGB; the EXIF orientation applied here
    (libheif has already applied the container's rotation and resets the tag to 1)."""
    name = image_format.upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[image_format]]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise UnsupportedImageError(
                        "too_many_pixels", f"{width}×{height} pixels is more than the limit of {max_pixels}"
                    )
                exif = image.getexif()
                orientation = exif_orientation(exif.get(0x0112))
                exif_bytes = image.info.get("exif") or (exif.tobytes() if len(exif) else None)
                icc_profile = image.info.get("icc_profile") or _nclx_profile(image.info)
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except UnsupportedImageError:
        raise
    except Image.DecompressionBombError as error:
        raise UnsupportedImageError("too_many_pixels", str(error)) from error
    except (OSError, ValueError, SyntaxError, struct.error, RuntimeError) as error:
        raise UnsupportedImageError("decode_error", f"the {name} file is corrupt: {error}") from None
    encoding = parse_icc_profile(icc_profile) if icc_profile else SRGB_ENCODING
    return DecodedImage(
        pixels=np.asarray(_orient(np.ascontiguousarray(rgb), orientation), dtype=np.uint8),
        bit_depth=8,
        transfer=encoding.description,
        icc_profile=icc_profile or None,
        exif=exif_bytes,
        format=image_format,
    )


def _decode_raw(data: bytes, max_pixels: int, white_balance: WhiteBalance) -> DecodedImage:
    try:
        raw = demosaic_linear(data, max_pixels=max_pixels, white_balance=white_balance)
    except RawDecodeError as error:
        raise UnsupportedImageError(error.code, error.message) from None
    return DecodedImage(
        pixels=raw.pixels,
        bit_depth=16,
        transfer=LINEAR_CAMERA_ENCODING.description,
        icc_profile=None,
        exif=None,
        format=raw.kind,
        linear_camera=True,
        camera_model=raw.camera_model,
        display_matrix=raw.display_matrix,
    )


def shown_pixels(image: DecodedImage) -> NDArray[np.uint8] | NDArray[np.uint16]:
    """The codes whose colours chart detection compares with the chart's: the image's own, or for a
    RAW file its camera RGB as the camera would show it (:func:`~chromaline.engine.raw.displayed`)."""
    if image.display_matrix is None or image.pixels.dtype != np.uint16:
        return image.pixels
    return displayed(np.asarray(image.pixels, dtype=np.uint16), image.display_matrix)


_REDUCED_JPEG_READS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def decode_preview(
    data: bytes, min_side: int, white_balance: WhiteBalance = "none"
) -> tuple[NDArray[np.uint8], int] | None:
    """A JPEG or a RAW file decoded at 1/8, 1/4 or 1/2 scale, upright 8-bit RGB as chart
    detection sees the full decode, and that reduction.

    The largest reduction whose long side keeps at least ``min_side`` pixels is used: libjpeg
    scales in the DCT, so this takes about half a full decode and can run beside it (RAW files:
    :func:`~chromaline.engine.raw.linear_preview`). None for other formats, when the image is too
    small to reduce, or cannot be read; the full decode reports why.
    """
    if _is_raw_container(data):
        return linear_preview(data, min_side, white_balance)
    if data[:3] != b"\xff\xd8\xff":
        return None
    try:
        metadata = _read_metadata(data, "jpeg")
    except UnsupportedImageError:
        return None
    if metadata.size is None:
        return None
    long_side = max(metadata.size)
    for reduction, flag in _REDUCED_JPEG_READS:
        if long_side // reduction >= min_side:
            buffer = np.frombuffer(data, dtype=np.uint8)
            decoded = cv2.imdecode(buffer, flag | cv2.IMREAD_IGNORE_ORIENTATION)
            if decoded is None or decoded.ndim != 3:
                return None
            upright = _orient(np.ascontiguousarray(decoded[:, :, ::-1]), metadata.orientation)
            return np.asarray(upright, dtype=np.uint8), reduction
    return None


def _is_raw_container(data: bytes) -> bool:
    try:
        return sniff_format(data) == "raw"
    except UnsupportedImageError:
        return False


def reduced(image: DecodedImage, long_side: int) -> DecodedImage:
    """The image area-averaged down so its long side is at most ``long_side`` (codes, not light:
    for previews and overlays, never for measuring)."""
    factor = max(image.width, image.height) / long_side
    if factor <= 1.0:
        return image
    if factor > 2.0:
        # Whole blocks: OpenCV averages them several times faster than fractional areas, and
        # the long side only gets shorter.
        blocks = int(np.ceil(factor))
        size = (max(1, image.width // blocks), max(1, image.height // blocks))
        whole = image.pixels[: size[1] * blocks, : size[0] * blocks]
        pixels = cv2.resize(whole, size, interpolation=cv2.INTER_AREA)
    else:
        size = (max(1, round(image.width / factor)), max(1, round(image.height / factor)))
        pixels = cv2.resize(image.pixels, size, interpolation=cv2.INTER_AREA)
    if image.bit_depth == 8:
        return replace(image, pixels=np.asarray(pixels, dtype=np.uint8))
    return replace(image, pixels=np.asarray(pixels, dtype=np.uint16))


# ---------------------------------------------------------------------------------------------
# Linearisation


def _encoding(profile: bytes | None, linear_camera: bool) -> SourceEncoding:
    if linear_camera:
        return LINEAR_CAMERA_ENCODING
    return parse_icc_profile(profile) if profile else SRGB_ENCODING


def source_encoding(image: DecodedImage) -> SourceEncoding:
    return _encoding(image.icc_profile, image.linear_camera)


@lru_cache(maxsize=16)
def _lookup_tables(profile: bytes | None, bit_depth: int, linear_camera: bool = False) -> NDArray[np.float32]:
    encoding = _encoding(profile, linear_camera)
    codes = np.linspace(0.0, 1.0, 256 if bit_depth == 8 else 65536)
    if encoding.curves is None:
        curve = srgb_decode(codes)
        return np.stack([curve, curve, curve]).astype(np.float32)
    return np.stack([curve.evaluate(codes) for curve in encoding.curves]).astype(np.float32)


@lru_cache(maxsize=16)
def _one_curve(profile: bytes | None, bit_depth: int, linear_camera: bool) -> bool:
    """True when the three channels share one tone curve."""
    tables = _lookup_tables(profile, bit_depth, linear_camera)
    return bool(np.array_equal(tables[0], tables[1]) and np.array_equal(tables[0], tables[2]))


def channel_tables(image: DecodedImage) -> NDArray[np.float32] | None:
    """(3, codes) linear light of every code of each channel, when each channel's linear value
    depends on its own code alone (no matrix to the working space); None otherwise."""
    if source_encoding(image).to_working is not None:
        return None
    return _lookup_tables(image.icc_profile, image.bit_depth, image.linear_camera)


def never_negative(image: DecodedImage) -> bool:
    """True when no pixel of ``image`` can linearise to negative light: each channel's own curve,
    none below zero, and no matrix after it."""
    return _curves_never_negative(image.icc_profile, image.bit_depth, image.linear_camera)


@lru_cache(maxsize=16)
def _curves_never_negative(profile: bytes | None, bit_depth: int, linear_camera: bool) -> bool:
    encoding = _encoding(profile, linear_camera)
    tables = _lookup_tables(profile, bit_depth, linear_camera)
    return encoding.to_working is None and float(tables.min()) >= 0.0


def linearise_pixels(
    image: DecodedImage, pixels: NDArray[np.uint8] | NDArray[np.uint16]
) -> NDArray[np.float32]:
    """Linear working-space light for some of ``image``'s pixels (any shape ending in 3)."""
    encoding = source_encoding(image)
    shape = pixels.shape
    if image.linear_camera:
        return np.multiply(pixels, np.float32(1.0 / image.max_code), dtype=np.float32)
    tables = _lookup_tables(image.icc_profile, image.bit_depth, image.linear_camera)
    if pixels.dtype == np.uint8 and pixels.ndim == 3:
        # One table for all three channels when their curves agree: OpenCV's single-table path is
        # more than twice as fast as its per-channel one.
        one_curve = _one_curve(image.icc_profile, image.bit_depth, image.linear_camera)
        lut = tables[0] if one_curve else tables.T.reshape(256, 1, 3)
        linear = cv2.LUT(np.ascontiguousarray(pixels), np.ascontiguousarray(lut))
    else:
        flat = pixels.reshape(-1, 3)
        linear = np.empty(flat.shape, dtype=np.float32)
        for channel in range(3):
            np.take(tables[channel], flat[:, channel], out=linear[:, channel])
        linear = linear.reshape(shape)
    if encoding.to_working is not None:
        matrix = encoding.to_working.astype(np.float32)
        linear = cv2.transform(linear.reshape(-1, 1, 3), matrix).reshape(shape)
    return np.asarray(linear, dtype=np.float32)


def to_linear_rows(image: DecodedImage, start: int, stop: int) -> NDArray[np.float32]:
    """Linear working-space light for rows ``start:stop``, to work through large images in bands."""
    return linearise_pixels(image, image.pixels[start:stop])


def to_linear(image: DecodedImage) -> NDArray[np.float32]:
    """The whole image as linear light in the working space (sRGB primaries, D65), float32."""
    return to_linear_rows(image, 0, image.height)
