"""Legacy reader + metrics on generated ftctl legacy directories with hand-computed answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ftctl.reports.tables import render_text
from ftctl.results import parse_result_dir
from ftctl.results.legacy import read_client_file
from ftctl.results.outcome import attempt_succeeded, record_succeeded

BASE_NS = 1_700_000_000_000_000_000
T_F_REL = 30.25  # the fault, seconds after BASE


def ns(rel_s: float) -> int:
    return BASE_NS + round(rel_s * 1e9)


def ok_attempt(text: str = "a b c") -> dict:
    result = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        ]
    }
    return {"status": 200, "result": result, "request_elapsed_time": 0.1, "url": "u", "pod": "p"}


def failed_attempt(status: int | str = 503) -> dict:
    return {"status": status, "result": None, "request_elapsed_time": 0.01, "url": "u", "pod": "p"}


def record(client: int, index: int, start_rel: float, duration: float, ok: bool) -> dict:
    """An ftctl legacy line (upstream fields + start_ns/end_ns), judged by content (no `ok`)."""
    return {
        "time": "2023-11-14T22:13:20",
        "results": [ok_attempt()] if ok else [failed_attempt()],
        "total_time": duration,
        "start_ns": ns(start_rel),
        "end_ns": ns(start_rel + duration),
        "client": client,
        "request": index,
    }


def duration_of(client: int, index: int) -> float:
    return round(0.2 + (index % 10) * 0.01 + client * 0.005, 6)


# The hand-built timeline (seconds after BASE). Client 0 starts every 0.5 s from 0 to 60,
# client 1 every 0.5 s from 0.125. The fault is at 30.25. Failures: client 0 starts
# 30.5..33.0, client 1 starts 30.125 (in flight at the fault) .. 32.625, and a lone blip at
# 40.125 on client 1.
CLIENT0_FAIL = {30.5, 31.0, 31.5, 32.0, 32.5, 33.0}
CLIENT1_FAIL = {30.125, 30.625, 31.125, 31.625, 32.125, 32.625, 40.125}


def timeline() -> list[tuple[int, int, float, float, bool]]:
    rows = []
    for client, first, count, fails in ((0, 0.0, 121, CLIENT0_FAIL), (1, 0.125, 120, CLIENT1_FAIL)):
        for i in range(count):
            start = first + 0.5 * i
            rows.append((client, i, start, duration_of(client, i), start not in fails))
    return rows


def write_legacy_test(
    directory: Path,
    rows: list[tuple[int, int, float, float, bool]] | None = None,
    fault_rel: float | None = T_F_REL,
) -> Path:
    """Write client_N.log.txt files + events.jsonl for ``rows`` (client, i, start, dur, ok)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = timeline() if rows is None else rows
    files: dict[int, list[str]] = {}
    for client, index, start, duration, ok in rows:
        files.setdefault(client, []).append(json.dumps(record(client, index, start, duration, ok)))
    for client, lines in files.items():
        (directory / f"client_{client}.log.txt").write_text("\n".join(lines) + "\n")
    events = [
        {"t_ns": ns(-100.0), "kind": "deploy_start"},
        {"t_ns": ns(-12.5), "kind": "ready"},
        {"t_ns": ns(0.0), "kind": "load_start"},
    ]
    if fault_rel is not None:
        events += [
            {"t_ns": ns(fault_rel), "kind": "fault_injected", "service": "decode"},
            {"t_ns": ns(fault_rel + 0.1), "kind": "fault_verified", "pod_recovered_ns": ns(45.0)},
        ]
    (directory / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return directory


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile written out by hand (the reference for numpy's)."""
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def test_hand_built_timeline_recovery_is_known_to_the_millisecond(tmp_path):
    result = parse_result_dir(write_legacy_test(tmp_path / "vllm-agg-tp-1-dp-1-decode_worker"))
    recovery = result.overall.recovery
    # The blip at 40.125 lies inside every 10 s window starting before it, so R is the first
    # success after it: client 0 at 40.5 → 40.5 − 30.25.
    assert recovery.recovery_time_s == pytest.approx(10.25, abs=1e-3)
    assert recovery.recovered and not recovery.no_visible_impact
    # First failure: client 1's request 30.125 was in flight at the fault: it fails at T_f.
    assert recovery.time_to_first_error_s == pytest.approx(0.0)
    assert recovery.failure_span_s == pytest.approx(40.125 - 30.25)  # to the blip's start
    # No attempt started in [30.25, 33.125) succeeded, nor in [40.125, 40.5).
    assert recovery.downtime_s == pytest.approx((33.125 - 30.25) + (40.5 - 40.125))
    assert recovery.failed_attempts_after_fault == recovery.failed_requests_after_fault == 13
    assert result.fault_time_source == "events"
    assert result.startup_s == pytest.approx(87.5)
    assert result.pod_recovery_s == pytest.approx(45.0 - 30.25)


def test_a_shorter_window_ignores_the_later_blip(tmp_path):
    path = write_legacy_test(tmp_path / "t-decode_worker")
    result = parse_result_dir(path, recovery_window=5.0)
    # First success after the fault: client 1 at 33.125; [33.125, 38.125] has no failure.
    assert result.overall.recovery.recovery_time_s == pytest.approx(33.125 - 30.25, abs=1e-3)


def test_phases_count_before_during_after(tmp_path):
    result = parse_result_dir(write_legacy_test(tmp_path / "t-decode_worker"))
    rows = timeline()
    t_f = T_F_REL
    before = [r for r in rows if r[2] + r[3] < t_f]
    during = [r for r in rows if r[2] < t_f <= r[2] + r[3]]
    after = [r for r in rows if r[2] >= t_f]
    phases = result.overall.phases
    assert (phases["before"].requests, phases["during"].requests) == (len(before), len(during))
    assert phases["after"].requests == len(after) == 119
    assert phases["during"].failed == 1
    assert phases["after"].failed == 12
    assert phases["overall"].requests == 241 and result.overall.failed == 13
    assert phases["upstream_before"].requests == len(before)
    assert phases["upstream_after"].requests == len(during) + len(after)


def test_latency_is_pooled_over_successful_requests_of_all_clients(tmp_path):
    result = parse_result_dir(write_legacy_test(tmp_path / "t-decode_worker"))
    lat = [r[3] for r in timeline() if r[4]]
    stats = result.overall.phases["overall"].latency_s
    assert stats["mean"] == pytest.approx(sum(lat) / len(lat))
    assert stats["min"] == pytest.approx(min(lat)) and stats["max"] == pytest.approx(max(lat))
    for q in (50, 90, 95, 99):
        assert stats[f"p{q}"] == pytest.approx(percentile(lat, q))


def test_sla_violations_count_successful_requests_slower_than_the_sla(tmp_path):
    result = parse_result_dir(write_legacy_test(tmp_path / "t-decode_worker"), sla=0.25)
    expected = sum(1 for r in timeline() if r[4] and r[3] > 0.25)
    assert result.overall.phases["overall"].sla_violations == expected


def test_throughput_is_successful_requests_over_the_load_wall_time(tmp_path):
    result = parse_result_dir(write_legacy_test(tmp_path / "t-decode_worker"))
    rows = timeline()
    wall = max(r[2] + r[3] for r in rows) - min(r[2] for r in rows)
    assert result.overall.throughput_rps == pytest.approx(sum(r[4] for r in rows) / wall)
    c0 = [r for r in rows if r[0] == 0]
    wall0 = max(r[2] + r[3] for r in c0) - min(r[2] for r in c0)
    assert result.overall.client_throughput_rps["0"] == pytest.approx(sum(r[4] for r in c0) / wall0)


def test_no_failure_after_the_fault_means_zero_recovery_and_no_visible_impact(tmp_path):
    rows = [(0, i, i * 1.0, 0.2, True) for i in range(60)]
    result = parse_result_dir(write_legacy_test(tmp_path / "t-frontend", rows))
    recovery = result.overall.recovery
    assert recovery.recovery_time_s == 0.0 and recovery.no_visible_impact and recovery.recovered


def test_failures_until_the_end_mean_not_recovered(tmp_path):
    rows = [(0, i, i * 1.0, 0.2, i < 35) for i in range(60)]
    result = parse_result_dir(write_legacy_test(tmp_path / "t-frontend", rows))
    recovery = result.overall.recovery
    assert recovery.recovery_time_s is None and not recovery.recovered
    assert recovery.failed_attempts_after_fault == 25


def test_without_a_fault_every_request_is_before_and_there_is_no_recovery(tmp_path):
    rows = [(0, i, i * 1.0, 0.2, True) for i in range(10)]
    result = parse_result_dir(write_legacy_test(tmp_path / "t-none", rows, fault_rel=None))
    assert result.overall.recovery is None
    assert result.overall.phases["before"].requests == 10
    assert result.fault_time_source is None and result.failure == "none"


def test_retried_request_counts_once():
    line = {"results": [failed_attempt(), failed_attempt("Connection reset"), ok_attempt()]}
    assert record_succeeded(line)
    assert not record_succeeded({"results": [failed_attempt(), failed_attempt()]})


def test_short_complete_answer_succeeds_and_empty_or_null_fails():
    assert attempt_succeeded(ok_attempt("4"))  # never "≥ 100 characters"
    assert not attempt_succeeded(ok_attempt(""))
    assert not attempt_succeeded({"status": 200, "result": None})
    assert not attempt_succeeded({**ok_attempt(), "error": "stream_error"})
    assert attempt_succeeded({"status": 200, "request_elapsed_time": 1.2})  # upstream example
    assert not record_succeeded({"results": [ok_attempt()], "error": "stream_error: x"})
    assert not record_succeeded({"results": [ok_attempt()], "ok": False})  # `ok` is trusted


def test_unreadable_lines_warn_with_file_and_line_and_the_rest_is_parsed(tmp_path):
    path = tmp_path / "client_0.log.txt"
    good = [json.dumps(record(0, i, float(i), 0.2, True)) for i in range(3)]
    content = (
        good[0] + "\n\n   \n" + good[1] + "\n" + "not json\n" + good[2] + '\n{"time": "2023-'
    ).encode()
    content = content.replace(b'"a b c"', b'"a \xff c"', 1)  # a non-UTF-8 byte in one record
    path.write_bytes(content)
    warnings: list[str] = []
    table, derived = read_client_file(path, 0, warnings)
    assert len(table) == 3 and table.ok.all() and not derived
    assert f"{path}:5: unreadable line skipped" in warnings
    assert f"{path}:7: truncated last line skipped" in warnings


def test_empty_file_and_out_of_order_clocks_warn_and_end_before_start_is_excluded(tmp_path):
    empty = tmp_path / "client_0.log.txt"
    empty.write_bytes(b"")
    warnings: list[str] = []
    assert len(read_client_file(empty, 0, warnings)[0]) == 0
    assert warnings == [f"{empty}: no requests"]
    skewed = tmp_path / "client_1.log.txt"
    lines = [record(1, 0, 10.0, 0.2, True), record(1, 1, 2.0, 0.2, True)]
    backwards = record(1, 2, 12.0, 0.2, True)
    backwards["end_ns"] = backwards["start_ns"] - 5
    skewed.write_text("\n".join(json.dumps(x) for x in [*lines, backwards]) + "\n")
    warnings = []
    table, _ = read_client_file(skewed, 1, warnings)
    assert len(table) == 2  # the backwards one is impossible: out of every metric
    assert table.start_ns.tolist() == [ns(10.0), ns(2.0)]
    assert any(w.startswith(f"{skewed}:2: ") and "out of order" in w for w in warnings)
    assert f"{skewed}: 1 impossible record excluded (end before start: 1)" in warnings


def test_a_client_with_zero_requests_still_parses_the_others(tmp_path):
    path = write_legacy_test(tmp_path / "t-decode_worker")
    (path / "client_7.log.txt").write_text("")
    result = parse_result_dir(path)
    assert result.overall.requests == 241 and result.overall.clients == 3
    assert any("client_7.log.txt: no requests" in w for w in result.warnings)


def test_named_loads_are_reported_separately_and_pooled(tmp_path):
    path = write_legacy_test(tmp_path / "t-decode_worker")
    extra = [(5, i, i * 2.0, 0.3, True) for i in range(20)]
    sub = path / "loads" / "background"
    write_legacy_test(sub, extra)
    (sub / "events.jsonl").unlink()  # named loads share the root's events.jsonl
    result = parse_result_dir(path)
    assert list(result.loads) == ["default", "background"]
    assert result.loads["background"].requests == 20
    assert result.overall.requests == 261
    assert result.loads["default"].recovery.recovery_time_s == pytest.approx(10.25, abs=1e-3)


def test_fast_and_line_by_line_readers_agree(tmp_path, monkeypatch):
    import ftctl.results.fast

    fast = parse_result_dir(write_legacy_test(tmp_path / "a-decode_worker"))
    slow_dir = write_legacy_test(tmp_path / "b-decode_worker")
    for path in slow_dir.glob("client_*.log.txt"):  # blank lines change nothing
        path.write_text(path.read_text().replace("\n", "\n\n", 1))
    monkeypatch.setattr(ftctl.results.fast, "legacy_columns", lambda raw: None)
    slow = parse_result_dir(slow_dir)
    fast_json, slow_json = fast.to_json(), slow.to_json()
    for key in ("name", "path", "group"):
        fast_json.pop(key), slow_json.pop(key)
    assert fast_json == slow_json


def test_parallel_reading_gives_the_same_result(tmp_path, monkeypatch):
    import ftctl.results.common as common

    path = write_legacy_test(tmp_path / "t-decode_worker")
    serial = parse_result_dir(path).to_json()
    monkeypatch.setattr(common, "PARALLEL_MIN_BYTES", 0)  # force the process pool
    assert parse_result_dir(path).to_json() == serial


def test_open_loop_dispatch_lag_is_start_minus_schedule(tmp_path, monkeypatch):
    import ftctl.results.fast

    directory = write_legacy_test(tmp_path / "open-decode_worker")
    # Client 0 was scheduled; its request i started i ms late (0..N-1). Client 1 was not.
    path = directory / "client_0.log.txt"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for lateness_ms, line in enumerate(lines):
        line["scheduled_ns"] = line["start_ns"] - lateness_ms * 1_000_000
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    expected_ms = [float(i) for i in range(len(lines))]

    fast = parse_result_dir(directory)
    monkeypatch.setattr(ftctl.results.fast, "legacy_columns", lambda raw: None)
    slow = parse_result_dir(directory)
    for result in (fast, slow):
        lag = result.overall.dispatch_lag_ms
        assert lag["requests"] == len(lines)
        assert lag["p50"] == pytest.approx(percentile(expected_ms, 50))
        assert lag["p99"] == pytest.approx(percentile(expected_ms, 99))
        assert lag["max"] == len(lines) - 1
    assert "Open loop: " in render_text([fast], "fancy")


def test_closed_loop_has_no_dispatch_lag(tmp_path):
    result = parse_result_dir(write_legacy_test(tmp_path / "closed-decode_worker"))
    assert result.overall.dispatch_lag_ms is None
    assert "Open loop" not in render_text([result], "fancy")
