"""DNG Camera Profiles (.dcp) of RAW chart fits, for raw converters that read Adobe's format.

A DCP is one TIFF image file directory without an image, behind the header ``IIRC`` (little-endian,
magic 0x4352), holding the DNG specification's camera-profile tags. Each calibration is a chart
fit under one light: the light (CalibrationIlluminant), its ColorMatrix (XYZ under that light to
camera RGB) and its ForwardMatrix (white-balanced camera RGB to XYZ D50), both from the fit, which
maps linear camera RGB to linear working RGB (sRGB primaries, D65):

- camera RGB → PCS XYZ D50 is ``F = working_to_pcs() @ M`` (as in the ICC input profile);
- the camera neutral ``n`` (camera RGB of a neutral under the chart's light) solves ``F n = D50``;
- ForwardMatrix1 is ``F diag(n)``: it maps the white-balanced (1, 1, 1) to D50, as the
  specification requires;
- ColorMatrix1 is the inverse of ``bradford(D50 → light) @ F``: what a raw converter uses to turn
  a camera neutral into a white balance. Its scale only sets exposure, which readers normalise
  themselves (Adobe's DNG SDK scales it so that D50 XYZ gives 1 in the strongest camera channel);
  it is written already so scaled.

A profile holds one calibration or two under different lights. With two, the warmer light is
calibration 1 (as Adobe's profiles have it: A then D65); a raw converter finds the shot's white
balance from the camera neutral and interpolates both matrices between the two calibrations
linearly in inverse colour temperature (DNG specification 1.6, "Mapping Camera Color Space to
CIE XYZ Space").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.icc import D50_XYZ, bradford, working_to_pcs

CalibrationLight = Literal["A", "D50", "D55", "D65", "D75", "F2"]


@dataclass(frozen=True)
class LightSource:
    exif_code: int
    """The EXIF LightSource value DNG's CalibrationIlluminant tags take."""
    xy: tuple[float, float]
    """CIE 1931 2° chromaticity (CIE 15:2004 Table T.3 and T.8)."""
    cct: float
    """Correlated colour temperature in kelvin (CIE 15:2004), which orders two calibrations."""


CALIBRATION_LIGHTS: dict[CalibrationLight, LightSource] = {
    "A": LightSource(17, (0.44757, 0.40745), 2856.0),
    "D50": LightSource(23, (0.34567, 0.35850), 5003.0),
    "D55": LightSource(20, (0.33242, 0.34743), 5503.0),
    "D65": LightSource(21, (0.31270, 0.32900), 6504.0),
    "D75": LightSource(22, (0.29902, 0.31485), 7504.0),
    "F2": LightSource(14, (0.37208, 0.37529), 4230.0),
}

DCP_HEADER = b"IIRC" + struct.pack("<I", 8)
UNIQUE_CAMERA_MODEL = 50708
COLOR_MATRIX_TAGS = (50721, 50722)
CALIBRATION_ILLUMINANT_TAGS = (50778, 50779)
FORWARD_MATRIX_TAGS = (50964, 50965)
PROFILE_NAME = 50936
PROFILE_EMBED_POLICY = 50941
EMBED_WITHOUT_RESTRICTIONS = 3
RATIONAL_DENOMINATOR = 1_000_000
_ASCII, _SHORT, _LONG, _SRATIONAL = 2, 3, 4, 10


class DcpError(ValueError):
    code = "invalid_dcp_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Calibration:
    camera_to_working: NDArray[np.float64]
    """The chart fit's 3×3 from linear camera RGB to linear working RGB."""
    light: CalibrationLight
    """The light the chart was shot under."""


@dataclass(frozen=True)
class DcpMatrices:
    color_matrix: NDArray[np.float64]
    """XYZ under the calibration light to camera RGB (D50 XYZ gives 1 in the strongest channel)."""
    forward_matrix: NDArray[np.float64]
    """White-balanced camera RGB to XYZ D50."""
    camera_neutral: NDArray[np.float64]
    """Camera RGB of a neutral under the calibration light, strongest channel 1."""


def _xy_to_xyz(xy: tuple[float, float]) -> NDArray[np.float64]:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def dcp_matrices(camera_to_working: NDArray[np.float64], light: CalibrationLight) -> DcpMatrices:
    """The DNG matrices of a 3×3 fit from linear camera RGB to linear working RGB."""
    camera_to_pcs = working_to_pcs() @ np.asarray(camera_to_working, dtype=np.float64)
    if camera_to_pcs.shape != (3, 3) or abs(float(np.linalg.det(camera_to_pcs))) < 1e-12:
        raise DcpError("a DCP needs an invertible 3×3 matrix from camera RGB")
    neutral = np.linalg.solve(camera_to_pcs, D50_XYZ)
    if not np.all(neutral > 0):
        raise DcpError("the fit maps no positive camera RGB to white, so it has no camera neutral")
    white = _xy_to_xyz(CALIBRATION_LIGHTS[light].xy)
    unscaled = np.linalg.inv(bradford(D50_XYZ, white) @ camera_to_pcs)
    return DcpMatrices(
        np.asarray(unscaled / (unscaled @ D50_XYZ).max(), dtype=np.float64),
        np.asarray(camera_to_pcs @ np.diag(neutral), dtype=np.float64),
        np.asarray(neutral / neutral.max(), dtype=np.float64),
    )


def _entry(tag: int, kind: int, count: int, payload: bytes) -> tuple[int, int, int, bytes]:
    return tag, kind, count, payload


def _ascii(tag: int, text: str) -> tuple[int, int, int, bytes]:
    payload = text.encode("ascii", "replace") + b"\0"
    return _entry(tag, _ASCII, len(payload), payload)


def _srationals(tag: int, matrix: NDArray[np.float64]) -> tuple[int, int, int, bytes]:
    values = np.asarray(matrix, dtype=np.float64).ravel()
    if np.abs(values).max() * RATIONAL_DENOMINATOR >= 2**31:
        raise DcpError("a matrix entry is too large for a DNG signed rational")
    pairs = [
        part
        for value in values
        for part in (round(float(value) * RATIONAL_DENOMINATOR), RATIONAL_DENOMINATOR)
    ]
    return _entry(tag, _SRATIONAL, len(values), struct.pack(f"<{len(pairs)}i", *pairs))


def _write_ifd(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """One little-endian IFD after the 8-byte header, values over four bytes placed after it."""
    entries = sorted(entries)
    data_offset = len(DCP_HEADER) + 2 + 12 * len(entries) + 4
    table, data = bytearray(struct.pack("<H", len(entries))), bytearray()
    for tag, kind, count, payload in entries:
        if len(payload) <= 4:
            field = payload.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_offset + len(data))
            data += payload + b"\0" * (len(payload) % 2)
        table += struct.pack("<HHI", tag, kind, count) + field
    table += struct.pack("<I", 0)
    return DCP_HEADER + bytes(table) + bytes(data)


def ordered_calibrations(calibrations: Sequence[Calibration]) -> list[Calibration]:
    """One calibration, or two under different lights with the warmer first."""
    if len(calibrations) not in (1, 2):
        raise DcpError(f"a DCP holds one or two calibrations, not {len(calibrations)}")
    if len(calibrations) == 2 and calibrations[0].light == calibrations[1].light:
        raise DcpError(
            f"both calibrations are under {calibrations[0].light}: a second one needs another light"
        )
    return sorted(calibrations, key=lambda calibration: CALIBRATION_LIGHTS[calibration.light].cct)


def camera_profile_dcp(calibrations: Sequence[Calibration], *, camera_model: str, profile_name: str) -> bytes:
    """A DCP for ``camera_model`` (the DNG UniqueCameraModel raw converters match profiles by)."""
    entries = [
        _ascii(UNIQUE_CAMERA_MODEL, camera_model),
        _ascii(PROFILE_NAME, profile_name),
        _entry(PROFILE_EMBED_POLICY, _LONG, 1, struct.pack("<I", EMBED_WITHOUT_RESTRICTIONS)),
    ]
    for index, calibration in enumerate(ordered_calibrations(calibrations)):
        matrices = dcp_matrices(calibration.camera_to_working, calibration.light)
        code = CALIBRATION_LIGHTS[calibration.light].exif_code
        entries += [
            _srationals(COLOR_MATRIX_TAGS[index], matrices.color_matrix),
            _entry(CALIBRATION_ILLUMINANT_TAGS[index], _SHORT, 1, struct.pack("<H", code)),
            _srationals(FORWARD_MATRIX_TAGS[index], matrices.forward_matrix),
        ]
    return _write_ifd(entries)
