"""Benchmark: what running N aiperf clients costs on this machine (start-up, memory, req/s).

Runs the ftctl aiperf client (real aiperf) against the loopback fake server for N = 1, 2, 5
(and more with ``--clients``), each client a fixed small run, and prints per N: wall time,
start-up per client (process start → its first request), peak RSS and PSS per aiperf process
tree, and achieved requests/s.

    PYTHONPATH=$PWD .venv/bin/python bench/aiperf_clients.py [--clients 1,2,5,10] [--requests 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftctl.clients.aiperf import AiperfLoad  # noqa: E402
from ftctl.clients.base import LoadTarget  # noqa: E402
from ftctl.scenario.model import LoadSpec, TokenDist  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402


def group_memory_kb(pgid: int) -> tuple[int, int, int]:
    """(processes, RSS kB, PSS kB) summed over the live members of process group ``pgid``."""
    n = rss = pss = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            for line in Path(f"/proc/{entry}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
            n += 1
        except (OSError, ValueError, IndexError):
            continue
    return n, rss, pss


def run(n: int, requests: int, tokenizer: Path, out: Path) -> dict:
    """One fixed run with ``n`` clients; returns the measured figures."""
    with FakeLLM() as server:
        server.behavior.ttft_s = 0.02
        server.behavior.itl_s = 0.005
        spec = LoadSpec(
            clients=n,
            requests_per_client=requests,
            concurrency=1,
            input_tokens=TokenDist(100, 0),
            output_tokens=TokenDist(20, 0),
            retries=1,
        )
        load = AiperfLoad(spec, LoadTarget(server.url, "fake-model", tokenizer), out)
        peak: dict[int, tuple[int, int, int]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pgid in pgids:
                    now = group_memory_kb(pgid)
                    if now[1] > peak.get(pgid, (0, 0, 0))[1]:
                        peak[pgid] = now
                stop.wait(0.5)

        t0 = time.monotonic()
        load.start()
        pgids = load.pids()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load.wait()
        wall = time.monotonic() - t0
        stop.set()
        sampler.join()
    startups, starts, ends, ok, failed = [], [], [], 0, 0
    for attempts in load.attempts().values():
        a = attempts[-1]
        ok, failed = ok + a.ok, failed + a.failed
        recs = [
            json.loads(x)["metadata"]
            for x in (Path(a.directory) / "profile_export.jsonl").read_text().splitlines()
            if x.strip()
        ]
        first = min(r["request_start_ns"] for r in recs)
        startups.append((first - a.start_ns) / 1e9)
        starts.append(first)
        ends.append(max(r["request_end_ns"] for r in recs))
    busy = (max(ends) - min(starts)) / 1e9
    procs = [p[0] for p in peak.values()] or [0]
    return {
        "clients": n,
        "wall_s": wall,
        "startup_mean_s": sum(startups) / len(startups),
        "startup_max_s": max(startups),
        "ok": ok,
        "failed": failed,
        "req_per_s": (ok + failed) / busy if busy > 0 else 0.0,
        "procs_per_client": max(procs),
        "rss_mb_per_client": max(p[1] for p in peak.values()) / 1024 if peak else 0,
        "pss_mb_per_client": max(p[2] for p in peak.values()) / 1024 if peak else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,2,5")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tokenizer", type=Path, default=REPO / "ftctl" / "data" / "tokenizer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftctl-bench-aiperf-") as tmp:
        tokenizer = args.tokenizer
        if not (tokenizer / "tokenizer.json").exists():
            from tests.integration.test_aiperf_client import build_tokenizer

            tokenizer = build_tokenizer(Path(tmp) / "tokenizer")
        print(
            f"{'clients':>7} {'wall s':>7} {'start-up s (mean/max)':>22} {'ok/failed':>10} "
            f"{'req/s':>7} {'procs':>5} {'RSS MB':>7} {'PSS MB':>7}   (per client)"
        )
        base = None
        for n in (int(x) for x in args.clients.split(",")):
            r = run(n, args.requests, tokenizer, Path(tmp) / f"n{n}")
            base = base or r
            print(
                f"{r['clients']:>7} {r['wall_s']:>7.1f} "
                f"{r['startup_mean_s']:>10.1f} / {r['startup_max_s']:<9.1f} "
                f"{r['ok']:>5}/{r['failed']:<4} {r['req_per_s']:>7.1f} {r['procs_per_client']:>5} "
                f"{r['rss_mb_per_client']:>7.0f} {r['pss_mb_per_client']:>7.0f}"
                f"   wall ×{r['wall_s'] / base['wall_s']:.2f} vs 1 client",
                flush=True,
            )


if __name__ == "__main__":
    main()
