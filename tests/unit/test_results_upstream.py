"""Upstream directories: test.log.txt markers, 1 s times, local-vs-UTC, log-based recovery."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ftctl.results import parse_result_dir
from ftctl.results.upstream import line_time_s, read_test_log

DATA = Path(__file__).resolve().parent.parent / "data" / "results"
LEGACY = DATA / "upstream" / "test_fault_scenario[vllm-agg-tp-1-dp-1-decode_worker]"


@pytest.fixture
def utc_machine(monkeypatch):
    """Make this machine's zone UTC so the fallback guess is deterministic."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_upstream_legacy_dir_reads_markers_and_phases():
    result = parse_result_dir(LEGACY)
    assert result.kind == "legacy" and result.group == "vllm-agg-tp-1-dp-1"
    assert result.failure == "decode_worker"
    assert result.startup_s == 69.0
    assert result.fault_time_source == "test.log (1 s resolution)"
    assert result.time_resolution_s == 1.0
    assert any("1 s resolution" in w for w in result.warnings)
    # Hand-written clients: client 0 ends at :10, :12 … :90 after 12:01, client 1 at :11 …
    # :89; failures end at :41–:46; the fault marker is 12:01:40.
    phases = result.overall.phases
    assert (phases["upstream_before"].ok, phases["upstream_before"].failed) == (31, 0)
    assert (phases["upstream_after"].ok, phases["upstream_after"].failed) == (44, 6)
    recovery = result.overall.recovery
    # First success started after the fault: client 1's request ending :47 started :46.5.
    assert recovery.recovery_time_s == pytest.approx(6.5)
    # Each failed request holds two attempts of 0.01 s: the first starts with the request
    # (:40.5 → +0.5 s), the last ends with it (:45.99 + 0.01). No attempt started in
    # [:40.5, :46.5) succeeded.
    assert recovery.time_to_first_error_s == pytest.approx(0.5)
    assert recovery.failure_span_s == pytest.approx(5.49)
    assert recovery.downtime_s == pytest.approx(6.0)
    assert (recovery.failed_requests_after_fault, recovery.failed_attempts_after_fault) == (6, 12)
    after = phases["upstream_after"]
    assert (after.attempts, after.failed_attempts, after.retried_requests) == (56, 12, 6)


def test_upstream_legacy_fault_time_is_utc():
    # test.log says 12:01:40 on a UTC+2 host (its .previous.log ends 10:01:39.9Z).
    result = parse_result_dir(LEGACY)
    assert result.utc_offset_s == 7200
    assert result.fault_times_ns == [
        int(datetime(2025, 10, 3, 10, 1, 40, tzinfo=UTC).timestamp()) * 10**9
    ]
    # Client times moved with it: the first request still ends 30 s before the fault.
    assert int(result.requests.end_ns.min()) == result.fault_times_ns[0] - 30 * 10**9


def test_upstream_legacy_fault_time_is_utc_on_a_utc_minus_7_machine(tmp_path, monkeypatch):
    # No .previous.log to infer the host's zone from: this machine's zone (UTC−7) is the guess.
    test = tmp_path / LEGACY.name
    shutil.copytree(LEGACY, test)
    for previous in test.rglob("*.previous.log"):
        previous.unlink()
    monkeypatch.setenv("TZ", "MST7")
    time.tzset()
    try:
        result = parse_result_dir(test)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert result.utc_offset_s == -7 * 3600
    expected = datetime(2025, 10, 3, 19, 1, 40, tzinfo=UTC)  # 12:01:40 at UTC−7
    assert result.fault_times_ns == [int(expected.timestamp()) * 10**9]
    phases = result.overall.phases
    assert (phases["upstream_before"].ok, phases["upstream_after"].failed) == (31, 6)


def test_upstream_log_recovery_converts_local_test_log_time_to_utc():
    result = parse_result_dir(LEGACY)
    # The host ran at UTC+2: the killed pod's .previous.log ends 10:01:39.9Z while test.log
    # says 12:01:40. The worker logs "initialized" at 10:02:10.5Z → 30.5 s after the fault.
    assert result.utc_offset_s == 7200
    assert result.upstream_log_recovery_s == pytest.approx(30.5)
    assert result.upstream_log_recovery_method.startswith("upstream:")


def test_without_evidence_the_offset_falls_back_to_this_machine_and_says_so(tmp_path, utc_machine):
    copy = tmp_path / LEGACY.name
    shutil.copytree(LEGACY, copy)
    for previous in copy.rglob("*.previous.log"):
        previous.unlink()
    result = parse_result_dir(copy)
    assert result.utc_offset_source == "this machine's time zone"
    assert any("time zone" in w for w in result.warnings)
    # Read as UTC, 12:01:40 is after the 10:02:10Z ready line: no figure rather than a wrong one.
    assert result.upstream_log_recovery_s is None
    assert result.overall.recovery.recovery_time_s == pytest.approx(6.5)  # clients unaffected


def test_test_log_markers_and_startup(tmp_path):
    log = tmp_path / "test.log.txt"
    log.write_text(
        "[TEST] 2025-10-03T21:00:00 INFO root: Starting Deployment fault-tolerance-test with spec x\n"
        "garbage line\n"
        "[TEST] 2025-10-03T21:02:58 INFO root: Deployment fault-tolerance-test is ready\n"
        "[TEST] 2025-10-03T21:03:28 INFO root: Injecting failure for: Failure(time=30)\n"
        "[TEST] 2025-10-03T21:05:00 INFO root: Injecting failure for: Failure(time=120)\n"
    )
    parsed = read_test_log(log, [])
    assert parsed.startup_s == 178.0
    assert [b - a for a, b in zip(parsed.fault_s, parsed.fault_s[1:], strict=False)] == [92.0]
    assert parsed.failures == ["Failure(time=30)", "Failure(time=120)"]


def test_log_line_times_are_utc_unless_zoned():
    base = datetime(2025, 10, 3, 10, 0, 0, tzinfo=UTC).timestamp()
    assert line_time_s("2025-10-03T10:00:00.250Z INFO x") == pytest.approx(base + 0.25)
    assert line_time_s("2025-10-03 10:00:00 INFO x") == pytest.approx(base)
    assert line_time_s('{"time":"2025-10-03T12:00:00+02:00","msg":"x"}') == pytest.approx(base)
    assert line_time_s("no time here") is None


def test_upstream_aiperf_dir_places_the_local_fault_marker_on_epoch_records(tmp_path):
    """An upstream aiperf dir from a UTC+2 host: test.log and aiperf's start_time are local."""
    src = DATA / "aiperf" / "fault"
    test = tmp_path / "test_fault_scenario[vllm-agg-tp-1-dp-1-decode_worker]"
    shutil.copytree(src, test)
    events = [json.loads(x) for x in (test / "events.jsonl").read_text().splitlines()]
    (test / "events.jsonl").unlink()
    t_f_ns = next(e["t_ns"] for e in events if e["kind"] == "fault_injected")
    host = timedelta(hours=2)
    for summary_path in test.rglob("profile_export_aiperf.json"):
        summary = json.loads(summary_path.read_text())
        start = datetime.fromisoformat(summary["start_time"]) + host
        summary["start_time"] = start.isoformat()
        summary_path.write_text(json.dumps(summary))
    local_fault = datetime.fromtimestamp(t_f_ns // 10**9, UTC).replace(tzinfo=None) + host
    (test / "test.log.txt").write_text(
        f"[TEST] {local_fault:%Y-%m-%dT%H:%M:%S} INFO root: Injecting failure for: Failure()\n"
    )
    pod = test / "decode"
    pod.mkdir()
    fault_utc = datetime.fromtimestamp(t_f_ns / 1e9, UTC)
    (pod / "w.previous.log").write_text(f"{fault_utc:%Y-%m-%dT%H:%M:%S.%f}Z INFO last\n")
    (pod / "w.log").write_text(
        f"{fault_utc + timedelta(seconds=4.25):%Y-%m-%dT%H:%M:%S.%f}Z INFO first\n"
    )
    result = parse_result_dir(test)
    assert result.utc_offset_s == 7200
    assert result.fault_times_ns == [(t_f_ns // 10**9) * 10**9]  # the 1 s marker, in UTC
    assert result.upstream_log_recovery_s == pytest.approx(4.25, abs=1e-6)
    assert result.overall.requests == 90
