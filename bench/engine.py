"""The colour engine benchmark: ``uv run python bench/engine.py [--quick]`` (``make bench``).

Prints, in one run: the engine's stage timings against the codec floor and its peak memory on a
12 MP JPEG and a 24 MP 16-bit TIFF; detection rate, corrected ΔE2000 (on the chart fitted and on a
held-out chart) and time per photo for our pipeline and its peers on rendered scenes; the same on real photos when a dataset folder exists;
detection on the annotated real photos scored against their corners (ours and OpenCV mcc), and
leave-one-patch-out ΔE2000 at their annotated corners (ours, colour's Cheung 2004 and Finlayson 2015);
and which targets are met. bench/README.md explains every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
from rich.console import Console
from rich.table import Table

from bench.compare import PipelineScores, compare_on_photos, compare_on_scenes, dataset_photos
from bench.oracle_corners import OracleScores, score_oracle_corners
from bench.peers import CHROMALINE
from bench.real_photos import ANNOTATIONS, DETECTORS, DetectionScores, score_detector
from bench.several_charts import SeveralChartScores, score_several_charts
from bench.timing import (
    STAGES,
    BenchImage,
    Floor,
    PeakMemory,
    StageTimings,
    jpeg_image,
    opencv_floor,
    peak_memory,
    stage_timings,
    tiff16_image,
)
from chromaline.engine.synthetic import scene_set

FLOOR_RATIO_TARGET = 1.5
"""Our total on the 12 MP JPEG may cost at most this many times decoding plus encoding it."""
DETECTION_RATE_TARGET = 0.98
ORACLE_MARGIN_TARGET = 0.15
DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@dataclass(frozen=True)
class ImageReport:
    image: BenchImage
    timings: StageTimings
    opencv_floor: Floor
    memory: PeakMemory | None

    @property
    def engine_floor(self) -> Floor:
        return self.timings.engine_floor

    @property
    def floor_ratio(self) -> float:
        return self.timings.floor_ratio


@dataclass(frozen=True)
class Target:
    name: str
    met: bool
    detail: str


def measure_image(image: BenchImage, runs: int, *, with_memory: bool = True) -> ImageReport:
    return ImageReport(
        image=image,
        timings=stage_timings(image, runs),
        opencv_floor=opencv_floor(image, runs),
        memory=peak_memory(image) if with_memory else None,
    )


def _ms(value: float) -> str:
    return f"{value:.0f}"


def _optional(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def timing_table(reports: list[ImageReport]) -> Table:
    table = Table(title="Engine stages (median ms) against the codec floor")
    table.add_column("")
    for report in reports:
        table.add_column(report.image.label, justify="right")
    for stage in STAGES:
        table.add_row(stage, *(_ms(report.timings.stages_ms[stage]) for report in reports))
    rows: list[tuple[str, list[str]]] = [
        ("total (wall)", [_ms(r.timings.total_ms) for r in reports]),
        ("method chosen", [r.timings.method for r in reports]),
        ("floor, engine decode", [_ms(r.engine_floor.decode_ms) for r in reports]),
        ("floor, engine encode", [_ms(r.engine_floor.encode_ms) for r in reports]),
        ("floor, engine total", [_ms(r.engine_floor.total_ms) for r in reports]),
        ("floor, cv2 decode", [_ms(r.opencv_floor.decode_ms) for r in reports]),
        ("floor, cv2 encode", [_ms(r.opencv_floor.encode_ms) for r in reports]),
        ("floor, cv2 total", [_ms(r.opencv_floor.total_ms) for r in reports]),
        ("total / engine floor (median of rounds)", [f"{r.floor_ratio:.2f}×" for r in reports]),
        ("total / cv2 floor", [f"{r.timings.total_ms / r.opencv_floor.total_ms:.2f}×" for r in reports]),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    for label, attribute in (
        ("tracemalloc peak (MiB)", "tracemalloc_peak_mib"),
        ("peak RSS rise (MiB)", "rss_delta_mib"),
        ("peak RSS (MiB)", "rss_peak_mib"),
    ):
        table.add_row(
            label,
            *("-" if r.memory is None else f"{getattr(r.memory, attribute):.0f}" for r in reports),
        )
    return table


def scores_table(title: str, scores: dict[str, PipelineScores], *, ground_truth: bool) -> Table:
    table = Table(title=title)
    for column in ("pipeline", "photos", "found", "correct" if ground_truth else "-", "rate"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    table.add_column("ΔE2000 before", justify="right")
    table.add_column("ΔE2000 after", justify="right")
    if ground_truth:
        table.add_column("after, photos all got right", justify="right")
        table.add_column("held-out before", justify="right")
        table.add_column("held-out after", justify="right")
    table.add_column("median s/photo", justify="right")
    common = _common_photos(scores)
    for score in scores.values():
        row = [
            score.pipeline,
            str(score.photos),
            str(score.detected),
            str(score.correct) if ground_truth else "",
            f"{score.detection_rate:.0%}",
            _optional(score.mean_before),
            _optional(score.mean_after),
        ]
        if ground_truth:
            row.append(_optional(score.mean_after_on(common)))
            row.append(_optional(score.mean_held_out_before_on(common)))
            row.append(_optional(score.mean_held_out_on(common)))
        row.append(_optional(score.median_seconds))
        table.add_row(*row)
    return table


def several_charts_line(scores: SeveralChartScores) -> str:
    return (
        f"Two charts side by side (Digital SG and Classic 24, 3000×2000, {scores.photos} photos): "
        f"{scores.found}/{scores.charts} charts found in place; the correction fitted to one, on the "
        f"other's patches (held out): ΔE2000 {_optional(scores.mean_held_out_before)} before, "
        f"{_optional(scores.mean_held_out_after)} after"
    )


def _common_photos(scores: dict[str, PipelineScores]) -> set[int]:
    sets = [set(score.after_by_photo) for score in scores.values()]
    return set.intersection(*sets) if sets else set()


def targets(jpeg: ImageReport | None, scores: dict[str, PipelineScores]) -> list[Target]:
    found: list[Target] = []
    if jpeg is not None:
        found.append(
            Target(
                f"{jpeg.image.label}: total ≤ {FLOOR_RATIO_TARGET}× the engine's codec floor",
                jpeg.floor_ratio <= FLOOR_RATIO_TARGET,
                f"{jpeg.floor_ratio:.2f}× (medians: {jpeg.timings.total_ms:.0f} ms, floor {jpeg.engine_floor.total_ms:.0f} ms)",
            )
        )
    ours = scores.get(CHROMALINE)
    if ours is None:
        return found
    for name, peer in scores.items():
        if name == CHROMALINE:
            continue
        found.append(
            Target(
                f"detection rate ≥ {name}",
                ours.detection_rate >= peer.detection_rate,
                f"{ours.detection_rate:.0%} vs {peer.detection_rate:.0%}",
            )
        )
        common = set(ours.after_by_photo) & set(peer.after_by_photo)
        found += _delta_e_target(
            f"training ΔE2000 (chart fitted) ≤ {name}, {len(common)} scenes both got right",
            ours.mean_after_on(common),
            peer.mean_after_on(common),
        )
        common = set(ours.held_out_by_photo) & set(peer.held_out_by_photo)
        found += _delta_e_target(
            f"held-out ΔE2000 (Digital SG) ≤ {name}, {len(common)} scenes both got right",
            ours.mean_held_out_on(common),
            peer.mean_held_out_on(common),
        )
    return found


def _delta_e_target(name: str, mine: float | None, theirs: float | None) -> list[Target]:
    if mine is None or theirs is None:
        return []
    return [Target(name, mine <= theirs, f"{mine:.2f} vs {theirs:.2f}")]


def detection_table(root: Path, scores: dict[str, DetectionScores]) -> Table:
    """Per photo: each detector's verdict and corner error (% of the grid diagonal)."""
    table = Table(
        title=f"Detection on the annotated real photos in {root} (corner error, % of the grid diagonal)"
    )
    table.add_column("photo")
    for name in scores:
        table.add_column(name)
    names = [verdict.name for verdict in next(iter(scores.values())).verdicts]
    for index, photo in enumerate(names):
        cells = []
        for score in scores.values():
            verdict = score.verdicts[index]
            error = "" if verdict.error is None else f" {100 * verdict.error:.1f} %"
            cells.append(f"{verdict.verdict}{error} ({verdict.detail}; {verdict.seconds:.2f} s)")
        table.add_row(photo, *cells)
    for label in ("right", "flagged", "wrong", "refused"):
        table.add_row(
            f"total {label}", *(f"{score.count(label)}/{score.photos}" for score in scores.values())
        )
    return table


def oracle_table(scores: OracleScores) -> Table:
    """Per photo: each method's leave-one-patch-out ΔE2000 at the annotated corners."""
    table = Table(title="Leave-one-patch-out ΔE2000 at the annotated corners (same patches for every method)")
    table.add_column("photo")
    for method in scores.methods:
        table.add_column(method, justify="right")
    for photo, by_method in scores.by_photo.items():
        table.add_row(photo, *(f"{by_method[method]:.2f}" for method in scores.methods))
    table.add_row("mean", *(_optional(scores.mean(method)) for method in scores.methods))
    return table


def oracle_targets(scores: OracleScores) -> list[Target]:
    ours = scores.mean(CHROMALINE)
    peers = [
        mean for method in scores.methods if method != CHROMALINE if (mean := scores.mean(method)) is not None
    ]
    if ours is None or not peers:
        return []
    best = min(peers)
    return [
        Target(
            f"real photos: leave-one-out ΔE2000 ≥ {ORACLE_MARGIN_TARGET:.0%} below the best oracle-corner peer",
            ours <= (1 - ORACLE_MARGIN_TARGET) * best,
            f"{ours:.2f} vs {best:.2f} ({1 - ours / best:.0%} below)",
        )
    ]


def detection_targets(scores: dict[str, DetectionScores]) -> list[Target]:
    ours = scores.get(CHROMALINE)
    if ours is None or not ours.photos:
        return []
    right = ours.count("right") + ours.count("flagged")
    return [
        Target(
            f"real photos: right (or offered for confirmation) ≥ {DETECTION_RATE_TARGET:.0%}",
            right >= DETECTION_RATE_TARGET * ours.photos,
            f"{right}/{ours.photos}",
        ),
        Target(
            "real photos: no wrong box reported as found",
            ours.count("wrong") == 0,
            f"{ours.count('wrong')} wrong",
        ),
    ]


def targets_table(found: list[Target]) -> Table:
    table = Table(title="Targets")
    table.add_column("target")
    table.add_column("met")
    table.add_column("figures")
    for target in found:
        table.add_row(target.name, "[green]yes[/]" if target.met else "[red]NO[/]", target.detail)
    return table


def notes_lines(scores: dict[str, PipelineScores], limit: int = 6) -> list[str]:
    lines = []
    for score in scores.values():
        for note in score.notes[:limit]:
            lines.append(f"  {score.pipeline}: {note}")
        if len(score.notes) > limit:
            lines.append(f"  {score.pipeline}: … {len(score.notes) - limit} more")
    return lines


def real_photo_detection(console: Console, datasets: Path, limit: int | None) -> dict[str, DetectionScores]:
    """Every detector on the annotated photos in ``datasets/real``, printed per photo."""
    annotated = datasets / "real"
    if not (annotated / ANNOTATIONS).is_file():
        console.print(f"Annotated real photos: {annotated / ANNOTATIONS} does not exist; skipped.")
        return {}
    detection = {name: score_detector(annotated, detector, limit) for name, detector in DETECTORS.items()}
    console.print(detection_table(annotated, detection))
    return detection


def real_photo_oracle(console: Console, datasets: Path, limit: int | None) -> OracleScores | None:
    annotated = datasets / "real"
    if not (annotated / ANNOTATIONS).is_file():
        return None
    scores = score_oracle_corners(annotated, limit)
    console.print(oracle_table(scores))
    for photo, code in scores.skipped.items():
        console.print(f"  oracle corners: {photo} skipped ({code})", markup=False, highlight=False)
    return scores


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer runs and scenes (1-2 minutes)")
    parser.add_argument("--runs", type=int, help="timed runs per image (default 5, quick 2)")
    parser.add_argument(
        "--scenes", type=int, help="rendered scenes for the comparison (default 20, quick 4; 0 skips it)"
    )
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder of real chart photos")
    parser.add_argument(
        "--detection-only",
        action="store_true",
        help="only the corner-scored detection on annotated real photos",
    )
    parser.add_argument("--dataset-limit", type=int, help="at most this many real photos")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    runs = arguments.runs or (2 if arguments.quick else 5)
    scene_count = arguments.scenes if arguments.scenes is not None else (4 if arguments.quick else 20)
    console = Console(width=max(Console().width, 132))
    console.print(
        f"Chromaline engine benchmark: {runs} timed runs per image, {scene_count} rendered scenes; "
        f"{os.cpu_count()} CPU(s), OpenCV {cv2.__version__} with {cv2.getNumThreads()} thread(s)"
    )
    if arguments.detection_only:
        detection = real_photo_detection(console, arguments.datasets, arguments.dataset_limit)
        oracle = real_photo_oracle(console, arguments.datasets, arguments.dataset_limit)
        found = detection_targets(detection) + (oracle_targets(oracle) if oracle else [])
        console.print(targets_table(found))
        return 0
    images = [jpeg_image(), tiff16_image()]
    for image in images:
        console.print(f"  {image.label}: {image.how_made}")
    reports = [measure_image(image, runs) for image in images]
    console.print(timing_table(reports))

    scores: dict[str, PipelineScores] = {}
    if scene_count:
        scores = compare_on_scenes(scene_set(scene_count))
        console.print(
            scores_table(
                f"Pipelines on {scene_count} rendered 12 MP scenes (ground truth known)",
                scores,
                ground_truth=True,
            )
        )
        for line in notes_lines(scores):
            console.print(line, markup=False, highlight=False)
        console.print(several_charts_line(score_several_charts(range(max(1, scene_count // 4)))))

    if arguments.datasets.is_dir():
        photos = dataset_photos(arguments.datasets, arguments.dataset_limit)
        real = compare_on_photos(photos)
        console.print(
            scores_table(
                f"Pipelines on {len(photos)} real photos in {arguments.datasets}", real, ground_truth=False
            )
        )
        for line in notes_lines(real):
            console.print(line, markup=False, highlight=False)
    else:
        console.print(f"Real photos: {arguments.datasets} does not exist; skipped.")

    detection = real_photo_detection(console, arguments.datasets, arguments.dataset_limit)
    oracle = real_photo_oracle(console, arguments.datasets, arguments.dataset_limit)
    found = (
        targets(reports[0], scores)
        + detection_targets(detection)
        + (oracle_targets(oracle) if oracle else [])
    )
    console.print(targets_table(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
