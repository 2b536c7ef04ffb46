"""The benchmark's own code on one small scene: it must keep running, whatever the timings."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chromaline.engine.synthetic import render_scene, with_other_chart

ROOT = Path(__file__).resolve().parents[2]
SMALL = (1200, 900)


@pytest.fixture(scope="module")
def bench() -> dict[str, ModuleType]:
    sys.path.insert(0, str(ROOT))
    try:
        return {
            name: importlib.import_module(f"bench.{name}")
            for name in ("engine", "timing", "compare", "accuracy", "several_charts")
        }
    finally:
        sys.path.remove(str(ROOT))


def test_image_report_has_every_stage_floor_and_memory(bench: dict[str, ModuleType]) -> None:
    engine, timing = bench["engine"], bench["timing"]
    image = timing.jpeg_image(size=SMALL, seed=4)
    report = engine.measure_image(image, runs=1)
    assert set(report.timings.stages_ms) == set(timing.STAGES)
    assert all(value > 0 for value in report.timings.stages_ms.values())
    assert report.engine_floor.total_ms > 0
    assert report.opencv_floor.total_ms > 0
    assert report.memory.tracemalloc_peak_mib > 0
    assert report.memory.rss_peak_mib >= report.memory.rss_delta_mib
    table = engine.timing_table([report])
    assert table.row_count == len(timing.STAGES) + 13


def test_tiff16_input_is_sixteen_bit(bench: dict[str, ModuleType]) -> None:
    timing = bench["timing"]
    image = timing.tiff16_image(size=SMALL, seed=4)
    assert image.data[:4] == b"II*\x00"
    assert image.bit_depth == 16
    timings = timing.stage_timings(image, runs=1)
    assert timings.runs == 1
    assert timings.total_ms >= sum(timings.stages_ms.values()) * 0.9


def test_every_pipeline_is_scored_on_a_scene(bench: dict[str, ModuleType]) -> None:
    compare, engine = bench["compare"], bench["engine"]
    scene = render_scene(4, size=SMALL, rotation=0, chart_scale=0.7, tilt_degrees=0.0)
    scores = compare.compare_on_scenes([scene])
    ours = scores["chromaline"]
    assert ours.photos == 1
    assert ours.correct == 1
    assert ours.mean_after is not None
    assert ours.mean_before is not None
    assert ours.mean_after < ours.mean_before
    held_out_after, held_out_before = ours.mean_held_out_on({0}), ours.mean_held_out_before_on({0})
    assert held_out_after is not None
    assert held_out_before is not None
    assert held_out_after < held_out_before
    assert all(score.photos == 1 for score in scores.values())
    targets = engine.targets(None, scores)
    assert {target.name.split(" ≥ ")[-1] for target in targets if "detection" in target.name} == (
        set(scores) - {"chromaline"}
    )
    peers_scored = [
        name for name, score in scores.items() if name != "chromaline" and score.held_out_by_photo
    ]
    assert len([target for target in targets if target.name.startswith("held-out")]) == len(peers_scored)


def test_held_out_chart_is_cut_to_its_chart_without_changing_its_score(bench: dict[str, ModuleType]) -> None:
    compare, accuracy = bench["compare"], bench["accuracy"]
    scene = with_other_chart(render_scene(5, size=SMALL, rotation=90, chart_scale=0.6), "digital_sg")
    reference = accuracy.reference_chart("digital_sg")
    held_out = compare.HeldOutChart.of(scene, reference)
    height, width = held_out.pixels.shape[:2]
    assert height * width < 0.8 * SMALL[0] * SMALL[1]
    assert held_out.centres.shape == (140, 2)
    assert held_out.centres.min() > 0
    assert (held_out.centres < [width, height]).all()
    whole = compare._input_rgb8(scene.image_bytes)
    centres = compare.patch_centres("digital_sg", scene.corners)
    assert held_out.delta_e2000(held_out.pixels) == float(
        accuracy.chart_delta_e2000(whole, centres, reference).mean()
    )


def test_only_readable_photos_in_a_dataset_are_compared(bench: dict[str, ModuleType], tmp_path: Path) -> None:
    compare = bench["compare"]
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("")
    assert [path.name for path in compare.dataset_photos(tmp_path)] == ["a.JPG", "b.png"]
    scores = compare.compare_on_photos(compare.dataset_photos(tmp_path))
    assert all(score.photos == 0 for score in scores.values())


def test_two_charts_side_by_side_are_scored_with_the_held_out_check(bench: dict[str, ModuleType]) -> None:
    scores = bench["several_charts"].score_several_charts(range(1))
    assert scores.photos == 2
    assert scores.charts == 4
    assert scores.found == 4
    assert scores.mean_held_out_after < scores.mean_held_out_before
    assert "4/4 charts found in place" in bench["engine"].several_charts_line(scores)
