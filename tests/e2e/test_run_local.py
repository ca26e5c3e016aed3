"""`ftctl run` end to end on the local platform: a real Dynamo graph, real faults, real verdicts.

Each test runs the installed CLI as a subprocess against a scenario written here, then reads the
result directory (report.json, events.jsonl, client files) that the run left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

FTCTL = [sys.executable, "-m", "ftctl"]


def _scenario(
    tmp_path: Path,
    name: str,
    deployment: dict,
    *,
    failure: str | None = None,
    checks: list | None = None,
    load: dict | None = None,
) -> Path:
    document = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "deployment": {"model": "tiny", **deployment},
        "load": load or _load(),
    }
    if failure:
        document["failures"] = [{"at": "4s", "type": failure}]
    if checks is not None:
        document["checks"] = checks
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _load(clients: int = 3, requests: int = 40, rate: float = 4.0, tokens: int = 16) -> dict:
    return {
        "client": "legacy",
        "clients": clients,
        "requests_per_client": requests,
        "request_rate": rate,
        "input_tokens": {"mean": 32},
        "output_tokens": {"mean": tokens},
        "retries": 0,
        "timeout": "10s",
    }


def _run(
    scenario: Path, out: Path, *extra: str, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *FTCTL,
            "run",
            str(scenario),
            "--output-dir",
            str(out),
            "--junit",
            str(out / "junit.xml"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _report(out: Path) -> dict:
    reports = json.loads((out / "report.json").read_text())
    assert len(reports["tests"]) == 1, reports
    return reports["tests"][0]


def _check(report: dict, kind: str) -> dict:
    return next(c for c in report["checks"] if c["kind"] == kind)


def _load_metrics(report: dict) -> dict:
    return report["result"]["overall"]


def test_worker_sigkill_without_migration_fails_requests_and_recovers(tmp_path):
    scenario = _scenario(
        tmp_path,
        "kill",
        {
            "backend": "vllm",
            "services": {"VllmDecodeWorker": {"replicas": 2}},
            "local": {"migration_limit": 0, "restart_delay": "1s"},
        },
        failure="decode_worker",
        checks=[{"kind": "recovery_time", "max": "60s"}],
        load=_load(requests=48),
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = _report(out)
    assert _check(report, "fault_verified")["status"] == "passed"
    fault = report["faults"][0]
    assert fault["verified"] and fault["signal"] == "SIGKILL"
    metrics = _load_metrics(report)
    assert metrics["failed"] > 0, "killing a worker with migration off must fail some requests"
    assert metrics["recovery"]["recovery_time_s"] is not None
    assert (out / "junit.xml").exists()


def test_worker_sigkill_with_migration_loses_no_request(tmp_path):
    scenario = _scenario(
        tmp_path,
        "migrate",
        {
            "backend": "vllm",
            "services": {"VllmDecodeWorker": {"replicas": 2}},
            "local": {"migration_limit": 3},
        },
        failure="decode_worker",
        checks=[{"kind": "zero_errors"}, {"kind": "min_requests", "min": 100}],
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _load_metrics(_report(out))["failed"] == 0


def test_frontend_sigkill_recovers_within_seconds(tmp_path):
    scenario = _scenario(
        tmp_path,
        "fe",
        {"backend": "vllm"},
        failure="frontend",
        checks=[{"kind": "recovery_time", "max": "15s"}],
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _report(out)["faults"][0]["verified"]


def test_delete_pod_replaces_it_under_a_new_name(tmp_path):
    scenario = _scenario(
        tmp_path,
        "podkill",
        {"backend": "sglang", "services": {"decode": {"replicas": 2}}},
        failure="decode_worker_pod",
        checks=[{"kind": "fault_verified"}],
        load=_load(requests=32),
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fault = _report(out)["faults"][0]
    replacement = fault["evidence"].get("new_pod")
    assert replacement and replacement != fault["pod"]


def test_disagg_prefill_kill_is_verified(tmp_path):
    scenario = _scenario(
        tmp_path,
        "prefill",
        {"backend": "vllm", "topology": "disagg"},
        failure="prefill_worker",
        checks=[{"kind": "fault_verified"}],
        load=_load(requests=32),
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _report(out)["faults"][0]["service"] == "VllmPrefillWorker"


def test_baseline_passes_and_an_unreachable_threshold_exits_1(tmp_path):
    small = _load(clients=2, requests=12)
    ok = _scenario(tmp_path, "ok", {"backend": "vllm"}, load=small)
    out_ok = tmp_path / "ok"
    proc = _run(ok, out_ok)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _report(out_ok)["checks"], "the baseline profile must apply"

    strict = _scenario(
        tmp_path,
        "strict",
        {"backend": "vllm"},
        load=small,
        checks=[{"kind": "latency", "stat": "p50", "max": "1ms"}],
    )
    out_strict = tmp_path / "strict"
    proc = _run(strict, out_strict)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout


def _processes_with(marker: str) -> list[str]:
    """Processes whose environment carries ``marker``: everything a run started inherits it."""
    needle = f"FTCTL_E2E_MARKER={marker}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if needle not in environ:
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(f"{pid}: {cmdline}")
    return found


def test_sigint_at_random_moments_cleans_up_and_exits_130(tmp_path):
    scenario = _scenario(
        tmp_path, "intr", {"backend": "vllm"}, failure="decode_worker", load=_load(requests=200)
    )
    rng = random.Random(os.getpid())
    for attempt, delay in enumerate(sorted(rng.uniform(0.5, 9.0) for _ in range(3))):
        out = tmp_path / f"out{attempt}"
        marker = f"{os.getpid()}-{attempt}"
        proc = subprocess.Popen(
            [*FTCTL, "run", str(scenario), "--output-dir", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FTCTL_E2E_MARKER": marker},
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 130, f"delay {delay:.1f}s: {stdout}{stderr}"
        assert "Traceback" not in stderr
        time.sleep(0.5)
        leftover = _processes_with(marker)
        assert not leftover, f"leftover after SIGINT at {delay:.1f}s: {leftover}"
        test_dir = out / "intr-decode_worker"
        if (test_dir / "events.jsonl").exists():
            parsed = subprocess.run(
                [*FTCTL, "parse", str(test_dir), "--format", "json"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert parsed.returncode in (0, 2), parsed.stderr
            assert "Traceback" not in parsed.stderr


REPO = Path(__file__).resolve().parents[2]


def test_server_metrics_scenario_judges_real_series_pass_fail_and_inconclusive(tmp_path):
    from ftctl import events as ev
    from ftctl.checks import FaultSummary, evaluate, verdict
    from ftctl.errors import ExitStatus
    from ftctl.results import parse_result_dir
    from ftctl.results.server import read_server_series
    from ftctl.scenario.model import Check

    out = tmp_path / "out"
    proc = _run(REPO / "scenario_files/local/agg-server-metrics.yaml", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = _report(out)
    assert {c["kind"]: c["status"] for c in report["checks"]} == {
        "fault_verified": "passed",
        "success_rate": "passed",
        "worker_removed_after_fault": "passed",
        "queue_drains_after_fault": "passed",
        "no_throughput_collapse": "passed",
        "metric": "passed",
        "no_engine_restart": "passed",
    }
    result_dir = out / report["test"]
    events, _ = ev.read_events(result_dir / ev.EVENTS_FILE)
    fault = next(e for e in events if e["kind"] == "fault_injected")
    pods = {p.pod: p for p in read_server_series(result_dir)}
    # The killed worker's own scrapes fail while it is down; the other worker never fails.
    killed = pods[fault["pod"]]
    assert any(not s.ok and s.t_ns > fault["t_ns"] for s in killed.scrapes)
    others = [p for p in pods.values() if p.service == "VllmDecodeWorker" and p is not killed]
    assert others and all(s.ok for s in others[0].scrapes)
    # The frontend's counter of served requests only grows, and every pod sampled resources.
    (frontend,) = [p for p in pods.values() if p.service == "Frontend"]
    served = [
        sum(v for k, v in s.samples.items() if k.startswith("dynamo_frontend_requests_total"))
        for s in frontend.scrapes
        if s.ok
    ]
    assert served == sorted(served) and served[-1] > served[0]
    assert all(p.resources for p in pods.values())
    # The same real series, judged by a check that must fail and one that cannot be judged.
    overall = parse_result_dir(result_dir).overall
    failing = Check(
        kind="metric",
        service="Frontend",
        metric="dynamo_frontend_requests_total",
        agg="increase",
        phase="after",
        max=1,
    )
    missing = Check(kind="metric", service="Frontend", metric="no_such_series", max=1)

    def judged(*checks):
        return evaluate(
            checks,
            loads={},
            overall=overall,
            was_cancelled=False,
            faults=FaultSummary(),
            expects_fault=True,
            result_dir=result_dir,
            events=events,
        )

    assert verdict(judged(failing)) == ExitStatus.CHECK_FAILED
    assert verdict(judged(missing)) == ExitStatus.INCONCLUSIVE
