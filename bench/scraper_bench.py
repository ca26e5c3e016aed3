"""Scraper overhead: CPU share of scraping 10 pods every second, and its effect on latency.

Ten loopback HTTP servers each serve a real ai-dynamo 1.6.1 frontend exposition (680 samples,
bench/data/). The servers run in a child process; the scraper runs in this one, as inside `ftctl run`,
and its CPU share is this process's CPU time over wall time after the first round (which parses every line once;
later rounds parse only lines whose value changed — here none, so this is the floor: fetching,
splitting and comparing). The latency
probe times GET /v1/models on another loopback server, with the scraper off and on; medians.
Goal (issue 13): < 2 % of one core at 1 s for 10 pods, no measurable p50 change.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ftctl.observe import Scraper
from ftctl.platforms.base import ScrapeTarget

EXPOSITION = (Path(__file__).resolve().parent / "data" / "dynamo-frontend-metrics.txt").read_bytes()


def _variant(text: bytes, every: int) -> bytes:
    # The same exposition with every Nth sample's value changed, as a busy pod's would be.
    lines = text.decode().splitlines()
    out = [
        line.rsplit(" ", 1)[0] + " 12345" if every and i % every == 0 and line[:1] != "#" else line
        for i, line in enumerate(lines)
    ]
    return ("\n".join(out) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    variants = [EXPOSITION]
    served = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b'{"data": []}'
        if self.path == "/metrics":
            _Handler.served += 1
            body = self.variants[_Handler.served % len(self.variants)]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _servers_process(count: int, every: int, pipe) -> None:
    # The pods live in another process: their serving cost is not the scraper's.
    if every:
        _Handler.variants = [EXPOSITION, _variant(EXPOSITION, every)]
    servers = [_serve() for _ in range(count)]
    pipe.send([s.server_address[1] for s in servers])
    pipe.recv()  # until the parent is done


def _fetcher(port: int):
    def fetch(timeout: float) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read()
        finally:
            conn.close()

    return fetch


def _latencies(port: int, seconds: float) -> list[float]:
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        conn.request("GET", "/v1/models")
        conn.getresponse().read()
        out.append(time.perf_counter() - start)
        time.sleep(0.01)
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--changing", type=int, default=0, help="change every Nth value between scrapes (0: none)"
    )
    opts = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=_servers_process, args=(opts.pods + 1, opts.changing, child)
    )
    proc.start()
    *pod_ports, port = parent.recv()
    targets = [
        ScrapeTarget("Frontend", f"Frontend-{i}", _fetcher(p)) for i, p in enumerate(pod_ports)
    ]
    # Latency without the scraper, then CPU and latency with it, in the same run.
    cpu0, wall0 = time.process_time(), time.monotonic()
    off = _latencies(port, opts.seconds / 2)
    idle_share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    with tempfile.TemporaryDirectory() as tmp:
        scraper = Scraper(lambda: targets, Path(tmp), interval=opts.interval, resources=False)
        scraper.start()
        while scraper.scrapes < opts.pods:  # the first round parses every line: warm-up
            time.sleep(0.01)
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(opts.seconds)
        scraper.stop()
        cpu_share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        on_scraper = Scraper(lambda: targets, Path(tmp) / "b", interval=opts.interval).start()
        on = _latencies(port, opts.seconds / 2)
        on_scraper.stop()
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.metrics.jsonl"))
    change = f", every {opts.changing}th value changing" if opts.changing else ", static values"
    print(
        f"{opts.pods} pods x {len(EXPOSITION) // 1024} KB exposition, every {opts.interval:g}s"
        + change
    )
    print(f"scrapes: {scraper.scrapes} ({scraper.failed} failed)")
    print(f"scraper CPU: {cpu_share * 100:.2f} % of one core (goal < 2 %)")
    print(f"  (latency probe alone: {idle_share * 100:.2f} % of one core)")
    p50_off, p50_on = statistics.median(off) * 1e3, statistics.median(on) * 1e3
    print(f"probe p50: {p50_off:.3f} ms off, {p50_on:.3f} ms on (ratio {p50_on / p50_off:.2f})")
    per_minute = size / (opts.seconds / 60) / opts.pods
    print(f"metrics.jsonl: {size / 1e6:.2f} MB, {per_minute / 1e6:.2f} MB per pod-minute")
    parent.send("done")
    proc.join(10)


if __name__ == "__main__":
    main()
