"""Camera RAW and DNG files, demosaiced by LibRaw (through rawpy) to linear camera RGB.

What LibRaw is asked for: no gamma, no automatic brightening, the file's black level subtracted
and its white level mapped to 65535 (``adjust_maximum_thr=0`` keeps LibRaw from lowering the
white level to the brightest pixel it finds), the camera's own RGB (no colour matrix), unit white
balance unless the camera's is asked for, the file's orientation applied. The chart fit then maps
this camera RGB to the chart's reference colours, so the file's colour matrices are not needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import rawpy
import tifffile
from numpy.typing import NDArray

WhiteBalance = Literal["none", "camera"]

DNG_VERSION_TAG = 50706
CFA_PHOTOMETRICS = frozenset({32803, 34892, 32767})
"""Colour filter array, DNG LinearRaw, and Sony's raw photometric."""
TIFF_RAW_SIGNATURES = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")
"""Olympus ORF and Panasonic RW2: TIFF-like headers with their own magic."""


class RawDecodeError(Exception):
    def __init__(
        self, code: Literal["decode_error", "unsupported_format", "too_many_pixels"], message: str
    ) -> None:
        super().__init__(message)
        self.code: Literal["decode_error", "unsupported_format", "too_many_pixels"] = code
        self.message = message


@dataclass(frozen=True)
class LinearRaw:
    pixels: NDArray[np.uint16]
    """(H, W, 3) upright linear camera RGB, black at 0 and the sensor's white level at 65535."""
    camera_model: str
    """Make and model as LibRaw names them (DNGs: the file's Make and Model tags)."""
    kind: str
    """``dng`` or ``raw``."""
    display_matrix: NDArray[np.float64]
    """(3, 3) these pixels to linear sRGB as the camera would show them (see :func:`display_matrix`)."""


def is_raw_signature(data: bytes) -> bool:
    """RAW formats recognised by their first bytes alone (not the TIFF-based ones)."""
    if data[:4] in TIFF_RAW_SIGNATURES or data[:15] == b"FUJIFILMCCD-RAW":
        return True
    return data[4:8] == b"ftyp" and data[8:12] == b"crx "


def tiff_is_raw(data: bytes) -> bool:
    """True for DNG, CR2 and the TIFF-based RAWs (NEF, ARW, PEF...): a DNG version tag, Canon's
    CR2 marker, a colour-filter-array image in an IFD, or a camera's make beside sub-IFDs."""
    if data[8:10] == b"CR":
        return True
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            first = tiff.pages.first
            if DNG_VERSION_TAG in first.tags:
                return True
            if any(int(getattr(page, "photometric", 0)) in CFA_PHOTOMETRICS for page in tiff.pages):
                return True
            return 271 in first.tags and 330 in first.tags
    except Exception:  # a damaged TIFF is not a RAW; the TIFF decoder says what is wrong
        return False


def _camera_model(raw: rawpy.RawPy, data: bytes) -> str:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            tags = tiff.pages.first.tags
            make, model = (str(tags[tag].value).strip() if tag in tags else "" for tag in (271, 272))
            if model:
                return model if model.startswith(make) else f"{make} {model}".strip()
    except Exception:  # not a TIFF container (CR3, RAF...): LibRaw's names below
        pass
    make = getattr(raw, "camera_make", "") or ""
    model = getattr(raw, "camera_model", "") or ""
    return f"{make} {model}".strip() or "unknown camera"


def demosaic_linear(data: bytes, *, max_pixels: int, white_balance: WhiteBalance = "none") -> LinearRaw:
    """Demosaic a RAW file to upright 16-bit linear camera RGB."""
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as error:
        raise RawDecodeError("unsupported_format", f"this RAW format is not supported: {error}") from None
    except (rawpy.LibRawError, OSError, ValueError) as error:
        raise RawDecodeError("decode_error", f"the RAW file is corrupt: {error}") from None
    with raw:
        sizes = raw.sizes
        if sizes.width * sizes.height > max_pixels:
            raise RawDecodeError(
                "too_many_pixels",
                f"{sizes.width}×{sizes.height} pixels is more than the limit of {max_pixels}",
            )
        if raw.num_colors != 3:
            raise RawDecodeError(
                "unsupported_format", f"RAW files with {raw.num_colors} colours are not supported"
            )
        try:
            pixels = raw.postprocess(**_linear_settings(white_balance))
        except (rawpy.LibRawError, OSError, ValueError) as error:
            raise RawDecodeError("decode_error", f"the RAW file could not be demosaiced: {error}") from None
        camera = _camera_model(raw, data)
        matrix = display_matrix(raw, white_balance)
    kind = "dng" if _has_dng_version(data) else "raw"
    return LinearRaw(np.ascontiguousarray(pixels, dtype=np.uint16), camera, kind, matrix)


def display_matrix(raw: rawpy.RawPy, white_balance: WhiteBalance) -> NDArray[np.float64]:
    """Camera RGB as decoded to linear sRGB as the camera would render it: the shot's white balance
    (when the decode left it out), then LibRaw's camera-to-sRGB matrix (the DNG's ColorMatrix or
    LibRaw's table for the model).

    Only for judging colours against the chart's sRGB reference in chart detection: a sensor
    whose channels overlap much (a Foveon) shows raw colours too far from the chart's for that.
    Geometry stays on the raw codes: this matrix multiplies such a sensor's noise several times. The gains are scaled so the smallest is 1: a neutral keeps its strongest channel's
    level, so nothing clips that the raw data did not. Identity parts when the file gives none.
    """
    matrix = np.asarray(raw.color_matrix, dtype=np.float64)[:, :3]
    if not np.all(np.isfinite(matrix)) or not np.any(matrix):
        matrix = np.eye(3)
    gains = np.ones(3)
    if white_balance == "none":
        for multipliers in (raw.camera_whitebalance, raw.daylight_whitebalance):
            candidate = np.asarray(multipliers, dtype=np.float64)[:3]
            if np.all(np.isfinite(candidate)) and np.all(candidate > 0):
                gains = candidate / candidate.min()
                break
    return np.asarray(matrix * gains[None, :], dtype=np.float64)


def displayed(pixels: NDArray[np.uint16], matrix: NDArray[np.float64]) -> NDArray[np.uint8]:
    """Linear camera RGB through a :func:`display_matrix`, as 8-bit codes (the 16-bit result's
    high byte, rounded): the matrix applied to the 16-bit codes, since applying it to their high
    byte multiplies the dark patches' rounding several times for a Foveon, and the scaling down in
    the same pass as the clipping (less than half the time of a shift and a copy at 24 MP)."""
    return np.asarray(cv2.convertScaleAbs(cv2.transform(pixels, matrix), alpha=1 / 256), dtype=np.uint8)


def _linear_settings(white_balance: WhiteBalance) -> dict[str, Any]:
    """LibRaw's settings for linear camera RGB at the file's levels (see the module's docstring)."""
    return {
        "gamma": (1.0, 1.0),
        "no_auto_bright": True,
        "bright": 1.0,
        "output_bps": 16,
        "output_color": rawpy.ColorSpace.raw,
        "use_camera_wb": white_balance == "camera",
        "user_wb": None if white_balance == "camera" else [1.0, 1.0, 1.0, 1.0],
        "adjust_maximum_thr": 0.0,
        "highlight_mode": rawpy.HighlightMode.Clip,
    }


RAW_PREVIEW_REDUCTIONS = (8, 4, 2)


def linear_preview(
    data: bytes, min_side: int, white_balance: WhiteBalance = "none"
) -> tuple[NDArray[np.uint8], int] | None:
    """A RAW file at 1/8, 1/4 or 1/2 scale, upright, as the high byte of the linear camera RGB that
    :func:`demosaic_linear` gives (where chart detection looks for the chart), and that reduction.

    LibRaw's half-size mode takes one pixel per 2×2 Bayer block instead of demosaicing, about a
    seventh of a full decode, and releases the GIL: it runs beside the full decode, as the JPEG
    preview does. The largest reduction whose long side keeps at least ``min_side`` pixels is
    used. None when the file cannot be read this way; the full decode reports why.
    """
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            if raw.num_colors != 3:
                return None
            half = raw.postprocess(half_size=True, **_linear_settings(white_balance))
    except (rawpy.LibRawError, OSError, ValueError):
        return None
    long_side = max(half.shape[:2])
    for reduction in RAW_PREVIEW_REDUCTIONS:
        block = reduction // 2
        if long_side // block >= min_side:
            height, width = half.shape[0] // block, half.shape[1] // block
            whole = half[: height * block, : width * block]
            small = cv2.resize(whole, (width, height), interpolation=cv2.INTER_AREA) if block > 1 else whole
            return np.asarray(np.asarray(small, dtype=np.uint16) >> 8, dtype=np.uint8), reduction
    return None


def _has_dng_version(data: bytes) -> bool:
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return False
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            return DNG_VERSION_TAG in tiff.pages.first.tags
    except Exception:  # LibRaw read it, so it is only not a DNG we can parse as a TIFF
        return False
