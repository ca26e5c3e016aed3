"""The load-test table: pooled statistics from JSONL, tolerant reading, comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ftctl.clients.loadtable import latency_stats, percentile, read_run, render_compare, render_run
from ftctl.errors import ParseError


def _write(path: Path, records: list[dict], tail: bytes = b"") -> None:
    with open(path, "wb") as fh:
        for r in records:
            fh.write(json.dumps(r).encode() + b"\n")
        fh.write(tail)


def _rec(start_s: float, total: float, ok: bool = True, error: str | None = None) -> dict:
    start = int(1_800_000_000e9 + start_s * 1e9)
    return {
        "time": "2027-01-15T08:00:00",
        "results": [{"status": 200 if ok else 503, "result": None}],
        "total_time": total,
        "start_ns": start,
        "end_ns": start + int(total * 1e9),
        "ok": ok,
        "error": error,
    }


@pytest.mark.parametrize("q", [0, 13, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q):
    values = sorted([0.3, 0.1, 0.7, 0.2, 0.9, 0.5, 0.05])
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_run_stats_pool_successful_requests_of_all_clients(tmp_path):
    lat0 = [0.10, 0.20, 0.30]
    lat1 = [0.40, 0.50]
    _write(tmp_path / "client_0.log.txt", [_rec(i, t) for i, t in enumerate(lat0)])
    _write(
        tmp_path / "client_1.log.txt",
        [_rec(i, t) for i, t in enumerate(lat1)]
        + [_rec(5.0, 9.0, ok=False, error="http_5xx: HTTP 503 x")],
        tail=b'{"time": "2027-01-15T08:00:0',  # killed mid-write
    )
    run = read_run(tmp_path)
    pooled = lat0 + lat1
    assert (run.requests, run.ok, run.failed) == (6, 5, 1)
    assert run.first_error == "http_5xx: HTTP 503 x"
    assert run.latency["mean"] == pytest.approx(float(np.mean(pooled)))
    assert run.latency["p90"] == pytest.approx(float(np.percentile(pooled, 90)))
    assert run.latency["min"] == 0.10 and run.latency["max"] == 0.50
    assert run.wall_s == pytest.approx(14.0)  # first start 0 s, last end 5 + 9 s
    assert run.throughput == pytest.approx(6 / 14.0)


def test_upstream_records_without_ftctl_fields_are_read(tmp_path):
    records = [
        {"time": "2027-01-15T08:00:00", "results": [{"status": 200}], "total_time": 0.5},
        {
            "time": "2027-01-15T08:00:01",
            "results": [{"status": "Connection refused"}, {"status": "Connection refused"}],
            "total_time": 1.5,
        },
    ]
    _write(tmp_path / "client_0.log.txt", records)
    run = read_run(tmp_path)
    assert (run.requests, run.ok, run.failed) == (2, 1, 1)
    assert run.first_error == "Connection refused"
    assert run.wall_s == pytest.approx(2.5)


def test_directory_without_client_logs_is_a_parse_error(tmp_path):
    with pytest.raises(ParseError, match="client_"):
        read_run(tmp_path)


def test_mode_comes_from_the_saved_spec(tmp_path):
    _write(tmp_path / "client_0.log.txt", [_rec(0, 0.1)])
    (tmp_path / "load.json").write_text(json.dumps({"spec": {"clients": 1, "concurrency": 1}}))
    assert read_run(tmp_path).mode == "sequential (c=1)"
    (tmp_path / "load.json").write_text(json.dumps({"spec": {"clients": 2, "concurrency": 4}}))
    run = read_run(tmp_path)
    assert run.mode == "concurrent (c=8)"
    assert run.implied_throughput == pytest.approx(8 / 0.1)


def test_single_run_table_lists_every_latency_statistic(tmp_path):
    _write(tmp_path / "client_0.log.txt", [_rec(0, 0.25), _rec(1, 0.75, False, "timeout: t")])
    text = render_run(read_run(tmp_path), "markdown")
    for word in ("min", "max", "mean", "median", "p90", "p95", "p99", "latency-implied"):
        assert f"{word}" in text
    assert "1 (first: timeout: t)" in text
    assert "| Latency mean (ms)" in text and "250.00" in text
    assert json.loads(render_run(read_run(tmp_path), "json"))["failed"] == 1


def test_comparison_shows_speedup_against_the_first_run(tmp_path):
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    slow.mkdir()
    fast.mkdir()
    _write(slow / "client_0.log.txt", [_rec(0, 1.0), _rec(1, 1.0)])  # 2 requests in 2 s
    _write(fast / "client_0.log.txt", [_rec(0, 0.5), _rec(0.5, 0.5)])  # 2 requests in 1 s
    runs = [read_run(slow), read_run(fast)]
    text = render_compare(runs, "fancy")
    assert "baseline" in text and "2.00x" in text
    data = json.loads(render_compare(runs, "json"))
    assert [d["speedup"] for d in data] == [pytest.approx(1.0), pytest.approx(2.0)]


def test_latency_stats_of_nothing_is_empty():
    assert latency_stats([]) == {}


def test_open_loop_latency_is_also_measured_from_the_schedule(tmp_path):
    recs = [_rec(0, 0.1), _rec(1, 0.1)]
    recs[0]["scheduled_ns"] = recs[0]["start_ns"] - 50_000_000  # sent 50 ms late
    recs[1]["scheduled_ns"] = recs[1]["start_ns"]
    _write(tmp_path / "client_0.log.txt", recs)
    run = read_run(tmp_path)
    assert run.from_schedule["max"] == pytest.approx(0.15)
    assert run.from_schedule["min"] == pytest.approx(0.1)
    assert "Latency from schedule p99" in render_run(run, "fancy")


def _attempt(status, content: str | None = "hello"):
    result = None
    if content is not None:
        message = {"role": "assistant", "content": content}
        result = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    return {"status": status, "result": result, "request_elapsed_time": 0.1, "url": "u", "pod": ""}


def test_load_compare_and_parse_count_the_same_jsonl_alike(tmp_path):
    import json

    from tests.conftest import run_cli

    folder = tmp_path / "demo-none"
    folder.mkdir()
    records = [
        {"results": [_attempt(200)]},  # ok
        {"results": [_attempt(503, None), _attempt(200)]},  # retried, then ok
        {"results": [_attempt(200, "")]},  # 200 with an empty completion: failed
        {"results": [_attempt(503, None)]},  # failed
    ]
    base = 1_800_000_000_000_000_000
    lines = []
    for i, rec in enumerate(records):
        stamp = {"time": "2027-01-15T08:00:00", "start_ns": base + i * 10**9}
        lines.append(json.dumps({**stamp, "end_ns": base + i * 10**9 + 10**8, **rec}))
    (folder / "client_0.log.txt").write_text("\n".join(lines) + "\n")
    compared = json.loads(run_cli("load", "--compare", str(folder), "--format", "json").stdout)
    if isinstance(compared, list):  # several runs side by side; here one
        (compared,) = compared
    parsed = json.loads(run_cli("parse", str(folder), "--format", "json").stdout)["tests"][0]
    assert (compared["requests"], compared["ok"]) == (4, 2)
    assert (parsed["overall"]["requests"], parsed["overall"]["ok"]) == (4, 2)


def test_the_load_table_counts_attempts_and_retried_requests(tmp_path):
    from ftctl.clients.loadtable import read_run, render_compare, render_run

    ok = {"status": 200, "result": {"choices": [{"message": {"content": "x"}}]}}
    refused = {"status": 503, "result": None, "error": "http_5xx: HTTP 503"}
    records = [
        {"results": [ok], "ok": True, "start_ns": 1, "end_ns": 2},
        {"results": [refused, ok], "ok": True, "start_ns": 3, "end_ns": 4},
        {"results": [refused, refused], "ok": False, "start_ns": 5, "end_ns": 6},
    ]
    (tmp_path / "client_0.log.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    run = read_run(tmp_path)
    assert (run.requests, run.failed) == (3, 1)
    assert (run.attempts, run.failed_attempts, run.retried_requests) == (5, 3, 2)
    table = render_run(run)
    assert "│ Attempts " in table and "5 (3 failed, 2 retried requests)" in table
    assert "5 (3 failed, 2 retried requests)" in render_compare([run])
