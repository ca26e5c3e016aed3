"""Cluster loads: validate accepts `placement: cluster`, plan shows the Indexed Job (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ftctl import barrier
from ftctl.platforms.kube.jobs import (
    CONFIG_ENV,
    LABEL_LOAD,
    job_name,
    plan_jobs,
    pod_clients,
)
from ftctl.scenario import load_tests
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "scenario_files" / "kubernetes" / "cluster" / "cluster-load.yaml"


def _scenario(tmp_path: Path, load: dict, platform: str = "kubernetes") -> Path:
    doc = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": "cl"},
        "platform": platform,
        "deployment": {
            "backend": "vllm",
            "model": "tiny",
            "manifest": str(REPO / "scenario_files" / "manifests" / "vllm" / "agg.yaml"),
        },
        "load": {"client": "legacy", "placement": "cluster", **load},
    }
    path = tmp_path / "cl.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_validate_accepts_the_shipped_cluster_scenario():
    assert run_cli("validate", str(SHIPPED)).stdout.startswith("OK ")


def test_plan_shows_one_indexed_job_with_the_run_labels_and_the_frontend_dns_name():
    out = run_cli("plan", str(SHIPPED), "--namespace", "ns1").stdout
    assert "in the cluster as an Indexed Job of 4 pod(s)" in out
    docs = [d for d in yaml.safe_load_all(out.split("# Job for load default\n", 1)[1]) if d]
    job = docs[0]
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] == 4
    assert spec["backoffLimitPerIndex"] == 0  # a dead pod is not retried; the others go on
    labels = job["metadata"]["labels"]
    assert labels["ftctl.io/run-id"] == "dry-run"
    assert labels["app.kubernetes.io/managed-by"] == "ftctl"
    assert labels[LABEL_LOAD] == "default"
    assert spec["template"]["metadata"]["labels"] == labels
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["command"] == ["python3", "-m", "ftctl", "cluster-worker"]
    assert container["image"] == "ftctl-cluster-client:0.1.0"
    env = {e["name"]: e["value"] for e in container["env"]}
    config = json.loads(env[CONFIG_ENV])
    # The frontend Service by its cluster DNS name (operator naming), not the port-forward.
    assert config["urls"] == ["http://fault-tolerance-test-frontend.ns1.svc.cluster.local:8000"]
    assert config["spec"]["clients"] == 4 and config["pods"] == 4
    assert env[barrier.DIR_ENV].endswith(job["metadata"]["name"])
    assert "4 pod(s) x 1 client(s) (4 in all)" in out


def test_plan_json_carries_the_jobs(tmp_path):
    path = _scenario(tmp_path, {"clients": 10, "pods": 3})
    plans = json.loads(run_cli("plan", str(path), "--json").stdout)
    (job,) = plans[0]["jobs"]
    assert job["spec"]["completions"] == 3
    assert plans[0]["loads"][0]["pods"] == 3


def test_the_job_image_defaults_to_the_deployment_image(tmp_path):
    path = _scenario(tmp_path, {"clients": 2, "pods": 2})
    (test,) = load_tests([path])
    (job,) = plan_jobs(test, "ns")
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1"
    (job,) = plan_jobs(test.with_run_options(image="mine:1"), "ns")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "mine:1"


@pytest.mark.parametrize(("clients", "pods"), [(4, 4), (10, 3), (7, 1), (5, 5), (100, 7)])
def test_pods_share_the_clients_contiguously_and_evenly(clients, pods):
    shares = [pod_clients(clients, pods, i) for i in range(pods)]
    assert [c for share in shares for c in share] == list(range(clients))
    sizes = {len(s) for s in shares}
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_job_names_are_dns_labels_unique_per_run():
    a = job_name("x" * 200, "default", "run-1")
    b = job_name("x" * 200, "default", "run-2")
    assert a != b and len(a) <= 52 and a.replace("-", "").isalnum() and a.islower()


def test_dry_run_refuses_client_type_aiperf_for_a_cluster_load_with_exit_2():
    result = run_cli("run", str(SHIPPED), "--dry-run", "--client-type", "aiperf", expect=2)
    assert "placement: cluster" in result.stderr and "aiperf" in result.stderr


def test_platform_local_on_the_command_line_is_refused_at_the_placement_field():
    result = run_cli("plan", str(SHIPPED), "--platform", "local", expect=2)
    assert "cluster-load.yaml:21:" in result.stderr
    assert "load.placement: placement: cluster runs the load as Kubernetes Jobs" in result.stderr


def test_platform_kubernetes_on_the_command_line_accepts_a_local_document(tmp_path):
    path = _scenario(tmp_path, {"clients": 2, "pods": 2}, platform="local")
    run_cli("validate", str(path), expect=2)
    (test,) = load_tests([path], platform="kubernetes")
    assert test.load().placement == "cluster" and test.load().pods == 2


def test_barrier_files_are_per_pod_and_written_whole(tmp_path, monkeypatch):
    monkeypatch.setenv(barrier.DIR_ENV, str(tmp_path))
    monkeypatch.setenv(barrier.INDEX_ENV, "2")
    assert barrier.read_start() is None
    assert barrier.main(["release", "1234"]) == 0
    assert barrier.read_start() == 1234 and barrier.read_start(1) is None
    assert barrier.main(["stop"]) == 0 and barrier.path("stop").exists()
    assert barrier.main(["release", "x"]) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_pod_clock_times_are_moved_to_the_host_clock():
    from ftctl.platforms.kube.cluster_load import _correct

    record = {
        "start_ns": 1_000,
        "end_ns": 2_000,
        "scheduled_ns": None,
        "results": [{"start_ns": 1_000, "end_ns": 1_500}, {"start_ns": 1_600, "end_ns": 2_000}],
    }
    _correct(record, 300)  # the pod's clock runs 300 ns ahead of the host's
    assert (record["start_ns"], record["end_ns"], record["scheduled_ns"]) == (700, 1_700, None)
    assert [(a["start_ns"], a["end_ns"]) for a in record["results"]] == [
        (700, 1_200),
        (1_300, 1_700),
    ]


def test_the_tables_name_a_dead_pod_and_a_clock_known_worse_than_the_resolution():
    from ftctl.results.parse import cluster_load_warnings

    (dead,) = cluster_load_warnings(
        {
            "kind": "load_pod_failed",
            "load": "default",
            "pod": "job-1-abcde",
            "index": 1,
            "clients": [2, 3],
            "reason": "Error",
            "exit_code": 137,
            "records": 12,
        }
    )
    assert dead == (
        "load 'default': Job pod job-1-abcde (index 1, client(s) 2-3) died before it finished "
        "(Error, exit 137); its 12 records still count"
    )
    pods = [
        {"pod": "a", "clock_offset_ns": 5_000_000, "clock_uncertainty_ns": 2_000_000,
         "end_clock_offset_ns": 6_000_000},
        {"pod": "b", "clock_offset_ns": 0, "clock_uncertainty_ns": 150_000_000,
         "end_clock_offset_ns": None},
        {"pod": "c", "clock_offset_ns": 0, "clock_uncertainty_ns": 1_000_000,
         "end_clock_offset_ns": 250_000_000},
    ]  # fmt: skip
    warnings = cluster_load_warnings({"kind": "load_clocks", "warn_ns": 100_000_000, "pods": pods})
    assert [w.split("Job pod ")[1].split(" ")[0] for w in warnings] == ["b", "c"]
    assert "+/-150 ms" in warnings[0] and "drift 250 ms" in warnings[1]
    late = {"pod": "d", "clock_offset_ns": 0, "start_lag_ns": 300_000_000}
    (lag,) = cluster_load_warnings({"kind": "load_clocks", "pods": [late]})
    assert "Job pod d started 300 ms after the load's start time" in lag


def test_a_pod_clock_is_corrected_only_by_what_the_round_trips_prove():
    # Agreeing clocks (same host): the reading lies inside the round trip, nothing to correct.
    assert barrier.offset_from([(100, 180, 400), (1_000, 1_010, 1_050)])[:2] == (0, 25)
    # A pod 5 s ahead: at least pod − after (the shortest round trip bounds it).
    offset, spread, low, high = barrier.offset_from([(0, 5_000_040, 100), (0, 5_000_500, 900)])
    assert (offset, spread, low, high) == (4_999_940, 50, 4_999_940, 5_000_040)
    # A pod behind: at most pod − before.
    assert barrier.offset_from([(10_000, 2_000, 10_020)])[0] == -8_000


def test_progress_lines_show_a_cluster_loads_pods_by_phase():
    import io

    from ftctl import events as ev
    from ftctl.platforms.kube.cluster_load import ClusterProgress
    from ftctl.reports.progress import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    pods = {"Running": 3, "Failed": 1}
    printer.notify(ev.TICK, test="t", loads={"default": ClusterProgress(ok=7, failed=2, pods=pods)})
    line = out.getvalue().strip()
    assert line.endswith(
        "7 ok, 2 failed; load 'default' pods: 0 pending, 3 running, 0 succeeded, 1 failed"
    ), line


def test_prompts_too_big_for_the_pods_env_are_refused_by_validate(tmp_path):
    path = _scenario(tmp_path, {"clients": 2, "pods": 2, "prompts": ["x" * 1000] * 120})
    result = run_cli("validate", str(path), expect=2)
    assert "load.prompts: 120480 bytes of prompts: a cluster load's pods get them" in result.stderr


def test_run_dry_run_shows_the_job_and_creates_nothing():
    out = run_cli("run", str(SHIPPED), "--dry-run").stdout
    assert "# Job for load default" in out and "completionMode: Indexed" in out
