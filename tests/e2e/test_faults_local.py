"""The fault kinds of issue 14 on the real local Dynamo graph, through `ftctl run`.

Each test writes a scenario with an explicit timeline, runs the CLI as a subprocess and reads
the result directory (events.jsonl, report.json) it left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_run_local import FTCTL, _load, _processes_with, _report, _run

pytestmark = pytest.mark.e2e


def _timeline(
    tmp_path: Path, name: str, events: list[dict], *, workers: int = 2, checks=None, load=None
) -> Path:
    document = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "deployment": {
            "backend": "vllm",
            "model": "tiny",
            "services": {"VllmDecodeWorker": {"replicas": workers}},
            "local": {"restart_delay": "1s"},
        },
        "load": load or _load(clients=2, requests=30, rate=4.0),
        "events": [{"kind": "start_load"}, *events, {"kind": "wait_for_load_completion"}],
        "checks": checks if checks is not None else [{"kind": "fault_verified"}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _events(test_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (test_dir / "events.jsonl").read_text().splitlines() if x]


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


STALL = {
    "kind": "stall_process",
    "services": ["VllmDecodeWorker"],
    "process": "dynamo.vllm",
    "pods": [0],
    "duration": "3s",
}


def test_a_stalled_worker_is_verified_stopped_then_resumed_and_requests_complete(tmp_path):
    scenario = _timeline(tmp_path, "stall", [{"kind": "wait", "duration": "2s"}, STALL])
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = _events(out / "stall-custom")
    injected = next(e for e in events if e["kind"] == "fault_injected")
    resumed = next(e for e in events if e["kind"] == "fault_resumed")
    verified = next(e for e in events if e["kind"] == "fault_verified")
    assert injected["action"] == "stall_process"
    assert set(verified["evidence"]["states_after_stop"].values()) == {"T"}
    assert "T" not in verified["evidence"]["states_after_resume"].values()
    assert resumed["fault_t_ns"] == injected["t_ns"] and resumed["t_ns"] > injected["t_ns"]
    assert verified["evidence"]["restart_count_after"] == 0  # a stall is not a restart
    report = _report(out)
    result = report["result"]
    assert result["fault_resume_times_ns"] == {str(injected["t_ns"]): resumed["t_ns"]}
    assert result["overall"]["requests"] == 60


def _interrupt_once_injected(tmp_path: Path, name: str, fault: dict) -> tuple[dict, list[dict]]:
    """Run ``fault`` (60 s long) 1 s into the load, SIGINT the run once it is injected.

    Returns the fault_injected event (read while the fault was on) and every event after.
    """
    scenario = _timeline(tmp_path, name, [{"kind": "wait", "duration": "1s"}, fault])
    out = tmp_path / "out"
    marker = f"{os.getpid()}-{name}"
    proc = subprocess.Popen(
        [*FTCTL, "run", str(scenario), "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FTCTL_E2E_MARKER": marker},
    )
    test_dir = out / f"{name}-custom"
    injected = None
    deadline = time.monotonic() + 120
    while injected is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (test_dir / "events.jsonl").exists():
            injected = next((e for e in _events(test_dir) if e["kind"] == "fault_injected"), None)
    assert injected is not None, "the fault never started"
    if fault["kind"] == "stall_process":
        assert [_state(pid) for pid in injected["pids"]] == ["T"] * len(injected["pids"])
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert _processes_with(marker) == []
    return injected, _events(test_dir)


def test_ctrl_c_in_the_middle_of_a_stall_leaves_no_process_stopped(tmp_path):
    injected, events = _interrupt_once_injected(
        tmp_path, "stall-intr", {**STALL, "duration": "60s"}
    )
    kinds = [e["kind"] for e in events]
    assert kinds.index("fault_resumed") < kinds.index("teardown")
    assert [p for p in injected["pids"] if _state(p) == "T"] == []


def test_ctrl_c_in_the_middle_of_a_partition_heals_it_before_teardown(tmp_path):
    cut = {"kind": "partition", "services": ["VllmDecodeWorker"], "pods": [0], "duration": "60s"}
    injected, events = _interrupt_once_injected(tmp_path, "part-intr", cut)
    kinds = [e["kind"] for e in events]
    assert kinds.index("fault_resumed") < kinds.index("teardown")
    healed = next(e for e in events if e["kind"] == "fault_resumed")
    assert healed["fault_t_ns"] == injected["t_ns"] and healed["action"] == "partition"


def test_commands_run_in_the_worker_environment_and_metrics_are_snapshot(tmp_path):
    import sys

    port = "import os; print(os.environ['DYN_SYSTEM_PORT'])"
    events = [
        {"kind": "wait", "duration": "1s"},
        {
            "kind": "run_command",
            "services": ["VllmDecodeWorker"],
            "pods": [0],
            "argv": [sys.executable, "-c", port],
            "expect_exit": 0,
        },
        {"kind": "capture_metrics", "label": "mid"},
        {
            "kind": "run_command",
            "services": ["Frontend"],
            "argv": [sys.executable, "-c", "raise SystemExit('no such model')"],
            "expect_exit": 0,
        },
    ]
    scenario = _timeline(
        tmp_path, "cmd", events, workers=1, checks=[], load=_load(clients=1, requests=10)
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the second command failed
    test_dir = out / "cmd-none"  # commands and snapshots are not faults
    results = [e for e in _events(test_dir) if e["kind"] == "command_result"]
    assert [r["exit_code"] for r in results] == [0, 1]
    worker = yaml.safe_load(next((test_dir / "VllmDecodeWorker").glob("*.yaml")).read_text())
    assert results[0]["stdout"].strip() == str(worker["ports"]["system"])
    check = next(c for c in _report(out)["checks"] if c["kind"] == "command_exit")
    assert check["status"] == "failed" and "no such model" in check["message"]
    snapshots = sorted(p.parent.name for p in test_dir.glob("*/*.mid.metrics.log"))
    assert snapshots == ["Frontend", "VllmDecodeWorker"]
    for path in test_dir.glob("*/*.mid.metrics.log"):
        assert "dynamo_" in path.read_text()


def test_connection_resets_into_the_frontend_are_real_rsts_and_the_load_goes_on(tmp_path):
    reset = {"kind": "reset_connections", "services": ["Frontend"]}
    scenario = _timeline(
        tmp_path,
        "reset",
        [{"kind": "wait", "duration": "2s"}, reset],
        workers=1,
        load=_load(clients=3, requests=24, rate=4.0),
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = _events(out / "reset-custom")
    verified = next(e for e in events if e["kind"] == "fault_verified")
    evidence = verified["evidence"]
    assert evidence["count"] >= 1 and evidence["still_established"] == []
    frontend = yaml.safe_load(next((out / "reset-custom" / "Frontend").glob("*.yaml")).read_text())
    assert {r["backend"] for r in evidence["reset"]} == {f"127.0.0.1:{frontend['ports']['http']}"}
    assert frontend["restart_count"] == 0  # a reset is not a restart
    overall = _report(out)["result"]["overall"]
    assert overall["requests"] == 72
    assert overall["phases"]["after"]["requests"] > 0 and overall["phases"]["after"]["ok"] > 0


def test_a_partition_between_the_frontend_and_one_worker_fails_requests_then_heals(tmp_path):
    cut = {"kind": "partition", "services": ["VllmDecodeWorker"], "pods": [0], "duration": "3s"}
    scenario = _timeline(
        tmp_path,
        "part",
        [{"kind": "wait", "duration": "2s"}, cut],
        load=_load(clients=2, requests=48, rate=4.0),
    )
    out = tmp_path / "out"
    proc = _run(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    test_dir = out / "part-custom"
    events = _events(test_dir)
    injected = next(e for e in events if e["kind"] == "fault_injected")
    healed = next(e for e in events if e["kind"] == "fault_resumed")
    verified = next(e for e in events if e["kind"] == "fault_verified")
    evidence = verified["evidence"]
    assert injected["action"] == "partition"
    assert evidence["discovery_rewrites"] >= 1 and evidence["relayed_connections_before"] >= 1
    assert evidence["connections_cut"] >= 1
    assert evidence["reconnected_ns"] > healed["t_ns"] > injected["t_ns"]
    # Real failures seen by the real frontend, and the traffic recovers after the heal.
    records = []
    for path in test_dir.glob("client_*.log.txt"):
        records += [json.loads(x) for x in path.read_text().splitlines() if x]
    attempts = [a for r in records for a in r["results"]]
    cut_window = [a for a in attempts if injected["t_ns"] <= a["start_ns"] < healed["t_ns"]]
    after_heal = [a for a in attempts if a["start_ns"] > evidence["reconnected_ns"]]
    assert any(a["status"] != 200 for a in cut_window), "nothing failed during the cut"
    assert after_heal and all(a["status"] == 200 for a in after_heal[-10:])
    worker = yaml.safe_load(next((test_dir / "VllmDecodeWorker").glob("*.yaml")).read_text())
    assert worker["restart_count"] == 0


SHIPPED = Path(__file__).resolve().parents[2] / "scenario_files" / "local"


@pytest.mark.parametrize(
    "name",
    [
        "agg-worker-stall",
        "agg-frontend-stall",
        "agg-frontend-reset",
        "agg-worker-partition",
    ],
)
def test_shipped_scenario_of_each_new_fault_runs_green(tmp_path, name):
    out = tmp_path / "out"
    proc = _run(SHIPPED / f"{name}.yaml", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = _report(out)
    assert report["faults"] and all(f["verified"] for f in report["faults"])
    assert next(c for c in report["checks"] if c["kind"] == "fault_verified")["status"] == "passed"
