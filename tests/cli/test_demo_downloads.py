"""The demo and the smoke test fetch a job's files as a client must: after the report is made, and
the PDF again while the gateway answers that it is still being made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chromaline.cli.demo import wait_finished
from chromaline.cli.downloads import made_on_request


def _client(answers: Iterator[httpx.Response]) -> httpx.Client:
    return httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(lambda _: next(answers)))


def _still_making() -> httpx.Response:
    return httpx.Response(202, headers={"Retry-After": "0"}, json={"code": "report_pdf_rendering"})


def test_a_file_still_being_made_is_asked_for_again_until_it_comes() -> None:
    answers = iter([_still_making(), _still_making(), httpx.Response(200, content=b"%PDF-1.4 ...")])
    with _client(answers) as client:
        assert made_on_request(client, "/api/v1/jobs/j/files/report.pdf", timeout=5).content.startswith(
            b"%PDF"
        )


def test_a_file_never_made_ends_in_a_timeout_not_in_a_saved_error() -> None:
    with _client(iter(_still_making, None)) as client, pytest.raises(TimeoutError):
        made_on_request(client, "/api/v1/jobs/j/files/report.pdf", timeout=0.05)


def _batch(done: bool, reports_pending: int) -> httpx.Response:
    body: dict[str, Any] = {"id": "b", "done": done, "reports_pending": reports_pending, "jobs": []}
    return httpx.Response(200, json=body)


def test_the_demo_waits_for_the_reports_not_only_for_the_jobs() -> None:
    answers = iter([_batch(False, 0), _batch(True, 1), _batch(True, 0)])
    with _client(answers) as client:
        finished = wait_finished(client, "b", timeout=10)
    assert finished["reports_pending"] == 0
    assert next(answers, None) is None
