"""A report of a photo that held another chart besides the one measured: named and outlined."""

from __future__ import annotations

import html
import itertools
import re

from chromaline.common.measurements import OtherChart, ResultWarning, Summary
from chromaline.reporter.render import (
    _overview_page,
    parse_report_json,
    render_report,
    render_stored_pdf,
)
from chromaline.reporter.thumbnails import make_thumbnail

from .test_render import IMAGE_SIZE, build_measurements, embedded_images, encode, pages_of, synthetic_photo

OTHER_CORNERS = [(3100.0, 2000.0), (3500.0, 2000.0), (3500.0, 2300.0), (3100.0, 2300.0)]
CHECKED_CLASSIC = OtherChart(
    chart_type="classic24",
    corners=OTHER_CORNERS,
    confidence=0.874,
    patches_compared=22,
    delta_e2000_before=Summary(mean=6.04, median=5.5, p95=11.0, max=12.5),
    delta_e2000_after=Summary(mean=1.88, median=1.8, p95=3.5, max=3.6),
)
"""A Classic 24 beside the chart measured, with its held-out check."""


def test_the_other_chart_is_named_and_outlined_in_blue_on_both_previews() -> None:
    measurements = build_measurements("digital_sg").model_copy(update={"other_charts": [CHECKED_CLASSIC]})
    original = encode(synthetic_photo(measurements, after=False), ".jpg")
    corrected = encode(synthetic_photo(measurements, after=True), ".jpg")
    rendered = render_report(measurements, original, corrected)
    report_html = pages_of(rendered).html.decode("utf-8")
    page = html.unescape(report_html)
    assert "Also in the photo" in page
    assert "(classic24), confidence 0.87: ΔE2000 over its 22 patches 6.04 before, 1.88 after" in page
    for preview in embedded_images(report_html)[:2]:
        scale = preview.shape[1] / IMAGE_SIZE[0]
        (x0, y0), (x1, _) = OTHER_CORNERS[0], OTHER_CORNERS[1]
        top_edge = preview[round(y0 * scale) - 1 : round(y0 * scale) + 2, round((x0 + x1) / 2 * scale)]
        blue, _, red = (int(channel) for channel in top_edge.max(axis=0))
        assert blue > 180
        assert red < 120
    assert render_stored_pdf(rendered.json, rendered.before, rendered.after).startswith(b"%PDF")


def test_the_previews_say_what_the_blue_outline_is() -> None:
    measurements = build_measurements("digital_sg").model_copy(
        update={"other_charts": [OtherChart(chart_type="classic24", corners=OTHER_CORNERS, confidence=0.874)]}
    )
    photo = encode(synthetic_photo(measurements, after=False), ".jpg")
    rendered = render_report(measurements, photo, photo)
    report_html = pages_of(rendered).html.decode("utf-8")
    page = html.unescape(report_html)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions[0].endswith("Blue: other charts found in the photo, not fitted.")
    assert (
        captions[1]
        == "After correction. Yellow: chart outline. Blue: other charts found in the photo, not fitted."
    )
    alts = re.findall(r'<img src="data:image/jpeg;base64,[^"]*" alt="([^"]*)"', report_html)
    assert [alt.rsplit(", ", 1)[-1] for alt in alts] == [
        "with the other chart found in the photo outlined"
    ] * 2
    overview = _overview_page(
        parse_report_json(rendered.json), make_thumbnail(rendered.before), make_thumbnail(rendered.after)
    )
    assert any("Blue: other charts found in the photo" in text.get_text() for text in overview.texts)


def test_a_report_of_a_photo_with_one_chart_names_no_other() -> None:
    measurements = build_measurements()
    photo = encode(synthetic_photo(measurements, after=False), ".jpg")
    page = pages_of(render_report(measurements, photo, photo)).html.decode("utf-8")
    assert "Also in the photo" not in page
    assert "Blue:" not in page


def test_the_pdf_overview_of_a_photo_with_other_charts_and_long_warnings_has_no_line_over_another() -> None:
    dropped = ", ".join(f"{column}{row} (clipped)" for column in "BCDEFGHIJKLM" for row in range(3, 5))
    base = build_measurements("digital_sg")
    for others, warnings in (([CHECKED_CLASSIC], 1), ([CHECKED_CLASSIC] * 3, 2), ([CHECKED_CLASSIC] * 8, 6)):
        measurements = base.model_copy(
            update={
                "other_charts": others,
                "warnings": [
                    ResultWarning(
                        code="patches_dropped", message=f"24 patch(es) left out of the fit: {dropped}"
                    )
                ]
                * warnings,
            }
        )
        photo = encode(synthetic_photo(measurements, after=False), ".jpg")
        rendered = render_report(measurements, photo, photo)
        page = _overview_page(
            parse_report_json(rendered.json), make_thumbnail(rendered.before), make_thumbnail(rendered.after)
        )
        renderer = page.canvas.get_renderer()  # type: ignore[attr-defined]
        width = page.bbox.width
        facts = [text.get_window_extent(renderer) for text in page.texts[1:-1]]
        for box in facts:
            assert box.x1 < width * 0.95
        for upper, lower in itertools.pairwise(facts):
            assert lower.y1 <= upper.y0 + 0.5
        table = page.axes[0].tables[0].get_window_extent(renderer)
        assert table.y1 < facts[-1].y0
        previews = page.axes[1].title.get_window_extent(renderer)
        assert table.y0 > previews.y1
