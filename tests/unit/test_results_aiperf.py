"""aiperf reader: attempt outcome and attempt choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftctl.results.aiperf import attempt_outcome, choose_attempt


def _jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _record(error: bool = False, cancelled: bool = False) -> dict:
    rec = {
        "metadata": {"request_start_ns": 1, "request_end_ns": 2, "was_cancelled": cancelled},
        "metrics": {},
    }
    if error:
        rec["error"] = {"code": 503, "type": "HTTP", "message": "no instances"}
    return rec


def test_attempt_outcome_counts_errors_and_cancelled_as_failed(tmp_path):
    _jsonl(
        tmp_path / "profile_export.jsonl",
        [_record(), _record(), _record(error=True), _record(cancelled=True)],
    )
    assert attempt_outcome(tmp_path) == (2, 2)


def test_attempt_outcome_skips_a_truncated_last_line(tmp_path):
    path = tmp_path / "profile_export.jsonl"
    _jsonl(path, [_record(), _record(error=True)])
    with path.open("a") as f:
        f.write('{"metadata": {"request_st')
    assert attempt_outcome(tmp_path) == (1, 1)


def test_attempt_outcome_falls_back_to_the_top_level_summary(tmp_path):
    summary = {"request_count": {"unit": "requests", "avg": 7}, "error_request_count": {"avg": 3}}
    (tmp_path / "profile_export_aiperf.json").write_text(json.dumps(summary))
    assert attempt_outcome(tmp_path) == (7, 3)


def test_attempt_outcome_reads_the_older_records_layout(tmp_path):
    summary = {"records": {"request_count": {"avg": 5}}}
    (tmp_path / "profile_export_aiperf.json").write_text(json.dumps(summary))
    assert attempt_outcome(tmp_path) == (5, 0)


def test_attempt_outcome_of_an_empty_or_missing_dir_is_zero(tmp_path):
    assert attempt_outcome(tmp_path) == (0, 0)
    assert attempt_outcome(tmp_path / "missing") == (0, 0)
    (tmp_path / "profile_export_aiperf.json").write_bytes(b"\xff\xfe not json")
    assert attempt_outcome(tmp_path) == (0, 0)


def test_choose_attempt_orders_numerically_and_takes_the_last_readable(tmp_path):
    for n in (0, 2, 10):
        (tmp_path / f"attempt_{n}").mkdir()
    _jsonl(tmp_path / "attempt_0" / "profile_export.jsonl", [_record(error=True)] * 3)
    _jsonl(tmp_path / "attempt_2" / "profile_export.jsonl", [_record()] * 3)
    choice = choose_attempt(0, tmp_path)
    assert choice.attempt == 2 and choice.attempts == 3
    assert (choice.ok, choice.failed) == (3, 0)
    _jsonl(tmp_path / "attempt_10" / "profile_export.jsonl", [_record()] * 4)
    assert choose_attempt(0, tmp_path).attempt == 10


# --- the real aiperf fixtures (tools/make_aiperf_fixtures.py) ---------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "results" / "aiperf"


def _independent_records(test_dir: Path) -> list[dict]:
    """Every record of the last attempt of every client, read with json (not the parser)."""
    rows = []
    for client_dir in sorted(test_dir.glob("client_*")):
        attempts = sorted(client_dir.glob("attempt_*"), key=lambda p: int(p.name.split("_")[1]))
        with (attempts[-1] / "profile_export.jsonl").open() as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def _fault_ns(test_dir: Path) -> int:
    for line in (test_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "fault_injected":
            return event["t_ns"]
    raise AssertionError("no fault in fixture")


def test_real_aiperf_run_with_a_fault_window_splits_phases_and_recovers():
    from ftctl.results import parse_result_dir

    path = FIXTURES / "fault"
    result = parse_result_dir(path)
    records = _independent_records(path)
    t_f = _fault_ns(path)
    failed = [r for r in records if r.get("error")]
    assert failed, "the fixture must contain failed requests"
    assert result.kind == "aiperf" and result.overall.clients == 3
    assert (result.overall.requests, result.overall.failed) == (len(records), len(failed))
    after = [r for r in records if r["metadata"]["request_start_ns"] >= t_f]
    before = [r for r in records if r["metadata"]["request_end_ns"] < t_f]
    phases = result.overall.phases
    assert phases["after"].requests == len(after)
    assert phases["before"].requests == len(before)
    assert phases["after"].failed == sum(1 for r in after if r.get("error"))
    recovery = result.overall.recovery
    assert recovery.recovered and recovery.recovery_time_s > 0
    assert recovery.failed_attempts_after_fault == len(failed)
    # Pooled latency: numpy's percentile of every successful request_latency (ms → s).
    lat = sorted(
        r["metrics"]["request_latency"]["value"] / 1e3 for r in records if not r.get("error")
    )
    assert phases["overall"].latency_s["max"] == pytest.approx(lat[-1])
    assert phases["overall"].latency_s["mean"] == pytest.approx(sum(lat) / len(lat))
    ttft = [
        r["metrics"]["time_to_first_token"]["value"] / 1e3 for r in records if not r.get("error")
    ]
    assert phases["overall"].ttft_mean_s == pytest.approx(sum(ttft) / len(ttft))


def test_real_aiperf_retry_uses_the_attempt_that_completed():
    from ftctl.results import parse_result_dir

    result = parse_result_dir(FIXTURES / "retry")
    assert result.loads["default"].attempts == {"0": 2}
    assert result.loads["default"].chosen_attempt == {"0": 1}
    assert (result.overall.requests, result.overall.failed) == (10, 0)
    assert attempt_outcome(FIXTURES / "retry" / "client_0" / "attempt_0") == (0, 5)


def test_missing_summary_or_missing_records_still_parse(tmp_path):
    import shutil

    from ftctl.results import parse_result_dir

    no_summary = tmp_path / "no_summary"
    shutil.copytree(FIXTURES / "ok", no_summary)
    for summary in no_summary.rglob("profile_export_aiperf.json"):
        summary.unlink()
    assert parse_result_dir(no_summary).overall.requests == 16

    no_records = tmp_path / "no_records"
    shutil.copytree(FIXTURES / "fault", no_records)
    for records in no_records.rglob("profile_export.jsonl"):
        records.unlink()
    result = parse_result_dir(no_records)
    assert (result.overall.requests, result.overall.failed) == (
        len(_independent_records(FIXTURES / "fault")),
        sum(1 for r in _independent_records(FIXTURES / "fault") if r.get("error")),
    )
    assert result.overall.recovery is None
    assert any("profile_export.jsonl" in w for w in result.warnings)
    assert result.overall.phases["overall"].latency_s["mean"] is not None


def test_parallel_reading_of_aiperf_clients_gives_the_same_result(monkeypatch):
    import ftctl.results.common as common
    from ftctl.results import parse_result_dir

    serial = parse_result_dir(FIXTURES / "fault").to_json()
    monkeypatch.setattr(common, "PARALLEL_MIN_BYTES", 0)
    assert parse_result_dir(FIXTURES / "fault").to_json() == serial


def test_fast_and_line_by_line_readers_agree_on_real_aiperf_output(monkeypatch):
    import ftctl.results.fast
    from ftctl.results import parse_result_dir

    fast = parse_result_dir(FIXTURES / "fault").to_json()
    monkeypatch.setattr(ftctl.results.fast, "aiperf_columns", lambda raw: None)
    slow = parse_result_dir(FIXTURES / "fault").to_json()
    assert fast["overall"]["requests"] > 0
    assert _rounded(fast) == _rounded(slow)  # ms → s is vectorised in one, per value in the other


def _rounded(value):
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return round(value, 12) if isinstance(value, float) else value


def test_a_unit_other_than_ms_takes_the_slow_path_and_is_converted(tmp_path):
    attempt = tmp_path / "client_0" / "attempt_0"
    attempt.mkdir(parents=True)
    rec = _record()
    rec["metadata"].update(request_start_ns=10**18, request_end_ns=10**18 + 2 * 10**9)
    rec["metrics"] = {"request_latency": {"value": 1.5, "unit": "s"}}
    _jsonl(attempt / "profile_export.jsonl", [rec])
    from ftctl.results.aiperf import read_records

    table = read_records(attempt / "profile_export.jsonl", 0, [])
    assert table.latency_s.tolist() == [1.5]


def test_stream_cut_by_an_error_event_counts_as_failed(tmp_path):
    # aiperf 0.13 records such a stream without `error`, only without an output length.
    from ftctl.results.aiperf import attempt_outcome, read_records

    good = _record()
    good["metrics"] = {"output_sequence_length": {"value": 20, "unit": "tokens"}}
    cut = _record()
    cut["metrics"] = {}
    path = tmp_path / "profile_export.jsonl"
    _jsonl(path, [good, cut, good])
    assert attempt_outcome(tmp_path) == (2, 1)
    table = read_records(path, 0, [])
    assert table.ok.tolist() == [True, False, True]
    # the slow path (a truncated line forces it) agrees
    with path.open("a") as handle:
        handle.write('{"metadata": {"request_start_ns"')
    assert read_records(path, 0, []).ok.tolist() == [True, False, True]
