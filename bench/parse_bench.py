"""Benchmark ``ftctl parse`` on 1,000,000 requests (legacy and aiperf); prints, never asserts.

Generates, in a temp dir, a legacy directory of 100 clients × 10,000 requests (fault in the
middle, ~2 % failed) and an aiperf directory of the same size, then times
``python -m ftctl parse DIR --format json`` on each as a subprocess and prints wall time,
records/s and the child's peak RSS (target: ≤ 3 s and ≤ 1 GiB each).

Usage: ``PYTHONPATH=. .venv/bin/python bench/parse_bench.py [--clients N] [--requests N]``.
Styles: ``ftctl`` (ftctl's own legacy records), ``upstream`` (the upstream client's records:
completion text, 1 s ``time``, no ns stamps) and ``aiperf``; each at 1M and 100k records, also
through the slow path (the line-by-line readers) for the ratio.
By default the aiperf records carry the metadata and the per-request metrics the parser reads;
``--real-aiperf`` instead copies a real aiperf 0.13 record (tests/data, ~2.5 KB with ~40
metrics) for every request: ~2.5 GB on disk, the honest worst case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_NS = 1_790_000_000_000_000_000
STEP_NS = 100_000_000  # a request every 0.1 s per client
DURATION_NS = 80_000_000


def _fails(i: int, n: int) -> bool:
    """Requests 50 %–52 % through the load fail: a fault in the middle."""
    return n * 0.50 <= i < n * 0.52


def make_legacy(root: Path, clients: int, requests: int) -> Path:
    """Legacy files as ftctl's legacy client writes them (upstream fields + ftctl extensions)."""
    test = root / "bench-agg-tp-1-dp-1-decode_worker"
    test.mkdir(parents=True)
    url = "http://127.0.0.1:8000/v1/chat/completions"
    ok_attempt = (
        '[{"status":200,"result":{"id":"c","choices":[{"index":0,"message":{"role":"assistant",'
        '"content":"1 2 3 4 5 6 7 8"},"finish_reason":"length"}],"usage":{"prompt_tokens":100,'
        f'"completion_tokens":8}}}},"request_elapsed_time":0.08,"url":"{url}","pod":""}}]'
    )
    bad_attempt = (
        f'[{{"status":503,"result":null,"request_elapsed_time":0.002,"url":"{url}","pod":"",'
        '"error":"http_5xx: 503 Service Unavailable"}]'
    )
    itl = "[0.0057,0.0056,0.0058,0.0057,0.0057,0.0056,0.0057]"
    for c in range(clients):
        lines = []
        for i in range(requests):
            start = BASE_NS + i * STEP_NS + c * 997
            end = start + DURATION_NS
            if _fails(i, requests):
                tail = '"ttft":null,"itl":[],"output_tokens":0,"error":"http_5xx: 503","ok":false'
                results = bad_attempt
            else:
                tail = f'"ttft":0.02,"itl":{itl},"output_tokens":8,"error":null,"ok":true'
                results = ok_attempt
            lines.append(
                f'{{"time":"2026-09-21T10:00:00","results":{results},"total_time":0.08,'
                f'"start_ns":{start},"end_ns":{end},"scheduled_ns":null,{tail},'
                f'"client":{c},"request":{i},"attempts":1}}\n'
            )
        (test / f"client_{c}.log.txt").write_text("".join(lines))
    _events(test, requests)
    return test


def make_upstream(root: Path, clients: int, requests: int) -> Path:
    """Legacy files as the upstream client writes them: completion text, 1 s ``time``, no ns.

    A failed request was retried once (two attempts, the first an exception text, the second a
    503); every 100th request succeeded on its retry.
    """
    test = root / "bench-agg-tp-1-dp-1-decode_worker"
    test.mkdir(parents=True)
    url = "http://localhost:30001/v1/chat/completions"
    pod = "fault-tolerance-test-frontend-576bd784dc-jv68q"
    words = " ".join(str(k % 10) for k in range(100))
    ok = (
        '{"status": 200, "result": {"id": "chatcmpl-1", "object": "chat.completion", '
        '"created": 1790000000, "model": "Qwen/Qwen3-0.6B", "choices": [{"index": 0, '
        f'"message": {{"role": "assistant", "content": "{words}"}}, "finish_reason": "length"}}], '
        '"usage": {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200}}, '
        f'"request_elapsed_time": 0.58, "url": "{url}", "pod": "{pod}"}}'
    )
    reset = (
        '{"status": "Cannot connect to host localhost:30001 ssl:default [Connection refused]", '
        f'"result": null, "request_elapsed_time": 0.001, "url": "{url}", "pod": "{pod}"}}'
    )
    bad = f'{{"status": 503, "result": null, "request_elapsed_time": 0.002, "url": "{url}", "pod": "{pod}"}}'
    base_s = BASE_NS // 10**9
    for c in range(clients):
        lines = []
        for i in range(requests):
            end_s = base_s + (i * STEP_NS + c * 997 + DURATION_NS) // 10**9
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end_s))
            if _fails(i, requests):
                results, total = f"[{reset}, {bad}]", 1.003
            elif i % 100 == 7:
                results, total = f"[{reset}, {ok}]", 1.581
            else:
                results, total = f"[{ok}]", 0.58
            lines.append(
                f'{{"time": "{stamp}", "results": {results}, "total_time": {total}, '
                f'"url": "{url}", "pod": "{pod}"}}\n'
            )
        (test / f"client_{c}.log.txt").write_text("".join(lines))
    _events(test, requests)
    return test


REAL_RECORD = REPO / "tests/data/results/aiperf/ok/client_0/attempt_0/profile_export.jsonl"


def _real_lines(c: int, requests: int) -> list[str]:
    """Lines shaped exactly like a real aiperf record, with this bench's times and errors."""
    template = json.loads(REAL_RECORD.read_bytes().splitlines()[0])
    text = json.dumps(template, separators=(",", ":"))
    meta = template["metadata"]
    head, rest = text.split(f'"request_start_ns":{meta["request_start_ns"]}', 1)
    middle, tail = rest.split(f'"request_end_ns":{meta["request_end_ns"]}', 1)
    error = ',"error":{"code":503,"type":"Service Unavailable","message":"no instances"}}'
    lines = []
    for i in range(requests):
        start = BASE_NS + i * STEP_NS + c * 997
        end_tail = tail[:-1] + error if _fails(i, requests) else tail
        lines.append(
            f'{head}"request_start_ns":{start}{middle}"request_end_ns":{start + DURATION_NS}'
            f"{end_tail}\n"
        )
    return lines


def make_aiperf(root: Path, clients: int, requests: int, real: bool = False) -> Path:
    """aiperf artifacts: client_N/attempt_0/profile_export.jsonl (+ a small summary JSON)."""
    test = root / "bench-agg-tp-1-dp-1-decode_worker"
    for c in range(clients):
        attempt = test / f"client_{c}" / "attempt_0"
        attempt.mkdir(parents=True)
        if real:
            (attempt / "profile_export.jsonl").write_text("".join(_real_lines(c, requests)))
            continue
        lines = []
        for i in range(requests):
            start = BASE_NS + i * STEP_NS + c * 997
            end = start + DURATION_NS
            error = (
                ', "error": {"code": 503, "type": "Service Unavailable", "message": "no instances"}'
                if _fails(i, requests)
                else ""
            )
            lines.append(
                f'{{"metadata": {{"session_num": {i}, "x_request_id": "r-{c}-{i}", '
                f'"conversation_id": "session_{i:06d}", "turn_index": 0, '
                f'"credit_issued_ns": {start - 1000}, "request_start_ns": {start}, '
                f'"request_ack_ns": {start + 20_000_000}, "request_end_ns": {end}, '
                f'"worker_id": "worker_{c}", "record_processor_id": "rp_0", '
                f'"benchmark_phase": "profiling", "was_cancelled": false}}, '
                f'"metrics": {{"request_latency": {{"value": 80.0, "unit": "ms"}}, '
                f'"time_to_first_token": {{"value": 20.0, "unit": "ms"}}, '
                f'"inter_token_latency": {{"value": 5.7, "unit": "ms"}}, '
                f'"output_sequence_length": {{"value": 8, "unit": "tokens"}}, '
                f'"input_sequence_length": {{"value": 100, "unit": "tokens"}}}}{error}}}\n'
            )
        (attempt / "profile_export.jsonl").write_text("".join(lines))
        failed = sum(_fails(i, requests) for i in range(requests))
        summary = {
            "request_count": {"unit": "requests", "avg": requests - failed},
            "error_request_count": {"unit": "requests", "avg": failed},
            "request_latency": {"unit": "ms", "avg": 80.0, "count": requests - failed},
            "start_time": "2026-09-21T10:00:00",
            "was_cancelled": False,
        }
        (attempt / "profile_export_aiperf.json").write_text(json.dumps(summary))
    _events(test, requests)
    return test


def _events(test: Path, requests: int) -> None:
    fault = BASE_NS + int(requests * 0.5) * STEP_NS - STEP_NS // 2
    events = [
        {"t_ns": BASE_NS - 60 * 10**9, "kind": "deploy_start"},
        {"t_ns": BASE_NS - 10**9, "kind": "ready"},
        {"t_ns": fault, "kind": "fault_injected"},
    ]
    (test / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (now), from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (OSError, ValueError):
            continue  # the process ended between two reads
    return total


SLOW = (
    "import sys, ftctl.results.fast as f; f.legacy_columns = f.aiperf_columns = lambda raw: None; "
    "from ftctl.cli import main; main()"
)


def time_parse(test: Path, fmt: str, slow: bool = False) -> tuple[float, float, int, int]:
    """(wall s, CPU s, peak RSS bytes of the process tree, exit code) of one ``ftctl parse``.

    The parser may fork reader processes, so the peak is the sampled sum over the whole tree
    (every 10 ms), not the largest single process that ``wait4`` reports. ``slow``: the same
    parse with the fast paths switched off (the line-by-line readers), the in-project peer.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    head = [sys.executable, "-c", SLOW] if slow else [sys.executable, "-m", "ftctl"]
    argv = [*head, "parse", str(test), "--format", fmt]
    peak = 0
    done = threading.Event()

    def sample(pid: int) -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(pid))
            done.wait(0.01)

    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(argv, stdout=devnull, env=env)
        sampler = threading.Thread(target=sample, args=(child.pid,), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    peak = max(peak, usage.ru_maxrss * 1024)
    return wall, usage.ru_utime + usage.ru_stime, peak, os.waitstatus_to_exitcode(status)


# Goals per record count (issue 17): wall seconds incl. start-up, peak MiB; legacy styles.
GOALS = {1_000_000: (0.6, 250), 100_000: (0.2, 250)}


def _measure(test: Path, fmt: str, runs: int, slow: bool) -> tuple[float, str]:
    results = [time_parse(test, fmt, slow) for _ in range(runs)]
    walls = sorted(r[0] for r in results)
    wall = statistics.median(walls)
    cpu = statistics.median(r[1] for r in results)
    rss = max(r[2] for r in results) / 2**20
    codes = sorted({r[3] for r in results})
    text = (
        f"median {wall:.3f} s of {runs} (min {walls[0]:.3f}, max {walls[-1]:.3f}; "
        f"{cpu:.2f} s CPU), peak RSS {rss:.0f} MiB, exit {codes}"
    )
    return wall, text + ("" if slow else f"|{rss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100, help="clients of the big run")
    parser.add_argument("--requests", type=int, default=10_000, help="requests per client")
    parser.add_argument("--small-clients", type=int, default=10, help="clients of the small run")
    parser.add_argument("--format", default="json", choices=["json", "fancy"])
    parser.add_argument("--runs", type=int, default=3, help="parses per directory (median)")
    parser.add_argument("--slow-runs", type=int, default=1, help="parses by the slow path")
    parser.add_argument("--real-aiperf", action="store_true", help="full-size aiperf records")
    parser.add_argument("--styles", default="ftctl,upstream,aiperf")
    args = parser.parse_args()
    print(
        f"load average {os.getloadavg()} on {os.cpu_count()} cores (wall time suffers when > cores)"
    )
    makers = {
        "ftctl": make_legacy,
        "upstream": make_upstream,
        "aiperf": lambda root, c, n: make_aiperf(root, c, n, args.real_aiperf),
    }
    with tempfile.TemporaryDirectory(prefix="ftctl-parse-bench-") as tmp:
        for clients in (args.clients, args.small_clients):
            total = clients * args.requests
            for kind in args.styles.split(","):
                started = time.perf_counter()
                test = makers[kind](Path(tmp) / f"{kind}-{clients}", clients, args.requests)
                size = sum(p.stat().st_size for p in test.rglob("*") if p.is_file())
                gen = time.perf_counter() - started
                os.sync()  # flush the generated files first: writeback would compete
                wall, text = _measure(test, args.format, args.runs, slow=False)
                text, rss = text.split("|")
                line = f"{kind:8s} {total:>9,} records ({size / 2**20:.0f} MiB, gen {gen:.1f} s): "
                line += f"fast {text}, {total / wall:,.0f} records/s"
                goal = GOALS.get(total)
                if goal and kind != "aiperf":
                    met = wall <= goal[0] and float(rss) <= goal[1]
                    line += f" (goal ≤ {goal[0]} s, ≤ {goal[1]} MiB: {'met' if met else 'MISSED'})"
                print(line, flush=True)
                if args.slow_runs:
                    slow_wall, slow_text = _measure(test, args.format, args.slow_runs, slow=True)
                    print(
                        f"{'':8s} slow path (line by line): {slow_text} → fast is "
                        f"{slow_wall / wall:.1f}× faster  (load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                shutil.rmtree(test.parent)


if __name__ == "__main__":
    main()
