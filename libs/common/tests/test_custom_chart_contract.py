"""A custom chart travels whole inside the job's options, and only with chart_type custom."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chromaline.common.cgats import parse_cgats
from chromaline.common.events.contracts import CustomChart, JobOptions

SIX = """CGATS.17
ILLUMINANT D65
BEGIN_DATA_FORMAT
SAMPLE_ID XYZ_X XYZ_Y XYZ_Z
END_DATA_FORMAT
BEGIN_DATA
a 90 95 100
b 40 42 45
c 20 21 22
d 10 11 12
e 5 5 6
f 1 1 1
END_DATA
"""


def chart(rows: int = 2, columns: int = 3) -> CustomChart:
    return CustomChart.from_reference(
        parse_cgats(SIX), name="six", rows=rows, columns=columns, gap=0.1, margin=0.5
    )


def test_a_parsed_file_becomes_the_chart_in_the_options() -> None:
    options = JobOptions(chart_type="custom", custom_chart=chart())
    again = JobOptions.model_validate_json(options.model_dump_json())
    assert again.custom_chart is not None
    assert again.custom_chart.illuminant == "D65"
    assert again.custom_chart.values[0] == (90.0, 95.0, 100.0)


def test_the_grid_must_hold_one_value_per_patch() -> None:
    with pytest.raises(ValidationError, match="3×3 patches but 6 reference values"):
        chart(3, 3)


def test_custom_chart_and_its_type_go_together() -> None:
    with pytest.raises(ValidationError, match="chart_type custom"):
        JobOptions(chart_type="custom")
    with pytest.raises(ValidationError, match="chart_type custom"):
        JobOptions(chart_type="classic24", custom_chart=chart())


def test_non_finite_values_are_refused_in_events_too() -> None:
    document = chart().model_dump()
    document["values"][0] = (float("nan"), 1.0, 1.0)
    with pytest.raises(ValidationError):
        CustomChart.model_validate(document)
