"""Benchmark: the built-in client over KServe gRPC vs OpenAI HTTP against the real frontend.

Deploys a local graph twice in one run (the real Dynamo frontend with ``--kserve-grpc-server``,
then the plain HTTP frontend; one mocker at a high speed-up each), and drives each with the
legacy client engine in-process: sequential (concurrency 1: per-request latency) and concurrent
(requests/s). The gRPC graph's worker carries ftctl's max_tokens relay (one extra in-process
hop, see ftctl/platforms/kserve_relay.py), so the ratio is the whole path, not the client alone.

    PYTHONPATH=$PWD .venv/bin/python bench/grpc_bench.py [--requests 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftctl.clients.legacy import ClientRun  # noqa: E402
from ftctl.platforms.local import LocalPlatform  # noqa: E402
from ftctl.scenario import load_tests  # noqa: E402
from ftctl.scenario.model import LoadSpec, TokenDist  # noqa: E402


def _test(tmp: Path, kserve: bool):
    doc = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": "bench-grpc" if kserve else "bench-http"},
        "deployment": {
            "model": "tiny",
            "backend": "vllm",
            "topology": "agg",
            "local": {"speedup_ratio": 1000.0, **({"kserve_grpc": True} if kserve else {})},
        },
        "load": {"client": "legacy", "output_tokens": 20},
    }
    path = tmp / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    (test,) = load_tests([path])
    return test


def _measure(url: str, protocol: str, requests: int, concurrency: int, out: Path) -> dict:
    spec = LoadSpec(
        client="legacy",
        protocol=protocol,  # type: ignore[arg-type]
        clients=1,
        concurrency=concurrency,
        requests_per_client=requests,
        retries=0,
        input_tokens=TokenDist(32),
        output_tokens=TokenDist(20),
        streaming=True,
        timeout=30.0,
    )
    summary = asyncio.run(ClientRun(spec, [url], "tiny", out).run())
    lat = []
    for line in (out / "client_0.log.txt").read_text().splitlines():
        rec = json.loads(line)
        if rec["ok"]:
            lat.append(rec["total_time"])
    return {
        "ok": summary.ok,
        "failed": summary.failed,
        "req_s": summary.ok / summary.wall_s if summary.wall_s else 0.0,
        "mean_ms": statistics.fmean(lat) * 1e3 if lat else float("nan"),
        "p50_ms": statistics.median(lat) * 1e3 if lat else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ftctl-grpc-bench-"))
    rows = {}
    for protocol in ("grpc", "http"):
        platform = LocalPlatform()
        platform.deploy(_test(tmp, protocol == "grpc"), tmp / f"run-{protocol}")
        try:
            platform.wait_ready(120)
            url = platform.endpoint()
            _measure(url, protocol, 20, 4, tmp / f"{protocol}-warm")  # warm caches, connections
            seq = _measure(url, protocol, args.requests // 2, 1, tmp / f"{protocol}-seq")
            conc = _measure(url, protocol, args.requests, args.concurrency, tmp / f"{protocol}-c")
            rows[protocol] = (seq, conc)
        finally:
            platform.teardown()
    print(f"{'':6} {'seq mean ms':>12} {'seq p50 ms':>11} {'conc req/s':>11} {'failed':>7}")
    for protocol, (seq, conc) in rows.items():
        print(
            f"{protocol:6} {seq['mean_ms']:12.2f} {seq['p50_ms']:11.2f} {conc['req_s']:11.1f} "
            f"{seq['failed'] + conc['failed']:7d}"
        )
    g, h = rows["grpc"], rows["http"]
    print(
        f"grpc/http: sequential latency x{g[0]['mean_ms'] / h[0]['mean_ms']:.2f}, "
        f"concurrent throughput x{g[1]['req_s'] / h[1]['req_s']:.2f} "
        f"(concurrency {args.concurrency}, mocker speedup 1000)"
    )


if __name__ == "__main__":
    main()
