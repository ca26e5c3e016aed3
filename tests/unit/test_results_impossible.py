"""Physically impossible records are excluded from every metric, counted and warned (one rule)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ftctl.results.fast
from ftctl.results import parse_result_dir
from tests.conftest import run_cli
from tests.unit.test_results_legacy import ns, record, write_legacy_test

DATA = Path(__file__).resolve().parent.parent / "data" / "results"
DAY_S = 86_400.0
# Keys that name the directory or describe the exclusion itself: everything else must match.
_OWN = ("name", "path", "group", "warnings", "excluded", "excluded_records")


def _metrics(result) -> dict:
    data = result.to_json()
    for key in _OWN:
        data.pop(key)
    return data


def _add_stream_fields(directory: Path) -> None:
    """Every record gets a TTFT and an ITL list (the vectorised ITL path needs all lists)."""
    for path in directory.glob("client_*.log.txt"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            line.update(ttft=0.05, itl=[0.01, 0.02, 0.03])
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _impossible_legacy_lines() -> list[dict]:
    """Five impossible records, failures among them so that keeping any would show."""
    backwards = record(0, 900, 31.0, 0.2, False)
    backwards["end_ns"] = backwards["start_ns"] - 1_000
    backwards_ok = record(0, 901, 45.0, 0.2, True)
    backwards_ok["end_ns"] = backwards_ok["start_ns"] - 1
    early = record(0, 902, -3 * DAY_S, 0.2, False)  # three days before the first event
    negative_ttft = record(0, 903, 50.0, 0.2, False)
    negative_itl = record(0, 904, 52.0, 0.2, True)
    for line in (backwards, backwards_ok, early, negative_ttft, negative_itl):
        line.update(ttft=0.05, itl=[0.01, 0.02, 0.03])
    negative_ttft["ttft"] = -0.5
    negative_itl["itl"] = [0.01, -0.002, 0.03]  # mean positive, one interval impossible
    return [backwards, backwards_ok, early, negative_ttft, negative_itl]


@pytest.mark.parametrize("reader", ["fast", "line by line"])
def test_impossible_legacy_records_change_no_metric_and_are_counted(tmp_path, monkeypatch, reader):
    if reader == "line by line":
        monkeypatch.setattr(ftctl.results.fast, "legacy_columns", lambda raw: None)
    clean = write_legacy_test(tmp_path / "clean" / "t-decode_worker")
    _add_stream_fields(clean)
    dirty = tmp_path / "dirty" / "t-decode_worker"
    shutil.copytree(clean, dirty)
    with (dirty / "client_0.log.txt").open("a") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in _impossible_legacy_lines())

    expected, result = parse_result_dir(clean), parse_result_dir(dirty)

    assert _metrics(result) == _metrics(expected)
    assert result.overall.requests == 241  # the hand-built timeline, nothing added
    assert result.excluded_records == 5
    reasons = {"end before start": 2, "outside the run": 1, "negative TTFT": 1, "negative ITL": 1}
    message = (
        f"{dirty / 'client_0.log.txt'}: 5 impossible records excluded (end before start: 2, "
        "outside the run: 1, negative TTFT: 1, negative ITL: 1)"
    )
    assert [(e.path, e.count, e.reasons) for e in result.excluded] == [
        (str(dirty / "client_0.log.txt"), 5, reasons)
    ]
    assert message in result.warnings
    assert expected.excluded_records == 0 and expected.excluded == []


def _aiperf_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("reader", ["fast", "line by line"])
def test_impossible_aiperf_records_change_no_metric_and_are_counted(tmp_path, monkeypatch, reader):
    if reader == "line by line":
        monkeypatch.setattr(ftctl.results.fast, "aiperf_columns", lambda raw: None)
    clean = tmp_path / "clean" / "t-decode_worker"
    shutil.copytree(DATA / "aiperf" / "fault", clean)
    dirty = tmp_path / "dirty" / "t-decode_worker"
    shutil.copytree(clean, dirty)
    records = dirty / "client_1" / "attempt_0" / "profile_export.jsonl"
    template = _aiperf_lines(records)[3]
    backwards, slow_negative, ttft_negative = (json.loads(json.dumps(template)) for _ in range(3))
    meta = backwards["metadata"]
    meta["request_end_ns"] = meta["request_start_ns"] - 5
    slow_negative["metrics"]["request_latency"]["value"] = -1001.0
    ttft_negative["metrics"]["time_to_first_token"]["value"] = -3.0
    with records.open("a") as handle:
        for line in (backwards, slow_negative, ttft_negative):
            handle.write(json.dumps(line) + "\n")

    expected, result = parse_result_dir(clean), parse_result_dir(dirty)

    assert _metrics(result) == _metrics(expected)
    assert result.overall.requests == 90
    assert result.excluded_records == 3
    assert result.excluded[0].reasons == {
        "end before start": 1,
        "negative latency": 1,
        "negative TTFT": 1,
    }
    assert result.excluded[0].path == str(records)


def test_an_attempt_whose_every_record_is_impossible_has_no_requests_but_says_why(tmp_path):
    test_dir = tmp_path / "t-decode_worker"
    shutil.copytree(DATA / "aiperf" / "fault", test_dir)
    for client in ("client_1", "client_2"):
        shutil.rmtree(test_dir / client)
    records = test_dir / "client_0" / "attempt_0" / "profile_export.jsonl"
    lines = _aiperf_lines(records)
    for line in lines:
        line["metadata"]["request_end_ns"] = line["metadata"]["request_start_ns"] - 1
    records.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = parse_result_dir(test_dir)
    assert result.overall.requests == 0
    assert result.excluded_records == 30
    assert result.excluded[0].reasons == {"end before start": 30}


def _rewrite_events(directory: Path, events: list[dict]) -> None:
    (directory / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_a_pod_recovered_before_its_fault_is_no_pod_recovery_time(tmp_path):
    # The fault of the hand-built timeline is at 30.25 s; -1001 s is the reported hostile case.
    directory = write_legacy_test(tmp_path / "t-decode_worker")
    fault = {"t_ns": ns(30.25), "kind": "fault_injected"}
    early = {"t_ns": ns(30.35), "kind": "fault_verified", "pod_recovered_ns": ns(30.25 - 1001)}
    _rewrite_events(directory, [{"t_ns": ns(0.0), "kind": "load_start"}, fault, early])
    result = parse_result_dir(directory)
    assert result.pod_recovery_s is None
    assert result.excluded_records == 1
    assert (
        f"{directory / 'events.jsonl'}: 1 impossible record excluded "
        "(pod recovered before the fault: 1)"
    ) in result.warnings
    # A possible recovery beside it is kept: 45.0 − 30.25.
    later = {"t_ns": ns(30.4), "kind": "fault_verified", "pod_recovered_ns": ns(45.0)}
    _rewrite_events(directory, [fault, early, later])
    assert parse_result_dir(directory).pod_recovery_s == pytest.approx(14.75)


def test_ready_before_deploy_start_is_no_startup_time(tmp_path):
    directory = write_legacy_test(tmp_path / "t-decode_worker")
    _rewrite_events(
        directory,
        [{"t_ns": ns(-10.0), "kind": "deploy_start"}, {"t_ns": ns(-20.0), "kind": "ready"}],
    )
    result = parse_result_dir(directory)
    assert result.startup_s is None
    assert result.excluded[0].reasons == {"ready before deploy start": 1}


def _lone_client(directory: Path, starts_s: list[float]) -> Path:
    rows = [(0, i, start, 0.2, True) for i, start in enumerate(starts_s)]
    return write_legacy_test(directory, rows, fault_rel=None)


def test_outside_the_run_means_more_than_a_day_outside_the_events_span(tmp_path):
    # Events span −100 s … 0 s (deploy_start … load_start); requests at 1…5 s plus two strays.
    inside = [1.0, 2.0, 3.0, 4.0, 5.0]
    directory = _lone_client(tmp_path / "t-none", [*inside, 23 * 3600.0, 25 * 3600.0])
    result = parse_result_dir(directory)
    assert result.overall.requests == 6  # 23 h after the span is kept, 25 h is not
    assert result.excluded[0].reasons == {"outside the run": 1}


def test_without_a_timeline_outside_the_run_is_judged_from_the_files_median(tmp_path):
    directory = _lone_client(tmp_path / "t-none", [1.0, 2.0, 3.0, 4.0, 5.0, -2 * DAY_S])
    (directory / "events.jsonl").unlink()
    result = parse_result_dir(directory)
    assert result.overall.requests == 5
    assert result.excluded[0].reasons == {"outside the run": 1}


def _dirty_legacy(directory: Path) -> Path:
    write_legacy_test(directory)
    with (directory / "client_1.log.txt").open("a") as handle:
        for line in _impossible_legacy_lines()[:3]:
            handle.write(json.dumps(line) + "\n")
    return directory


def test_parse_report_and_compare_warn_on_stderr_and_exit_0(tmp_path):
    directory = _dirty_legacy(tmp_path / "t-decode_worker")
    line = (
        f"ftctl: warning: {directory / 'client_1.log.txt'}: 3 impossible records excluded "
        "(end before start: 2, outside the run: 1)"
    )
    parsed = run_cli("parse", str(directory), "--format", "json")
    assert line in parsed.stderr.splitlines()
    test = json.loads(parsed.stdout)["tests"][0]
    assert test["excluded_records"] == 3
    assert test["excluded"] == [
        {
            "path": str(directory / "client_1.log.txt"),
            "count": 3,
            "reasons": {"end before start": 2, "outside the run": 1},
        }
    ]
    assert line in run_cli("parse", str(directory)).stderr.splitlines()
    assert line in run_cli("report", str(directory)).stderr.splitlines()
    compared = run_cli("compare", str(directory), str(directory), "--format", "json")
    assert line in compared.stderr.splitlines()
    row = json.loads(compared.stdout)
    assert row["a"]["excluded_records"] == 3 and row["b"]["excluded_records"] == 3
