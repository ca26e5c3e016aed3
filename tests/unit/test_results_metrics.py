"""Phase and recovery rules for failures whose end time is unknown (aiperf's end == start)."""

from __future__ import annotations

import numpy as np
import pytest

from ftctl.results.metrics import phase_masks, recovery
from ftctl.results.model import RequestTable

S = 1_000_000_000
T_F = 100 * S


def _table(rows: list[tuple[float, float, bool]]) -> RequestTable:
    """rows: (start s, end s, ok) of client 0."""
    n = len(rows)
    return RequestTable.from_lists(
        0,
        [int(start * S) for start, _, _ in rows],
        [int(end * S) for _, end, _ in rows],
        [ok for _, _, ok in rows],
        [end - start for start, end, _ in rows],
        [float("nan")] * n,
        [float("nan")] * n,
    )


ROWS = [
    (90.0, 92.0, True),  # longest success: 2 s
    (95.0, 95.0, False),  # end unknown, sent 5 s before T_f: surely over by T_f → before
    (99.5, 99.5, False),  # end unknown, sent 0.5 s before T_f: in flight at T_f → during
    (99.0, 99.8, False),  # end known, before T_f → before
    (100.5, 100.5, False),  # end unknown, sent after T_f → after
    (101.0, 101.5, True),
    (102.0, 103.0, True),
]


def test_failure_with_unknown_end_sent_just_before_the_fault_is_during():
    masks = phase_masks(_table(ROWS), T_F)
    assert masks["before"].tolist() == [True, True, False, True, False, False, False]
    assert masks["during"].tolist() == [False, False, True, False, False, False, False]
    assert masks["after"].tolist() == [False, False, False, False, True, True, True]
    assert masks["upstream_before"].tolist() == masks["before"].tolist()


def test_in_flight_failure_with_unknown_end_counts_after_the_fault_at_the_fault_time():
    result = recovery(_table(ROWS), T_F, window_s=10.0)
    # Late failures: the in-flight one (failing at T_f) and the one sent at 100.5.
    assert result.failed_attempts_after_fault == result.failed_requests_after_fault == 2
    assert result.time_to_first_error_s == pytest.approx(0.0)
    assert result.failure_span_s == pytest.approx(0.5)
    assert result.recovery_time_s == pytest.approx(1.0)  # first success after: 101.0
    assert result.downtime_s == pytest.approx(1.0)  # [100, 101): no attempt started and succeeded


def test_known_ends_are_untouched():
    rows = [(90.0, 92.0, True), (99.5, 99.9, False), (100.5, 100.6, False), (101.0, 102.0, True)]
    masks = phase_masks(_table(rows), T_F)
    assert masks["before"].tolist() == [True, True, False, False]
    result = recovery(_table(rows), T_F)
    assert result.failed_attempts_after_fault == 1
    assert result.time_to_first_error_s == pytest.approx(0.5)  # a failure is dated by its start
    assert np.array_equal(_table(rows).end_ns, np.array([int(e * S) for _, e, _ in rows]))
