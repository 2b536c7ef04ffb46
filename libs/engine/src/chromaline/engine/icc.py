"""RGB colour spaces for output, and ICC v4 matrix/shaper profiles written for them.

A matrix/shaper profile is three tone curves and a 3×3 matrix to the D50 profile connection
space (ICC.1:2022, sections 8.3.4 and 10): enough for every output space offered here and for a
camera input profile fitted from a chart. LittleCMS reads what :func:`matrix_shaper_profile`
writes (the tests transform through it), and so does :func:`chromaline.engine.image_io.parse_icc_profile`.

Primaries and tone curves: sRGB from IEC 61966-2-1, Display P3 from Apple's specification
(DCI-P3 primaries, D65, the sRGB curve), Adobe RGB (1998) from Adobe's specification (gamma
563/256), ProPhoto RGB from ISO 22028-2 (ROMM RGB: D50, gamma 1.8 with a linear toe).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

OutputSpace = Literal["srgb", "display-p3", "adobe-rgb", "prophoto"]
OUTPUT_SPACES: tuple[OutputSpace, ...] = ("srgb", "display-p3", "adobe-rgb", "prophoto")

D50_XYZ = np.array([0.9642, 1.0, 0.8249])
D65_XY = (0.3127, 0.3290)
D65_XYZ = np.array([0.3127 / 0.3290, 1.0, (1.0 - 0.3127 - 0.3290) / 0.3290])
D50_XY = (0.3457, 0.3585)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


@dataclass(frozen=True)
class ToneCurveSpec:
    """An ICC parametric curve of function type 3: linear = ((code·a + b)^g if code ≥ d else c·code)."""

    g: float
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0

    def decode(self, code: NDArray[np.float64]) -> NDArray[np.float64]:
        x = np.clip(code, 0.0, 1.0)
        return np.where(x >= self.d, np.power(np.maximum(self.a * x + self.b, 0.0), self.g), self.c * x)

    def encode(self, linear: NDArray[np.float64]) -> NDArray[np.float64]:
        """The inverse of :meth:`decode` on linear light clipped to 0..1."""
        x = np.clip(linear, 0.0, 1.0)
        toe = self.c * self.d
        power = (np.power(x, 1.0 / self.g) - self.b) / self.a
        linear_part = x / self.c if self.c else np.zeros_like(x)
        return np.clip(np.where(x >= toe, power, linear_part), 0.0, 1.0)


SRGB_CURVE = ToneCurveSpec(g=2.4, a=1 / 1.055, b=0.055 / 1.055, c=1 / 12.92, d=0.04045)
LINEAR_CURVE = ToneCurveSpec(g=1.0)


@dataclass(frozen=True)
class ColourSpace:
    name: str
    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    white: tuple[float, float]
    curve: ToneCurveSpec

    @property
    def to_xyz(self) -> NDArray[np.float64]:
        """Linear RGB to XYZ under the space's own white (Y of white = 1)."""
        return rgb_to_xyz_matrix(self.primaries, self.white)


COLOUR_SPACES: dict[OutputSpace, ColourSpace] = {
    "srgb": ColourSpace("sRGB", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), D65_XY, SRGB_CURVE),
    "display-p3": ColourSpace(
        "Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), D65_XY, SRGB_CURVE
    ),
    "adobe-rgb": ColourSpace(
        "Adobe RGB (1998)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), D65_XY, ToneCurveSpec(g=563 / 256)
    ),
    "prophoto": ColourSpace(
        "ProPhoto RGB",
        ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)),
        D50_XY,
        ToneCurveSpec(g=1.8, c=1 / 16, d=1 / 32),
    ),
}


def _xy_to_xyz(xy: tuple[float, float]) -> NDArray[np.float64]:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(
    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]],
    white: tuple[float, float],
) -> NDArray[np.float64]:
    columns = np.stack([_xy_to_xyz(p) for p in primaries], axis=1)
    scale = np.linalg.solve(columns, _xy_to_xyz(white))
    return np.asarray(columns * scale, dtype=np.float64)


def bradford(source_white: NDArray[np.float64], target_white: NDArray[np.float64]) -> NDArray[np.float64]:
    """Chromatic adaptation between two white XYZs (Bradford cone space)."""
    ratio = (_BRADFORD @ target_white) / (_BRADFORD @ source_white)
    return np.asarray(np.linalg.inv(_BRADFORD) @ np.diag(ratio) @ _BRADFORD, dtype=np.float64)


@cache
def working_to_output(space: OutputSpace) -> NDArray[np.float64]:
    """3×3 from linear working RGB (sRGB primaries, D65) to the output space's linear RGB."""
    target = COLOUR_SPACES[space]
    working = COLOUR_SPACES["srgb"]
    adapt = bradford(_xy_to_xyz(working.white), _xy_to_xyz(target.white))
    matrix = np.linalg.inv(target.to_xyz) @ adapt @ working.to_xyz
    matrix.flags.writeable = False
    return np.asarray(matrix)


def working_to_pcs() -> NDArray[np.float64]:
    """3×3 from linear working RGB to D50 PCS XYZ, as an ICC profile of the working space states it."""
    working = COLOUR_SPACES["srgb"]
    return bradford(_xy_to_xyz(working.white), D50_XYZ) @ working.to_xyz


# ---------------------------------------------------------------------------------------------
# Writing profiles


def _s15f16(values: NDArray[np.float64] | list[float] | tuple[float, ...]) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536.0)) for v in values)


def _xyz_tag(xyz: NDArray[np.float64]) -> bytes:
    return b"XYZ \0\0\0\0" + _s15f16(xyz)


def _para_tag(curve: ToneCurveSpec) -> bytes:
    if curve.c == 0.0 and curve.d == 0.0 and curve.a == 1.0 and curve.b == 0.0:
        return b"para\0\0\0\0" + struct.pack(">HH", 0, 0) + _s15f16([curve.g])
    params = [curve.g, curve.a, curve.b, curve.c, curve.d]
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + _s15f16(params)


def _mluc_tag(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(encoded), 28) + encoded


def _sf32_tag(matrix: NDArray[np.float64]) -> bytes:
    return b"sf32\0\0\0\0" + _s15f16(matrix.ravel())


ProfileClass = Literal["display", "input"]


def matrix_shaper_profile(
    *,
    description: str,
    rgb_to_pcs: NDArray[np.float64],
    curve: ToneCurveSpec,
    adaptation: NDArray[np.float64],
    profile_class: ProfileClass = "display",
    copyright_text: str = "No copyright, use freely",
) -> bytes:
    """An ICC v4.3 RGB matrix/shaper profile.

    ``rgb_to_pcs`` maps the device's linear RGB to D50 PCS XYZ (its columns are the colorant
    tags); ``adaptation`` is the chromatic adaptation from the device's white to D50 (``chad``).
    """
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _mluc_tag(description)),
        (b"cprt", _mluc_tag(copyright_text)),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"chad", _sf32_tag(adaptation)),
        (b"rXYZ", _xyz_tag(rgb_to_pcs[:, 0])),
        (b"gXYZ", _xyz_tag(rgb_to_pcs[:, 1])),
        (b"bXYZ", _xyz_tag(rgb_to_pcs[:, 2])),
    ]
    shared_curve = _para_tag(curve)
    curve_tags = (b"rTRC", b"gTRC", b"bTRC")
    table_size = 4 + 12 * (len(tags) + len(curve_tags))
    offset = 128 + table_size
    table = struct.pack(">I", len(tags) + len(curve_tags))
    body = b""
    for signature, payload in tags:
        table += struct.pack(">4sII", signature, offset + len(body), len(payload))
        body += payload + b"\0" * (-len(payload) % 4)
    curve_offset = offset + len(body)
    for signature in curve_tags:
        table += struct.pack(">4sII", signature, curve_offset, len(shared_curve))
    body += shared_curve + b"\0" * (-len(shared_curve) % 4)
    size = 128 + len(table) + len(body)
    header = struct.pack(
        ">I4sI4s4s4s12s4s4sI4s4s8sI12s4s16s28s",
        size,
        b"\0\0\0\0",
        0x04300000,
        b"mntr" if profile_class == "display" else b"scnr",
        b"RGB ",
        b"XYZ ",
        struct.pack(">6H", 2026, 1, 1, 0, 0, 0),
        b"acsp",
        b"\0\0\0\0",
        0,
        b"\0\0\0\0",
        b"\0\0\0\0",
        b"\0" * 8,
        0,
        _s15f16(D50_XYZ),
        b"\0\0\0\0",
        b"\0" * 16,
        b"\0" * 28,
    )
    return header + table + body


@cache
def output_icc_profile(space: OutputSpace) -> bytes:
    """The matrix/shaper ICC profile of an output space."""
    target = COLOUR_SPACES[space]
    adaptation = bradford(_xy_to_xyz(target.white), D50_XYZ)
    return matrix_shaper_profile(
        description=target.name,
        rgb_to_pcs=adaptation @ target.to_xyz,
        curve=target.curve,
        adaptation=adaptation,
    )
