from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import colour
import cv2
import numpy as np
import pytest
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver
from matplotlib.text import Text
from matplotlib.transforms import Bbox, BboxBase
from numpy.typing import NDArray
from PIL import Image

from chromaline.common.measurements import DeltaESummaries, Measurements, PatchResult, Summary
from chromaline.engine.charts import chart_spec, reference_lab, reference_names
from chromaline.reporter.figures import (
    chromaticity_figure,
    delta_e_figure,
    neutral_patches,
    patch_pairs_figure,
    svg_bytes,
    tone_response_figure,
)
from chromaline.reporter.render import (
    RenderedPages,
    RenderedReport,
    parse_report_json,
    patch_table_page,
    render_report,
    render_stored_html,
    render_stored_pdf,
)
from chromaline.reporter.thumbnails import THUMBNAIL_LONGEST_SIDE, ThumbnailError, make_thumbnail

IMAGE_SIZE = (3600, 2400)
CHART_CORNERS = [(600.0, 450.0), (3000.0, 450.0), (3000.0, 1950.0), (600.0, 1950.0)]
HOSTILE_FILENAME = 'studio <script>alert("x")</script> & co.jpg'
GENERATED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
D50 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D50"]
EXCLUDED_INDEX = 18


def lab_to_srgb8(lab: NDArray[np.float64]) -> NDArray[np.int64]:
    xyz = colour.Lab_to_XYZ(lab, D50)
    srgb = colour.XYZ_to_sRGB(xyz, illuminant=D50, chromatic_adaptation_transform="Bradford")
    return np.asarray(np.round(np.clip(srgb, 0.0, 1.0) * 255.0), dtype=np.int64)


def summary_of(values: NDArray[np.float64]) -> Summary:
    return Summary(
        mean=float(np.mean(values)),
        median=float(np.median(values)),
        p95=float(np.percentile(values, 95)),
        max=float(np.max(values)),
    )


def patch_quads(rows: int, columns: int) -> list[list[tuple[float, float]]]:
    (left, top), (right, _), (_, bottom) = CHART_CORNERS[0], CHART_CORNERS[1], CHART_CORNERS[2]
    cell_w, cell_h = (right - left) / columns, (bottom - top) / rows
    quads = []
    for row in range(rows):
        for column in range(columns):
            x0, y0 = left + (column + 0.25) * cell_w, top + (row + 0.25) * cell_h
            x1, y1 = x0 + 0.5 * cell_w, y0 + 0.5 * cell_h
            quads.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return quads


def build_measurements(chart_type: str = "classic24", filename: str = HOSTILE_FILENAME) -> Measurements:
    spec = chart_spec(chart_type)
    reference = reference_lab(chart_type, "2014")
    names = reference_names(chart_type, "2014")
    rng = np.random.default_rng(7)
    before = reference + rng.normal(0.0, 3.0, reference.shape)
    after = reference + rng.normal(0.0, 0.6, reference.shape)
    used = np.ones(len(names), dtype=bool)
    used[EXCLUDED_INDEX] = False
    delta = {
        method: (
            np.asarray(colour.delta_E(reference, before, method=method), dtype=np.float64),
            np.asarray(colour.delta_E(reference, after, method=method), dtype=np.float64),
        )
        for method in ("CIE 1976", "CIE 1994", "CIE 2000")
    }
    srgb = {key: lab_to_srgb8(lab) for key, lab in (("ref", reference), ("before", before), ("after", after))}
    quads = patch_quads(spec.rows, spec.columns)
    patches = [
        PatchResult(
            index=i,
            name=name,
            reference_lab=(float(reference[i, 0]), float(reference[i, 1]), float(reference[i, 2])),
            before_lab=(float(before[i, 0]), float(before[i, 1]), float(before[i, 2])),
            after_lab=(float(after[i, 0]), float(after[i, 1]), float(after[i, 2])),
            reference_srgb=(int(srgb["ref"][i, 0]), int(srgb["ref"][i, 1]), int(srgb["ref"][i, 2])),
            before_srgb=(int(srgb["before"][i, 0]), int(srgb["before"][i, 1]), int(srgb["before"][i, 2])),
            after_srgb=(int(srgb["after"][i, 0]), int(srgb["after"][i, 1]), int(srgb["after"][i, 2])),
            delta_e76=(float(delta["CIE 1976"][0][i]), float(delta["CIE 1976"][1][i])),
            delta_e94=(float(delta["CIE 1994"][0][i]), float(delta["CIE 1994"][1][i])),
            delta_e2000=(float(delta["CIE 2000"][0][i]), float(delta["CIE 2000"][1][i])),
            flags=["clipped"] if i == EXCLUDED_INDEX else [],
            used_in_fit=bool(used[i]),
            quad=quads[i],
        )
        for i, name in enumerate(names)
    ]

    def summaries(which: int) -> DeltaESummaries:
        return DeltaESummaries(
            cie1976=summary_of(delta["CIE 1976"][which][used]),
            cie1994=summary_of(delta["CIE 1994"][which][used]),
            cie2000=summary_of(delta["CIE 2000"][which][used]),
        )

    return Measurements(
        job_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        filename=filename,
        chart_type=chart_type,
        reference_edition="2014",
        method="linear3x3",
        objective="delta_e2000",
        corners=CHART_CORNERS,
        image_size=IMAGE_SIZE,
        patches=patches,
        before=summaries(0),
        after=summaries(1),
        cross_validated_delta_e2000=1.234,
        rating_before="FADGI 1 star",
        rating_after="FADGI 3 star",
        timings_ms={"detect": 812.0, "correct": 301.5},
    )


def synthetic_photo(measurements: Measurements, *, after: bool) -> NDArray[np.uint8]:
    """A grey gradient with the measured (or corrected) patch colours painted at their quads, BGR."""
    width, height = measurements.image_size
    ramp = np.linspace(60, 140, width, dtype=np.float64)
    photo = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    for patch in measurements.patches:
        (x0, y0), _, (x1, y1), _ = patch.quad
        rgb = patch.after_srgb if after else patch.before_srgb
        photo[int(y0) : int(y1), int(x0) : int(x1)] = rgb[::-1]
    return photo


def encode(photo: NDArray[np.uint8] | NDArray[np.uint16], extension: str) -> bytes:
    ok, data = cv2.imencode(extension, photo)
    assert ok
    return bytes(data.tobytes())


@pytest.fixture(scope="module")
def measurements() -> Measurements:
    return build_measurements()


@pytest.fixture(scope="module")
def photos(measurements: Measurements) -> tuple[bytes, bytes]:
    original = encode(synthetic_photo(measurements, after=False), ".jpg")
    corrected_16bit = synthetic_photo(measurements, after=True).astype(np.uint16) * 257
    return original, encode(corrected_16bit, ".png")


@pytest.fixture(scope="module")
def rendered(measurements: Measurements, photos: tuple[bytes, bytes]) -> RenderedReport:
    return render_report(measurements, *photos, rating_thresholds={"3 star": 4.0}, generated_at=GENERATED_AT)


def embedded_images(html: str) -> list[NDArray[np.uint8]]:
    images = []
    for payload in re.findall(r"data:image/(?:jpeg|png);base64,([A-Za-z0-9+/=]+)", html):
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(payload), dtype=np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None
        images.append(np.asarray(decoded, dtype=np.uint8))
    return images


def pdf_page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def pages_of(report: RenderedReport) -> RenderedPages:
    """The HTML report and figures drawn later, on request, from what the report stored."""
    return render_stored_html(report.json, report.before, report.after)


@pytest.fixture(scope="module")
def pages(rendered: RenderedReport) -> RenderedPages:
    return pages_of(rendered)


def pdf_of(report: RenderedReport) -> bytes:
    """The PDF made later, on request, from what the report stored."""
    return render_stored_pdf(report.json, report.before, report.after)


def test_json_round_trips_to_the_same_measurements(
    rendered: RenderedReport, measurements: Measurements
) -> None:
    document = parse_report_json(rendered.json)
    assert document.measurements == measurements
    assert document.report.generated_at == GENERATED_AT
    assert document.report.rating_guideline == "FADGI 2016"
    assert document.report.rating_thresholds == {"3 star": 4.0}
    assert document.report.chromaline_version


def test_json_is_stable(
    measurements: Measurements, photos: tuple[bytes, bytes], rendered: RenderedReport
) -> None:
    again = render_report(measurements, *photos, rating_thresholds={"3 star": 4.0}, generated_at=GENERATED_AT)
    assert again.json == rendered.json
    payload = json.loads(rendered.json)
    assert list(payload) == sorted(payload)
    assert list(payload["measurements"]) == sorted(payload["measurements"])


def test_html_shows_the_numbers(pages: RenderedPages, measurements: Measurements) -> None:
    html = pages.html.decode("utf-8")
    assert measurements.before is not None
    assert measurements.after is not None
    for summaries in (measurements.before, measurements.after):
        for value in (
            summaries.cie2000.mean,
            summaries.cie2000.median,
            summaries.cie2000.p95,
            summaries.cie2000.max,
            summaries.cie1976.mean,
            summaries.cie1994.mean,
        ):
            assert f"{value:.2f}" in html
    for patch in measurements.patches:
        assert f">{patch.delta_e2000[0]:.2f}<" in html
        assert f">{patch.delta_e2000[1]:.2f}<" in html
    assert "1.23" in html
    assert "linear3x3, fitted by minimum mean ΔE2000" in html
    assert "FADGI 1 star" in html
    assert "FADGI 3 star" in html
    assert "ColorChecker Classic 24 (classic24)" in html
    assert html.count('class="excluded"') == 1
    assert "clipped" in html


def test_html_escapes_the_file_name(pages: RenderedPages) -> None:
    html = pages.html.decode("utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co.jpg" in html


def test_html_is_self_contained(pages: RenderedPages) -> None:
    html = pages.html.decode("utf-8")
    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"""(?:src|href)=["'](?!data:)""", html)
    assert "<link" not in html


def test_html_embeds_decodable_images(pages: RenderedPages) -> None:
    before, after = embedded_images(pages.html.decode("utf-8"))
    assert max(before.shape[:2]) == THUMBNAIL_LONGEST_SIDE
    assert after.shape == before.shape


def test_html_embeds_the_same_svg_figures_the_result_page_shows(pages: RenderedPages) -> None:
    html = pages.html.decode("utf-8")
    embedded = [
        base64.b64decode(payload)
        for payload in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)
    ]
    assert embedded == [
        pages.figures[name] for name in ("chromaticity", "tone_response", "patch_pairs", "delta_e")
    ]


def test_before_thumbnail_outlines_the_chart(pages: RenderedPages) -> None:
    before = embedded_images(pages.html.decode("utf-8"))[0]
    scale = before.shape[1] / IMAGE_SIZE[0]
    (x0, y0), (x1, _) = CHART_CORNERS[0], CHART_CORNERS[1]
    top_edge = before[round(y0 * scale) - 1 : round(y0 * scale) + 2, round((x0 + x1) / 2 * scale)]
    blue, green, red = (int(channel) for channel in top_edge.max(axis=0))
    assert red > 200
    assert green > 170
    assert blue < 110
    outside = before[round(y0 * scale) - 20, round((x0 + x1) / 2 * scale)]
    assert abs(int(outside[0]) - int(outside[2])) < 15


def test_pdf_has_overview_chart_and_table_pages(rendered: RenderedReport) -> None:
    pdf = pdf_of(rendered)
    assert pdf.startswith(b"%PDF")
    assert pdf_page_count(pdf) == 1 + 4 + 1


def test_the_stored_previews_are_the_annotated_ones_the_html_embeds(
    rendered: RenderedReport, pages: RenderedPages
) -> None:
    stored = [make_thumbnail(rendered.before), make_thumbnail(rendered.after)]
    embedded = embedded_images(pages.html.decode("utf-8"))[:2]
    for preview, shown in zip(stored, embedded, strict=True):
        assert preview.shape == shown.shape
        assert np.abs(preview.astype(int) - shown.astype(int)).mean() < 3


def test_large_chart_table_spans_pages() -> None:
    measurements = build_measurements("digital_sg", filename="sg.tif")
    original = encode(synthetic_photo(measurements, after=False), ".tif")
    corrected = encode(synthetic_photo(measurements, after=True), ".jpg")
    report = render_report(measurements, original, corrected)
    assert pdf_page_count(pdf_of(report)) == 1 + 4 + 4
    assert pages_of(report).html.decode("utf-8").count("<tr") > 140
    assert parse_report_json(report.json).measurements == measurements


def test_chartless_document_renders(chartless_measurements: Measurements) -> None:
    measurements = chartless_measurements
    photo = np.full((480, 640, 3), 128, dtype=np.uint8)
    report = render_report(measurements, encode(photo, ".png"), encode(photo, ".jpg"))
    html = pages_of(report).html.decode("utf-8")
    assert "No colour chart was measured" in html
    assert "profile" in html
    assert len(embedded_images(html)) == 2
    pdf = pdf_of(report)
    assert pdf.startswith(b"%PDF")
    assert pdf_page_count(pdf) == 1
    document = parse_report_json(report.json)
    assert document.measurements == measurements
    assert document.report.rating_thresholds is None


def test_thumbnail_of_16bit_png_keeps_its_colour() -> None:
    photo = np.zeros((300, 1000, 3), dtype=np.uint16)
    photo[:, :] = (10 * 257, 128 * 257, 250 * 257)
    thumbnail = make_thumbnail(encode(photo, ".png"), longest_side=200)
    assert thumbnail.dtype == np.uint8
    assert thumbnail.shape == (60, 200, 3)
    assert tuple(int(v) for v in thumbnail[30, 100]) == (10, 128, 250)


def test_thumbnail_of_small_image_is_not_enlarged() -> None:
    photo = np.full((120, 90, 3), 200, dtype=np.uint8)
    assert make_thumbnail(encode(photo, ".jpg")).shape == (120, 90, 3)


@pytest.mark.parametrize("image_format", ["WEBP", "HEIF", "AVIF"])
def test_thumbnail_of_a_phone_format_keeps_its_colour_and_orientation(image_format: str) -> None:
    """OpenCV cannot read these: the engine decodes them, upright."""
    photo = np.zeros((300, 1000, 3), dtype=np.uint8)
    photo[:, :500] = (200, 40, 40)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(photo, "RGB").save(buffer, image_format, quality=95, exif=exif.tobytes())
    thumbnail = make_thumbnail(buffer.getvalue(), longest_side=200)
    assert thumbnail.shape == (200, 60, 3)
    assert np.abs(thumbnail[20, 30].astype(int) - (40, 40, 200)).max() <= 6
    assert np.abs(thumbnail[180, 30].astype(int)).max() <= 6


def test_thumbnail_rejects_bytes_that_are_no_image() -> None:
    with pytest.raises(ThumbnailError):
        make_thumbnail(b"not an image at all")


def test_the_report_says_what_the_fit_minimised(
    measurements: Measurements, photos: tuple[bytes, bytes], chartless_measurements: Measurements
) -> None:
    least_squares = measurements.model_copy(update={"objective": "least_squares"})
    assert (
        "linear3x3, fitted by least squares in linear RGB"
        in pages_of(render_report(least_squares, *photos)).html.decode()
    )
    assert "<dd>profile</dd>" in pages_of(render_report(chartless_measurements, *photos)).html.decode()


def test_the_chromaticity_plot_has_an_arrow_per_patch_before_and_after(measurements: Measurements) -> None:
    figure = chromaticity_figure(measurements.patches)
    before, after = figure.axes
    for axes, measured in ((before, "before_lab"), (after, "after_lab")):
        [arrows] = [child for child in axes.collections if isinstance(child, Quiver)]
        starts = np.column_stack([np.asarray(arrows.X), np.asarray(arrows.Y)])
        ends = starts + np.column_stack([np.asarray(arrows.U), np.asarray(arrows.V)])
        assert len(ends) == len(measurements.patches)
        for patch, start, end in zip(measurements.patches, starts, ends, strict=True):
            assert start == pytest.approx(getattr(patch, measured)[1:])
            assert end == pytest.approx(patch.reference_lab[1:])
    assert before.get_xlabel().startswith("a*")
    assert before.get_ylabel().startswith("b*")


def test_the_tone_response_plots_the_neutral_patches(measurements: Measurements) -> None:
    neutrals = neutral_patches(measurements.patches)
    assert [patch.name for patch in neutrals][:1] == ["white 9.5 (.05 D)"]
    assert len(neutrals) == 6
    figure = tone_response_figure(measurements.patches)
    assert figure is not None
    [axes] = figure.axes
    _ideal, before, after = axes.get_lines()
    lightest = max(neutrals, key=lambda patch: patch.reference_lab[0])
    assert before.get_xdata()[-1] == pytest.approx(lightest.reference_lab[0])
    assert before.get_ydata()[-1] == pytest.approx(lightest.before_lab[0])
    assert after.get_ydata()[-1] == pytest.approx(lightest.after_lab[0])
    assert axes.get_xlabel() == "Reference lightness L*"


def test_patch_pairs_show_reference_beside_corrected(measurements: Measurements) -> None:
    figure = patch_pairs_figure(measurements.patches)
    [axes] = figure.axes
    filled = [patch for patch in axes.patches if patch.get_fill()]
    assert len(filled) == 2 * len(measurements.patches)
    first = measurements.patches[0]
    assert filled[0].get_facecolor()[:3] == pytest.approx([value / 255 for value in first.reference_srgb])
    assert filled[1].get_facecolor()[:3] == pytest.approx([value / 255 for value in first.after_srgb])


@pytest.mark.parametrize("chart", ["classic24", "digital_sg", "custom 5x7"])
def test_patch_pairs_fill_their_figure_without_blank_bands(chart: str) -> None:
    """The squares keep their shape, so the figure is as tall as its rows: a Digital SG's 18 rows
    sat in a figure 40 % taller, between blank bands above and below."""
    figure = patch_pairs_figure(FIGURES_OF_CHARTS[chart]())
    figure.canvas.draw()
    [axes] = figure.axes
    drawn = axes.get_position(original=False)
    placed = axes.get_position(original=True)
    assert drawn.height == pytest.approx(placed.height, rel=0.02)


def test_delta_e_ticks_are_printed_exactly(measurements: Measurements) -> None:
    figure = delta_e_figure(measurements.patches)
    [axes] = figure.axes
    figure.canvas.draw()
    ticks = [tick for tick in axes.get_yticks() if axes.get_ylim()[0] <= tick <= axes.get_ylim()[1]]
    labels = [label.get_text().replace("−", "-") for label in axes.get_yticklabels()][: len(ticks)]
    assert [float(label) for label in labels] == pytest.approx(ticks)
    assert axes.get_ylabel() == "ΔE2000 (CIEDE2000)"


def test_figures_encode_as_svg(measurements: Measurements) -> None:
    svg = svg_bytes(chromaticity_figure(measurements.patches))
    assert svg.lstrip().startswith(b"<?xml")
    assert b"<svg" in svg


def test_the_figures_come_as_svg_for_the_result_page(rendered: RenderedReport, pages: RenderedPages) -> None:
    assert set(pages.figures) == {"chromaticity", "tone_response", "patch_pairs", "delta_e"}
    assert all(b"<svg" in svg for svg in pages.figures.values())
    assert rendered.figure_names == tuple(pages.figures)


def test_the_figures_named_with_the_report_are_those_drawn_later(
    measurements: Measurements, photos: tuple[bytes, bytes]
) -> None:
    """The report names the figures the HTML will have before they are drawn: without two neutral
    patches there is no tone response, and the name must not promise one."""
    one_grey = measurements.model_copy(
        update={"patches": [patch for patch in measurements.patches if patch.index < 19]}
    )
    assert len(neutral_patches(one_grey.patches)) == 1
    report = render_report(one_grey, *photos)
    assert report.figure_names == ("chromaticity", "patch_pairs", "delta_e")
    assert tuple(pages_of(report).figures) == report.figure_names


def test_a_chartless_report_has_no_figures(chartless_measurements: Measurements) -> None:
    photo = encode(np.full((48, 64, 3), 128, dtype=np.uint8), ".png")
    report = render_report(chartless_measurements, photo, photo)
    assert report.figure_names == ()
    assert pages_of(report).figures == {}


def test_the_list_thumbnail_is_small(rendered: RenderedReport) -> None:
    thumbnail = cv2.imdecode(np.frombuffer(rendered.thumbnail, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail is not None
    assert max(thumbnail.shape[:2]) == 160


def test_the_report_leads_with_the_guideline_the_measurements_were_rated_against(
    measurements: Measurements, photos: tuple[bytes, bytes]
) -> None:
    metamorfoze = measurements.model_copy(
        update={
            "rating_before": "Metamorfoze 2.0 below Light",
            "rating_after": "Metamorfoze 2.0 Full",
            "rating_guideline": "Metamorfoze 2.0",
        }
    )
    rendered = render_report(metamorfoze, *photos, generated_at=GENERATED_AT)
    html = pages_of(rendered).html.decode("utf-8")
    assert parse_report_json(rendered.json).report.rating_guideline == "Metamorfoze 2.0"
    assert "<dt>Rated against</dt><dd>Metamorfoze 2.0</dd>" in html
    assert html.index("Metamorfoze 2.0") < html.index("File name")


def test_rendering_warns_of_nothing(measurements: Measurements, photos: tuple[bytes, bytes]) -> None:
    """Pages placed by hand once carried a layout engine that warned on every PDF."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render_report(measurements, *photos, generated_at=GENERATED_AT)


def test_the_patch_table_has_a_row_per_patch_with_its_three_colours(measurements: Measurements) -> None:
    figure = patch_table_page(measurements.patches, 0, len(measurements.patches))
    [axes] = figure.axes
    lines = [text.get_text() for text in axes.texts]
    assert lines[:3] == ["Ref.", "Before", "After"]
    names_and_numbers, differences = lines[3::2], lines[4::2]
    assert names_and_numbers[0].split() == ["#", "Patch"]
    for patch, left, right in zip(measurements.patches, names_and_numbers[1:], differences[1:], strict=True):
        assert left.split(maxsplit=1) == [str(patch.index + 1), patch.name]
        fit = "used" if patch.used_in_fit else "left out"
        assert right.split()[:2] == [f"{patch.delta_e2000[0]:.2f}", f"{patch.delta_e2000[1]:.2f}"]
        assert fit in right
    [cells] = axes.collections
    facecolors = np.asarray(cells.get_facecolor(), dtype=np.float64)
    colours = {tuple(int(value) for value in np.round(colour[:3] * 255)) for colour in facecolors}
    for patch in measurements.patches:
        for rgb in (patch.reference_srgb, patch.before_srgb, patch.after_srgb):
            assert tuple(rgb) in colours


def test_the_svg_figures_keep_their_words_as_text(measurements: Measurements) -> None:
    """Searchable and half the size: text as text, not as the outlines of its glyphs."""
    figure = tone_response_figure(measurements.patches)
    assert figure is not None
    assert b">Reference lightness L*</text>" in svg_bytes(figure)


def custom_chart_patches(rows: int = 5, columns: int = 7) -> list[PatchResult]:
    """A custom chart's patches, named by their CGATS sample ids (A1, A2, …)."""
    source = build_measurements("digital_sg").patches[: rows * columns]
    return [
        patch.model_copy(update={"name": f"{chr(ord('A') + position // columns)}{position % columns + 1}"})
        for position, patch in enumerate(source)
    ]


def patches_reaching_a_round_extent() -> list[PatchResult]:
    """Classic 24 patches with one so far out that the a*b* planes end on a labelled tick (±100)."""
    patches = list(build_measurements("classic24").patches)
    patches[0] = patches[0].model_copy(update={"reference_lab": (50.0, 100.0 / 1.1, 0.0)})
    return patches


def patches_with_the_longest_names() -> list[PatchResult]:
    """A custom chart whose CGATS sample ids are as long as allowed (64 characters), of wide letters."""
    return [
        patch.model_copy(update={"name": f"{position:02d}".ljust(64, "W")})
        for position, patch in enumerate(custom_chart_patches())
    ]


FIGURES_OF_CHARTS: dict[str, Callable[[], Sequence[PatchResult]]] = {
    "classic24": lambda: build_measurements("classic24").patches,
    "classic24 to ±100": patches_reaching_a_round_extent,
    "digital_sg": lambda: build_measurements("digital_sg").patches,
    "custom 5x7": custom_chart_patches,
    "custom, longest names": patches_with_the_longest_names,
}


def drawn_figures(patches: Sequence[PatchResult]) -> list[Figure]:
    figures = [
        chromaticity_figure(patches),
        tone_response_figure(patches),
        patch_pairs_figure(patches),
        delta_e_figure(patches),
    ]
    drawn = [figure for figure in figures if figure is not None]
    for figure in drawn:
        figure.canvas.draw()
    return drawn


def tick_labels(axis: Axis) -> list[Text]:
    """The labels of the ticks drawn: those inside the axis's view."""
    locations = axis.get_majorticklocs()
    low, high = sorted(axis.get_view_interval())
    margin = 1e-9 * (high - low)
    return [
        tick.label1
        for tick, location in zip(axis.get_major_ticks(len(locations)), locations, strict=True)
        if low - margin <= location <= high + margin and tick.label1.get_visible() and tick.label1.get_text()
    ]


def drawn_texts(figure: Figure) -> list[Text]:
    """The figure's words as drawn: titles, axis and tick labels, legends, notes."""
    texts = list(figure.texts)
    for axes in figure.axes:
        texts += [axes.title, *axes.texts]
        if axes.axison:
            texts += [axes.xaxis.label, axes.yaxis.label, *tick_labels(axes.xaxis), *tick_labels(axes.yaxis)]
        legend = axes.get_legend()
        if legend is not None:
            texts += legend.get_texts()
    return [text for text in texts if text.get_visible() and text.get_text()]


def renderer_of(figure: Figure) -> RendererAgg:
    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    return canvas.get_renderer()


def extent(artist: Text, figure: Figure) -> Bbox:
    return artist.get_window_extent(renderer_of(figure))


def within(box: BboxBase, bounds: BboxBase, tolerance: float = 0.5) -> bool:
    return bool(
        bounds.x0 - tolerance <= box.x0
        and box.x1 <= bounds.x1 + tolerance
        and bounds.y0 - tolerance <= box.y0
        and box.y1 <= bounds.y1 + tolerance
    )


@pytest.mark.parametrize("chart", FIGURES_OF_CHARTS)
def test_every_word_of_the_figures_lies_inside_them(chart: str) -> None:
    for figure in drawn_figures(FIGURES_OF_CHARTS[chart]()):
        texts = drawn_texts(figure)
        assert len(texts) > 3
        outside = [text.get_text() for text in texts if not within(extent(text, figure), figure.bbox)]
        assert outside == []


@pytest.mark.parametrize("chart", FIGURES_OF_CHARTS)
def test_labels_overlap_neither_other_plots_nor_their_tick_labels(chart: str) -> None:
    for figure in drawn_figures(FIGURES_OF_CHARTS[chart]()):
        renderer = renderer_of(figure)
        for axes in figure.axes:
            others = [other.get_window_extent(renderer) for other in figure.axes if other is not axes]
            texts = [axes.title, *figure.texts]
            if axes.axison:
                texts += [
                    axes.xaxis.label,
                    axes.yaxis.label,
                    *tick_labels(axes.xaxis),
                    *tick_labels(axes.yaxis),
                ]
                for axis in (axes.xaxis, axes.yaxis):
                    label = extent(axis.label, figure)
                    assert not any(label.overlaps(extent(tick, figure)) for tick in tick_labels(axis))
            for text in texts:
                assert not any(extent(text, figure).overlaps(other) for other in others), text.get_text()
        titles = [extent(axes.title, figure) for axes in figure.axes] + [
            extent(text, figure) for text in figure.texts
        ]
        for index, title in enumerate(titles):
            assert not any(title.overlaps(other) for other in titles[index + 1 :])


def test_the_figures_are_placed_without_a_layout_solver(measurements: Measurements) -> None:
    figures = drawn_figures(measurements.patches)
    assert len(figures) == 4
    assert all(figure.get_layout_engine() is None for figure in figures)


def test_the_pdf_backend_loads_only_when_a_pdf_is_made() -> None:
    """Most reports are never asked for as PDF; its backend (and fontTools with it) is left out of
    the reporter's memory until one is."""
    probe = (
        "import sys; from chromaline.reporter.render import render_report; "
        "print('matplotlib.backends.backend_pdf' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert loaded.stdout.strip() == "False"


def test_dollar_signs_in_names_are_drawn_as_written() -> None:
    """matplotlib read text between two dollar signs as mathematics: a file or patch name such as
    ``a$_$`` failed every drawing of the PDF and the figures, and ``$5 and $6`` lost its signs."""
    measurements = build_measurements(filename="a$_$ price $5 and $6.png")
    patches = [patch.model_copy(update={"name": f"$_{patch.index}$"}) for patch in measurements.patches]
    measurements = measurements.model_copy(update={"patches": patches})
    photo = np.full((480, 640, 3), 128, dtype=np.uint8)
    report = render_report(measurements, encode(photo, ".png"), encode(photo, ".jpg"))

    assert pdf_of(report).startswith(b"%PDF")
    figures = pages_of(report).figures
    assert b"$_0$" in figures["patch_pairs"]
    assert b"$_0$" in figures["delta_e"]
