"""The colour report in three forms: JSON for machines, one self-contained HTML file and a PDF.

Plain library: it takes the measurements document and the two photographs as bytes and
returns bytes; storing them and announcing them is the service's business. Figures are drawn
on ``matplotlib.figure.Figure`` objects with the Agg canvas (never pyplot), so rendering keeps
no global state and is safe in worker threads. The PDF is made with matplotlib's PdfPages so
no other PDF library is needed. Text a user wrote (file, chart and patch names, warnings naming
them) is drawn with ``parse_math=False``: matplotlib would read it between two dollar signs as
mathematics, and fail to draw the page when that is not valid.

Every report gets its JSON, two annotated previews and a thumbnail (:func:`render_report`).
The HTML report with its figures (:func:`render_stored_html`) and the PDF
(:func:`render_stored_pdf`) are drawn on request from the stored JSON and previews: drawing the
figures cost more than correcting the photo, and many reports are never opened. The reporter's
handler imports this module when it first renders a report, so matplotlib is not loaded when the
reporter starts.
"""

from __future__ import annotations

import base64
import io
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import metadata

from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from pydantic import BaseModel, ConfigDict

from chromaline.common.events.contracts import ReportFigure
from chromaline.common.measurements import (
    DeltaESummaries,
    Measurements,
    OtherChart,
    PatchResult,
    Summary,
    method_label,
)
from chromaline.engine.charts import chart_spec
from chromaline.reporter.figures import (
    MIN_TONE_PATCHES,
    chromaticity_figure,
    delta_e_figure,
    neutral_patches,
    new_figure,
    patch_pairs_figure,
    svg_bytes,
    tone_response_figure,
)
from chromaline.reporter.thumbnails import (
    BgrImage,
    draw_polygon,
    encode_jpeg,
    line_thickness,
    make_thumbnail,
    scale_points,
    shrink,
    to_rgb,
)

RATING_GUIDELINE = "FADGI 2016"
"""The imaging guideline of a measurements document that does not name its own."""

OUTLINE_BGR = (0, 215, 255)
USED_PATCH_BGR = (60, 200, 60)
EXCLUDED_PATCH_BGR = (40, 40, 230)
OTHER_CHART_BGR = (230, 130, 30)
"""Blue: the outlines of charts found beside the measured one."""

A4_PORTRAIT = (8.27, 11.69)
LIST_THUMBNAIL_SIDE = 160
"""The longest side, in pixels, of the thumbnail shown in lists of jobs."""
PATCH_ROWS_PER_PAGE = 40
MISSING = "—"


class ReportHeader(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    generated_at: datetime
    chromaline_version: str
    rating_guideline: str
    rating_thresholds: dict[str, float] | None
    """The thresholds the ratings were computed with, as the caller supplied them."""


class ReportDocument(BaseModel):
    """The JSON report: the measurements as measured, under a small header."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    report: ReportHeader
    measurements: Measurements


@dataclass(frozen=True)
class RenderedReport:
    """What is made for every report: the rest is drawn from it on request."""

    json: bytes
    before: bytes
    after: bytes
    """The annotated previews as JPEG: what the HTML and PDF reports show, kept so that they are
    made without decoding the photographs again."""
    thumbnail: bytes
    """A small JPEG of the corrected photo, for lists of jobs."""
    figure_names: tuple[ReportFigure, ...]
    """The figures the HTML report will have (:func:`figure_names`)."""


@dataclass(frozen=True)
class RenderedPages:
    """The HTML report and its figures, drawn on request."""

    html: bytes
    figures: dict[ReportFigure, bytes]
    """The figures as SVG by name, for pages that show them apart from the report."""


@cache
def chromaline_version() -> str:
    try:
        return metadata.version("chromaline-reporter")
    except metadata.PackageNotFoundError:
        return "unknown"


def render_report(
    measurements: Measurements,
    original: bytes,
    corrected: bytes,
    *,
    rating_thresholds: Mapping[str, float] | None = None,
    generated_at: datetime | None = None,
) -> RenderedReport:
    """Render the JSON report, the previews and the thumbnail for one corrected photograph; the
    HTML and PDF reports are made from them on request.

    ``original`` and ``corrected`` are the encoded photographs (JPEG, PNG or TIFF).
    """
    header = ReportHeader(
        generated_at=(generated_at or datetime.now(UTC)).astimezone(UTC),
        chromaline_version=chromaline_version(),
        rating_guideline=measurements.rating_guideline or RATING_GUIDELINE,
        rating_thresholds=dict(rating_thresholds) if rating_thresholds is not None else None,
    )
    document = ReportDocument(report=header, measurements=measurements)
    corrected_preview = make_thumbnail(corrected)
    before, after = annotated_thumbnails(measurements, make_thumbnail(original), corrected_preview.copy())
    return RenderedReport(
        json=render_json(document),
        before=encode_jpeg(before),
        after=encode_jpeg(after),
        thumbnail=encode_jpeg(shrink(corrected_preview, LIST_THUMBNAIL_SIDE)),
        figure_names=figure_names(measurements.patches),
    )


def render_stored_html(report_json: bytes, before: bytes, after: bytes) -> RenderedPages:
    """The HTML report and its figures, from a report's JSON and its two preview JPEGs."""
    document = parse_report_json(report_json)
    figures = ReportFigures.of(document.measurements.patches)
    svgs = figures.svgs() if figures else {}
    return RenderedPages(html=render_html(document, before, after, svgs), figures=svgs)


def render_json(document: ReportDocument) -> bytes:
    payload = document.model_dump(mode="json")
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")


def parse_report_json(data: bytes) -> ReportDocument:
    return ReportDocument.model_validate_json(data)


# ---------------------------------------------------------------------------------------------
# Previews


def annotated_thumbnails(
    measurements: Measurements, before: BgrImage, after: BgrImage
) -> tuple[BgrImage, BgrImage]:
    """Draw the chart's outline on both previews and the sampled quads on the before one, in place."""
    size = measurements.image_size
    thickness = line_thickness(before)
    for patch in measurements.patches:
        colour = USED_PATCH_BGR if patch.used_in_fit else EXCLUDED_PATCH_BGR
        draw_polygon(before, scale_points(patch.quad, size, before), colour, max(1, thickness - 1))
    for thumbnail in (before, after):
        for other in measurements.other_charts:
            outline = scale_points(other.corners, size, thumbnail)
            draw_polygon(thumbnail, outline, OTHER_CHART_BGR, line_thickness(thumbnail) + 1)
        if measurements.corners is not None:
            outline = scale_points(measurements.corners, size, thumbnail)
            draw_polygon(thumbnail, outline, OUTLINE_BGR, line_thickness(thumbnail) + 1)
    return before, after


# ---------------------------------------------------------------------------------------------
# Figures


def figure_names(patches: Sequence[PatchResult]) -> tuple[ReportFigure, ...]:
    """The figures drawn of these patches (:class:`ReportFigures`), in the report's order: none
    without patches, and no tone response without two neutral patches."""
    if not patches:
        return ()
    has_tones = len(neutral_patches(patches)) >= MIN_TONE_PATCHES
    return ("chromaticity", *(("tone_response",) if has_tones else ()), "patch_pairs", "delta_e")


@dataclass(frozen=True)
class ReportFigures:
    """The pictures of a measured chart, in the order the report shows them."""

    chromaticity: Figure
    tone_response: Figure | None
    patch_pairs: Figure
    delta_e: Figure

    @classmethod
    def of(cls, patches: Sequence[PatchResult]) -> ReportFigures | None:
        if not patches:
            return None
        return cls(
            chromaticity=chromaticity_figure(patches),
            tone_response=tone_response_figure(patches),
            patch_pairs=patch_pairs_figure(patches),
            delta_e=delta_e_figure(patches),
        )

    def svgs(self) -> dict[ReportFigure, bytes]:
        """Each figure as SVG: the HTML report embeds these same SVGs rather than drawing the
        figures again."""
        named: dict[ReportFigure, Figure | None] = {
            "chromaticity": self.chromaticity,
            "tone_response": self.tone_response,
            "patch_pairs": self.patch_pairs,
            "delta_e": self.delta_e,
        }
        return {name: svg_bytes(figure) for name, figure in named.items() if figure is not None}

    def in_order(self) -> list[Figure]:
        return [
            figure
            for figure in (self.chromaticity, self.tone_response, self.patch_pairs, self.delta_e)
            if figure is not None
        ]


# ---------------------------------------------------------------------------------------------
# Text shared by the HTML and the PDF


def format_delta_e(value: float | None) -> str:
    return MISSING if value is None or not math.isfinite(value) else f"{value:.2f}"


def _or_missing(value: str | None) -> str:
    return value if value else MISSING


@dataclass(frozen=True)
class SummaryRow:
    label: str
    before: str
    after: str


def summary_rows(before: DeltaESummaries | None, after: DeltaESummaries | None) -> list[SummaryRow]:
    def pick(summaries: DeltaESummaries | None, formula: str, statistic: str) -> str:
        if summaries is None:
            return MISSING
        summary: Summary = getattr(summaries, formula)
        return format_delta_e(getattr(summary, statistic))

    wanted = [
        ("ΔE2000 mean", "cie2000", "mean"),
        ("ΔE2000 median", "cie2000", "median"),
        ("ΔE2000 95th percentile", "cie2000", "p95"),
        ("ΔE2000 maximum", "cie2000", "max"),
        ("ΔE76 mean", "cie1976", "mean"),
        ("ΔE94 mean", "cie1994", "mean"),
    ]
    return [
        SummaryRow(label, pick(before, formula, statistic), pick(after, formula, statistic))
        for label, formula, statistic in wanted
    ]


def _rgb_text(rgb: tuple[int, int, int]) -> str:
    return f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(min(255, max(0, value)) for value in rgb))


@dataclass(frozen=True)
class PatchRow:
    number: int
    name: str
    used: bool
    flags: str
    reference_rgb: str
    before_rgb: str
    after_rgb: str
    reference_hex: str
    before_hex: str
    after_hex: str
    de2000_before: str
    de2000_after: str
    de76_after: str
    de94_after: str

    @classmethod
    def of(cls, patch: PatchResult) -> PatchRow:
        return cls(
            number=patch.index + 1,
            name=patch.name,
            used=patch.used_in_fit,
            flags=", ".join(patch.flags),
            reference_rgb=_rgb_text(patch.reference_srgb),
            before_rgb=_rgb_text(patch.before_srgb),
            after_rgb=_rgb_text(patch.after_srgb),
            reference_hex=_hex(patch.reference_srgb),
            before_hex=_hex(patch.before_srgb),
            after_hex=_hex(patch.after_srgb),
            de2000_before=format_delta_e(patch.delta_e2000[0]),
            de2000_after=format_delta_e(patch.delta_e2000[1]),
            de76_after=format_delta_e(patch.delta_e76[1]),
            de94_after=format_delta_e(patch.delta_e94[1]),
        )


def _chart_label(measurements: Measurements) -> str:
    return MISSING if measurements.chart_type is None else _chart_type_label(measurements.chart_type)


def _chart_type_label(chart_type: str) -> str:
    try:
        return f"{chart_spec(chart_type).title} ({chart_type})"
    except ValueError:
        return chart_type


def other_charts_label(measurements: Measurements) -> str | None:
    """The charts found beside the measured one, for people; None when there were none."""
    if not measurements.other_charts:
        return None
    return "; ".join(_other_chart_label(other) for other in measurements.other_charts)


def _other_chart_label(other: OtherChart) -> str:
    found = f"{_chart_type_label(other.chart_type)}, confidence {other.confidence:.2f}"
    if other.delta_e2000_before is None or other.delta_e2000_after is None:
        return found
    return (
        f"{found}: ΔE2000 over its {other.patches_compared} patches {format_delta_e(other.delta_e2000_before.mean)} "
        f"before, {format_delta_e(other.delta_e2000_after.mean)} after (none of them fitted)"
    )


# ---------------------------------------------------------------------------------------------
# HTML


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("chromaline.reporter", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _embedded(figures: Mapping[ReportFigure, bytes], name: ReportFigure) -> str | None:
    svg = figures.get(name)
    return _base64(svg) if svg is not None else None


def _other_charts_outline_note(measurements: Measurements) -> str | None:
    """What the previews' blue outlines are, for their alternative text; None without other charts."""
    count = len(measurements.other_charts)
    if not count:
        return None
    return (
        "with the other chart found in the photo outlined"
        if count == 1
        else f"with the {count} other charts found in the photo outlined"
    )


def _other_charts_key(measurements: Measurements) -> str | None:
    """The previews' key for the blue outlines; None without other charts."""
    if not measurements.other_charts:
        return None
    return "Blue: other charts found in the photo, not fitted."


def render_html(
    document: ReportDocument, before: bytes, after: bytes, figures: Mapping[ReportFigure, bytes]
) -> bytes:
    """The report as one HTML file; ``before`` and ``after`` are the annotated previews as JPEG,
    ``figures`` the SVGs by name (none without a chart)."""
    measurements = document.measurements
    header = document.report
    has_chart = bool(measurements.patches)
    width, height = measurements.image_size
    chart_note = (
        "with the chart outlined and the sampled patches marked" if has_chart else "no chart measured"
    )
    others_note = _other_charts_outline_note(measurements)
    context = {
        "filename": measurements.filename,
        "job_id": str(measurements.job_id) if measurements.job_id else None,
        "chart_type": _chart_label(measurements),
        "other_charts": other_charts_label(measurements),
        "reference_edition": _or_missing(measurements.reference_edition),
        "method": method_label(measurements.method, measurements.objective),
        "image_size": f"{width} × {height} px",
        "generated_at": header.generated_at.isoformat(timespec="seconds"),
        "version": header.chromaline_version,
        "has_chart": has_chart,
        "fitted_count": sum(1 for patch in measurements.patches if patch.used_in_fit),
        "summary_rows": summary_rows(measurements.before, measurements.after),
        "cross_validated": (
            format_delta_e(measurements.cross_validated_delta_e2000)
            if measurements.cross_validated_delta_e2000 is not None
            else None
        ),
        "guideline": header.rating_guideline,
        "rating_before": _or_missing(measurements.rating_before),
        "rating_after": _or_missing(measurements.rating_after),
        "thresholds": [(level, f"{value:g}") for level, value in (header.rating_thresholds or {}).items()],
        "before_image": _base64(before),
        "after_image": _base64(after),
        "before_alt": f"Photo {measurements.filename} before correction, {chart_note}"
        + (f", {others_note}" if others_note else ""),
        "after_alt": f"Photo {measurements.filename} after correction"
        + (f", {others_note}" if others_note else ""),
        "other_charts_key": _other_charts_key(measurements),
        "chromaticity": _embedded(figures, "chromaticity"),
        "tone_response": _embedded(figures, "tone_response"),
        "neutral_count": len(neutral_patches(measurements.patches)),
        "patch_pairs": _embedded(figures, "patch_pairs"),
        "bar_chart": _embedded(figures, "delta_e"),
        "patches": [PatchRow.of(patch) for patch in measurements.patches],
        "timings": [(stage, f"{ms:.0f}") for stage, ms in measurements.timings_ms.items()],
        "warnings": [warning.message for warning in measurements.warnings],
    }
    return _environment().get_template("report.html.j2").render(context).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# PDF


def render_stored_pdf(report_json: bytes, before: bytes, after: bytes) -> bytes:
    """The PDF of a report rendered earlier, from its JSON and its two preview JPEGs."""
    document = parse_report_json(report_json)
    figures = ReportFigures.of(document.measurements.patches)
    return render_pdf(document, make_thumbnail(before), make_thumbnail(after), figures)


def render_pdf(
    document: ReportDocument, before: BgrImage, after: BgrImage, figures: ReportFigures | None
) -> bytes:
    """Page 1: overview, summary and previews; then a page per figure; then the patch table."""
    from matplotlib.backends.backend_pdf import PdfPages  # with fontTools: only where PDFs are made

    buffer = io.BytesIO()
    info = {"Title": f"Colour report — {document.measurements.filename}", "Creator": "Chromaline"}
    with PdfPages(buffer, metadata=info) as pdf:
        pdf.savefig(_overview_page(document, before, after))
        for figure in figures.in_order() if figures else []:
            pdf.savefig(figure)
        patches = document.measurements.patches
        for start in range(0, len(patches), PATCH_ROWS_PER_PAGE):
            chunk = patches[start : start + PATCH_ROWS_PER_PAGE]
            pdf.savefig(patch_table_page(chunk, start, len(patches)))
    return buffer.getvalue()


OVERVIEW_FIRST_BASELINE = 0.92
OVERVIEW_LAST_BASELINE = 0.72
"""The overview's lines of facts sit between these heights (of the page): below them comes the
summary table, whose top may move down from 0.78 to 0.70 and still end above the previews."""
OVERVIEW_TABLE_TOP = 0.78
OVERVIEW_TABLE_GAP = 0.02
OVERVIEW_LINE_STEP = 0.022
OVERVIEW_FONT_SIZE = 10.0
OVERVIEW_MIN_FONT_SIZE = 6.0
OVERVIEW_LINE_CHARACTERS = 84
"""Characters of a line of facts at 10 pt that fit between the page's margins (7.1 in), upper
case and digits included: longer facts are wrapped to this width, never measured."""


def _overview_lines(figure: Figure, lines: Sequence[str]) -> float:
    """Write the overview's facts one under another, each wrapped to the page's width, smaller
    (and so closer together, and more to a line) when there are more than fit above the table at
    10 pt (a photo with other charts and long warnings); the baseline of the last one."""
    room = OVERVIEW_FIRST_BASELINE - OVERVIEW_LAST_BASELINE
    size = OVERVIEW_FONT_SIZE
    while True:
        width = int(OVERVIEW_LINE_CHARACTERS * OVERVIEW_FONT_SIZE / size)
        rows = [row for line in lines for row in (textwrap.wrap(line, width) or [""])]
        step = OVERVIEW_LINE_STEP * size / OVERVIEW_FONT_SIZE
        most = int(room / step + 1e-9) + 1
        if len(rows) <= most:
            break
        if size <= OVERVIEW_MIN_FONT_SIZE:
            rows = [*rows[: most - 1], "… and more: the HTML report and report.json have every line."]
            break
        size = max(OVERVIEW_MIN_FONT_SIZE, size - 0.5)
    for number, row in enumerate(rows):
        figure.text(0.07, OVERVIEW_FIRST_BASELINE - number * step, row, fontsize=size, parse_math=False)
    return OVERVIEW_FIRST_BASELINE - (len(rows) - 1) * step


def _overview_page(document: ReportDocument, before: BgrImage, after: BgrImage) -> Figure:
    measurements = document.measurements
    header = document.report
    figure = new_figure(A4_PORTRAIT)
    figure.text(0.07, 0.955, "Colour report", fontsize=20, weight="bold")
    lines = [
        (
            f"Rating ({header.rating_guideline}): before {_or_missing(measurements.rating_before)}, "
            f"after {_or_missing(measurements.rating_after)}"
        ),
        f"File: {measurements.filename}",
        f"Chart: {_chart_label(measurements)}    Reference edition: {_or_missing(measurements.reference_edition)}",
        f"Method: {method_label(measurements.method, measurements.objective)}",
        f"Generated: {header.generated_at.isoformat(timespec='seconds')}    Chromaline {header.chromaline_version}",
    ]
    others = other_charts_label(measurements)
    if others is not None:
        lines.append(f"Also in the photo (outlined in blue, not fitted): {others}")
    if measurements.cross_validated_delta_e2000 is not None:
        lines.append(f"Cross-validated ΔE2000: {format_delta_e(measurements.cross_validated_delta_e2000)}")
    lines += [f"Warning: {warning.message}" for warning in measurements.warnings]
    last_baseline = _overview_lines(figure, lines)

    if measurements.patches:
        table_top = min(OVERVIEW_TABLE_TOP, last_baseline - OVERVIEW_TABLE_GAP)
        table_axes = figure.add_axes((0.07, table_top - 0.22, 0.86, 0.22))
        table_axes.axis("off")
        rows = summary_rows(measurements.before, measurements.after)
        table = table_axes.table(
            cellText=[[row.label, row.before, row.after] for row in rows],
            colLabels=["ΔE over the patches used for the fit", "Before", "After"],
            colWidths=[0.6, 0.2, 0.2],
            loc="upper center",
            cellLoc="left",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(10)
        table.scale(1.0, 1.5)
    else:
        figure.text(
            0.07,
            min(0.74, last_baseline - 0.06),
            "No colour chart was measured in this photo: it was corrected without a chart,\n"
            "so there are no patches and no colour differences to report.",
            fontsize=11,
        )

    for left, image, title in ((0.05, before, "Before correction"), (0.52, after, "After correction")):
        axes = figure.add_axes((left, 0.17, 0.43, 0.36))
        axes.imshow(to_rgb(image))
        axes.set_title(title, fontsize=10)
        axes.axis("off")
    key = (
        "Yellow: chart outline; green: patches sampled for the fit; red: patches left out of the fit."
        if measurements.patches
        else ""
    )
    others_key = _other_charts_key(measurements)
    if others_key is not None:
        key = f"{key}\n{others_key}".strip()
    if key:
        figure.text(0.07, 0.16, key, fontsize=8)
    return figure


TABLE_FONT_SIZE = 7.5
TABLE_ROW_HEIGHT = 0.021
"""Of the table's axes (0.9 of an A4 page): 41 rows of 7.5 pt text with room between them."""
MONOSPACE_ADVANCE = 1233 / 2048
"""The advance of every glyph of DejaVu Sans Mono, in ems (a renderer that hints may draw them
narrower, never wider)."""
SWATCH_WIDTH = 0.07
LEFT_OUT_BACKGROUND = (0.98, 0.94, 0.86)


def patch_table_page(patches: Sequence[PatchResult], start: int, total: int) -> Figure:
    """A page of the patch table: per row, two runs of monospaced text (number and name; ΔE, fit
    and flags) either side of three colour swatches (reference, before, after), over a
    background that marks the patches left out of the fit. About two text objects a row instead
    of matplotlib's table with a text per cell, which cost more than all the figures' pages."""
    figure = new_figure(A4_PORTRAIT)
    end = start + len(patches)
    figure.text(0.05, 0.965, f"Patches {start + 1}–{end} of {total}", fontsize=14, weight="bold")
    axes = figure.add_axes((0.05, 0.04, 0.9, 0.9))
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(1.0, 0.0)
    axes.axis("off")
    rows = [PatchRow.of(patch) for patch in patches]
    leading = _monospaced_columns(
        {"#": [str(row.number) for row in rows], "Patch": [row.name for row in rows]}
    )
    trailing = _monospaced_columns(
        {
            "ΔE00 before": [row.de2000_before for row in rows],
            "ΔE00 after": [row.de2000_after for row in rows],
            "Fit": ["used" if row.used else "left out" for row in rows],
            "Flags": [row.flags for row in rows],
        }
    )
    char_width = MONOSPACE_ADVANCE * TABLE_FONT_SIZE / (0.9 * A4_PORTRAIT[0] * 72.0)
    swatches_left = len(leading[0]) * char_width
    trailing_left = swatches_left + 3 * SWATCH_WIDTH + char_width
    cells: list[Rectangle] = []
    colours: list[tuple[float, float, float]] = []
    for number, patch in enumerate(patches, start=1):
        top = number * TABLE_ROW_HEIGHT
        cells.append(Rectangle((0.0, top), 1.0, TABLE_ROW_HEIGHT))
        colours.append((1.0, 1.0, 1.0) if patch.used_in_fit else LEFT_OUT_BACKGROUND)
        for column, rgb in enumerate((patch.reference_srgb, patch.before_srgb, patch.after_srgb)):
            left = swatches_left + column * SWATCH_WIDTH
            cells.append(
                Rectangle((left, top + 0.15 * TABLE_ROW_HEIGHT), 0.85 * SWATCH_WIDTH, 0.7 * TABLE_ROW_HEIGHT)
            )
            colours.append(_unit_rgb(rgb))
    axes.add_collection(PatchCollection(cells, facecolors=colours, edgecolors="#999999", linewidths=0.3))
    for column, label in enumerate(("Ref.", "Before", "After")):
        _table_text(axes, swatches_left + column * SWATCH_WIDTH, 0, label, bold=True)
    for number, (left_text, right_text) in enumerate(zip(leading, trailing, strict=True)):
        _table_text(axes, 0.0, number, left_text, bold=number == 0)
        _table_text(axes, trailing_left, number, right_text, bold=number == 0)
    return figure


def _monospaced_columns(columns: Mapping[str, Sequence[str]]) -> list[str]:
    """The header line, then a line per row, each column padded to its widest value."""
    widths = {name: max(len(name), *(len(value) for value in values)) + 2 for name, values in columns.items()}
    count = len(next(iter(columns.values())))
    header = "".join(name.ljust(widths[name]) for name in columns)
    lines = [
        "".join(values[index].ljust(widths[name]) for name, values in columns.items())
        for index in range(count)
    ]
    return [header, *lines]


def _table_text(axes: Axes, left: float, row: int, text: str, *, bold: bool = False) -> None:
    axes.text(
        left,
        (row + 0.5) * TABLE_ROW_HEIGHT,
        text.rstrip(),
        family="DejaVu Sans Mono",
        fontsize=TABLE_FONT_SIZE,
        weight="bold" if bold else "normal",
        va="center",
        parse_math=False,
    )


def _unit_rgb(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
