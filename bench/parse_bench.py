"""Benchmark ``ftctl parse`` on 1,000,000 requests (legacy and aiperf); prints, never asserts.

Generates, in a temp dir, a legacy directory of 100 clients × 10,000 requests (fault in the
middle, ~2 % failed) and an aiperf directory of the same size, then times
``python -m ftctl parse DIR --format json`` on each as a subprocess and prints wall time,
records/s and the child's peak RSS (target: ≤ 3 s and ≤ 1 GiB each).

Usage: ``PYTHONPATH=. .venv/bin/python bench/parse_bench.py [--clients N] [--requests N]``.
By default the aiperf records carry the metadata and the per-request metrics the parser reads;
``--real-aiperf`` instead copies a real aiperf 0.13 record (tests/data, ~2.5 KB with ~40
metrics) for every request: ~2.5 GB on disk, the honest worst case.
"""

from __future__ import annotations

import argparse
import json
import os
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


def time_parse(test: Path, fmt: str) -> tuple[float, float, int, int]:
    """(wall s, CPU s, peak RSS bytes of the process tree, exit code) of one ``ftctl parse``.

    The parser may fork reader processes, so the peak is the sampled sum over the whole tree
    (every 10 ms), not the largest single process that ``wait4`` reports.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "ftctl", "parse", str(test), "--format", fmt]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--format", default="json", choices=["json", "fancy"])
    parser.add_argument("--runs", type=int, default=5, help="parses per directory (median)")
    parser.add_argument("--real-aiperf", action="store_true", help="full-size aiperf records")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores (wall time suffers when > cores)")
    total = args.clients * args.requests
    with tempfile.TemporaryDirectory(prefix="ftctl-parse-bench-") as tmp:
        makers = [
            ("legacy", make_legacy),
            ("aiperf", lambda root, c, n: make_aiperf(root, c, n, args.real_aiperf)),
        ]
        for kind, make in makers:
            started = time.perf_counter()
            test = make(Path(tmp) / kind, args.clients, args.requests)
            size = sum(p.stat().st_size for p in test.rglob("*") if p.is_file())
            gen = time.perf_counter() - started
            os.sync()  # flush the generated files first: writeback would compete with the parse
            runs = [time_parse(test, args.format) for _ in range(args.runs)]
            walls = sorted(r[0] for r in runs)
            wall = statistics.median(walls)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            codes = sorted({r[3] for r in runs})
            print(
                f"{kind:6s}: {total:,} records ({size / 2**20:.0f} MiB, generated in {gen:.1f} s)"
                f" → parse median {wall:.2f} s wall of {args.runs} (min {walls[0]:.2f}, "
                f"max {walls[-1]:.2f}; {cpu:.2f} s CPU), {total / wall:,.0f} records/s, "
                f"peak RSS {rss / 2**20:.0f} MiB (whole process tree), exit {codes}  "
                f"(target ≤ 3 s, ≤ 1024 MiB)"
            )


if __name__ == "__main__":
    main()
