"""Scenario loading and `ftctl plan` of the fault kinds of issue 14 (stall, ranks, commands …)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import REPO, run_cli

MANIFEST = str(REPO / "scenario_files" / "manifests" / "vllm" / "agg.yaml")


def _scenario(tmp_path: Path, events: list[dict], platform: str = "local", **extra) -> Path:
    document = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": "new-faults"},
        "platform": platform,
        "deployment": {
            "backend": "vllm",
            "model": "tiny",
            **({"manifest": MANIFEST} if platform == "kubernetes" else {}),
        },
        "load": {"client": "legacy", "clients": 1, "requests_per_client": 5},
        "events": [{"kind": "start_load"}, *events, {"kind": "wait_for_load_completion"}],
        **extra,
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


STALL = {
    "kind": "stall_process",
    "services": ["VllmDecodeWorker"],
    "process": "dynamo.vllm",
    "duration": "3s",
}


def test_plan_of_a_stall_shows_stop_state_check_and_continue(tmp_path):
    path = _scenario(tmp_path, [{"kind": "wait", "duration": "2s"}, STALL])
    out = run_cli("plan", str(path)).stdout
    assert "t=2s  stall_process 3s VllmDecodeWorker" in out
    assert "verify state T in /proc/<pid>/stat" in out
    assert "no restart expected" in out
    kube = run_cli("plan", str(_scenario(tmp_path, [STALL], platform="kubernetes"))).stdout
    assert 'stop argv ["kill", "-s", "STOP", "<pid>"]' in kube
    assert '["ps", "-eo", "pid,stat"]' in kube
    assert 'continue argv ["kill", "-s", "CONT", "<pid>"]' in kube
    assert "PID 1 cannot be stopped" in kube


def test_a_stall_is_a_fault_that_must_be_verified(tmp_path):
    (plan,) = json.loads(run_cli("plan", str(_scenario(tmp_path, [STALL])), "--json").stdout)
    stall = next(e for e in plan["events"] if e["kind"] == "stall_process")
    assert stall["duration_s"] == 3.0 and stall["restart_expected"] is False
    assert plan["checks"][0]["kind"] == "fault_verified"


def test_a_stall_without_a_duration_is_refused_with_its_path(tmp_path):
    event = {k: v for k, v in STALL.items() if k != "duration"}
    result = run_cli("validate", str(_scenario(tmp_path, [event])), expect=2)
    assert "events[1]" in result.stderr + result.stdout
    assert "duration" in result.stderr + result.stdout


def test_a_stall_with_another_signal_is_refused(tmp_path):
    event = {**STALL, "signal": "SIGKILL"}
    result = run_cli("validate", str(_scenario(tmp_path, [event])), expect=2)
    assert "always sends SIGSTOP" in result.stderr + result.stdout


def test_plan_shows_the_rank_and_its_order(tmp_path):
    kill = {
        "kind": "terminate_process",
        "services": ["VllmDecodeWorker"],
        "process": "VLLM::EngineCore",
        "rank": 1,
    }
    out = run_cli("plan", str(_scenario(tmp_path, [kill]))).stdout
    assert "processes: rank 1 of the matches in each pod, in ascending PID order" in out
    (plan,) = json.loads(run_cli("plan", str(_scenario(tmp_path, [STALL])), "--json").stdout)
    stall = next(e for e in plan["events"] if e["kind"] == "stall_process")
    assert stall["ranks"] is None  # default: every match


def test_ranks_on_a_failures_item_reach_the_event(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "ftctl/v1",
                "kind": "Scenario",
                "metadata": {"name": "r"},
                "deployment": {"backend": "vllm", "model": "tiny"},
                "load": {"client": "legacy", "clients": 1, "requests_per_client": 5},
                "failures": [{"at": "2s", "type": "decode_worker", "ranks": [0, 2]}],
            }
        )
    )
    (plan,) = json.loads(run_cli("plan", str(path), "--json").stdout)
    kill = next(e for e in plan["events"] if e["kind"] == "terminate_process")
    assert kill["ranks"] == [0, 2]


def test_rank_and_ranks_together_or_on_a_pod_delete_are_refused(tmp_path):
    both = {**STALL, "rank": 0, "ranks": [1]}
    result = run_cli("validate", str(_scenario(tmp_path, [both])), expect=2)
    assert "set rank or ranks, not both" in result.stderr
    delete = {"kind": "delete_pod", "services": ["VllmDecodeWorker"], "rank": 0}
    result = run_cli("validate", str(_scenario(tmp_path, [delete])), expect=2)
    assert "only for terminate_process, stall_process" in result.stderr


def test_plan_shows_a_command_argv_and_its_expected_exit_and_adds_the_check(tmp_path):
    command = {
        "kind": "run_command",
        "services": ["VllmDecodeWorker"],
        "argv": ["nvidia-smi", "-L"],
        "expect_exit": 0,
    }
    capture = {"kind": "capture_metrics", "label": "mid"}
    out = run_cli("plan", str(_scenario(tmp_path, [command, capture]))).stdout
    assert 'argv ["nvidia-smi", "-L"] (replica environment, no shell), must exit 0' in out
    assert "/metrics of every pod of every service into <Service>/<pod>.mid.metrics.log" in out
    assert "command_exit  (event)" in out


def test_a_command_as_a_shell_string_is_refused(tmp_path):
    command = {"kind": "run_command", "services": ["VllmDecodeWorker"], "argv": "ls -l; rm x"}
    result = run_cli("validate", str(_scenario(tmp_path, [command])), expect=2)
    assert "argv" in result.stderr


def test_reset_connections_is_refused_on_kubernetes_and_on_local_workers(tmp_path):
    reset = {"kind": "reset_connections", "services": ["Frontend"]}
    result = run_cli("validate", str(_scenario(tmp_path, [reset], platform="kubernetes")), expect=2)
    assert "not available on the kubernetes platform" in result.stderr
    worker = {"kind": "reset_connections", "services": ["VllmDecodeWorker"]}
    result = run_cli("validate", str(_scenario(tmp_path, [worker])), expect=2)
    assert "resets connections into frontends only" in result.stderr
    out = run_cli("plan", str(_scenario(tmp_path, [reset]))).stdout
    assert "RST both sockets of every connection ftctl's endpoint proxy holds" in out


def test_partition_is_planned_with_its_mechanism_on_each_platform(tmp_path):
    cut = {"kind": "partition", "services": ["VllmDecodeWorker"], "duration": "3s"}
    out = run_cli("plan", str(_scenario(tmp_path, [cut]))).stdout
    assert "partition 3s VllmDecodeWorker" in out
    assert "request plane runs through a relay ftctl owns" in out
    kube = run_cli("plan", str(_scenario(tmp_path, [cut], platform="kubernetes"))).stdout
    assert "apply a NetworkPolicy (labelled with the run id)" in kube
    assert "ENFORCEMENT NEEDS A CNI THAT ENFORCES NETWORKPOLICIES" in kube
    assert "removed on every exit path and by ftctl cleanup" in kube
    front = {**cut, "services": ["Frontend"]}
    result = run_cli("validate", str(_scenario(tmp_path, [front])), expect=2)
    assert "name worker services, not Frontend" in result.stderr


NEW_FAILURES = {
    "frontend_stall": ("stall_process", "frontend"),
    "decode_worker_stall": ("stall_process", "decode"),
    "prefill_worker_stall": ("stall_process", "prefill"),
    "frontend_reset": ("reset_connections", "frontend"),
    "decode_worker_partition": ("partition", "decode"),
}


def test_list_shows_the_new_catalog_entries_with_where_they_apply():
    listed = json.loads(run_cli("list", "--failures", "--json").stdout)["failures"]
    rows = {r["name"]: r for r in listed}
    for name, (action, target) in NEW_FAILURES.items():
        row = rows[name]
        platforms = ["kubernetes", "local"] if action == "partition" else ["local"]
        assert (row["action"], row["target"], row["platforms"]) == (action, target, platforms)
        assert row["in_all"] is False  # the upstream matrix keeps its cells
    assert rows["prefill_worker_stall"]["topologies"] == ["disagg"]
    assert rows["decode_worker_stall"]["signal"] == "SIGSTOP 5s"
    assert rows["decode_worker_partition"]["duration_s"] == 5.0


def test_a_new_local_only_failure_is_skipped_on_kubernetes_with_the_reason(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "ftctl/v1",
                "kind": "Scenario",
                "metadata": {"name": "k"},
                "platform": "kubernetes",
                "deployment": {"backend": "vllm", "model": "tiny", "manifest": MANIFEST},
                "load": {"client": "legacy", "clients": 1, "requests_per_client": 5},
                "matrix": {"failure": ["decode_worker_stall", "decode_worker"]},
            }
        )
    )
    out = run_cli("list", str(path)).stdout + run_cli("list", str(path)).stderr
    assert "decode_worker_stall cannot apply on the kubernetes platform (only local)" in out


def test_the_shipped_local_scenarios_use_every_new_fault():
    out = run_cli("list", str(REPO / "scenario_files" / "local")).stdout
    for name in (
        "decode_worker_stall",
        "frontend_stall",
        "frontend_reset",
        "decode_worker_partition",
    ):
        assert f"-{name}\n" in out, name


def _shaped(tmp_path: Path, load: dict) -> Path:
    path = tmp_path / "shaped.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "ftctl/v1",
                "kind": "Scenario",
                "metadata": {"name": "shaped"},
                "deployment": {"backend": "vllm", "model": "tiny"},
                "load": {"client": "legacy", "clients": 2, "requests_per_client": 10, **load},
            }
        )
    )
    return path


def test_plan_shows_a_ramp_load_and_its_scheduled_times(tmp_path):
    ramp = {
        "arrival": "constant",
        "warmup": 3,
        "shape": {"ramp": {"from": 1, "to": 10, "duration": "20s"}},
    }
    out = run_cli("plan", str(_shaped(tmp_path, ramp))).stdout
    assert "shape: ramp 1 -> 10 req/s over 20s, then 10 req/s (constant arrivals" in out
    assert "3 warmup request(s) per client first (not counted)" in out
    steps = {
        "arrival": "poisson",
        "shape": {"steps": [{"rate": 2, "duration": "5s"}, {"rate": 8, "duration": "5s"}]},
    }
    out = run_cli("plan", str(_shaped(tmp_path, steps))).stdout
    assert "shape: steps 2 req/s for 5s, 8 req/s for 5s, then 8 req/s" in out


def test_a_shape_on_aiperf_or_a_closed_loop_or_a_burst_without_rate_is_refused(tmp_path):
    ramp = {"ramp": {"from": 1, "to": 10, "duration": "20s"}}
    result = run_cli(
        "validate",
        str(_shaped(tmp_path, {"client": "aiperf", "arrival": "constant", "shape": ramp})),
        expect=2,
    )
    assert "load.shape" in result.stderr and "aiperf has no option" in result.stderr
    result = run_cli("validate", str(_shaped(tmp_path, {"shape": ramp})), expect=2)
    assert "set arrival: constant or poisson" in result.stderr
    burst = {"arrival": "constant", "shape": {"burst": {"requests": 5, "at": "3s"}}}
    result = run_cli("validate", str(_shaped(tmp_path, burst)), expect=2)
    assert "on top of the load's request_rate" in result.stderr


def test_a_failures_item_may_set_how_long_a_stall_lasts(tmp_path):
    def plan_of(item: dict, expect: int = 0):
        path = tmp_path / "d.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "ftctl/v1",
                    "kind": "Scenario",
                    "metadata": {"name": "d"},
                    "deployment": {"backend": "vllm", "model": "tiny"},
                    "load": {"client": "legacy", "clients": 1, "requests_per_client": 5},
                    "failures": [{"at": "2s", **item}],
                }
            )
        )
        return run_cli("plan", str(path), "--json", expect=expect)

    (plan,) = json.loads(plan_of({"type": "decode_worker_stall", "duration": "12s"}).stdout)
    stall = next(e for e in plan["events"] if e["kind"] == "stall_process")
    assert stall["duration_s"] == 12.0
    refused = plan_of({"type": "decode_worker", "duration": "12s"}, expect=2)
    assert "decode_worker has no duration" in refused.stderr
