"""`ftctl run` with the real aiperf as the load client against the real local Dynamo graph.

Needs the runner and the local platform (skipped where they are absent) and ``.venv-aiperf``.
Each aiperf client takes ~8 s to start on this machine, so the loads are small and short.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ftctl.runner")
pytest.importorskip("ftctl.platforms.local")

from ftctl.clients.aiperf import find_aiperf  # noqa: E402
from ftctl.errors import ClientError  # noqa: E402
from ftctl.results.aiperf import attempt_outcome  # noqa: E402

try:
    find_aiperf()
except ClientError:
    if os.environ.get("CI"):  # `make test` installs aiperf: in CI its absence is a failure
        raise
    pytest.skip("aiperf missing: run `make install`", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.aiperf]

FTCTL = [sys.executable, "-m", "ftctl"]


def scenario(tmp_path: Path, name: str, load: dict, **extra) -> Path:
    document = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "deployment": {"model": "tiny", "backend": "vllm", **extra.pop("deployment", {})},
        "load": {
            "client": "aiperf",
            "clients": 2,
            "concurrency": 1,
            "input_tokens": {"mean": 32},
            "output_tokens": {"mean": 16},
            "retries": 1,
            "timeout": "10s",
            **load,
        },
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run(path: Path, out: Path) -> subprocess.CompletedProcess:
    argv = [*FTCTL, "run", str(path), "--output-dir", str(out)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def report(out: Path) -> dict:
    tests = json.loads((out / "report.json").read_text())["tests"]
    assert len(tests) == 1, tests
    return tests[0]


def last_attempts(test_dir: Path) -> list[Path]:
    """The last attempt dir of every client (attempt numbers compared as numbers)."""
    dirs = []
    for client in sorted(test_dir.glob("client_*")):
        attempts = sorted(client.glob("attempt_*"), key=lambda p: int(p.name.split("_")[1]))
        dirs.append(attempts[-1])
    return dirs


def test_aiperf_run_without_failure_counts_match_aiperf_summary(tmp_path):
    out = tmp_path / "out"
    proc = run(scenario(tmp_path, "aip", {"requests_per_client": 20}), out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    overall = report(out)["result"]["overall"]
    attempts = last_attempts(out / "aip-none")
    assert len(attempts) == 2
    summary_total = sum(
        json.loads((a / "profile_export_aiperf.json").read_text())["request_count"]["avg"]
        for a in attempts
    )
    assert overall["requests"] == summary_total == 40
    assert overall["failed"] == 0


def test_aiperf_worker_sigkill_without_migration_fails_after_the_fault_and_recovers(tmp_path):
    path = scenario(
        tmp_path,
        "aipkill",
        {"duration": "20s", "concurrency": 2},
        deployment={"local": {"migration_limit": 0, "restart_delay": "1s"}},
        failures=[{"at": "5s", "type": "decode_worker"}],
        checks=[{"kind": "recovery_time", "max": "60s"}, {"kind": "fault_verified"}],
    )
    out = tmp_path / "out"
    proc = run(path, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    overall = report(out)["result"]["overall"]
    phases = overall["phases"]
    assert phases["before"]["requests"] > 0 and phases["before"]["failed"] == 0
    assert phases["after"]["failed"] > 0, "a SIGKILLed only worker must fail requests"
    assert overall["recovery"]["recovery_time_s"] is not None
    # The fault hit a running load: aiperf had finished its start-up and was sending.
    test_dir = out / "aipkill-decode_worker"
    events = [json.loads(x) for x in (test_dir / "events.jsonl").read_text().splitlines()]
    fault_ns = next(e["t_ns"] for e in events if e["kind"] == "fault_injected")
    firsts = [json.loads((a / "attempt.json").read_text()) for a in last_attempts(test_dir)]
    assert all(f["first_request_ns"] and f["first_request_ns"] < fault_ns for f in firsts)


def test_aiperf_token_overflow_is_mostly_rejected_then_recovers(tmp_path):
    path = scenario(
        tmp_path,
        "aipovf",
        {"requests_per_client": 10, "input_tokens": {"mean": 64}},
        failures=[{"at": "0s", "type": "token_overflow"}],
    )
    out = tmp_path / "out"
    proc = run(path, out)
    outcomes = {}
    for phase in ("overflow", "recovery"):
        counts = [attempt_outcome(a) for a in last_attempts(out / f"aipovf-token_overflow_{phase}")]
        outcomes[phase] = (sum(c[0] for c in counts), sum(c[1] for c in counts))
    ok, failed = outcomes["overflow"]
    assert ok + failed == 20 and failed >= 0.9 * 20, (outcomes, proc.stdout + proc.stderr)
    ok, failed = outcomes["recovery"]
    assert ok + failed == 20 and ok >= 0.9 * 20, (outcomes, proc.stdout + proc.stderr)


def test_legacy_and_aiperf_give_comparable_results_for_the_same_worker_kill(tmp_path):
    # The same paced load (2 clients × 4 req/s, one request at a time) through both clients.
    load = {"requests_per_client": 60, "request_rate": 4.0, "retries": 0, "retry_delay": 0}
    path = scenario(
        tmp_path,
        "cmp",
        load,
        deployment={"local": {"migration_limit": 0, "restart_delay": "1s"}},
        failures=[{"at": "5s", "type": "decode_worker"}],
        checks=[{"kind": "fault_verified"}],
    )
    results = {}
    for client in ("legacy", "aiperf"):
        out = tmp_path / client
        proc = subprocess.run(
            [*FTCTL, "run", str(path), "--output-dir", str(out), "--client-type", client],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results[client] = report(out)["result"]["overall"]
    legacy, aiperf = results["legacy"], results["aiperf"]
    assert legacy["requests"] == aiperf["requests"] == 120
    # Stated tolerances: the outage costs both about the same share of a 15 s load, and both
    # see the worker come back within a few seconds of each other (restart ~1 s + register).
    rate = {k: v["ok"] / v["requests"] for k, v in results.items()}
    assert abs(rate["legacy"] - rate["aiperf"]) <= 0.15, results
    rec = {k: v["recovery"]["recovery_time_s"] for k, v in results.items()}
    assert None not in rec.values(), rec
    assert abs(rec["legacy"] - rec["aiperf"]) <= 5.0, rec
