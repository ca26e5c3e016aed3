"""parse_duration: numbers of seconds and 250ms / 30s / 5m / 1h strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftctl.errors import ScenarioError
from ftctl.scenario import parse_duration
from ftctl.scenario.durations import format_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        (0, 0.0),
        ("30", 30.0),
        ("30s", 30.0),
        ("250ms", 0.25),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5m", 90.0),
        ("1m30s", 90.0),
        ("1h5m", 3900.0),
        (" 2s ", 2.0),
    ],
)
def test_accepted_forms_convert_to_seconds(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [-1, "-1s", "30sec", "s", "", "1d", True, None, [1], "nan"])
def test_rejected_forms_raise_scenario_error(value):
    with pytest.raises(ScenarioError, match="not a valid duration"):
        parse_duration(value)


def test_error_names_where_it_happened():
    with pytest.raises(ScenarioError, match=r"^x.yaml:3:5: load.timeout: 'soon'"):
        parse_duration("soon", where="x.yaml:3:5: load.timeout")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_integer_with_unit_scales_by_the_unit(n, unit):
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if n * factor > 366 * 24 * 3600:
        with pytest.raises(ScenarioError, match="longer than the limit of 366 days"):
            parse_duration(f"{n}{unit}")
    else:
        assert parse_duration(f"{n}{unit}") == pytest.approx(n * factor)


def test_a_year_and_a_day_is_the_longest_duration():
    assert parse_duration("8784h") == 8784 * 3600
    with pytest.raises(ScenarioError, match=r"'8785h' is longer than the limit"):
        parse_duration("8785h")


@given(st.integers(min_value=0, max_value=10**6))
def test_formatted_whole_seconds_parse_back(n):
    assert parse_duration(format_duration(float(n))) == n
