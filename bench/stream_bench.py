"""Benchmark: one ``ftctl load`` holding thousands of concurrent SSE streams (prints, never asserts).

A loopback SSE server (raw asyncio on uvloop, its own process) answers every streaming chat
request with TOKENS tokens, one every ITL ms, and stamps each token with its send time (epoch
µs, written into the token text just before the write). ``ftctl load`` runs C closed-loop
clients × 1 request (all streams open at once, spread over its worker processes). Per C it
prints: streams completed, the peak number of streams the server held open at once, and the
client's stamping overhead per token — its receive stamp (start_ns + ttft + the cumulative
itl of the record) minus the server's send stamp — p50/p99/max; and the peak RSS of the
``ftctl load`` process tree, with memory per stream as the slope between two concurrencies.
With aiperf installed (.venv-aiperf) it runs aiperf at the same concurrencies against the same
server (its receive stamps from request_start_ns + time_to_first_token + inter_chunk_latency,
matched by X-Request-ID) and says where it saturates (streams not completed, or wall time).

Usage: ``PYTHONPATH=. .venv/bin/python bench/stream_bench.py [--concurrency 500,5000]
[--tokens 40] [--itl-ms 50] [--no-aiperf]``. Goal (issue 17): 5,000 streams, overhead p99 ≤ 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from parse_bench import _tree_rss  # noqa: E402

AIPERF = REPO / ".venv-aiperf" / "bin" / "aiperf"
TOKENIZER = REPO / "ftctl" / "data" / "tokenizer"


# --- the server --------------------------------------------------------------------------------
class _Sse(asyncio.Protocol):
    """Keep-alive HTTP/1.1; each request gets a chunked SSE stream of stamped tokens."""

    state: dict = {"active": 0, "peak": 0, "sent": {}, "requests": 0}
    tokens = 40
    itl_s = 0.05
    base_us = 0

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            rid = None
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
                elif line.startswith(b"x-request-id:"):
                    rid = line[13:].strip().decode()
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self._start(rid)

    def _start(self, rid: str | None) -> None:
        st = self.state
        st["requests"] += 1
        st["active"] += 1
        st["peak"] = max(st["peak"], st["active"])
        self.t.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        )
        stamps: list[int] = []
        if rid:
            st["sent"][rid] = stamps
        self.loop.call_later(self.itl_s, self._tick, 0, stamps)

    def _chunk(self, data: bytes) -> None:
        self.t.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _tick(self, i: int, stamps: list[int]) -> None:
        if self.t.is_closing():
            self.state["active"] -= 1
            return
        if i < self.tokens:
            now_us = time.time_ns() // 1000
            stamps.append(now_us)
            self._chunk(
                b'data: {"id":"s","object":"chat.completion.chunk","model":"bench","choices":'
                b'[{"index":0,"delta":{"content":"%d "}}]}\n\n' % (now_us - self.base_us)
            )
            self.loop.call_later(self.itl_s, self._tick, i + 1, stamps)
            return
        self._chunk(
            b'data: {"id":"s","object":"chat.completion.chunk","model":"bench","choices":'
            b'[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":4,'
            b'"completion_tokens":%d,"total_tokens":%d}}\n\ndata: [DONE]\n\n'
            % (self.tokens, self.tokens + 4)
        )
        self.t.write(b"0\r\n\r\n")
        self.state["active"] -= 1


def serve(tokens: int, itl_ms: float, base_us: int, dump: str) -> None:
    """Run the server (child process): prints the port; on SIGTERM writes its stats to ``dump``."""
    import uvloop

    _Sse.tokens, _Sse.itl_s, _Sse.base_us = tokens, itl_ms / 1000, base_us
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(_Sse, "127.0.0.1", 0, backlog=8192))

    def stop() -> None:
        Path(dump).write_text(json.dumps(_Sse.state))
        loop.stop()

    loop.add_signal_handler(signal.SIGTERM, stop)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


# --- measuring ---------------------------------------------------------------------------------
def _run_tree(argv: list[str], env: dict, limit_s: float = 180) -> tuple[float, int, int, float]:
    """(wall s, peak RSS of the process tree sampled every 20 ms, exit code, CPU s of the tree).

    CPU time is what the client spent, however loaded the machine: the load-proof figure.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    done = threading.Event()
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(
            argv, stdout=devnull, stderr=subprocess.PIPE, env=env, start_new_session=True
        )

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(child.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _, err = child.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:  # saturated: stop it (its own session) and say so
            os.killpg(child.pid, signal.SIGKILL)
            _, err = child.communicate()
            print(f"    {Path(argv[0]).name}: stopped after {limit_s:.0f} s (saturated)")
    done.set()
    sampler.join()
    if child.returncode not in (0, 1):
        print(f"    exit {child.returncode}: {err.decode(errors='replace')[-400:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.perf_counter() - started, peak, child.returncode, cpu


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def _ftctl_lags(out: Path, base_us: int) -> tuple[list[float], list[float], int, int]:
    """(receive − send in ms of first tokens, of later tokens, ok streams, records)."""
    lags: list[float] = []
    firsts: list[float] = []
    ok = records = 0
    for path in out.glob("client_*.log.txt"):
        for line in path.read_bytes().splitlines():
            rec = json.loads(line)
            records += 1
            if not rec.get("ok") or rec.get("ttft") is None:
                continue
            ok += 1
            text = rec["results"][-1]["result"]["choices"][0]["message"]["content"]
            sent = [(int(w) + base_us) * 1000 for w in text.split()]
            recv = rec["start_ns"] + round(rec["ttft"] * 1e9)
            stamps = [recv]
            for gap in rec["itl"]:
                recv += round(gap * 1e9)
                stamps.append(recv)
            pairs = [(r - s) / 1e6 for r, s in zip(stamps, sent, strict=False)]
            firsts.extend(pairs[:1])
            lags.extend(pairs[1:])
    return firsts, lags, ok, records


def _aiperf_lags(out: Path, sent: dict) -> tuple[list[float], list[float], int, int]:
    lags: list[float] = []
    firsts: list[float] = []
    ok = records = 0
    for path in out.rglob("profile_export.jsonl"):
        for line in path.read_bytes().splitlines():
            rec = json.loads(line)
            records += 1
            meta, metrics = rec["metadata"], rec.get("metrics") or {}
            stamps_us = sent.get(meta.get("x_request_id"))
            if rec.get("error") or not stamps_us or "time_to_first_token" not in metrics:
                continue
            ok += 1
            recv = meta["request_start_ns"] + metrics["time_to_first_token"]["value"] * 1e6
            stamps = [recv]
            for gap in (metrics.get("inter_chunk_latency") or {}).get("value") or []:
                recv += gap * 1e6
                stamps.append(recv)
            pairs = [(r - s * 1000) / 1e6 for r, s in zip(stamps, stamps_us, strict=False)]
            firsts.extend(pairs[:1])
            lags.extend(pairs[1:])
    return firsts, lags, ok, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="500,5000")
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--itl-ms", type=float, default=50.0)
    parser.add_argument("--no-aiperf", action="store_true")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), float(args.serve[1]), int(args.serve[2]), args.serve[3])
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    base_us = time.time_ns() // 1000
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="ftctl-stream-bench-") as tmp:
        dump = Path(tmp) / "server.json"
        server_argv = [sys.executable, __file__, "--serve", str(args.tokens), str(args.itl_ms)]
        server = subprocess.Popen(
            [*server_argv, str(base_us), str(dump)], stdout=subprocess.PIPE, text=True
        )
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        print(
            f"stream_bench: SSE server {url}, {args.tokens} tokens every {args.itl_ms:g} ms per "
            f"stream, {os.cpu_count()} cores, load average {os.getloadavg()}"
        )
        clients = [("ftctl", c) for c in levels]
        if not args.no_aiperf and AIPERF.exists():
            clients += [("aiperf", c) for c in levels]
        elif not args.no_aiperf:
            print(f"  aiperf: not installed ({AIPERF}); `make install-aiperf` to compare")
        rss: dict[int, int] = {}
        try:
            for tool, c in clients:
                out = Path(tmp) / f"{tool}-{c}"
                if tool == "ftctl":
                    argv = [sys.executable, "-m", "ftctl", "load", url, "--model", "bench"]
                    argv += ["--clients", str(c), "--requests-per-client", "1", "--streaming"]
                    argv += ["--input-tokens", "4", "--output-tokens", str(args.tokens)]
                    argv += ["--timeout", "120", "--output-dir", str(out), "--format", "json"]
                else:
                    argv = [str(AIPERF), "profile", "--model", "bench", "--url", url]
                    argv += ["--endpoint-type", "chat", "--streaming", "--tokenizer"]
                    argv += [str(TOKENIZER), "--concurrency", str(c), "--request-count", str(c)]
                    argv += ["--synthetic-input-tokens-mean", "4"]
                    argv += ["--synthetic-input-tokens-stddev", "0"]
                    argv += ["--output-tokens-mean", str(args.tokens)]
                    argv += ["--output-tokens-stddev", "0"]
                    argv += ["--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry"]
                    argv += ["--artifact-dir", str(out)]
                aenv = {k: v for k, v in env.items() if k != "PYTHONPATH"}
                wall, peak, _code, cpu = _run_tree(argv, env if tool == "ftctl" else aenv)
                # The server dumps its stats when stopped: one fresh server per run.
                server.send_signal(signal.SIGTERM)
                server.wait(30)
                state = json.loads(dump.read_text())
                server = subprocess.Popen(
                    [*server_argv, str(base_us), str(dump)], stdout=subprocess.PIPE, text=True
                )
                new_port = int(server.stdout.readline())
                url = f"http://127.0.0.1:{new_port}"
                if tool == "ftctl":
                    firsts, lags, ok, records = _ftctl_lags(out, base_us)
                    rss[c] = peak
                else:
                    firsts, lags, ok, records = _aiperf_lags(out, state["sent"])
                ideal = args.tokens * args.itl_ms / 1000
                print(
                    f"  {tool:6s} c={c:>5}: {ok}/{c} streams ok ({records} records), server held "
                    f"{state['peak']} at once; wall {wall:.1f} s (a stream lasts {ideal:.1f} s); "
                    f"overhead per token (client receive − server send) after the first: p50 "
                    f"{_pct(lags, 50):.3f} ms, p99 {_pct(lags, 99):.3f} ms, max "
                    f"{max(lags, default=float('nan')):.3f} ms over {len(lags):,} tokens "
                    f"(goal p99 ≤ 1 ms); first tokens (while streams still open) p50 "
                    f"{_pct(firsts, 50):.3f} ms, p99 {_pct(firsts, 99):.3f} ms; "
                    f"peak RSS {peak / 2**20:.0f} MiB; client CPU {cpu:.1f} s = "
                    f"{cpu / max(1, ok * args.tokens) * 1e6:.0f} µs per token (whole run); "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            if len(rss) >= 2:
                low, high = min(rss), max(rss)
                per = (rss[high] - rss[low]) / (high - low)
                print(f"  ftctl memory per stream (RSS slope c={low}→{high}): {per / 1024:.1f} KiB")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)


if __name__ == "__main__":
    main()
