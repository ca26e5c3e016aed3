"""Benchmark of the legacy load client against a minimal loopback server (prints figures only).

Measures, in one run: requests/s of ftctl's client engine in one process (non-streaming and
streaming), the same server under ``wrk`` as the ceiling and the ratio, client-added latency
overhead p50/p99 (client-measured minus server-measured time of each request), and open-loop
dispatch lag p50/p99 at 500 req/s. Targets: >= 2,000 req/s, overhead p50 <= 1 ms, lag p99 <= 2 ms.

Usage: ``PYTHONPATH=. .venv/bin/python bench/client_bench.py [--quick]``
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftctl.clients.legacy import ClientRun  # noqa: E402
from ftctl.clients.legacy_worker import run_loop  # noqa: E402
from ftctl.clients.loadtable import percentile, read_records  # noqa: E402
from ftctl.scenario.model import LoadSpec, TokenDist  # noqa: E402

# --- the server: raw asyncio protocol, keep-alive, fixed answers ------------------------------
_JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
_CHUNK = b'data: {"id":"b","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'


def _json_body(server_ns: int) -> bytes:
    return (
        b'{"id":"b","object":"chat.completion","model":"bench","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"tok tok tok tok"},"finish_reason":"length"}],'
        b'"usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8,"server_ns":%d}}'
        % server_ns
    )


def _sse_body(server_ns: int) -> bytes:
    final = (
        b'data: {"id":"b","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
        b'"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":4,'
        b'"total_tokens":8,"server_ns":%d}}\n\n' % server_ns
    )
    return _CHUNK * 4 + final + b"data: [DONE]\n\n"


class _Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.t0 = 0

    def data_received(self, data):
        if not self.buf:
            self.t0 = time.perf_counter_ns()  # first byte of the request
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            m = re.search(rb"content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4 : end + 4 + n]
            self.buf = self.buf[end + 4 + n :]
            stream = b'"stream":true' in body
            server_ns = time.perf_counter_ns() - self.t0
            payload = _sse_body(server_ns) if stream else _json_body(server_ns)
            self.t.write((_SSE_HEAD if stream else _JSON_HEAD) % len(payload) + payload)
            self.t0 = time.perf_counter_ns()


def serve() -> None:
    """Run the server (child process): prints the port, runs until SIGTERM."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Http, "127.0.0.1", 0, backlog=1024))
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()


# --- measurements ------------------------------------------------------------------------------
def _spec(**kw) -> LoadSpec:
    base = dict(
        client="legacy",
        clients=1,
        requests_per_client=1000,
        concurrency=1,
        retries=0,
        streaming=False,
        input_tokens=TokenDist(16),
        output_tokens=TokenDist(4),
        timeout=30.0,
    )
    base.update(kw)
    return LoadSpec(**base)


def _engine(spec: LoadSpec, url: str, out: Path):
    run = ClientRun(spec, [url], "bench", out)
    t0 = time.perf_counter()
    summary = run_loop(run.run())
    return summary, time.perf_counter() - t0


def _records(out: Path) -> list[dict]:
    recs: list[dict] = []
    for f in sorted(out.glob("client_*.log.txt")):
        recs.extend(read_records(f))
    return recs


def _throughput(url: str, tmp: Path, streaming: bool, n: int, conc: int) -> float:
    out = tmp / f"tp-{streaming}"
    summary, _wall = _engine(
        _spec(requests_per_client=n, concurrency=conc, streaming=streaming), url, out
    )
    assert summary.failed == 0, summary.first_error
    return summary.requests / summary.wall_s


def _wrk(url: str, seconds: int, conc: int) -> float | None:
    exe = shutil.which("wrk")
    if exe is None:
        print("  wrk: not installed (apt-get install -y wrk); ceiling skipped")
        return None
    body = json.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "1 2 3"}], "max_tokens": 4}
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
        script = fh.name
    try:
        res = subprocess.run(
            [exe, "-t1", f"-c{conc}", f"-d{seconds}s", "-s", script, url + "/v1/chat/completions"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
    finally:
        os.unlink(script)
    m = re.search(r"Requests/sec:\s*([\d.]+)", res.stdout)
    return float(m.group(1)) if m else None


def _overhead(url: str, tmp: Path, n: int) -> tuple[float, float]:
    out = tmp / "overhead"
    _engine(_spec(requests_per_client=n), url, out)
    diffs = []
    for r in _records(out):
        res = r["results"][-1]
        server_s = res["result"]["usage"]["server_ns"] / 1e9
        diffs.append((res["request_elapsed_time"] - server_s) * 1000)
    diffs.sort()
    return percentile(diffs, 50), percentile(diffs, 99)


def _lag(url: str, tmp: Path, rate: float, n: int, arrival: str) -> tuple[float, float, float]:
    out = tmp / f"lag-{arrival}"
    spec = _spec(clients=8, requests_per_client=n // 8, arrival=arrival, request_rate=rate)
    summary, _ = _engine(spec, url, out)
    sent = summary.requests / summary.wall_s
    return summary.lag_p50_ms or 0.0, summary.lag_p99_ms or 0.0, sent


async def _timer_lateness(rate: float, n: int) -> list[float]:
    lags = []
    t = time.perf_counter_ns()
    for _ in range(n):
        t += int(1e9 / rate)
        await asyncio.sleep(max(0.0, (t - time.perf_counter_ns()) / 1e9))
        lags.append((time.perf_counter_ns() - t) / 1e6)
    return sorted(lags)


def main() -> None:
    """Start the server, measure, print figures and ratios."""
    if "--serve" in sys.argv:
        serve()
        return
    quick = "--quick" in sys.argv
    n = 3000 if quick else 20000
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"client_bench: loopback server {url}, {os.cpu_count()} CPUs, load average {load}")
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            _engine(_spec(requests_per_client=200, concurrency=8), url, tmp / "warm")
            conc = 32
            ns = _throughput(url, tmp, False, n // 32 + 1, conc)
            st = _throughput(url, tmp, True, n // 32 + 1, conc)
            print(f"  ftctl client, 1 process, c={conc}: non-streaming {ns:,.0f} req/s "
                  f"(target >= 2,000), streaming (4 tokens) {st:,.0f} req/s")  # fmt: skip
            ceiling = _wrk(url, 3 if quick else 5, conc)
            if ceiling:
                print(f"  wrk -t1 -c{conc} (ceiling): {ceiling:,.0f} req/s; "
                      f"ftctl/wrk = {ns / ceiling:.2f}")  # fmt: skip
            p50, p99 = _overhead(url, tmp, 500 if quick else 2000)
            print(f"  client-added overhead (client - server time), sequential: "
                  f"p50 {p50:.3f} ms (target <= 1), p99 {p99:.3f} ms")  # fmt: skip
            for arrival in ("constant", "poisson"):
                lp50, lp99, sent = _lag(url, tmp, 500.0, 1000 if quick else 4000, arrival)
                print(f"  open loop {arrival} 500 req/s: dispatch lag p50 {lp50:.3f} ms, "
                      f"p99 {lp99:.3f} ms (target <= 2), sent {sent:.0f} req/s")  # fmt: skip
            # The floor: how late a bare timer wakes on this (shared) machine right now.
            floor = run_loop(_timer_lateness(500.0, 1000 if quick else 2000))
            print(f"  floor, bare event-loop timer at 500/s: lateness p50 "
                  f"{percentile(floor, 50):.3f} ms, p99 {percentile(floor, 99):.3f} ms")  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


if __name__ == "__main__":
    main()
