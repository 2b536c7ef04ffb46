"""Photos of custom charts with known truth, for tests, the demo and the benches.

A custom chart has reference values but no spectra, so it cannot go through the spectral renderer
of :mod:`chromaline.engine.synthetic`. Instead each patch's reference linear RGB is passed through
a known camera: a 3×3 that mixes the channels and casts the light, then the sRGB curve, noise and
8-bit JPEG. The chart lies in perspective on a textured background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.geometry import homography_from_points, map_points
from chromaline.engine.image_io import srgb_encode

WARM_CAMERA = np.array([[1.05, 0.12, 0.02], [0.06, 0.88, 0.04], [0.01, 0.08, 0.62]])
"""A camera under warm light: red up, blue down, some crosstalk between channels."""
BODY_LINEAR = 0.02
PX_PER_PATCH = 48


@dataclass(frozen=True)
class CustomChartPhoto:
    image_bytes: bytes
    corners: NDArray[np.float64]
    """(4, 2) the patch grid's corners, clockwise from the corner next to patch 0."""
    truth_linear: NDArray[np.float64]
    """(N, 3) each patch's linear RGB as photographed (before noise and JPEG)."""


def _chart_texture(
    definition: ChartDefinition, patches: NDArray[np.float64]
) -> tuple[NDArray[np.float32], float]:
    layout = definition.layout
    px_per_mm = PX_PER_PATCH / layout.patch_mm
    width, height = (round(side * px_per_mm) for side in layout.outer_mm)
    texture = np.full((height, width, 3), BODY_LINEAR, dtype=np.float32)
    x0, y0 = layout.grid_origin_mm
    for index, colour_value in enumerate(patches):
        row, column = divmod(index, layout.columns)
        left = (x0 + column * layout.pitch_mm) * px_per_mm
        top = (y0 + row * layout.pitch_mm) * px_per_mm
        texture[round(top) : round(top + PX_PER_PATCH), round(left) : round(left + PX_PER_PATCH)] = (
            colour_value
        )
    return texture, px_per_mm


def render_custom_chart(
    definition: ChartDefinition,
    *,
    seed: int = 0,
    size: tuple[int, int] = (2000, 1500),
    camera: NDArray[np.float64] = WARM_CAMERA,
    upside_down: bool = False,
    noise: float = 0.004,
) -> CustomChartPhoto:
    """A JPEG of ``definition``'s chart covering about half the photo's width, tilted in perspective."""
    rng = np.random.default_rng(seed)
    width, height = size
    truth = np.clip(np.asarray(definition.reference.rgb) @ camera.T, 0.0, 1.0)
    texture, px_per_mm = _chart_texture(definition, truth)
    tex_h, tex_w = texture.shape[:2]
    chart_w = 0.5 * width
    chart_h = chart_w * tex_h / tex_w
    centre = np.array([width / 2, height / 2]) + rng.uniform(-0.1, 0.1, 2) * [width, height]
    half = np.array([chart_w, chart_h]) / 2
    target = centre + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    target = target + rng.uniform(-0.04, 0.04, (4, 2)) * chart_w
    if upside_down:
        target = np.roll(target, 2, axis=0)
    source = np.array([[0, 0], [tex_w, 0], [tex_w, tex_h], [0, tex_h]], dtype=np.float64)
    homography = homography_from_points(source, target)
    background = rng.uniform(0.05, 0.4, (height // 50 + 1, width // 50 + 1, 3)).astype(np.float32)
    scene = cv2.resize(background, (width, height), interpolation=cv2.INTER_CUBIC)
    warped = cv2.warpPerspective(texture, homography, (width, height), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((tex_h, tex_w), np.float32), homography, (width, height))
    scene = scene * (1 - mask[..., None]) + warped * mask[..., None]
    scene = np.asarray(scene + rng.normal(0.0, noise, scene.shape), dtype=np.float32)
    codes = np.round(srgb_encode(scene.astype(np.float64)) * 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", codes[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    grid = definition.layout.grid_corners_mm() * px_per_mm
    corners = map_points(homography, grid)
    return CustomChartPhoto(jpeg.tobytes(), corners, truth)
