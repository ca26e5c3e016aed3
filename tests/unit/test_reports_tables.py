"""Table rendering matches the upstream formats (seeds/001) and carries ftctl's extras."""

from __future__ import annotations

import json
from pathlib import Path

from ftctl.reports.tables import (
    aiperf_summary_table,
    legacy_group_tables,
    phase_table,
    recovery_line,
)
from ftctl.results.model import LoadMetrics, PhaseStats, Recovery, TestResult

# The upstream README's table (seeds/001), frame and alignment kept byte for byte, with the
# counts as integers (issue 11: upstream printed 149.00 requests; seconds keep two decimals).
UPSTREAM_LEGACY = """\
Test Group: vllm-agg-tp-1-dp-2
╒═══════════════════╤═══════════╤═══════════╤══════════╤═══════════╤══════════╤═══════════╤═══════════╤════════════╕
│      Failure      │   Startup │   Success │   Failed │   Success │   Failed │   Latency │   Latency │   Recovery │
│                   │           │    Before │   Before │     After │    After │    Before │     After │            │
╞═══════════════════╪═══════════╪═══════════╪══════════╪═══════════╪══════════╪═══════════╪═══════════╪════════════╡
│ decode_worker_pod │    178.00 │       149 │        0 │      1349 │        2 │      1.19 │      1.19 │     163.90 │
╘═══════════════════╧═══════════╧═══════════╧══════════╧═══════════╧══════════╧═══════════╧═══════════╧════════════╛"""


def phase(ok: int, failed: int, mean: float | None = None, violations: int | None = None):
    stats = PhaseStats(requests=ok + failed, ok=ok, failed=failed, sla_violations=violations)
    stats.success_rate = ok / (ok + failed) if ok + failed else None
    stats.latency_s["mean"] = mean
    return stats


def upstream_like_result(failure: str = "decode_worker_pod") -> TestResult:
    result = TestResult(
        name=f"test_fault_scenario[vllm-agg-tp-1-dp-2-{failure}]",
        path=Path("."),
        kind="legacy",
        group="vllm-agg-tp-1-dp-2",
        failure=failure,
        startup_s=178.0,
    )
    result.overall = LoadMetrics(
        phases={
            "upstream_before": phase(149, 0, 1.19, 3),
            "upstream_after": phase(1349, 2, 1.19, 7),
        },
        recovery=Recovery(recovery_time_s=163.9, recovered=True),
    )
    return result


def test_legacy_group_table_is_upstreams_with_integer_counts():
    text = legacy_group_tables([upstream_like_result()], "fancy")
    assert text.startswith(UPSTREAM_LEGACY + "\n")


def test_legacy_group_table_names_its_split_and_gives_the_attempts_under_it():
    result = upstream_like_result()
    after = result.overall.phases["upstream_after"]
    after.attempts, after.failed_attempts, after.retried_requests = 1357, 8, 6
    legend = legacy_group_tables([result], "fancy").removeprefix(UPSTREAM_LEGACY).splitlines()
    assert "upstream two-way split" in legend[1] and "during + after" in legend[1]
    assert legend[2] == (
        "  decode_worker_pod: before: attempts 0, failed attempts 0, retried requests 0; "
        "after: attempts 1357, failed attempts 8, retried requests 6"
    )


def test_sla_adds_violation_columns_and_markdown_flattens_headers():
    text = legacy_group_tables([upstream_like_result()], "markdown", sla=1.0)
    header = text.splitlines()[1]
    assert "Violations Before" in header and "Violations After" in header
    row = [cell.strip() for cell in text.splitlines()[3].split("|")[1:-1]]
    assert row[2:6] == ["149", "0", "1349", "2"]
    assert row[8:10] == ["3", "7"]


def test_rows_follow_the_failure_table_order():
    results = [upstream_like_result(f) for f in ("decode_worker_pod", "frontend", "none")]
    text = legacy_group_tables(results, "fancy")
    assert text.index("none") < text.index("frontend") < text.index("decode_worker_pod")


def test_aiperf_summary_table_has_the_upstream_rows():
    result = TestResult(
        name="test_fault_scenario[sglang-agg-tp-1-dp-1-frontend]",
        path=Path("."),
        kind="aiperf",
        startup_s=69.0,
    )
    overall = phase(1470, 30)
    overall.latency_s.update(mean=0.502, p50=0.396, p90=0.422, p99=0.761)
    result.overall = LoadMetrics(
        clients=10,
        requests=1500,
        ok=1470,
        failed=30,
        phases={"overall": overall},
        recovery=Recovery(recovery_time_s=2.0, recovered=True),
        throughput_rps=19.72,
        avg_client_throughput_rps=1.97,
    )
    text = aiperf_summary_table(result, "fancy")
    width = len("test_fault_scenario[sglang-agg-tp-1-dp-1-frontend]")
    for metric, value in [
        ("Test Directory", "test_fault_scenario[sglang-agg-tp-1-dp-1-frontend]"),
        ("Number of Clients", "10"),
        ("=== Deployment Metrics ===", ""),
        ("Startup Time", "69.00 sec"),
        ("Recovery Time", "2.00 sec"),
        ("Total Requests", "1500"),
        ("Successful Requests", "1470"),
        ("Failed Requests", "30"),
        ("Success Rate", "98.00%"),
        ("=== Latency Metrics (seconds) ===", ""),
        ("Mean Latency", "0.502"),
        ("P50 Latency", "0.396"),
        ("P90 Latency", "0.422"),
        ("P99 Latency", "0.761"),
        ("Total Throughput", "19.72 req/s"),
        ("Avg Client Throughput", "1.97 req/s"),
    ]:
        assert f"│ {metric:<33} │ {value:<{width}} │" in text, metric


def test_phase_table_and_recovery_line():
    metrics = LoadMetrics(
        phases={
            "before": phase(10, 0),
            "during": phase(1, 1),
            "after": phase(8, 2),
            "overall": phase(19, 3),
        },
        recovery=Recovery(2.5, 0.1, 1.2, 1.9, 5, 3, 10.0, recovered=True),
    )
    text = phase_table(metrics, "markdown")
    assert [line.split("|")[1].strip() for line in text.splitlines()[2:]] == [
        "before (ended before the fault)",
        "during (in flight at the fault)",
        "after (started at or after it)",
        "overall",
    ]
    assert "Attempts" in text.splitlines()[0] and "Retried requests" in text.splitlines()[0]
    result = TestResult(name="t", path=Path("."), kind="legacy", fault_time_source="events")
    result.overall = metrics
    line = recovery_line(result)
    assert line.startswith(
        "Recovery: 2.500 s after the fault (first error +0.100 s, downtime 1.200 s, failure span "
        "1.900 s, 3 failed requests and 5 failed attempts during + after the fault"
    )
    metrics.recovery = Recovery(None, 0.1, 5.0, 5.0, 9, 9, 10.0)
    assert "NOT RECOVERED" in recovery_line(result)


def test_a_baseline_says_there_is_no_fault_in_this_test():
    result = TestResult(name="agg-none", path=Path("."), kind="legacy", failure="none")
    result.overall = LoadMetrics(phases={"overall": phase(10, 0)})
    assert recovery_line(result) == "Recovery: no fault in this test"


def _run_dir(path: Path, events: list[dict]) -> Path:
    """A result directory of ftctl: events.jsonl plus one client's three good requests."""
    path.mkdir(parents=True)
    t0 = 1_800_000_000_000_000_000
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    lines = []
    for i in range(3):
        start = t0 + i * 100_000_000
        attempt = {"status": 200, "request_elapsed_time": 0.05, "url": "u", "pod": "",
                   "result": {"choices": [{"message": {"content": "tok tok"}}]}}  # fmt: skip
        lines.append(json.dumps({"time": "2027-01-15T08:00:00", "results": [attempt],
                                 "total_time": 0.05, "start_ns": start,
                                 "end_ns": start + 50_000_000, "client": 0, "request": i}))  # fmt: skip
    (path / "client_0.log.txt").write_text("\n".join(lines) + "\n")
    return path


def test_a_run_whose_timeline_had_no_fault_says_so_whatever_its_name(tmp_path):
    from ftctl.results import parse_result_dir

    t0 = 1_800_000_000_000_000_000
    events = [{"t_ns": t0, "kind": "load_start"},
              {"t_ns": t0, "kind": "event_start", "event": "wait", "index": 1}]  # fmt: skip
    # "steady" is no failure name: the name alone cannot tell this is a baseline.
    result = parse_result_dir(_run_dir(tmp_path / "custom-steady", events))
    assert result.planned_faults == 0
    assert recovery_line(result) == "Recovery: no fault in this test"


def test_a_fault_event_that_left_no_fault_time_is_named_as_missing_data(tmp_path):
    from ftctl.results import parse_result_dir

    t0 = 1_800_000_000_000_000_000
    events = [{"t_ns": t0, "kind": "load_start"},
              {"t_ns": t0, "kind": "event_start", "event": "terminate_process", "index": 2}]  # fmt: skip
    result = parse_result_dir(_run_dir(tmp_path / "x-decode_worker", events))
    assert recovery_line(result) == (
        "Recovery: no fault time (1 fault events ran but none recorded a fault_injected event)"
    )


def test_repeat_names_split_into_test_and_index():
    from ftctl.layout import repeat_name, split_repeat

    assert repeat_name("vllm-agg-tp-1-dp-1-frontend", 3, 5) == "vllm-agg-tp-1-dp-1-frontend#3"
    assert repeat_name("t", 1, 1) == "t"
    assert split_repeat("vllm-agg-tp-1-dp-1-frontend#3") == ("vllm-agg-tp-1-dp-1-frontend", 3)
    assert split_repeat("t#0") == ("t#0", None) and split_repeat("t") == ("t", None)
    assert split_repeat("#2") == ("#2", None)


def test_the_recovery_line_of_a_stall_gives_its_end_and_the_recovery_after_it():

    result = TestResult(name="t", path=Path("t"), kind="legacy")
    result.fault_times_ns = [10_000_000_000]
    result.fault_resume_times_ns = {10_000_000_000: 15_000_000_000}
    result.recovery_from_resume_s = 0.25
    result.overall.recovery = Recovery(
        recovery_time_s=5.25,
        recovered=True,
        window_s=10.0,
        time_to_first_error_s=0.1,
        downtime_s=5.1,
        failure_span_s=5.0,
    )
    line = recovery_line(result)
    assert "Recovery: 5.250 s after the fault" in line
    assert "fault ended (resume/heal) +5.000 s, recovery 0.250 s after it" in line


def test_the_run_summary_names_a_partition_its_end_and_why_a_fault_was_not_verified():
    from ftctl.errors import ExitStatus
    from ftctl.platforms.base import FaultRecord
    from ftctl.reports.summary import render_run
    from ftctl.runner import RunOutcome, TestOutcome

    cut = FaultRecord("partition", "W", "W-abcde", 1_000_000_000, verified=True)
    cut.resumed_ns, cut.pod_recovered_ns = 6_000_000_000, 7_000_000_000
    stall = FaultRecord("stall_process", "W", "W-fghij", 1, signal="SIGSTOP")
    stall.evidence["error"] = "pids [7] were not seen stopped (state T)"
    outcome = TestOutcome("t", Path("t"), ExitStatus.CHECK_FAILED, faults=[cut, stall])
    text = render_run(RunOutcome([outcome]))
    assert (
        "fault partition W-abcde (cut): verified, ended after 5.00s, pod recovered in 6.00s" in text
    )
    assert "fault stall_process W-fghij (SIGSTOP): NOT verified (pids [7] were not seen" in text
