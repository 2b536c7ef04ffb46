"""``--chart FILE --layout RxC``: the CLI corrects and profiles against an organisation's own chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from chromaline.cli.main import app
from chromaline.common.cgats import parse_cgats
from chromaline.common.testing.cgats import cgats_text, made_up_lab
from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.custom_render import render_custom_chart
from chromaline.engine.profile import load_profile

runner = CliRunner(env={"COLUMNS": "400"})
"""Wide enough that no line of the output is wrapped: a message naming a temporary path was
split where the path's length put the 80th column, and a phrase asserted on could straddle it."""


def chart_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(21)
    lab = np.column_stack([rng.uniform(25, 95, 30), rng.uniform(-50, 50, 30), rng.uniform(-50, 50, 30)])
    rows = "".join(f"{i + 1}\t{light:.2f}\t{a:.2f}\t{b:.2f}\n" for i, (light, a, b) in enumerate(lab))
    text = (
        'CGATS.17\nORIGINATOR "chart maker"\nILLUMINANT "D50"\nNUMBER_OF_FIELDS 4\nBEGIN_DATA_FORMAT\n'
        f"SAMPLE_ID\tLAB_L\tLAB_A\tLAB_B\nEND_DATA_FORMAT\nNUMBER_OF_SETS 30\nBEGIN_DATA\n{rows}END_DATA\n"
    )
    path = tmp_path / "studio.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_correct_and_profile_against_a_custom_chart(tmp_path: Path) -> None:
    values = chart_file(tmp_path)
    definition = ChartDefinition.from_table(
        parse_cgats(values.read_text()), name="studio", rows=5, columns=6, gap=0.2, margin=0.5
    )
    photo = tmp_path / "shot.jpg"
    photo.write_bytes(render_custom_chart(definition, seed=3, size=(1600, 1200)).image_bytes)
    chart = ["--chart", str(values), "--layout", "5x6", "--gap", "0.2"]
    corrected = runner.invoke(app, ["correct", str(photo), "--out", str(tmp_path / "out"), *chart])
    assert corrected.exit_code == 0, corrected.output
    assert "custom" in corrected.output
    profiled = runner.invoke(
        app, ["profile", "create", str(photo), "--out", str(tmp_path / "p.json"), *chart]
    )
    assert profiled.exit_code == 0, profiled.output
    assert load_profile((tmp_path / "p.json").read_bytes()).chart_type == "custom"


def test_a_bad_reference_file_names_its_line(tmp_path: Path) -> None:
    values = chart_file(tmp_path)
    values.write_text(values.read_text().replace("NUMBER_OF_SETS 30", "NUMBER_OF_SETS 31"))
    answer = runner.invoke(
        app, ["correct", "x.jpg", "--out", str(tmp_path), "--chart", str(values), "--layout", "5x6"]
    )
    assert answer.exit_code != 0
    assert "line 8" in answer.output


def test_another_makers_card_is_refused_with_a_hint_then_corrected_with_its_definition(
    tmp_path: Path,
) -> None:
    """A card in the Classic 24's layout carrying other colours is not corrected as a Classic 24;
    the CLI says how to give its definition, and with it the photo is corrected."""
    values = tmp_path / "other-card.txt"
    values.write_text(cgats_text(made_up_lab(24)), encoding="utf-8")
    definition = ChartDefinition.from_table(
        parse_cgats(values.read_text()), name="other", rows=4, columns=6, gap=0.1, margin=0.3
    )
    photo = tmp_path / "other.jpg"
    photo.write_bytes(render_custom_chart(definition, seed=2).image_bytes)

    refused = runner.invoke(app, ["correct", str(photo), "--out", str(tmp_path / "out")])
    assert refused.exit_code != 0
    assert "unknown_chart" in refused.output
    assert "hint: if it is another maker's card, give its definition: --chart" in refused.output

    chart = ["--chart", str(values), "--layout", "4x6", "--gap", "0.1", "--margin", "0.3"]
    corrected = runner.invoke(app, ["correct", str(photo), "--out", str(tmp_path / "out"), *chart])
    assert corrected.exit_code == 0, corrected.output
    assert "other.jpg: custom" in corrected.output
