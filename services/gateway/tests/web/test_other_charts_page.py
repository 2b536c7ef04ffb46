"""The result page of a photo that held other charts besides the one it was corrected with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route, expect

from .conftest import Account

CLASSIC = {"chart_type": "classic24", "corners": [[1, 1], [9, 1], [9, 6], [1, 6]], "confidence": 0.871}


def test_the_other_charts_are_listed_under_how_it_was_measured(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    page = browse(account)

    def with_another_chart(route: Route) -> None:
        view = route.fetch().json()
        view["other_charts"] = [CLASSIC]
        route.fulfill(json=view)

    page.route(f"**/api/v1/jobs/{finished_job['id']}", with_another_chart)
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#result-details summary").click()
    expect(page.locator("#other-charts .other-chart")).to_have_text(
        "ColorChecker Classic (24 patches), confidence 0.87"
    )


def test_the_check_on_another_chart_from_the_measurements_is_shown(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    page = browse(account)
    summary = {"median": 1.0, "p95": 2.0, "max": 3.0}
    checked = {
        **CLASSIC,
        "patches_compared": 22,
        "delta_e2000_before": {**summary, "mean": 6.04},
        "delta_e2000_after": {**summary, "mean": 1.88},
    }

    def with_a_checked_chart(route: Route) -> None:
        document = route.fetch().json()
        document["other_charts"] = [checked]
        route.fulfill(json=document)

    page.route("**/files/measurements*", with_a_checked_chart)
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#result-details summary").click()
    expect(page.locator("#other-charts .other-chart")).to_have_text(
        "ColorChecker Classic (24 patches), confidence 0.87: 6.0 → 1.9 ΔE₀₀ on its 22 patches"
    )


def test_a_photo_with_one_chart_lists_no_others(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    page = browse(account)
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#result-details summary").click()
    expect(page.locator("#chart-type")).to_be_visible()
    expect(page.locator("#other-charts")).to_have_count(0)


def test_correcting_with_the_other_chart_sends_the_photo_again_with_its_corners_type_and_guideline(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    page = browse(account)
    sent: list[dict[str, str]] = []

    def with_another_chart(route: Route) -> None:
        view = route.fetch().json()
        view["other_charts"] = [CLASSIC]
        view["options"]["guideline"] = "metamorfoze2"
        route.fulfill(json=view)

    def uploaded(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        body = route.request.post_data_buffer or b""
        fields = ("chart_type", "corners", "guideline", "sent_again_from")
        sent.append({name: _form_field(body, name) for name in fields})
        route.fulfill(status=429, json={"code": "rate_limited", "detail": "held back by this test"})

    page.route(f"**/api/v1/jobs/{finished_job['id']}", with_another_chart)
    page.route("**/api/v1/jobs", uploaded)
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#result-details summary").click()
    page.get_by_role("button", name="Correct with this chart").click()
    expect(page.locator("#result-details [role=status]")).to_contain_text("held back by this test")
    assert sent == [
        {
            "chart_type": "classic24",
            "corners": "[[1,1],[9,1],[9,6],[1,6]]",
            "guideline": "metamorfoze2",
            "sent_again_from": finished_job["id"],
        }
    ]


def test_pressing_correct_with_this_chart_twice_sends_the_photo_once(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    page = browse(account)
    sent: list[str] = []

    def with_another_chart(route: Route) -> None:
        view = route.fetch().json()
        view["other_charts"] = [CLASSIC]
        route.fulfill(json=view)

    def uploaded(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        sent.append(route.request.url)
        route.fulfill(status=429, json={"code": "rate_limited", "detail": "held back by this test"})

    page.route(f"**/api/v1/jobs/{finished_job['id']}", with_another_chart)
    page.route("**/api/v1/jobs", uploaded)
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#result-details summary").click()
    button = page.get_by_role("button", name="Correct with this chart")
    button.dblclick()
    expect(page.locator("#result-details [role=status]")).to_contain_text("held back by this test")
    expect(button).to_be_enabled()
    page.wait_for_timeout(500)
    assert len(sent) == 1


def test_each_correct_with_this_chart_button_names_its_chart(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    page = browse(account)
    sg = {"chart_type": "digital_sg", "corners": [[20, 1], [30, 1], [30, 8], [20, 8]], "confidence": 0.8}

    def with_two_other_charts(route: Route) -> None:
        view = route.fetch().json()
        view["other_charts"] = [CLASSIC, sg]
        route.fulfill(json=view)

    page.route(f"**/api/v1/jobs/{finished_job['id']}", with_two_other_charts)
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#result-details summary").click()
    buttons = page.locator("#other-charts").get_by_role("button")
    expect(buttons).to_have_count(2)
    names = [
        "Correct with this chart, the ColorChecker Classic (24 patches)",
        "Correct with this chart, the ColorChecker Digital SG (140 patches)",
    ]
    for index, name in enumerate(names):
        expect(buttons.nth(index)).to_have_accessible_name(name)


def _form_field(body: bytes, name: str) -> str:
    """The value of one text field of a multipart body."""
    marker = f'name="{name}"\r\n\r\n'.encode()
    start = body.index(marker) + len(marker)
    return body[start : body.index(b"\r\n", start)].decode()


def test_a_photo_sent_again_links_back_to_its_earlier_result(
    browse: Callable[[Account | None], Page],
    account: Account,
    finished_job: dict[str, Any],
    chart_photo: Path,
) -> None:
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs",
            files={"files": ("sent-again.jpg", chart_photo.read_bytes(), "image/jpeg")},
            data={"sent_again_from": finished_job["id"]},
        )
        again = batch.raise_for_status().json()["jobs"][0]["id"]
    page = browse(account)
    page.goto(f"/#/jobs/{again}")
    page.locator("#sent-again-from").click()
    expect(page.locator("h1")).to_have_text(finished_job["filename"])
    expect(page.locator("#sent-again-from")).to_have_count(0)
    page.goto("/#/history")
    expect(page.locator(f"tr[data-job-id='{again}'] .sent-again")).to_have_text("(sent again)")
    expect(page.locator(f"tr[data-job-id='{finished_job['id']}'] .sent-again")).to_have_count(0)
