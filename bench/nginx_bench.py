"""Benchmark: the non-streaming client vs wrk and aiperf against a loopback nginx (prints only).

nginx (Debian's package, installed here with apt-get when missing, as is wrk) answers every
POST /v1/chat/completions with a fixed OpenAI-style JSON body from 127.0.0.1. Side by side, in
one run and at the same connection count: ``ftctl load`` (one command, its worker processes),
``wrk`` (the ceiling: C, no Python) and ``aiperf`` (when .venv-aiperf exists). Prints req/s of
each, the ratios, and the load average. Goal (issue 17): ftctl ≥ 20k req/s on 2 cores.

Usage: ``PYTHONPATH=. .venv/bin/python bench/nginx_bench.py [--connections 50] [--seconds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AIPERF = REPO / ".venv-aiperf" / "bin" / "aiperf"
TOKENIZER = REPO / "ftctl" / "data" / "tokenizer"
BODY = (
    '{"id":"n","object":"chat.completion","model":"bench","choices":[{"index":0,"message":'
    '{"role":"assistant","content":"tok tok tok tok"},"finish_reason":"length"}],'
    '"usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8}}'
)


def ensure_packages() -> bool:
    """nginx and wrk from Debian, installed with apt-get when missing; False if impossible."""
    missing = [p for p in ("nginx", "wrk") if shutil.which(p) is None and not _sbin(p)]
    if not missing:
        return True
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"  apt-get install {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    try:
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, **quiet)
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
        subprocess.run([*sudo, *install, *missing], check=True, **quiet)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"  cannot install {missing}: {exc}")
        return False
    return all(shutil.which(p) or _sbin(p) for p in ("nginx", "wrk"))


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None


def start_nginx(tmp: Path, workers: int) -> tuple[subprocess.Popen, int]:
    """nginx in the foreground on a free 127.0.0.1 port, logs off, in ``tmp``."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"worker_processes {workers};\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "daemon off;\nevents { worker_connections 4096; }\n"
        "http {\n  access_log off;\n  keepalive_requests 1000000;\n"
        f"  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n"
        f"  fastcgi_temp_path {tmp};\n  uwsgi_temp_path {tmp};\n  scgi_temp_path {tmp};\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n"
        "    location /v1/models { default_type application/json;\n"
        '      return 200 \'{"object":"list","data":[{"id":"bench","object":"model"}]}\'; }\n'
        "    location / { default_type application/json;\n"
        f"      return 200 '{BODY}'; }}\n  }}\n}}\n"
    )
    exe = shutil.which("nginx") or _sbin("nginx")
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()[-300:]}")


def run_ftctl(url: str, conns: int, requests: int, out: Path) -> float:
    """req/s of one ``ftctl load`` (non-streaming, closed loop, ``conns`` clients)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "ftctl", "load", url, "--model", "bench", "--no-streaming"]
    argv += ["--clients", str(conns), "--requests-per-client", str(requests)]
    argv += ["--input-tokens", "4", "--output-tokens", "4", "--output-dir", str(out)]
    argv += ["--format", "json"]
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    starts, ends, ok = [], [], 0
    for path in out.glob("client_*.log.txt"):
        for line in path.read_bytes().splitlines():
            rec = json.loads(line)
            starts.append(rec["start_ns"])
            ends.append(rec["end_ns"])
            ok += bool(rec.get("ok"))
    if not ok:
        return 0.0
    return ok / ((max(ends) - min(starts)) / 1e9)


def run_wrk(url: str, conns: int, seconds: int) -> float | None:
    exe = shutil.which("wrk")
    if exe is None:
        return None
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "1 2 3"}]})
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )
    try:
        res = subprocess.run(
            [exe, "-t2", f"-c{conns}", f"-d{seconds}s", "-s", str(script), url],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
    finally:
        script.unlink()
    m = re.search(r"Requests/sec:\s*([\d.]+)", res.stdout)
    return float(m.group(1)) if m else None


def run_aiperf(url: str, conns: int, requests: int, out: Path) -> float | None:
    if not AIPERF.exists():
        return None
    argv = [str(AIPERF), "profile", "--model", "bench", "--url", url, "--endpoint-type", "chat"]
    argv += ["--tokenizer", str(TOKENIZER), "--concurrency", str(conns)]
    argv += ["--request-count", str(requests), "--synthetic-input-tokens-mean", "4"]
    argv += ["--synthetic-input-tokens-stddev", "0", "--output-tokens-mean", "4"]
    argv += ["--output-tokens-stddev", "0", "--ui-type", "none"]
    argv += ["--no-server-metrics", "--no-gpu-telemetry", "--artifact-dir", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    summary = next(out.rglob("profile_export_aiperf.json"), None)
    if summary is None:
        return None
    data = json.loads(summary.read_text())
    metric = data.get("request_throughput") or data.get("records", {}).get("request_throughput")
    return float(metric["avg"]) if metric else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration")
    parser.add_argument("--requests", type=int, default=40_000, help="ftctl: total requests")
    parser.add_argument("--aiperf-requests", type=int, default=3000)
    args = parser.parse_args()
    print(f"nginx_bench: {os.cpu_count()} cores, load average {os.getloadavg()}")
    if not ensure_packages():
        print("  nginx/wrk unavailable: skipped")
        return
    with tempfile.TemporaryDirectory(prefix="ftctl-nginx-bench-") as d:
        tmp = Path(d)
        nginx, port = start_nginx(tmp, workers=1)
        url = f"http://127.0.0.1:{port}"
        try:
            c = args.connections
            per_client = max(1, args.requests // c)
            ftctl = run_ftctl(url, c, per_client, tmp / "ftctl")
            print(f"  ftctl load, {c} clients (1 command): {ftctl:,.0f} req/s (goal ≥ 20,000); "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            wrk = run_wrk(url + "/v1/chat/completions", c, args.seconds)
            if wrk:
                print(f"  wrk -t2 -c{c}: {wrk:,.0f} req/s; ftctl/wrk = {ftctl / wrk:.3f}; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            aiperf = run_aiperf(url, c, args.aiperf_requests, tmp / "aiperf")
            if aiperf:
                print(f"  aiperf --concurrency {c}: {aiperf:,.0f} req/s; ftctl/aiperf = "
                      f"{ftctl / aiperf:.1f}; load {os.getloadavg()[0]:.1f}")  # fmt: skip
            elif not AIPERF.exists():
                print("  aiperf: not installed (make install-aiperf)")
            else:
                print("  aiperf: ran but wrote no summary")
        finally:
            nginx.terminate()
            nginx.wait(10)


if __name__ == "__main__":
    main()
