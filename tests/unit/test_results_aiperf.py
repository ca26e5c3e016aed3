"""aiperf reader: attempt outcome and attempt choice."""

from __future__ import annotations

import json
from pathlib import Path

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
