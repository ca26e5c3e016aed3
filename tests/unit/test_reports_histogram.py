"""`ftctl report --histogram`: successful requests per latency bucket and phase, failed last."""

from __future__ import annotations

from ftctl.reports.histogram import EDGES_S, bucket_labels, histogram_rows
from ftctl.results import parse_result_dir
from tests.conftest import run_cli
from tests.unit.test_results_legacy import T_F_REL, write_legacy_test

# (start s, duration s, ok): around the fault at T_F_REL, one per interesting bucket.
ROWS = [
    (1.0, 0.004, True),  # ≤ 10 ms, before
    (2.0, 0.010, True),  # exactly on an edge: still ≤ 10 ms (buckets are (low, edge])
    (3.0, 0.030, True),  # 25–50 ms, before
    (4.0, 0.300, True),  # 250–500 ms, before
    (5.0, 0.200, False),  # failed, before
    (T_F_REL - 0.1, 1.5, True),  # 1–2.5 s, in flight at the fault: during
    (T_F_REL - 0.1, 0.5, False),  # failed during
    (T_F_REL + 1.0, 0.030, True),  # 25–50 ms, after
    (T_F_REL + 2.0, 0.020, False),  # failed after
    (T_F_REL + 3.0, 0.020, False),  # failed after
]


def expected_rows() -> list[list[object]]:
    """The same table counted by hand, independently of numpy and of parse's phase masks."""
    t_f = T_F_REL
    labels = bucket_labels()

    def phase(start: float, duration: float) -> str:
        if start + duration < t_f:
            return "before"
        return "after" if start >= t_f else "during"

    def bucket(latency: float) -> int:
        return next((i for i, edge in enumerate(EDGES_S) if latency <= edge), len(EDGES_S))

    counts = {label: dict.fromkeys(("before", "during", "after"), 0) for label in labels}
    failed = dict.fromkeys(("before", "during", "after"), 0)
    for start, duration, ok in ROWS:
        if ok:
            counts[labels[bucket(duration)]][phase(start, duration)] += 1
        else:
            failed[phase(start, duration)] += 1
    table = [
        [label, c["before"], c["during"], c["after"], sum(c.values())]
        for label, c in counts.items()
    ]
    used = [i for i, row in enumerate(table) if row[-1]]
    table = table[used[0] : used[-1] + 1]
    return [
        *table,
        ["failed", failed["before"], failed["during"], failed["after"], sum(failed.values())],
    ]


def write(tmp_path):
    rows = [(0, i, start, duration, ok) for i, (start, duration, ok) in enumerate(ROWS)]
    return write_legacy_test(tmp_path / "hist-decode", rows)


def test_histogram_counts_each_request_once_in_its_bucket_and_phase(tmp_path):
    rows = histogram_rows(parse_result_dir(write(tmp_path)))
    assert rows == expected_rows()
    assert rows[0][0] == "≤ 10 ms" and rows[-2][0] == "1 s – 2.5 s"  # trimmed to used buckets


def test_report_histogram_option_prints_the_table(tmp_path):
    directory = write(tmp_path)
    text = run_cli("report", str(directory), "--histogram").stdout
    assert "Latency histogram" in text
    lines = {
        cells[0]: cells[1:]
        for line in text.splitlines()
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for label, *counts in expected_rows():
        assert lines[label] == [str(c) for c in counts]
    assert "Latency histogram" not in run_cli("report", str(directory)).stdout
