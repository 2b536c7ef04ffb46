"""The rating guideline a job names reaches the measurements; the ones a job may name are the
engine's."""

from __future__ import annotations

from typing import get_args

from chromaline.common.events.contracts import DEFAULT_RATING_GUIDELINE, JobOptions, RatingGuideline
from chromaline.corrector.handlers import rating_guideline
from chromaline.engine.rating import DEFAULT_GUIDELINE, GUIDELINES


def test_the_guidelines_a_job_may_name_are_the_ones_the_engine_rates_against() -> None:
    assert set(get_args(RatingGuideline)) == set(GUIDELINES)
    assert DEFAULT_GUIDELINE.key == DEFAULT_RATING_GUIDELINE


def test_a_job_is_rated_against_the_guideline_it_names() -> None:
    assert rating_guideline(JobOptions(guideline="metamorfoze2")).name == "Metamorfoze 2.0"
    assert rating_guideline(JobOptions(guideline="fadgi2016")).name == "FADGI 2016"
    assert rating_guideline(JobOptions()) is DEFAULT_GUIDELINE
