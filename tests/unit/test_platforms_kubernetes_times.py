"""When a pod counts as recovered, from a Ready condition's lastTransitionTime."""

from __future__ import annotations

from ftctl.platforms.kubernetes import recovered_ns

S = 1_000_000_000


def test_whole_second_transition_times_count_from_the_end_of_that_second():
    # A real apiserver stores 12:00:05.7 as 12:00:05: the pod was not ready at :05.0.
    assert recovered_ns(100 * S, fault_ns=98 * S, seen_ns=102 * S) == 101 * S - 1


def test_the_end_of_the_second_is_capped_by_when_ready_was_seen():
    assert recovered_ns(100 * S, fault_ns=98 * S, seen_ns=100 * S + 300) == 100 * S + 300


def test_a_precise_transition_time_is_used_as_is():
    assert recovered_ns(100 * S + 5, fault_ns=98 * S, seen_ns=102 * S) == 100 * S + 5


def test_a_transition_before_the_fault_is_stale_and_the_sighting_counts():
    assert recovered_ns(90 * S + 5, fault_ns=98 * S, seen_ns=102 * S) == 102 * S
    assert recovered_ns(None, fault_ns=98 * S, seen_ns=102 * S) == 102 * S


def test_a_whole_second_that_may_hold_the_fault_counts_from_its_end():
    assert recovered_ns(98 * S, fault_ns=98 * S + 400, seen_ns=102 * S) == 99 * S - 1
