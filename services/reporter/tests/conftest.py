"""Fixtures shared by the reporter's tests."""

from __future__ import annotations

import pytest

from chromaline.common.measurements import Measurements


@pytest.fixture
def chartless_measurements() -> Measurements:
    """The measurements of a photo corrected without a chart: no patches, no colour differences."""
    return Measurements(
        filename="no-chart.png",
        chart_type=None,
        reference_edition=None,
        method="profile",
        corners=None,
        image_size=(640, 480),
        patches=[],
        before=None,
        after=None,
        cross_validated_delta_e2000=None,
        rating_before=None,
        rating_after=None,
    )
