"""Stage timings of the engine on one image, the codec floor beside them, and peak memory.

The floor is what any tool that reads and writes the photo must pay: decoding it and encoding an
image of the same size in the same format. It is measured twice: with the engine's own
``decode_image``/``encode_image`` (metadata, ICC profile and EXIF handling included: the floor the
engine can actually reach), in the same rounds as the engine, and with bare
``cv2.imdecode``/``cv2.imencode`` as a reference.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import tifffile

from chromaline.engine.correct import correct_photo
from chromaline.engine.encode import JPEG_QUALITY, OutputFormat, encode_image
from chromaline.engine.image_io import decode_image
from chromaline.engine.synthetic import render_scene

STAGES = ("decode", "detect", "sample", "fit", "apply", "encode")
PROBE = Path(__file__).with_name("memory_probe.py")


@dataclass(frozen=True)
class BenchImage:
    label: str
    data: bytes
    output_format: OutputFormat
    bit_depth: Literal[8, 16]
    width: int
    height: int
    how_made: str


def jpeg_image(size: tuple[int, int] = (4000, 3000), seed: int = 1) -> BenchImage:
    scene = render_scene(seed, size=size)
    return BenchImage(
        label=f"{size[0] * size[1] / 1e6:.0f} MP JPEG",
        data=scene.image_bytes,
        output_format="jpeg",
        bit_depth=8,
        width=size[0],
        height=size[1],
        how_made=f"render_scene({seed}, size={size}): the renderer's JPEG, quality 90",
    )


def tiff16_image(size: tuple[int, int] = (6000, 4000), seed: int = 2) -> BenchImage:
    scene = render_scene(seed, size=size)
    pixels16 = scene.pixels.astype(np.uint16) * 257
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels16, photometric="rgb")
    return BenchImage(
        label=f"{size[0] * size[1] / 1e6:.0f} MP 16-bit TIFF",
        data=buffer.getvalue(),
        output_format="tiff",
        bit_depth=16,
        width=size[0],
        height=size[1],
        how_made=(
            f"render_scene({seed}, size={size}); its 8-bit pixels × 257 written as an uncompressed "
            "16-bit RGB TIFF by tifffile.imwrite"
        ),
    )


@dataclass(frozen=True)
class Floor:
    decode_ms: float
    encode_ms: float

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.encode_ms


@dataclass(frozen=True)
class StageTimings:
    stages_ms: dict[str, float]
    """Median per stage over the runs."""
    total_ms: float
    """Median wall time of the whole ``correct_photo`` call."""
    method: str
    runs: int
    engine_floor: Floor
    """Medians of the engine's decode and encode of the same image, timed in the same rounds."""
    floor_ratio: float
    """Median over the rounds of the round's total over the round's own decode + encode."""


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def stage_timings(image: BenchImage, runs: int) -> StageTimings:
    """Median stage times over ``runs`` rounds, after one untimed warm-up round.

    Each round runs ``correct_photo`` and then the floor (the engine's own decode and encode of
    the same image), so the ratio compares work done moments apart: on a machine whose speed
    drifts with what else runs, timing all the engine's runs and then all the floor's would
    compare different machines.
    """
    decoded = decode_image(image.data)

    def correct() -> object:
        return correct_photo(image.data, output_format=image.output_format, bit_depth=image.bit_depth)

    def encode() -> object:
        return encode_image(decoded.pixels, image.output_format, exif=decoded.exif)

    correct()
    encode()
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals: list[float] = []
    decodes: list[float] = []
    encodes: list[float] = []
    method = ""
    for _ in range(runs):
        started = time.perf_counter()
        result = correct_photo(image.data, output_format=image.output_format, bit_depth=image.bit_depth)
        totals.append(time.perf_counter() - started)
        decodes.append(_timed(lambda: decode_image(image.data)))
        encodes.append(_timed(encode))
        method = result.method
        for stage in STAGES:
            per_stage[stage].append(result.timings.get(stage, 0.0) / 1000.0)
    ratios = [
        total / (decode + encode) for total, decode, encode in zip(totals, decodes, encodes, strict=True)
    ]
    return StageTimings(
        stages_ms={stage: _median_ms(values) for stage, values in per_stage.items()},
        total_ms=_median_ms(totals),
        method=method,
        runs=runs,
        engine_floor=Floor(_median_ms(decodes), _median_ms(encodes)),
        floor_ratio=statistics.median(ratios),
    )


def opencv_floor(image: BenchImage, runs: int) -> Floor:
    """Bare OpenCV: the same JPEG settings as the engine (quality, 4:4:4), TIFF uncompressed."""
    buffer = np.frombuffer(image.data, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH
    if image.output_format == "jpeg":
        extension = ".jpg"
        parameters = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, 0x111111]
    else:
        extension = f".{'tif' if image.output_format == 'tiff' else image.output_format}"
        parameters = [cv2.IMWRITE_TIFF_COMPRESSION, 1] if image.output_format == "tiff" else []
    pixels = cv2.imdecode(buffer, flags)
    if pixels is None:
        raise ValueError(f"cv2 cannot decode the {image.label}")
    cv2.imencode(extension, pixels, parameters)
    decodes = [_timed(lambda: cv2.imdecode(buffer, flags)) for _ in range(runs)]
    encodes = [_timed(lambda: cv2.imencode(extension, pixels, parameters)) for _ in range(runs)]
    return Floor(_median_ms(decodes), _median_ms(encodes))


@dataclass(frozen=True)
class PeakMemory:
    tracemalloc_peak_mib: float
    rss_delta_mib: float
    rss_peak_mib: float


def _start_probe(path: Path, image: BenchImage, kind: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(PROBE), str(path), image.output_format, str(image.bit_depth), kind]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _probe_result(probe: subprocess.Popen[str]) -> dict[str, float]:
    stdout, stderr = probe.communicate(timeout=600)
    if probe.returncode != 0:
        raise RuntimeError(f"memory probe failed: {stderr.strip()}")
    values: dict[str, float] = json.loads(stdout.strip().splitlines()[-1])
    return values


def peak_memory(image: BenchImage) -> PeakMemory:
    """Each figure from a fresh process, so earlier work in this one does not hide the peak.

    The two probes run side by side: each process's peaks are its own.
    """
    with tempfile.TemporaryDirectory(prefix="chromaline-bench-") as directory:
        path = Path(directory) / "image"
        path.write_bytes(image.data)
        rss_probe = _start_probe(path, image, "rss")
        traced_probe = _start_probe(path, image, "tracemalloc")
        rss, traced = _probe_result(rss_probe), _probe_result(traced_probe)
    return PeakMemory(
        tracemalloc_peak_mib=traced["tracemalloc_peak_mib"],
        rss_delta_mib=rss["rss_delta_mib"],
        rss_peak_mib=rss["rss_peak_mib"],
    )
