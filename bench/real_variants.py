"""How detection generalises: variants of the annotated real photos, the annotation carried along.

``uv run --frozen python bench/real_variants.py [--photos N] [--variants a,b] [--seed S]``

Each annotated photo of ``datasets/real`` is turned into the variants below (each one change a
user's own shot plausibly brings), its corners mapped through the same change, encoded as a
quality-92 JPEG (the JPEG variant at 50 to 70) and given to the engine's detection as
``correct_photo`` runs it. Every variant is judged as the originals are (``bench/real_photos.py``):
``right``, ``flagged`` (refused, but the box offered for confirmation is right), ``wrong`` (a wrong
box reported as found, the failure that must never happen) or ``refused``. The table gives the
counts per variant and the median and slowest detection time per photo.

Variants are drawn from a seed per photo and variant, so two runs with the same options judge the
same images.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from bench.real_photos import (
    ANNOTATIONS,
    Annotation,
    PhotoVerdict,
    chromaline_detector,
    judge,
    load_annotations,
)
from chromaline.engine.detect import encoded_rgb8
from chromaline.engine.image_io import decode_image, srgb_decode, srgb_encode

DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "real"
JPEG_QUALITY = 92
LOW_JPEG_QUALITY = (50, 70)
SMALL_GRID_LONG_SIDE_PX = (60.0, 120.0)
"""The patch grid's long side after the ``small`` variant's downscaling."""
SMALL_ANGLE_DEG = (3.0, 12.0)
STEEP_ANGLE_DEG = (20.0, 45.0)
PERSPECTIVE_SHARE = 0.12
"""Largest shift of a photo corner in the ``perspective`` variant, as a share of its side."""
STRONG_PERSPECTIVE_SHARE = 0.25
GLARE_LINEAR = 0.6
"""Peak linear light a glare spot adds (the photo's white is 1)."""
SKIN_RGB = (200, 150, 120)
STOP = 2.0

Pixels = NDArray[np.uint8]
Corners = NDArray[np.float64]


@dataclass(frozen=True)
class Variant:
    pixels: Pixels
    corners: Corners
    jpeg_quality: int = JPEG_QUALITY


Maker = Callable[[Pixels, Corners, np.random.Generator], Variant]


def _srgb_to_linear(rgb: Pixels) -> NDArray[np.float64]:
    return srgb_decode(rgb.astype(np.float64) / 255.0)


def _linear_to_srgb(linear: NDArray[np.float64]) -> Pixels:
    return np.asarray(np.round(srgb_encode(linear) * 255.0), dtype=np.uint8)


def _gains(rgb: Pixels, gains: tuple[float, float, float]) -> Pixels:
    """Channel gains in linear light (an exposure change, or a light source's colour)."""
    table = [
        _linear_to_srgb(_srgb_to_linear(np.arange(256, dtype=np.uint8)) * gain).reshape(256) for gain in gains
    ]
    out = np.empty_like(rgb)
    for channel in range(3):
        out[:, :, channel] = cv2.LUT(rgb[:, :, channel], table[channel])
    return out


def _warp(rgb: Pixels, corners: Corners, matrix: NDArray[np.float64], size: tuple[int, int]) -> Variant:
    """The photo through a homography onto a ``size`` (width, height) canvas, edges replicated."""
    warped = cv2.warpPerspective(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mapped = cv2.perspectiveTransform(corners.reshape(1, 4, 2), matrix).reshape(4, 2)
    return Variant(np.asarray(warped, np.uint8), mapped.astype(np.float64))


def _quarter_turn(turns: int) -> Maker:
    """Clockwise quarter turns: the photo shot in another orientation with no EXIF to undo it."""

    def make(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
        height, width = rgb.shape[:2]
        turned = np.ascontiguousarray(np.rot90(rgb, k=-turns))
        x, y = corners[:, 0], corners[:, 1]
        if turns == 1:
            mapped = np.stack([height - 1 - y, x], axis=1)
        elif turns == 2:
            mapped = np.stack([width - 1 - x, height - 1 - y], axis=1)
        else:
            mapped = np.stack([y, width - 1 - x], axis=1)
        return Variant(turned, mapped)

    return make


def _turn(degrees: tuple[float, float]) -> Maker:
    """Turned by an angle in ``degrees`` either way on a canvas that holds the whole photo: a
    hand-held tilt, or a chart lying askew."""

    def make(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
        angle = float(rng.uniform(*degrees)) * float(rng.choice([-1.0, 1.0]))
        return _turned(rgb, corners, angle)

    return make


def _turned(rgb: Pixels, corners: Corners, angle: float) -> Variant:
    height, width = rgb.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    new_width, new_height = int(width * cos + height * sin), int(width * sin + height * cos)
    rotation[0, 2] += new_width / 2 - width / 2
    rotation[1, 2] += new_height / 2 - height / 2
    return _warp(rgb, corners, np.vstack([rotation, [0.0, 0.0, 1.0]]), (new_width, new_height))


def _grid_long_side(corners: Corners) -> float:
    return float(np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1).max())


def _small(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """The photo downscaled until the patch grid's long side is 60 to 120 px (a chart far away)."""
    target = float(rng.uniform(*SMALL_GRID_LONG_SIDE_PX))
    factor = min(1.0, target / _grid_long_side(corners))
    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return Variant(np.asarray(small, np.uint8), (corners + 0.5) * factor - 0.5)


def _perspective(share: float) -> Maker:
    """A camera off the chart's axis: the photo's corners moved by up to ``share`` of its sides."""

    def make(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
        height, width = rgb.shape[:2]
        source = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
        shift = rng.uniform(-share, share, size=(4, 2)) * np.array([width, height])
        matrix = cv2.getPerspectiveTransform(source, (source + shift).astype(np.float32))
        return _warp(rgb, corners, matrix.astype(np.float64), (width, height))

    return make


def _crop(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """A crop that keeps the chart, with a margin of a tenth to one grid side on each side."""
    height, width = rgb.shape[:2]
    low, high = corners.min(axis=0), corners.max(axis=0)
    side = float((high - low).max())
    left = int(max(0, low[0] - side * rng.uniform(0.1, 1.0)))
    top = int(max(0, low[1] - side * rng.uniform(0.1, 1.0)))
    right = int(min(width, high[0] + side * rng.uniform(0.1, 1.0)))
    bottom = int(min(height, high[1] + side * rng.uniform(0.1, 1.0)))
    cropped = np.ascontiguousarray(rgb[top:bottom, left:right])
    return Variant(cropped, corners - np.array([left, top], dtype=np.float64))


def _exposure(stops: float) -> Maker:
    def make(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
        gain = STOP**stops
        return Variant(_gains(rgb, (gain, gain, gain)), corners)

    return make


def _cast(gains: tuple[float, float, float]) -> Maker:
    """A light source left uncorrected: channel gains in linear light, green kept."""

    def make(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
        return Variant(_gains(rgb, gains), corners)

    return make


def _low_quality_jpeg(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    return Variant(rgb, corners, int(rng.integers(LOW_JPEG_QUALITY[0], LOW_JPEG_QUALITY[1] + 1)))


def _patch_pitch(corners: Corners) -> float:
    return _grid_long_side(corners) / 6


def _blur(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """Slightly out of focus or shaken: a Gaussian of 4 to 8 % of a patch pitch (at least 1 px)."""
    sigma = max(1.0, _patch_pitch(corners) * float(rng.uniform(0.04, 0.08)))
    return Variant(np.asarray(cv2.GaussianBlur(rgb, (0, 0), sigma), np.uint8), corners)


def _noise(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """Sensor-like noise: shot noise growing with the signal plus a read-noise floor, per channel."""
    linear = _srgb_to_linear(rgb)
    full_well = float(rng.uniform(150.0, 400.0))
    shot = rng.standard_normal(linear.shape) * np.sqrt(linear / full_well)
    read = rng.standard_normal(linear.shape) * 0.004
    return Variant(_linear_to_srgb(linear + shot + read), corners)


def _dark_and_noisy(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """Dim light: 1.5 stops under, with the stronger noise of a higher ISO."""
    linear = _srgb_to_linear(rgb) * 0.35
    shot = rng.standard_normal(linear.shape) * np.sqrt(linear / 150.0)
    read = rng.standard_normal(linear.shape) * 0.006
    return Variant(_linear_to_srgb(linear + shot + read), corners)


def _glare(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """A lamp's reflection on a glossy card: a Gaussian spot of light, a tenth to a quarter of the
    grid across, somewhere over the chart."""
    linear = _srgb_to_linear(rgb)
    height, width = rgb.shape[:2]
    span = np.ptp(corners, axis=0)
    centre = corners.mean(axis=0) + rng.uniform(-0.3, 0.3, 2) * span
    radius = float(span.max()) * float(rng.uniform(0.1, 0.25))
    ys, xs = np.mgrid[0:height, 0:width]
    spot = GLARE_LINEAR * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * radius**2))
    return Variant(_linear_to_srgb(linear + spot[:, :, None]), corners)


def _finger(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """A finger holding the chart: from one side of the grid inwards, 0.6 to 1 patch wide and 1.6
    to 2.6 long."""
    out = rgb.copy()
    pitch = _patch_pitch(corners)
    side = int(rng.integers(0, 4))
    start, end = corners[side], corners[(side + 1) % 4]
    edge = start + (end - start) * float(rng.uniform(0.2, 0.8))
    inward = corners.mean(axis=0) - edge
    inward /= np.linalg.norm(inward)
    length = pitch * float(rng.uniform(1.6, 2.6))
    centre = edge + inward * (length / 2 - pitch * 0.3)
    angle = float(np.degrees(np.arctan2(inward[1], inward[0])))
    axes = (int(length / 2), int(pitch * float(rng.uniform(0.3, 0.5))))
    cv2.ellipse(out, (int(centre[0]), int(centre[1])), axes, angle, 0, 360, SKIN_RGB, -1)
    return Variant(out, corners)


def _busy_background(width: int, height: int, rng: np.random.Generator) -> Pixels:
    """Clutter: many overlapping coloured rectangles, discs and lines, lightly blurred."""
    canvas = np.full((height, width, 3), rng.integers(40, 200, size=3), dtype=np.uint8)
    scale = max(width, height)
    for _ in range(220):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.uniform(0.01, 0.12) * scale)
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.rectangle(canvas, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), colour, -1)
        elif shape == 1:
            cv2.circle(canvas, (x, y), size // 2, colour, -1)
        else:
            end = (x + int(rng.integers(-size, size + 1)), y + int(rng.integers(-size, size + 1)))
            cv2.line(canvas, (x, y), end, colour, max(1, size // 10))
    return np.asarray(cv2.GaussianBlur(canvas, (0, 0), 1.0), np.uint8)


def _pasted(rgb: Pixels, corners: Corners, rng: np.random.Generator) -> Variant:
    """The chart and its card (the grid grown by a sixth of its size) pasted into clutter, turned
    and scaled, the card's edge blended over a pixel or two."""
    height, width = rgb.shape[:2]
    centre = corners.mean(axis=0)
    card = centre + (corners - centre) * 1.18
    background = _busy_background(width, height, rng)
    side = _grid_long_side(corners) * float(rng.uniform(0.6, 1.2))
    angle = float(rng.uniform(0, 2 * np.pi))
    place = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height])
    current = card - centre
    scale = side / _grid_long_side(corners)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target_card = (current * scale) @ turn.T + place
    matrix = cv2.getPerspectiveTransform(card.astype(np.float32), target_card.astype(np.float32))
    warped = cv2.warpPerspective(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR)
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(target_card).astype(np.int32), 255)
    alpha = cv2.GaussianBlur(mask, (0, 0), 1.0).astype(np.float32)[:, :, None] / 255.0
    blended = warped.astype(np.float32) * alpha + background.astype(np.float32) * (1 - alpha)
    mapped = cv2.perspectiveTransform(corners.reshape(1, 4, 2), matrix.astype(np.float64)).reshape(4, 2)
    return Variant(np.asarray(np.round(blended), np.uint8), np.asarray(mapped, dtype=np.float64))


ORIGINAL = "original"
"""The photo's own bytes, unchanged: the baseline every variant is compared with."""
VARIANTS: dict[str, Maker | None] = {
    ORIGINAL: None,
    "rotate 90": _quarter_turn(1),
    "rotate 180": _quarter_turn(2),
    "rotate 270": _quarter_turn(3),
    "small angle": _turn(SMALL_ANGLE_DEG),
    "steep angle": _turn(STEEP_ANGLE_DEG),
    "small chart": _small,
    "perspective": _perspective(PERSPECTIVE_SHARE),
    "strong perspective": _perspective(STRONG_PERSPECTIVE_SHARE),
    "crop": _crop,
    "+1 stop": _exposure(1.0),
    "-1 stop": _exposure(-1.0),
    "tungsten cast": _cast((1.0, 0.78, 0.42)),
    "fluorescent cast": _cast((0.82, 1.0, 0.72)),
    "jpeg 50-70": _low_quality_jpeg,
    "blur": _blur,
    "noise": _noise,
    "busy background": _pasted,
    "dark and noisy": _dark_and_noisy,
    "glare": _glare,
    "finger": _finger,
}


def _rng(seed: int, photo: str, variant: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(photo.encode()), zlib.crc32(variant.encode())])


def variant_photo(root: Path, truth: Annotation, variant: str, seed: int) -> tuple[bytes, Annotation]:
    """One variant of an annotated photo as JPEG bytes (the original: its own bytes), with its
    annotation moved alongside."""
    data = (root / truth.name).read_bytes()
    maker = VARIANTS[variant]
    if maker is None:
        return data, truth
    rgb = encoded_rgb8(decode_image(data))
    made = maker(rgb, truth.corners, _rng(seed, truth.name, variant))
    bgr = np.ascontiguousarray(made.pixels[:, :, ::-1])
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, made.jpeg_quality])
    if not ok:
        raise RuntimeError(f"could not encode {truth.name} ({variant})")
    return encoded.tobytes(), Annotation(truth.name, truth.chart, made.corners)


def _save(folder: Path, variant: str, data: bytes, moved: Annotation) -> None:
    """The variant with its annotation drawn (patch 1's corner marked), to check the transforms by eye."""
    bgr = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), dtype=np.uint8)
    points = np.round(moved.corners).astype(np.int32)
    cv2.polylines(bgr, [points], True, (0, 0, 255), 2)
    cv2.circle(bgr, (int(points[0, 0]), int(points[0, 1])), 6, (0, 255, 0), -1)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{variant.replace(' ', '_')}-{Path(moved.name).stem}.png"), bgr)


def judge_variant(
    root: Path, truth: Annotation, variant: str, seed: int, save: Path | None = None
) -> PhotoVerdict:
    data, moved = variant_photo(root, truth, variant, seed)
    if save is not None:
        _save(save, variant, data, moved)
    start = time.perf_counter()
    outcome = chromaline_detector(data)
    return judge(moved, outcome, time.perf_counter() - start)


def _summary(console: Console, results: dict[str, list[PhotoVerdict]]) -> None:
    table = Table(title="Detection on variants of the annotated real photos")
    for column in ("variant", "photos", "right", "flagged", "refused", "wrong", "median s", "max s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant, verdicts in results.items():
        seconds = [v.seconds for v in verdicts]
        counts = [
            sum(1 for v in verdicts if v.verdict == kind) for kind in ("right", "flagged", "refused", "wrong")
        ]
        table.add_row(
            variant,
            str(len(verdicts)),
            *(str(count) for count in counts),
            f"{statistics.median(seconds):.2f}",
            f"{max(seconds):.2f}",
        )
    console.print(table)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of annotated real photos")
    parser.add_argument("--photos", type=int, help="only the first N photos (by name)")
    parser.add_argument("--only", help="only photos whose name contains this text")
    parser.add_argument("--variants", help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="the table only, not every photo")
    parser.add_argument("--save", type=Path, help="write every variant here with its annotation drawn on it")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    console = Console(width=160)
    if not (arguments.real / ANNOTATIONS).is_file():
        console.print(f"{arguments.real / ANNOTATIONS} does not exist; nothing to do.")
        return 0
    names = (
        list(VARIANTS) if arguments.variants is None else [v.strip() for v in arguments.variants.split(",")]
    )
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        console.print(f"unknown variants: {', '.join(unknown)}")
        return 2
    annotations = [
        a for a in load_annotations(arguments.real) if arguments.only is None or arguments.only in a.name
    ]
    annotations = annotations[: arguments.photos]
    results: dict[str, list[PhotoVerdict]] = {}
    for variant in names:
        for truth in annotations:
            verdict = judge_variant(arguments.real, truth, variant, arguments.seed, arguments.save)
            results.setdefault(variant, []).append(verdict)
            if not arguments.quiet or verdict.verdict == "wrong":
                error = "-" if verdict.error is None else f"{verdict.error:.1%}"
                console.print(
                    f"{variant:>16}  {truth.name:<36} {verdict.verdict:<8} {error:>6}  "
                    f"{verdict.seconds:5.2f}s  {verdict.detail}"
                )
    _summary(console, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
