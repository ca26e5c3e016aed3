"""Recovery, downtime and attempt counts on random timelines, against a naive reference.

Each timeline is a few clients sending requests one after another; a request is tried up to
three times, a retry delay apart. Attempts fail during an outage after the fault, sporadically
at any time (also long after the fault), and some failures are resets that take no time (the
end equals the start). The reference below is written from the README's metric notes with
plain loops over a 10 ms grid and shares no code with ``ftctl.results.metrics``.
"""

from __future__ import annotations

import json
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftctl.results import parse_result_dir
from ftctl.results.metrics import load_metrics
from ftctl.results.model import AttemptTable, RequestTable

MS = 1_000_000  # ns
TICK = 10 * MS  # every time of a timeline is a multiple of 10 ms
BASE = 1_700_000_000_000_000_000
WINDOW_S = 2.0


def make_timeline(rng: random.Random) -> tuple[int, list[list[list[tuple[int, int, bool]]]]]:
    """(T_f, clients → requests → attempts (start, end, ok)) in ns, on the 10 ms grid."""
    t_f = BASE + rng.randint(100, 400) * TICK
    outage_start = t_f + rng.randint(0, 50) * TICK
    outage_end = outage_start + rng.choice([0, rng.randint(1, 300)]) * TICK
    sporadic = rng.choice([0.0, 0.02, 0.1])
    retries = rng.randint(0, 2)
    delay = rng.randint(0, 30) * TICK
    clients = []
    for _ in range(rng.randint(1, 4)):
        t = BASE + rng.randint(0, 20) * TICK
        requests = []
        for _ in range(rng.randint(1, 40)):
            attempts = []
            for attempt in range(retries + 1):
                down = outage_start <= t < outage_end
                failed = (down and rng.random() < 0.9) or rng.random() < sporadic
                if failed and rng.random() < 0.3:
                    duration = 0  # a reset: refused at once
                else:
                    duration = rng.randint(1, 40) * TICK
                attempts.append((t, t + duration, not failed))
                t += duration
                if not failed or attempt == retries:
                    break
                t += delay
            requests.append(attempts)
            t += rng.randint(0, 30) * TICK
        clients.append(requests)
    return t_f, clients


def as_table(clients) -> RequestTable:
    """The RequestTable a reader would build (request times: first start → last end)."""
    tables = []
    for index, requests in enumerate(clients):
        n = len(requests)
        table = RequestTable.from_lists(
            index,
            [a[0][0] for a in requests],
            [a[-1][1] for a in requests],
            [a[-1][2] for a in requests],
            [(a[-1][1] - a[0][0]) / 1e9 for a in requests],
            [float("nan")] * n,
            [float("nan")] * n,
        )
        rows = [(row, *attempt) for row, a in enumerate(requests) for attempt in a]
        table.attempt_rows = AttemptTable.from_lists(*map(list, zip(*rows, strict=True)))
        tables.append(table)
    return RequestTable.concat(tables)


def reference(t_f: int, clients, window_ns: int) -> dict:
    """The README's definitions, computed the slow and obvious way."""
    attempts = [a for requests in clients for request in requests for a in request]
    longest_ok = max((e - s for s, e, ok in attempts if ok), default=0)

    def plausible_end(s, e, ok):
        return s + longest_ok if (not ok and e == s) else e

    failures = sorted(
        max(s, t_f) for s, e, ok in attempts if not ok and plausible_end(s, e, ok) >= t_f
    )
    ok_starts = sorted(s for s, e, ok in attempts if ok)
    fail_starts = [s for s, e, ok in attempts if not ok]
    if not failures:
        return {"no_visible_impact": True, "recovery": 0.0, "failed_after": 0}
    first, last = failures[0], failures[-1]
    load_end = max(max(e for s, e, ok in attempts), last)

    recovery = None
    for r in ok_starts:
        if r < first:
            continue
        if all(not (r <= f <= r + window_ns) for f in fail_starts):
            recovery = (r - t_f) / 1e9
            break

    def next_success(f):
        later = [s for s in ok_starts if s >= f]
        return min(later) if later else load_end

    spans = [(f, next_success(f)) for f in failures]
    down_ticks = 0
    for tick in range(t_f, load_end + TICK, TICK):
        if any(f <= tick < s for f, s in spans):
            down_ticks += 1
    first_ok_after = min((s for s in ok_starts if s >= t_f), default=None)
    return {
        "no_visible_impact": False,
        "failed_after": len(failures),
        "ttfe": (first - t_f) / 1e9,
        "span": (last - first) / 1e9,
        "recovery": recovery,
        "downtime": down_ticks * TICK / 1e9,
        "final_gap": (next_success(last) - last) / 1e9,
        "first_ok_after": None if first_ok_after is None else (first_ok_after - t_f) / 1e9,
    }


TIMELINES = st.randoms(use_true_random=False).map(make_timeline)


@settings(max_examples=300, deadline=None)
@given(TIMELINES)
def test_recovery_figures_match_the_naive_reference(timeline):
    t_f, clients = timeline
    metrics = load_metrics("default", as_table(clients), t_f, window_s=WINDOW_S)
    got = metrics.recovery
    want = reference(t_f, clients, int(WINDOW_S * 1e9))
    assert got.no_visible_impact == want["no_visible_impact"]
    assert got.failed_attempts_after_fault == want["failed_after"]
    if want["no_visible_impact"]:
        assert got.recovery_time_s == 0.0 and got.recovered
        return
    assert got.time_to_first_error_s == want["ttfe"]
    assert got.failure_span_s == want["span"]
    assert got.recovery_time_s == want["recovery"]
    assert got.recovered == (want["recovery"] is not None)
    assert abs(got.downtime_s - want["downtime"]) < 1e-9


@settings(max_examples=300, deadline=None)
@given(TIMELINES)
def test_invariants_hold_on_every_timeline(timeline):
    t_f, clients = timeline
    table = as_table(clients)
    metrics = load_metrics("default", table, t_f, window_s=WINDOW_S)
    rec = metrics.recovery
    want = reference(t_f, clients, int(WINDOW_S * 1e9))
    if rec.recovered and not rec.no_visible_impact:
        assert rec.time_to_first_error_s <= rec.recovery_time_s
        assert rec.recovery_time_s >= want["first_ok_after"]
    if not rec.no_visible_impact:
        assert 0 <= rec.downtime_s <= rec.failure_span_s + want["final_gap"] + 1e-9
        assert rec.downtime_s >= 0
    # Counts: attempts add up over records and over phases.
    records = [request for requests in clients for request in requests]
    phases = metrics.phases
    assert metrics.total_attempts == sum(len(r) for r in records)
    assert metrics.failed_attempts == sum(1 for r in records for a in r if not a[2])
    assert metrics.retried_requests == sum(1 for r in records if len(r) > 1)
    assert metrics.requests == len(records)
    assert sum(phases[p].attempts for p in ("before", "during", "after")) == metrics.total_attempts
    assert phases["upstream_before"].attempts + phases["upstream_after"].attempts == (
        metrics.total_attempts
    )
    after_fault = phases["during"].failed_attempts + phases["after"].failed_attempts
    assert rec.failed_attempts_after_fault == after_fault
    failed_requests = phases["during"].failed + phases["after"].failed
    assert rec.failed_requests_after_fault == failed_requests


def write_dir(directory: Path, t_f: int, clients) -> None:
    """ftctl's legacy client files for the timeline (per-attempt times, as the client writes)."""
    directory.mkdir(parents=True)
    for index, requests in enumerate(clients):
        lines = []
        for number, attempts in enumerate(requests):
            results = [
                {
                    "status": 200 if ok else "reset: connection reset",
                    "result": {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}
                    if ok
                    else None,
                    "request_elapsed_time": (e - s) / 1e9,
                    "start_ns": s,
                    "end_ns": e,
                    **({} if ok else {"error": "reset: connection reset"}),
                }
                for s, e, ok in attempts
            ]
            lines.append(
                {
                    "results": results,
                    "start_ns": attempts[0][0],
                    "end_ns": attempts[-1][1],
                    "ok": attempts[-1][2],
                    "client": index,
                    "request": number,
                    "attempts": len(attempts),
                }
            )
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (directory / f"client_{index}.log.txt").write_text(text)
    events = [{"t_ns": BASE, "kind": "load_start"}, {"t_ns": t_f, "kind": "fault_injected"}]
    (directory / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TIMELINES)
def test_the_reader_keeps_every_attempt_of_every_record(timeline):
    t_f, clients = timeline
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t-decode_worker"
        write_dir(path, t_f, clients)
        result = parse_result_dir(path, recovery_window=WINDOW_S)
    direct = load_metrics("default", as_table(clients), t_f, window_s=WINDOW_S)
    assert result.overall.total_attempts == direct.total_attempts
    assert result.overall.failed_attempts == direct.failed_attempts
    assert result.overall.retried_requests == direct.retried_requests
    assert result.overall.recovery == direct.recovery


def test_a_request_saved_by_its_retry_is_a_visible_impact_and_recovery_waits_for_the_retry():
    # One client; the fault at 0 s refuses the attempt sent at 0.1 s (a reset, no duration),
    # the retry 1 s later succeeds, and so does everything after it.
    s = 1_000_000_000
    t_f = BASE
    attempts = [[(BASE - s, BASE - s // 2, True)], [(BASE + s // 10, BASE + s // 10, False)]]
    attempts[1].append((BASE + s // 10 + s, BASE + s // 10 + s + s // 5, True))
    attempts += [[(BASE + k * s, BASE + k * s + s // 5, True)] for k in range(2, 20)]
    metrics = load_metrics("default", as_table([attempts]), t_f, window_s=10.0)
    rec = metrics.recovery
    assert (metrics.failed, metrics.failed_attempts, metrics.retried_requests) == (0, 1, 1)
    assert not rec.no_visible_impact
    assert rec.time_to_first_error_s == 0.1
    assert rec.recovery_time_s == 1.1  # the retry's start, not the refused request's
    assert rec.downtime_s == 1.0 and rec.failure_span_s == 0.0


def test_the_case_main_got_wrong_recovery_before_the_first_error(tmp_path):
    # Fault at 10 s. Client 1's request sent at 9.9 s is cut at 10.6 s; client 0's request
    # sent at 10.1 s is reset at once and its retry (11.1 s) succeeds. The definitions before
    # attempts said: recovery 0.1 s (dated from the refused request) and first error +0.6 s.
    s = 1_000_000_000

    def at(x: float) -> int:
        return BASE + round(x * s)

    ok_every = [[(at(11.6 + k / 2), at(11.8 + k / 2), True)] for k in range(30)]
    client0 = [
        [(at(9.6), at(9.8), True)],
        [(at(10.1), at(10.1), False), (at(11.1), at(11.3), True)],
    ]
    client1 = [[(at(9.9), at(10.6), False)]]
    client1 += [[(at(11.0 + k / 2), at(11.2 + k / 2), True)] for k in range(30)]
    clients = [client0 + ok_every, client1]
    write_dir(tmp_path / "case-decode_worker", at(10.0), clients)
    result = parse_result_dir(tmp_path / "case-decode_worker")
    rec = result.overall.recovery
    assert (result.overall.requests, result.overall.failed) == (63, 1)
    assert (result.overall.total_attempts, result.overall.failed_attempts) == (64, 2)
    assert result.overall.retried_requests == 1
    assert rec.time_to_first_error_s == 0.0  # the cut request was in flight at the fault
    assert rec.recovery_time_s == 1.0  # client 1's 11.0 s: the first successful attempt
    assert rec.downtime_s == 1.0 and rec.failure_span_s == 0.1
    want = reference(at(10.0), clients, 10 * s)
    assert (rec.time_to_first_error_s, rec.recovery_time_s) == (want["ttfe"], want["recovery"])
    assert (rec.downtime_s, rec.failure_span_s) == (want["downtime"], want["span"])


def random_record(rng: random.Random, style: str, t: int) -> dict:
    """One legacy record in either style, drawn to hit every branch of the success rule.

    Upstream style: the completion text in ``result``, a 1 s ``time``, ``total_time``, no ns
    stamps. ftctl style adds start_ns/end_ns (and sometimes ``ok``).
    """

    def attempt() -> dict:
        out: dict = {
            "status": rng.choice([200, 200, 200, 503, 404, "Cannot connect: refused", None]),
            "request_elapsed_time": rng.choice([0.5, 0.002, 1, 0, -1.0, 2e7, "x", None]),
            "url": "http://localhost:30001/v1/chat/completions",
        }
        pick = rng.random()
        if pick < 0.1:
            return out  # no `result` key: judged by status alone
        if pick < 0.2:
            out["result"] = None
            return out
        choice: dict = {"index": 0}
        text = rng.choice(["1 2 3 4", "", None, "é\u00e9\\n", 7])
        if rng.random() < 0.8:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        reason = rng.random()
        if reason < 0.6:
            choice["finish_reason"] = "length"
        elif reason < 0.8:
            choice["finish_reason"] = None
        result: dict = {"id": "c", "choices": [choice] if rng.random() < 0.95 else []}
        if rng.random() < 0.05:
            result["error"] = {"message": "boom"}
        out["result"] = result
        if rng.random() < 0.05:
            out["error"] = rng.choice(["http_5xx: 503", "", None])
        if rng.random() < 0.05:
            out["start_ns"], out["end_ns"] = t, t + rng.choice([10**8, -1])
        return out

    total = rng.choice([0.5, 1, 2.25, 0.0, 1.001])
    end_s = (t + int(total * 1e9)) // 10**9 + rng.randint(0, 1)
    record: dict = {
        "time": datetime.fromtimestamp(end_s, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "results": [attempt() for _ in range(rng.choice([1, 1, 1, 2, 3]))],
        "total_time": total,
    }
    if rng.random() < 0.05:
        record["results"] = rng.choice([[], None])
    if rng.random() < 0.03:
        record["error"] = "gave up"
    if style == "ftctl":
        record["start_ns"], record["end_ns"] = t, t + int(total * 1e9)
        if rng.random() < 0.5:
            record["ok"] = rng.random() < 0.8
        if rng.random() < 0.3:
            record["ttft"], record["itl"] = 0.02, [0.005, 0.006]
    return record


def _fast_and_slow(directory: Path) -> tuple[dict, dict]:
    import ftctl.results.fast

    fast = parse_result_dir(directory).to_json()
    original = ftctl.results.fast.legacy_columns
    ftctl.results.fast.legacy_columns = lambda raw: None
    try:
        slow = parse_result_dir(directory).to_json()
    finally:
        ftctl.results.fast.legacy_columns = original
    return fast, slow


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.sampled_from(["upstream", "ftctl"]))
def test_fast_path_gives_exactly_the_line_by_line_result(rng, style):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "t-decode_worker"
        directory.mkdir()
        t_f = BASE + 5 * 10**9
        for client in range(rng.randint(1, 3)):
            t = BASE + rng.randint(0, 10**9)
            lines = []
            for _ in range(rng.randint(1, 60)):
                lines.append(json.dumps(random_record(rng, style, t)))
                t += rng.randint(1, 4) * 10**8
            if rng.random() < 0.1:
                lines.insert(0, "")  # a blank first line
            (directory / f"client_{client}.log.txt").write_text("\n".join(lines) + "\n")
        events = [{"t_ns": BASE, "kind": "load_start"}, {"t_ns": t_f, "kind": "fault_injected"}]
        (directory / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        fast, slow = _fast_and_slow(directory)
    assert fast == slow


def test_upstream_records_take_the_fast_path(tmp_path, monkeypatch):
    import ftctl.results.fast

    rng = random.Random(7)
    directory = tmp_path / "t-decode_worker"
    directory.mkdir()
    lines = [json.dumps(random_record(rng, "upstream", BASE + i * 10**9)) for i in range(200)]
    (directory / "client_0.log.txt").write_text("\n".join(lines) + "\n")
    raw = (directory / "client_0.log.txt").read_bytes()
    columns = ftctl.results.fast.legacy_columns(raw)
    assert columns is not None and columns["derived"]
    assert columns["attempts"] is not None  # some requests were retried
    fast, slow = _fast_and_slow(directory)
    assert fast == slow
