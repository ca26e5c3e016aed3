"""The legacy load client against the real fake server: JSONL contents, retries, error classes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import datetime
from pathlib import Path

import pytest

from ftctl.clients.base import LoadTarget
from ftctl.clients.legacy import LegacyLoad, run_clients
from ftctl.scenario.model import LoadSpec, TokenDist
from tests.fake_llm import FakeLLM


@pytest.fixture
def server():
    with FakeLLM() as srv:
        yield srv


def _spec(**kw) -> LoadSpec:
    base = dict(
        client="legacy",
        clients=1,
        requests_per_client=1,
        retries=0,
        retry_delay=0.0,
        timeout=5.0,
        streaming=False,
        input_tokens=TokenDist(5),
        output_tokens=TokenDist(6),
    )
    base.update(kw)
    return LoadSpec(**base)


def _run(spec: LoadSpec, urls: list[str], out: Path, model: str = "m"):
    return asyncio.run(run_clients(spec, urls, model, out))


def _records(out: Path, client: int = 0) -> list[dict]:
    lines = (out / f"client_{client}.log.txt").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_client_writes_one_line_per_request_in_upstream_format(server, tmp_path):
    summary = _run(_spec(clients=3, requests_per_client=4), [server.url], tmp_path)
    assert (summary.requests, summary.ok, summary.failed) == (12, 12, 0)
    assert len(server.served) == 12
    for client in range(3):
        recs = _records(tmp_path, client)
        assert [r["request"] for r in recs] == [0, 1, 2, 3]
        for r in recs:
            # What a reader knowing only the upstream fields relies on.
            datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S")
            assert isinstance(r["total_time"], float)
            (res,) = r["results"]
            assert res["status"] == 200
            assert set(res) >= {"status", "result", "request_elapsed_time", "url"}
            assert "pod" not in res  # unknown to the client: not written empty (issue 11)
            assert res["result"]["usage"]["completion_tokens"] == 6
            assert res["url"] == server.url + "/v1/chat/completions"
            assert r["ok"] is True and r["error"] is None and r["client"] == client
            assert r["output_tokens"] == 6 and r["attempts"] == 1
            # One stamp: the request starts with its first attempt, to the nanosecond.
            assert r["start_ns"] == res["start_ns"] and r["end_ns"] == res["end_ns"]


def test_request_body_follows_the_upstream_payload(tmp_path):
    seen = []
    srv = FakeLLM()
    orig = srv._completions

    async def spy(request):
        seen.append(await request.json())
        return await orig(request)

    srv._completions = spy  # routes are bound at start
    with srv:
        _run(_spec(input_tokens=TokenDist(7), output_tokens=TokenDist(9)), [srv.url], tmp_path)
    (body,) = seen
    assert body["messages"][0]["role"] == "user"
    words = body["messages"][0]["content"].split()
    assert len(words) == 7 and all(w.isdigit() for w in words)
    assert body["max_tokens"] == body["min_tokens"] == 9
    assert body["ignore_eos"] is True and body["stream"] is False
    assert body["model"] == "m"


def test_retried_request_is_one_record_with_one_result_per_attempt(server, tmp_path):
    server.behavior.mode = "http_503"
    server.behavior.fail_every = 2  # server requests 2, 4, ... fail
    summary = _run(_spec(requests_per_client=3, retries=1, retry_delay=0.2), [server.url], tmp_path)
    recs = _records(tmp_path)
    assert [r["attempts"] for r in recs] == [1, 2, 2]
    assert [[a["status"] for a in r["results"]] for r in recs] == [[200], [503, 200], [503, 200]]
    assert all(r["ok"] for r in recs)
    assert (summary.requests, summary.attempts, summary.failed) == (3, 5, 0)
    # The retry delay really applies (REFERENCE §9.6): the record spans both attempts + delay.
    r = recs[1]
    attempts_s = sum(a["request_elapsed_time"] for a in r["results"])
    assert r["total_time"] >= attempts_s + 0.2 * 0.95
    # Each attempt carries its own times: the retry starts a retry delay after the refusal.
    first, second = r["results"]
    assert r["start_ns"] <= first["start_ns"] <= first["end_ns"] <= second["start_ns"]
    assert second["start_ns"] - first["end_ns"] >= 0.2 * 0.95 * 1e9
    assert second["end_ns"] <= r["end_ns"]
    assert abs(second["end_ns"] - second["start_ns"] - second["request_elapsed_time"] * 1e9) < 1e3


def test_exhausted_retries_keep_the_last_error(server, tmp_path):
    server.behavior.mode = "http_500"
    summary = _run(_spec(retries=2), [server.url], tmp_path)
    (r,) = _records(tmp_path)
    assert r["attempts"] == 3 and r["ok"] is False
    assert r["error"].startswith("http_5xx: HTTP 500")
    assert summary.errors == {"http_5xx": 1}
    assert summary.first_error == r["error"]


@pytest.mark.parametrize(
    ("mode", "streaming", "expected"),
    [
        ("http_503", False, "http_5xx"),
        ("stream_error", True, "stream_error"),
        ("truncate", True, "truncated"),
        ("truncate", False, "reset"),  # the fake closes before any header: a reset
        ("drop", False, "reset"),
        ("empty", False, "empty"),
        ("empty", True, "empty"),
        ("hang", True, "timeout"),
    ],
)
def test_failure_is_recorded_with_its_error_class(server, tmp_path, mode, streaming, expected):
    server.behavior.mode = mode
    spec = _spec(streaming=streaming, timeout=0.3)
    _run(spec, [server.url], tmp_path)
    (r,) = _records(tmp_path)
    assert r["ok"] is False
    assert r["error"].split(":")[0] == expected
    (res,) = r["results"]
    if expected == "http_5xx":
        assert res["status"] == 503
    else:
        # No valid completion came: upstream readers see a status text, never 200.
        assert isinstance(res["status"], str) and res["status"].startswith(expected)


def test_oversized_prompt_is_an_http_4xx(server, tmp_path):
    server.behavior.max_context = 3
    _run(_spec(input_tokens=TokenDist(10)), [server.url], tmp_path)
    (r,) = _records(tmp_path)
    assert r["error"].startswith("http_4xx: HTTP 400") and r["results"][0]["status"] == 400


def test_refused_connection_is_a_connect_error(tmp_path):
    _run(_spec(), [f"http://127.0.0.1:{_free_port()}"], tmp_path)
    (r,) = _records(tmp_path)
    assert r["error"].startswith("connect:")
    assert isinstance(r["results"][0]["status"], str)


def test_retry_moves_to_the_next_frontend_when_one_is_down(server, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}"
    summary = _run(_spec(clients=2, requests_per_client=3, retries=1), [dead, server.url], tmp_path)
    assert summary.failed == 0
    recs = _records(tmp_path, 0) + _records(tmp_path, 1)
    retried = [r for r in recs if r["attempts"] == 2]
    assert retried, "some requests went to the dead frontend first"
    for r in retried:
        assert r["results"][0]["error"].startswith("connect:")
        assert r["results"][1]["url"].startswith(server.url)


def test_streaming_records_ttft_itl_and_consistent_timestamps(server, tmp_path):
    server.behavior.ttft_s = 0.02
    server.behavior.itl_s = 0.002
    _run(
        _spec(streaming=True, requests_per_client=2, output_tokens=TokenDist(8)),
        [server.url],
        tmp_path,
    )
    recs = _records(tmp_path)
    for r, served in zip(recs, server.served, strict=True):
        assert r["ok"] is True
        assert 0 < r["ttft"] < r["total_time"]
        assert r["ttft"] >= 0.02  # the server waited that long before the first token
        assert len(r["itl"]) == 7 and r["output_tokens"] == 8
        assert r["start_ns"] < r["end_ns"]
        assert abs((r["end_ns"] - r["start_ns"]) / 1e9 - r["total_time"]) < 1e-6
        # One clock, causal order only: the client stamps its start before sending, the
        # server stamps receipt before answering, the client stamps its end after the answer.
        # (The server's own "finished" stamp may land after the client's end: not asserted.)
        assert r["start_ns"] <= served.received_ns <= r["end_ns"]
    assert recs[0]["end_ns"] <= recs[1]["start_ns"]  # sequential client


def test_completions_endpoint_is_supported(server, tmp_path):
    spec = _spec(endpoint="/v1/completions", streaming=True)
    _run(spec, [server.url], tmp_path)
    (r,) = _records(tmp_path)
    assert r["ok"] is True and r["results"][0]["url"].endswith("/v1/completions")
    assert server.served[0].path == "/v1/completions"


def test_closed_loop_rate_limit_spaces_requests_of_a_client(server, tmp_path):
    _run(_spec(requests_per_client=4, request_rate=20.0), [server.url], tmp_path)
    starts = [r["start_ns"] for r in _records(tmp_path)]
    gaps = [(b - a) / 1e9 for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.05  # at most 20 req/s: never closer than 50 ms, however late a pause


def test_open_loop_constant_schedule_is_honoured(server, tmp_path):
    spec = _spec(clients=2, requests_per_client=10, arrival="constant", request_rate=100.0)
    summary = _run(spec, [server.url], tmp_path)
    recs = sorted(_records(tmp_path, 0) + _records(tmp_path, 1), key=lambda r: r["scheduled_ns"])
    assert len(recs) == 20
    sched = [r["scheduled_ns"] for r in recs]
    gaps = [b - a for a, b in zip(sched, sched[1:], strict=False)]
    assert all(abs(g - 10_000_000) <= 1000 for g in gaps)  # the schedule itself: exactly 1/rate
    lags = [r["start_ns"] - r["scheduled_ns"] for r in recs]
    assert min(lags) >= 0  # how late depends on the machine: bench/client_bench.py measures it
    assert summary.offered_rate == 100.0 and summary.lag_p99_ms is not None
    assert [r["client"] for r in recs[:4]] == [0, 1, 0, 1]
    from ftctl.results import parse_result_dir

    parsed = parse_result_dir(tmp_path).overall.dispatch_lag_ms  # what `ftctl parse` reports
    assert parsed["requests"] == 20
    assert parsed["max"] == pytest.approx(max(lags) / 1e6)


def test_open_loop_poisson_schedule_is_seeded(server, tmp_path):
    spec = _spec(requests_per_client=15, arrival="poisson", request_rate=200.0, seed=7)
    offsets = []
    for name in ("a", "b"):
        _run(spec, [server.url], tmp_path / name)
        sched = [r["scheduled_ns"] for r in _records(tmp_path / name)]
        offsets.append([s - sched[0] for s in sched])
    assert offsets[0] == pytest.approx(offsets[1], abs=2)
    gaps = {b - a for a, b in zip(offsets[0], offsets[0][1:], strict=False)}
    assert len(gaps) > 5  # not a constant schedule


def _wait_for(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_stop_cancels_hung_requests_and_leaves_no_process(server, tmp_path):
    server.behavior.mode = "hang"
    spec = _spec(clients=2, requests_per_client=50, timeout=60.0)
    load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, stop_grace=0.3)
    load.start()
    try:
        _wait_for(lambda: load.progress().in_flight == 2)
        load.stop()
        assert load.wait(15)
    finally:
        load.kill()
    assert all(p.poll() is not None for p in load._procs)
    for client in (0, 1):
        (r,) = _records(tmp_path, client)
        assert r["error"].startswith("cancelled:") and r["ok"] is False
    assert load.summary.errors == {"cancelled": 2}
    assert not list(tmp_path.glob("load_worker_*"))  # empty stderr files are removed


def test_stop_lets_in_flight_requests_complete_within_grace(server, tmp_path):
    server.behavior.ttft_s = 0.3
    spec = _spec(clients=1, requests_per_client=50)
    load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, stop_grace=5.0)
    load.start()
    try:
        _wait_for(lambda: load.progress().in_flight == 1)
        load.stop()
        assert load.wait(15)
    finally:
        load.kill()
    recs = _records(tmp_path)
    assert recs and all(r["ok"] for r in recs)
    assert len(recs) < 50


def test_killed_client_leaves_at_most_one_bad_last_line(server, tmp_path):
    spec = _spec(clients=2, requests_per_client=100_000, concurrency=4)
    load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, processes=2)
    files = [tmp_path / f"client_{client}.log.txt" for client in (0, 1)]

    def both_writing() -> bool:
        # Each client runs in its own process; one may start well after the other.
        return all(f.exists() and f.read_bytes().count(b"\n") > 20 for f in files)

    load.start()
    try:
        _wait_for(both_writing)
    finally:
        load.kill()
    assert all(p.poll() is not None for p in load._procs)
    for client in (0, 1):
        lines = (tmp_path / f"client_{client}.log.txt").read_bytes().split(b"\n")
        complete, last = lines[:-1], lines[-1]
        for line in complete:
            json.loads(line)
        assert len(complete) > 10
        if last:  # a line cut by the kill never parses as a record
            with pytest.raises(ValueError):
                json.loads(last)


def test_worker_stops_when_its_parent_goes_away(server, tmp_path):
    server.behavior.ttft_s = 0.05
    spec = _spec(clients=1, requests_per_client=10_000)
    load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, stop_grace=1.0)
    load.start()
    try:
        _wait_for(lambda: load.progress().ok > 0)
        load._procs[0].stdin.close()  # what the OS does when the runner dies
        assert load.wait(15)
    finally:
        load.kill()
    assert load.summary.requests < 10_000


def test_progress_callback_sees_completed_requests(server, tmp_path):
    seen = []
    spec = _spec(clients=2, requests_per_client=5)
    load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, on_progress=seen.append)
    load.start()
    assert load.wait(20)
    assert seen and seen[-1].ok == 10 and seen[-1].failed == 0
    assert load.summary.requests == 10 and load.started_ns is not None


def test_many_clients_split_over_processes_write_every_file(server, tmp_path):
    spec = _spec(clients=5, requests_per_client=2, arrival="constant", request_rate=200.0)
    load = LegacyLoad(spec, LoadTarget(server.url, "m"), tmp_path, processes=2)
    load.start()
    assert load.wait(20)
    assert sorted(p.name for p in tmp_path.glob("client_*.log.txt")) == [
        f"client_{i}.log.txt" for i in range(5)
    ]
    assert load.summary.requests == 10 and load.summary.ok == 10
    assert load.summary.offered_rate == pytest.approx(200.0)


def test_open_loop_that_falls_behind_says_so(tmp_path):
    from ftctl.clients.legacy import ClientRun

    spec = _spec(arrival="constant", request_rate=500.0)
    run = ClientRun(spec, ["http://127.0.0.1:1"], "m", tmp_path)
    run._lags = [int(x * 1e6) for x in [0.1] * 90 + [50.0] * 10]  # ms -> ns
    run.summary.requests, run.summary.start_ns, run.summary.end_ns = 100, 0, 1_000_000_000
    run._finish_lags()
    assert run.summary.behind is True
    assert run.summary.lag_p50_ms == pytest.approx(0.1)
    assert run.summary.lag_max_ms == pytest.approx(50.0)
    assert "could not keep up" in run.summary.warnings[0]
    assert "offered 500.0 req/s, sent 100.0 req/s" in run.summary.warnings[0]


def test_duration_ends_a_closed_loop_without_a_request_count(server, tmp_path):
    spec = _spec(requests_per_client=None, duration=0.5, request_rate=20.0)
    summary = _run(spec, [server.url], tmp_path)
    recs = _records(tmp_path)
    assert 1 <= len(recs) <= 11 and summary.failed == 0
    assert recs[-1]["start_ns"] - recs[0]["start_ns"] < 0.5e9


def test_worker_that_cannot_run_is_reported_not_hidden(tmp_path):
    # An open loop without a rate makes the worker fail at once with a ClientError.
    spec = _spec(arrival="poisson", request_rate=None)
    load = LegacyLoad(spec, LoadTarget("http://127.0.0.1:1", "m"), tmp_path)
    load.start()
    assert load.wait(20)
    assert any("request_rate" in w for w in load.summary.warnings)
    assert load.summary.requests == 0


def test_open_loop_rate_adds_worker_processes_up_to_the_cpus():
    import os

    from ftctl.clients.legacy import default_processes

    cpus = os.cpu_count() or 1
    assert default_processes(_spec(clients=1)) == 1
    assert default_processes(_spec(clients=8, arrival="poisson", request_rate=100.0)) == 1
    assert default_processes(_spec(clients=8, arrival="poisson", request_rate=4000.0)) == min(
        3, cpus
    )
    assert default_processes(_spec(clients=200)) == min(4, cpus)


def test_closed_loop_clients_start_staggered_over_one_interval(server, tmp_path):
    # 4 clients at 2 req/s each: interval 0.5 s, so first requests ~0.125 s apart.
    _run(_spec(clients=4, requests_per_client=2, request_rate=2.0), [server.url], tmp_path)
    firsts = sorted(_records(tmp_path, c)[0]["start_ns"] for c in range(4))
    gaps = [(b - a) / 1e9 for a, b in zip(firsts, firsts[1:], strict=False)]
    assert all(0.08 < gap < 0.25 for gap in gaps), gaps
