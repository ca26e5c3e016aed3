"""Measure the local platform: startup, worker restart and frontend recovery through the proxy.

    PYTHONPATH=. .venv/bin/python bench/local_platform.py [--runs N] [--restart-delay S]

"cold" is the first deploy of this process (fresh HOME and discovery dir; the OS page cache is
not dropped), "warm" the following ones.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftctl.platforms.local import LocalPlatform  # noqa: E402
from ftctl.scenario.model import Deployment, LocalOptions, Service, Source, TestCase  # noqa: E402

MODEL = "tiny-bench"


def make_test(dp: int, restart_delay: float) -> TestCase:
    deployment = Deployment(
        model=MODEL,
        dp=dp,
        services=(Service("Frontend", "frontend", dp), Service("VllmDecodeWorker", "decode", dp)),
        local=LocalOptions(restart_delay=restart_delay),
    )
    return TestCase(
        name=f"bench-dp{dp}",
        scenario="bench",
        source=Source("bench/local_platform.py"),
        description="",
        tags=(),
        platform="local",
        deployment=deployment,
        loads=(),
        failure=None,
        events=(),
        checks=(),
        thresholds_profile=None,
    )


def completes(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    )
    try:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def one_run(dp: int, restart_delay: float, faults: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        p = LocalPlatform()
        t0 = time.time_ns()
        p.deploy(make_test(dp, restart_delay), Path(tmp))
        try:
            p.wait_ready(120)
            out["startup_s"] = (time.time_ns() - t0) / 1e9
            if faults:
                worker = p.pods("VllmDecodeWorker")[0]
                f = p.verify_fault(p.terminate_process(worker, "dynamo.vllm", "SIGKILL"), 60)
                out["worker_restart_s"] = (f.verified_ns - f.t_ns) / 1e9
                out["worker_in_health_s"] = f.pod_recovery_time_s or float("nan")
                url = p.endpoint()
                fe = p.pods("Frontend")[0]
                f = p.terminate_process(fe, "dynamo.frontend", "SIGKILL")
                while not completes(url):
                    time.sleep(0.01)
                out["frontend_first_ok_s"] = (time.time_ns() - f.t_ns) / 1e9
        finally:
            p.teardown()
            assert not p.leftover_processes()
    return out


def main() -> int:
    """Print startup and recovery figures (median of warm runs, and the cold one)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--restart-delay", type=float, default=1.0)
    args = ap.parse_args()
    for dp in (1, 2):
        runs = [one_run(dp, args.restart_delay, faults=dp == 1) for _ in range(args.runs)]
        cold, warm = runs[0], runs[1:] or runs
        for key in runs[0]:
            values = [r[key] for r in warm]
            print(
                f"dp{dp} {key:22s} cold {cold[key]:6.2f}s  warm median {statistics.median(values):6.2f}s"
                f"  (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
            )
    print(f"restart_delay {args.restart_delay}s (supervisor waits this long before a restart)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
