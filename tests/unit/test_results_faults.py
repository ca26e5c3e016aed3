"""Several faults in one test: phases, attempts and recovery per fault (README, metric notes).

The result directory is a real one (events.jsonl + a legacy client file with per-attempt
times); every expected figure below is counted by hand from the timeline in ``_timeline``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftctl.reports.tables import fault_table, render_csv
from ftctl.results import parse_result_dir

T0 = 1_800_000_000_000_000_000
MS = 1_000_000
FAULT_1, FAULT_2 = T0 + 1000 * MS, T0 + 2500 * MS
OK = {"status": 200, "result": {"choices": [{"message": {"content": "tok tok"}}]}}
REFUSED = {"status": 503, "result": None}


def _attempt(outcome: dict, start_ms: int, end_ms: int) -> dict:
    return {**outcome, "start_ns": T0 + start_ms * MS, "end_ns": T0 + end_ms * MS,
            "request_elapsed_time": (end_ms - start_ms) / 1000, "url": "u", "pod": ""}  # fmt: skip


def _timeline() -> list[tuple[int, int, list[dict]]]:
    """(client, request, attempts): a request every 100 ms on client 0, 50 ms each, except:
    #10 refused at the first fault; #11 refused then saved by a retry (1130–1180); #24 on
    client 1, in flight at the second fault (2400–2550); #25 and #26 refused at the second
    fault; #27 refused then saved (2730–2780)."""
    rows = []
    for i in range(40):
        start = i * 100
        if i == 24:
            rows.append((1, i, [_attempt(OK, 2400, 2550)]))
        elif i in (10, 25, 26):
            rows.append((0, i, [_attempt(REFUSED, start, start + 50)]))
        elif i in (11, 27):
            rows.append((0, i, [_attempt(REFUSED, start, start + 20),
                                _attempt(OK, start + 30, start + 80)]))  # fmt: skip
        else:
            rows.append((0, i, [_attempt(OK, start, start + 50)]))
    return rows


@pytest.fixture
def two_faults(tmp_path) -> Path:
    path = tmp_path / "local-agg-decode_worker"
    path.mkdir()
    events = [
        {"t_ns": T0, "kind": "load_start"},
        {"t_ns": FAULT_1, "kind": "fault_injected"},
        {"t_ns": FAULT_1 + 300 * MS, "kind": "fault_verified", "pod_recovered_ns": FAULT_1 + 300 * MS},
        {"t_ns": FAULT_2, "kind": "fault_injected"},
        {"t_ns": FAULT_2 + 400 * MS, "kind": "fault_verified", "pod_recovered_ns": FAULT_2 + 400 * MS},
    ]  # fmt: skip
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    by_client: dict[int, list[str]] = {0: [], 1: []}
    for client, request, attempts in _timeline():
        record = {
            "time": "2027-01-15T08:00:00",
            "results": attempts,
            "total_time": (attempts[-1]["end_ns"] - attempts[0]["start_ns"]) / 1e9,
            "start_ns": attempts[0]["start_ns"],
            "end_ns": attempts[-1]["end_ns"],
            "client": client,
            "request": request,
        }
        by_client[client].append(json.dumps(record))
    for client, lines in by_client.items():
        (path / f"client_{client}.log.txt").write_text("\n".join(lines) + "\n")
    return path


def _counts(phase) -> tuple[int, int, int, int, int]:
    return (
        phase.requests,
        phase.failed,
        phase.attempts,
        phase.failed_attempts,
        phase.retried_requests,
    )


def test_each_fault_has_its_own_phases_bounded_by_the_next_fault(two_faults):
    result = parse_result_dir(two_faults)
    first, second = result.overall.faults
    assert (first.t_ns, first.next_ns, second.t_ns, second.next_ns) == (
        FAULT_1, FAULT_2, FAULT_2, None,
    )  # fmt: skip
    # (requests, failed, attempts, failed attempts, retried requests)
    assert _counts(first.phases["before"]) == (10, 0, 10, 0, 0)  # #0–#9
    assert _counts(first.phases["during"]) == (0, 0, 0, 0, 0)
    assert _counts(first.phases["after"]) == (14, 1, 15, 2, 1)  # #10–#23 (#24 is fault 2's)
    assert _counts(second.phases["before"]) == (14, 1, 15, 2, 1)  # since the first fault
    assert _counts(second.phases["during"]) == (1, 0, 1, 0, 0)  # #24, in flight at 2.5 s
    assert _counts(second.phases["after"]) == (15, 2, 16, 3, 1)  # #25–#39
    # during + after of the faults partition what ended after the first fault
    assert sum(f.phases[p].requests for f in (first, second) for p in ("during", "after")) == 30
    assert result.overall.phases["during"].requests + result.overall.phases["after"].requests == 30


def test_each_fault_recovers_on_its_own_attempts(two_faults):
    result = parse_result_dir(two_faults)
    first, second = result.overall.faults
    # Fault 1: refused at 1000 and 1100 ms, the retry at 1130 ms succeeded and nothing failed
    # again before the second fault.
    assert first.recovery.recovery_time_s == pytest.approx(0.130)
    assert first.recovery.downtime_s == pytest.approx(0.130)
    assert first.recovery.failed_attempts_after_fault == 2
    # Fault 2: refused at 2500, 2600, 2700 ms; the retry at 2730 ms is the first success.
    assert second.recovery.recovery_time_s == pytest.approx(0.230)
    assert second.recovery.downtime_s == pytest.approx(0.230)
    assert second.recovery.failed_attempts_after_fault == 3
    # The test's one recovery, from the first fault, runs through the second: 1.730 s.
    assert result.overall.recovery.recovery_time_s == pytest.approx(1.730)


def test_the_fault_table_and_csv_show_a_row_block_per_fault(two_faults):
    result = parse_result_dir(two_faults)
    text = fault_table(result, result.overall, "markdown")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines()[2:8]]
    assert [r[:8] for r in rows] == [
        ["#1 at +1.0 s", "before", "10", "0", "10", "0", "0", "100.0%"],
        ["", "during", "0", "0", "0", "0", "0", "N/A"],
        ["", "after", "14", "1", "15", "2", "1", "92.9%"],
        ["#2 at +2.5 s", "before", "14", "1", "15", "2", "1", "92.9%"],
        ["", "during", "1", "0", "1", "0", "0", "100.0%"],
        ["", "after", "15", "2", "16", "3", "1", "86.7%"],
    ]
    assert [rows[0][8:], rows[3][8:]] == [["0.130", "0.130", "0.300"], ["0.230", "0.230", "0.400"]]
    csv_rows = [line.split(",") for line in render_csv([result]).splitlines()]
    header = csv_rows[0]
    fault_rows = {r[header.index("phase")]: r for r in csv_rows if r[4] == "overall"}
    after_2 = fault_rows["fault2:after"]
    assert after_2[header.index("failed_attempts")] == "3"
    assert float(after_2[header.index("recovery_time_s")]) == pytest.approx(0.230)


def test_the_timeline_shades_each_faults_own_recovery(two_faults):
    import matplotlib.pyplot as plt

    from ftctl.reports.timeline import timeline_figure

    fig = timeline_figure(parse_result_dir(two_faults))
    try:
        ax = fig.axes[0]
        bands = {
            patch.get_label(): (round(patch.get_x(), 3), round(patch.get_width(), 3))
            for patch in ax.patches
            if patch.get_label().startswith("recovery")
        }
        # Counted by hand above: the first request starts at T0; 0.130 s from 1.0 s, 0.230 s
        # from 2.5 s (not the test's one recovery of 1.730 s).
        assert bands == {"recovery 1 0.13 s": (1.0, 0.13), "recovery 2 0.23 s": (2.5, 0.23)}
        faults = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert faults == [1.0, 2.5]
    finally:
        plt.close(fig)


def test_a_recovery_column_with_a_not_recovered_fault_still_prints_seconds(two_faults):
    import dataclasses

    # The column then holds text and numbers (tabulate's floatfmt no longer reaches it).
    result = parse_result_dir(two_faults)
    first = result.overall.faults[0]
    first.recovery = dataclasses.replace(first.recovery, recovered=False)
    text = fault_table(result, result.overall, "markdown")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines()[2:8]]
    assert [rows[0][8], rows[3][8]] == ["not recovered", "0.230"]
