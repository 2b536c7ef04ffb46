"""Each organisation's period, its own or the deployment's default, and the cutoff it gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chromaline.gateway.retention import cutoff_for, effective_days

NOW = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("own", "default", "expected"),
    [(None, 365, 365), (30, 365, 30), (3650, 365, 3650), (None, 7, 7), (1, 7, 1)],
)
def test_an_organisation_without_a_period_of_its_own_gets_the_default(
    own: int | None, default: int, expected: int
) -> None:
    assert effective_days(own, default) == expected


def test_the_cutoff_counts_whole_days_of_24_hours_back_from_now() -> None:
    assert cutoff_for(NOW, 30) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert cutoff_for(NOW, 365) == datetime(2024, 3, 30, 12, 0, tzinfo=UTC)
    assert cutoff_for(NOW, 1) == datetime(2025, 3, 29, 12, 0, tzinfo=UTC)
