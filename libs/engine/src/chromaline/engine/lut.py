"""Lookup tables: sRGB re-encoding of linear light, and 3D LUTs in the .cube format.

Re-encoding quantises clipped linear light to a 16-bit index and looks the encoded code up in a
table, which is several times faster than evaluating the sRGB power law per sample. The index
is chosen so the quantisation error stays below one output code even on the steep toe of the
curve (slope 12.92 near black).

The .cube writer follows the Adobe/Resolve "Cube LUT Specification 1.0": ``TITLE``,
``LUT_3D_SIZE``, ``DOMAIN_MIN``/``DOMAIN_MAX``, then one ``R G B`` line per lattice point with the
red index varying fastest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.icc import COLOUR_SPACES, OutputSpace
from chromaline.engine.image_io import srgb_decode, srgb_encode

BitDepth = Literal[8, 16]
INDEX_LEVELS = 1 << 16
_THREE_DIGITS = np.frombuffer(
    "".join(f"{n:03d}" for n in range(1000)).encode("ascii"), dtype=np.uint8
).reshape(1000, 3)
"""The ASCII digits of 000 to 999, one row each, for the .cube writer."""


@dataclass(frozen=True)
class EncodeIndex:
    """How clipped linear light ``x`` becomes a 16-bit lookup index.

    The index is ``round(x · (INDEX_LEVELS - 1))``, or ``round(√x · (INDEX_LEVELS - 1))`` when ``square_root``:
    the square root spreads the levels over the steep toe of the sRGB curve, which 16-bit output
    needs. 16-bit indices let ``cv2.LUT`` do the look-up in one vectorised pass.
    """

    square_root: bool

    @property
    def scale(self) -> float:
        """Factor on linear light before the optional square root and the rounding."""
        top = float(INDEX_LEVELS - 1)
        return top * top if self.square_root else top


ENCODE_INDEX: dict[BitDepth, EncodeIndex] = {
    8: EncodeIndex(square_root=False),
    16: EncodeIndex(square_root=True),
}
"""Quantisation error: ≤ 0.05 code at 8 bit (linear levels), ≤ 0.75 code at 16 bit (√ levels)."""


@cache
def srgb_encode_table(bit_depth: BitDepth) -> NDArray[np.uint8] | NDArray[np.uint16]:
    """Output code for each lookup index of :data:`ENCODE_INDEX` ``[bit_depth]``."""
    grid = np.linspace(0.0, 1.0, INDEX_LEVELS)
    linear = grid * grid if ENCODE_INDEX[bit_depth].square_root else grid
    max_code = 255 if bit_depth == 8 else 65535
    codes = np.rint(srgb_encode(linear) * max_code)
    table = codes.astype(np.uint8) if bit_depth == 8 else codes.astype(np.uint16)
    table.flags.writeable = False
    return table


@cache
def output_encode_table(bit_depth: BitDepth, space: OutputSpace) -> NDArray[np.uint8] | NDArray[np.uint16]:
    """Like :func:`srgb_encode_table`, for an output space's own tone curve."""
    if space == "srgb":
        return srgb_encode_table(bit_depth)
    grid = np.linspace(0.0, 1.0, INDEX_LEVELS)
    linear = grid * grid if ENCODE_INDEX[bit_depth].square_root else grid
    max_code = 255 if bit_depth == 8 else 65535
    codes = np.rint(COLOUR_SPACES[space].curve.encode(linear) * max_code)
    table = codes.astype(np.uint8) if bit_depth == 8 else codes.astype(np.uint16)
    table.flags.writeable = False
    return table


def cube_text(transform: Callable[[NDArray[np.float64]], NDArray[np.floating]], size: int, title: str) -> str:
    """A .cube 3D LUT of ``transform``, which maps (N, 3) sRGB-encoded values in 0..1 to the same."""
    if not 2 <= size <= 256:
        raise ValueError(f"LUT_3D_SIZE must be within 2..256, got {size}")
    axis = np.linspace(0.0, 1.0, size)
    blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
    lattice = np.stack([red.ravel(), green.ravel(), blue.ravel()], axis=1)
    values = np.clip(np.asarray(transform(lattice), dtype=np.float64), 0.0, 1.0)
    safe_title = title.replace('"', "'").replace("\n", " ")
    header = [
        f'TITLE "{safe_title}"',
        f"LUT_3D_SIZE {size}",
        "DOMAIN_MIN 0.0 0.0 0.0",
        "DOMAIN_MAX 1.0 1.0 1.0",
    ]
    return "\n".join(header) + "\n" + _fixed_six_decimals(values)


def _fixed_six_decimals(values: NDArray[np.float64]) -> str:
    """``"%.6f %.6f %.6f\\n"`` per row of ``values`` (all within 0..1), assembled as bytes.

    A corrector writes a 33³ LUT for every job, and Python's ``%`` formatting took about 20 ms of
    it. Here each value's millionths are split into two groups of three digits, each looked up in
    a table of the 1000 three-digit strings. A value is rounded to the nearest millionth
    (``np.rint``), so one exactly halfway may end one millionth away from ``%``'s choice.
    """
    millionths = np.rint(values * 1e6).astype(np.int32)
    thousandths, units = np.divmod(millionths, 1000)
    whole, thousandths = np.divmod(thousandths, 1000)
    text = np.empty((*values.shape, 9), dtype=np.uint8)
    text[..., 0] = whole + ord("0")
    text[..., 1] = ord(".")
    text[..., 2:5] = _THREE_DIGITS[thousandths]
    text[..., 5:8] = _THREE_DIGITS[units]
    text[..., 8] = ord(" ")
    text[:, -1, 8] = ord("\n")
    return text.tobytes().decode("ascii")


def srgb_transform(
    linear_transform: Callable[[NDArray[np.float64]], NDArray[np.floating]],
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """Wrap a linear-light transform so it takes and returns sRGB-encoded values."""

    def encoded(values: NDArray[np.float64]) -> NDArray[np.float64]:
        linear = np.asarray(linear_transform(srgb_decode(values)), dtype=np.float64)
        return srgb_encode(np.clip(linear, 0.0, 1.0))

    return encoded


class CubeFormatError(ValueError):
    pass


@dataclass(frozen=True)
class Cube:
    title: str
    size: int
    table: NDArray[np.float64]
    """(size, size, size, 3) indexed [blue, green, red]."""

    @classmethod
    def parse(cls, text: str) -> Cube:
        title = ""
        size = 0
        rows: list[tuple[float, float, float]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword = line.split(maxsplit=1)[0]
            if keyword == "TITLE":
                title = line[len("TITLE") :].strip().strip('"')
            elif keyword == "LUT_3D_SIZE":
                size = int(line.split()[1])
            elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
                expected = 0.0 if keyword == "DOMAIN_MIN" else 1.0
                if any(float(v) != expected for v in line.split()[1:]):
                    raise CubeFormatError(f"only the 0..1 domain is supported, got {line!r}")
            else:
                parts = line.split()
                if len(parts) != 3:
                    raise CubeFormatError(f"unexpected line {line!r}")
                rows.append((float(parts[0]), float(parts[1]), float(parts[2])))
        if size < 2 or len(rows) != size**3:
            raise CubeFormatError(f"LUT_3D_SIZE {size} needs {size**3} rows, found {len(rows)}")
        return cls(
            title=title, size=size, table=np.asarray(rows, dtype=np.float64).reshape(size, size, size, 3)
        )

    def evaluate(self, rgb: NDArray[np.float64]) -> NDArray[np.float64]:
        """Trilinear interpolation of (N, 3) values in 0..1."""
        scaled = np.clip(rgb, 0.0, 1.0) * (self.size - 1)
        low = np.minimum(np.floor(scaled).astype(np.intp), self.size - 2)
        frac = scaled - low
        r0, g0, b0 = low[:, 0], low[:, 1], low[:, 2]
        fr, fg, fb = frac[:, 0:1], frac[:, 1:2], frac[:, 2:3]
        result = np.zeros_like(scaled)
        for db, wb in ((0, 1 - fb), (1, fb)):
            for dg, wg in ((0, 1 - fg), (1, fg)):
                for dr, wr in ((0, 1 - fr), (1, fr)):
                    result += wb * wg * wr * self.table[b0 + db, g0 + dg, r0 + dr]
        return result
