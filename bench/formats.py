"""RAW and phone formats: accuracy on synthetic RAW charts, time against the codec floor, memory.

Run as ``python bench/formats.py [accuracy] [timing] [memory]`` (all three by default); prints
one JSON object per measurement.

Targets: leave-one-out ΔE2000 mean ≤ 1.0 on the Classic 24 and ≤ 0.8 on the Digital SG; RAW total
time ≤ 1.5 × its floor. The accuracy records print the floors beside our figure, since no fit can
go below them:

- ``floor_exact_patches``: the automatic fit on each scene's exact, noise-free raw patch values;
- ``floor_colorimetric_camera``: the same for a camera whose sensitivities are the CIE 1931
  observer's (the renderer's ``ideal``), i.e. what is left when the camera meets the Luther
  condition: the chart under another light than D50 is not the chart under D50 (colour
  inconstancy), plus the reference spectra against the published Lab;
- ``floor_reference_spectra``: the colorimetric camera under D50 against the published values:
  only the renderer's spectra against the published Lab.

- **accuracy**: leave-one-out ΔE2000 of the automatic fit on synthetic DNGs of the Classic 24 and
  the Digital SG, one per camera and illuminant of the renderer, through the whole engine
  (demosaic, detect, sample, fit). Beside it, the same fit on the patches' exact raw values (what
  perfect detection and sampling would give), against the published reference and against the
  rendered chart's own colorimetry under D50: the renderer's reflectances are BabelColor's
  average spectra, which differ from the published 2014 values, and a camera that is not
  colorimetric sees some patches differently under another light, so those floors bound what
  any fit can reach.
- **timing**: a 24 MP DNG corrected to a 16-bit ProPhoto TIFF with a JPEG preview, against its
  floor (LibRaw's demosaic with the same settings, then a 16-bit TIFF of the same size encoded by
  the engine); a 12 MP HEIC corrected to JPEG, against decoding it and encoding the JPEG.
  Medians of interleaved rounds.
- **memory**: peak resident memory of one ``correct_photo`` on a 24 MP and a 60 MP DNG, each in
  a process of its own (``memory_probe.py``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import colour
import numpy as np
from PIL import Image

from chromaline.engine.correct import (
    chart_reference,
    correct_photo,
    fit_from_measurements,
    measure,
    refinement_steps,
)
from chromaline.engine.encode import encode_image
from chromaline.engine.fit import DEFAULT_CANDIDATES, choose_method, validated_fit
from chromaline.engine.icc import output_icc_profile
from chromaline.engine.image_io import decode_image
from chromaline.engine.metrics import ChartReference
from chromaline.engine.raw import demosaic_linear
from chromaline.engine.synthetic import (
    CAMERAS,
    ILLUMINANTS,
    SPECTRAL_SHAPE,
    camera_raw,
    chart_reflectances,
    illuminant_power,
    render_dng_scene,
    render_scene,
)

PROBE = Path(__file__).with_name("memory_probe.py")
ACCURACY_SIZE = (3000, 2000)
ROUNDS = 3


def _emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def rendered_chart_reference(chart: str) -> ChartReference:
    """The rendered chart's own colorimetry: its spectra under D50 seen by the CIE 1931 observer."""
    published = chart_reference(chart, "2014")
    cmfs = np.asarray(
        colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(SPECTRAL_SHAPE).values
    )
    weights = illuminant_power("D50")[:, None] * cmfs
    xyz = chart_reflectances(chart) @ weights / weights[:, 1].sum()
    white_xy = np.asarray(colour.XYZ_to_xy(weights.sum(axis=0) / weights[:, 1].sum()), dtype=np.float64)
    rgb = colour.XYZ_to_RGB(
        xyz,
        colour.RGB_COLOURSPACES["sRGB"],
        illuminant=white_xy,
        chromatic_adaptation_transform="Bradford",
        apply_cctf_encoding=False,
    )
    lab = colour.XYZ_to_Lab(xyz, white_xy)
    return ChartReference(chart, "2014", published.names, np.asarray(rgb), np.asarray(lab), white_xy)


def _held_out(measured: np.ndarray, reference: ChartReference, *, raw_steps: bool = True) -> float:
    """The automatic fit's leave-one-out mean, refined as a RAW file's chart is (``raw_steps``) or
    with the refinement's default steps (what encoded photos get, and RAW files got before)."""
    mask = np.ones(len(measured), dtype=bool)
    choice = choose_method(measured, reference, DEFAULT_CANDIDATES, mask=mask)
    validation = validated_fit(
        measured,
        reference,
        choice.chosen,
        mask=mask,
        least_squares=choice.score_of(choice.chosen),
        refinement_steps=refinement_steps(raw_steps, len(measured)),
    )
    return float(validation.cross_validated_mean)


CLEAN = (0.0, 0.001)
"""Vignetting and noise of scenes without light fall-off and with little noise: what detection, sampling and fitting add
to the exact patches' floor, apart from the scene."""


COLORIMETRIC_CAMERA = "ideal"
TARGETS = {"classic24": 1.0, "digital_sg": 0.8}
TIMING_TARGET = 1.5


def accuracy() -> None:
    for vignetting, noise in ((None, None), CLEAN):
        _accuracy(vignetting, noise)


def _accuracy(vignetting: float | None, noise: float | None) -> None:
    """``vignetting`` and ``noise`` as :func:`render_dng_scene` takes them (None: drawn from the seed)."""
    for chart in ("classic24", "digital_sg"):
        published, rendered = chart_reference(chart, "2014"), rendered_chart_reference(chart)
        pipeline, exact, exact_default_steps, exact_rendered, failures = [], [], [], [], []
        per_scene: list[dict[str, object]] = []
        seed = 100
        for camera in CAMERAS:
            for illuminant in ILLUMINANTS:
                seed += 1
                scene = render_dng_scene(
                    seed,
                    chart=chart,
                    camera=camera,
                    illuminant=illuminant,
                    size=ACCURACY_SIZE,
                    vignetting=vignetting,
                    noise=noise,
                )
                scene_pipeline: float | None = None
                try:
                    measurement = measure(scene.dng_bytes, chart_type=chart)
                    fit = fit_from_measurements(measurement.patches, chart, linear_camera=True)
                    scene_pipeline = fit.cross_validation.cross_validated_mean
                    pipeline.append(scene_pipeline)
                except Exception as error:  # a scene the engine cannot do is counted, not fatal
                    failures.append(f"{camera}/{illuminant}: {error}")
                truth = camera_raw(chart, illuminant, camera)
                exact.append(_held_out(truth, published))
                exact_default_steps.append(_held_out(truth, published, raw_steps=False))
                exact_rendered.append(_held_out(truth, rendered))
                per_scene.append(
                    {
                        "camera": camera,
                        "illuminant": illuminant,
                        "pipeline": None if scene_pipeline is None else round(scene_pipeline, 3),
                        "exact": round(exact[-1], 3),
                        "exact_default_steps": round(exact_default_steps[-1], 3),
                    }
                )
        colorimetric = [
            _held_out(camera_raw(chart, illuminant, COLORIMETRIC_CAMERA), published)
            for illuminant in ILLUMINANTS
        ]
        _emit(
            {
                "bench": "raw_accuracy",
                "chart": chart,
                "scenes": len(CAMERAS) * len(ILLUMINANTS),
                "vignetting": "drawn from the seed" if vignetting is None else vignetting,
                "noise": "drawn from the seed" if noise is None else noise,
                "target_loo_de2000_mean": TARGETS[chart],
                "pipeline_loo_de2000_mean": round(float(np.mean(pipeline)), 3) if pipeline else None,
                "pipeline_loo_de2000_max": round(float(np.max(pipeline)), 3) if pipeline else None,
                "floor_exact_patches": round(float(np.mean(exact)), 3),
                "floor_exact_patches_default_steps": round(float(np.mean(exact_default_steps)), 3),
                "floor_exact_patches_vs_rendered_chart": round(float(np.mean(exact_rendered)), 3),
                "floor_colorimetric_camera": round(float(np.mean(colorimetric)), 3),
                "floor_reference_spectra": round(colorimetric[ILLUMINANTS.index("D50")], 3),
                "failures": failures,
                "per_scene": per_scene,
            }
        )


def _timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000.0


def _rounds(label: str, total: Callable[[], object], floor: Callable[[], object]) -> None:
    totals, floors = [], []
    for _ in range(ROUNDS):
        floors.append(_timed(floor))
        totals.append(_timed(total))
    total_ms, floor_ms = statistics.median(totals), statistics.median(floors)
    _emit(
        {
            "bench": "format_timing",
            "image": label,
            "total_ms": round(total_ms),
            "floor_ms": round(floor_ms),
            "ratio": round(total_ms / floor_ms, 2),
            "target_ratio": TIMING_TARGET,
            "totals_ms": [round(t) for t in totals],
            "floors_ms": [round(t) for t in floors],
        }
    )


def timing() -> None:
    dng = render_dng_scene(7, size=(6000, 4000), illuminant="D65").dng_bytes
    prophoto = output_icc_profile("prophoto")

    def dng_floor() -> None:
        pixels = demosaic_linear(dng, max_pixels=200_000_000).pixels
        encode_image(pixels, "tiff", icc_profile=prophoto)

    def dng_total() -> None:
        correct_photo(dng, output_format="tiff", bit_depth=16, output_space="prophoto", preview=True)

    _rounds("DNG 24 MP → 16-bit ProPhoto TIFF + preview", dng_total, dng_floor)
    scene = render_scene(8, size=(4000, 3000))
    buffer = io.BytesIO()
    Image.fromarray(scene.pixels, "RGB").save(buffer, "HEIF", quality=90)
    heic = buffer.getvalue()

    def heic_floor() -> None:
        encode_image(decode_image(heic).pixels, "jpeg")

    def heic_total() -> None:
        correct_photo(heic)

    _rounds("HEIC 12 MP → JPEG", heic_total, heic_floor)


def memory() -> None:
    for label, size in (("DNG 24 MP", (6000, 4000)), ("DNG 60 MP", (9504, 6336))):
        with tempfile.NamedTemporaryFile(suffix=".dng") as file:
            file.write(render_dng_scene(9, size=size, illuminant="D65").dng_bytes)
            file.flush()
            for output_format, depth in (("tiff", "16"), ("jpeg", "8")):
                probe = subprocess.run(
                    [sys.executable, str(PROBE), file.name, output_format, depth, "rss"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                _emit(
                    {"bench": "format_memory", "image": label, "output": f"{output_format} {depth}-bit"}
                    | json.loads(probe.stdout)
                )


PARTS: dict[str, Callable[[], None]] = {"accuracy": accuracy, "timing": timing, "memory": memory}


def main(arguments: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    chosen = parser.parse_args(arguments).parts or list(PARTS)
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}")
    for name in chosen:
        PARTS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
