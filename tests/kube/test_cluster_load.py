"""Cluster loads through the fake API server: an Indexed Job whose pods run ftctl's own client
worker as real local processes against the real local Dynamo frontend (issue 15)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftctl.scenario.model import LoadSpec, TokenDist
from tests.kube.conftest import REPO, make_test

NS = "fault-tolerance-test"


def cluster_spec(**kw) -> LoadSpec:
    base = dict(
        client="legacy",
        placement="cluster",
        pods=4,
        clients=4,
        requests_per_client=6,
        request_rate=4.0,
        input_tokens=TokenDist(16),
        output_tokens=TokenDist(8),
        retries=0,
        timeout=10.0,
        start_timeout=60.0,
    )
    base.update(kw)
    return LoadSpec(**base)


def _with_load(name: str, spec: LoadSpec):
    return dataclasses.replace(make_test(name), loads=(spec,))


class Events:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def write(self, kind: str, t_ns: int | None = None, **fields) -> dict:
        record = {"kind": kind, "t_ns": t_ns, **fields}
        self.items.append(record)
        return record

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.items if e["kind"] == kind]


def _scenario(tmp_path: Path, name: str, load: dict, failure: str | None = "decode_worker"):
    import yaml

    document = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "deployment": {"backend": "vllm", "model": "tiny"},
        "load": {
            "client": "legacy",
            "placement": "cluster",
            "pods": 2,
            "clients": 2,
            "requests_per_client": 20,
            "request_rate": 4,
            "input_tokens": 16,
            "output_tokens": 8,
            "retries": 0,
            **load,
        },
        "checks": [{"kind": "min_requests", "min": 10}],
    }
    if failure:
        document["failures"] = [{"at": "4s", "type": failure}]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run_argv(kube_env, scenario, out, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ftctl", "run", str(scenario), "--platform", "kubernetes",
        "--kubeconfig", str(kube_env.kubeconfig), "--namespace", NS,
        "--skip-service-restart", "--output-dir", str(out), *extra,
    ]  # fmt: skip


def _records(folder: Path) -> dict[int, list[dict]]:
    out = {}
    for path in sorted(folder.glob("client_*.log.txt")):
        client = int(path.name.split("_")[1].split(".")[0])
        out[client] = [json.loads(line) for line in path.read_text().splitlines()]
    return out


@pytest.fixture
def deployed(platform_factory, fake, tmp_path):
    def deploy(name: str, spec: LoadSpec):
        platform = platform_factory()
        test = _with_load(name, spec)
        platform.deploy(test, tmp_path)
        platform.wait_ready(90)
        return platform, test

    return deploy


def test_an_indexed_job_of_4_pods_sends_from_one_start_and_its_records_come_home(
    deployed, fake, tmp_path
):
    spec = cluster_spec()
    platform, test = deployed("cl-4pods", spec)
    events = Events()
    out = tmp_path / "out"
    load = platform.cluster_load(test, spec, out, events.write, out)
    try:
        load.start()
        assert load.wait_sending()
        assert load.wait(120)
    finally:
        load.kill()
    records = _records(out)
    assert sorted(records) == [0, 1, 2, 3]
    for client, items in records.items():
        assert len(items) == 6 and all(r["ok"] for r in items), (client, items[:1])
        assert all(r["client"] == client for r in items)
    pods = {r["load_pod"] for items in records.values() for r in items}
    assert len(pods) == 4  # one client per pod, each from its own pod
    (started,) = events.of("load_pods")
    assert started["t_ns"] == load.start_ns
    # Every request started at or after the one released start time (host clock).
    assert min(r["start_ns"] for items in records.values() for r in items) >= load.start_ns
    (clocks,) = events.of("load_clocks")
    assert all(p["end_clock_offset_ns"] is not None for p in clocks["pods"])
    assert all(isinstance(p["start_lag_ns"], int) for p in clocks["pods"])
    assert not events.of("load_pod_failed")
    # The Job and its pods are gone (deleted with propagation, not orphaned).
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []
    assert fake.jobs.deleted and fake.jobs.deleted[-1][2] == "Background"


def wait_for(what: str, check, timeout: float = 60.0):
    """Poll ``check`` until it is truthy (a condition, not a fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_deleting_a_job_without_a_propagation_policy_orphans_its_pods(fake, kube_env):
    """The REST default for batch/v1 Jobs, kept by the fake: why ftctl always passes one."""
    from kubernetes import client, config

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "orphan-me", "labels": {"app.kubernetes.io/managed-by": "test"}},
        "spec": {
            "completionMode": "Indexed",
            "completions": 2,
            "parallelism": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "never-ready:1", "command": ["true"]}],
                }
            },
        },
    }
    with config.new_client_from_config(config_file=str(kube_env.kubeconfig)) as api:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        batch.create_namespaced_job(NS, job)
        pods = core.list_namespaced_pod(NS, label_selector="job-name=orphan-me").items
        assert sorted(p.metadata.annotations[INDEX] for p in pods) == ["0", "1"]
        assert all(p.status.phase == "Pending" for p in pods)
        batch.delete_namespaced_job("orphan-me", NS)
        left = core.list_namespaced_pod(NS, label_selector="job-name=orphan-me").items
        assert len(left) == 2  # orphaned
        for pod in left:
            core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
    wait_for("the orphans to go", lambda: not fake.jobs.pod_names(NS))


INDEX = "batch.kubernetes.io/job-completion-index"


def test_a_barrier_that_never_completes_exits_3_naming_the_pods_and_leaves_nothing(
    kube_env, fake, tmp_path
):
    scenario = _scenario(
        tmp_path, "cl-never", {"image": "never-ready:1", "start_timeout": "3s"}, failure=None
    )
    out = tmp_path / "out"
    done = subprocess.run(
        _run_argv(kube_env, scenario, out), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    text = done.stdout + done.stderr
    assert "start barrier not complete after 3s: 0 of 2 Job pods Running" in text, text
    assert "ContainerCreating" in text and "nothing was sent" in text
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []
    assert not [n for n in kube_env.dgd_names() if "cl-never" in n], "DGD left behind"


def test_cleanup_removes_a_crashed_runs_job_with_its_pods(deployed, fake, kube_env, tmp_path):
    spec = cluster_spec(pods=2, clients=2, image="never-ready:1")
    platform, test = deployed("cl-crash", spec)
    load = platform.cluster_load(test, spec, tmp_path, Events().write, tmp_path)
    load.start()  # and ftctl "crashes": nothing deletes the Job
    assert fake.jobs.job_names(NS) and len(fake.jobs.pod_names(NS)) == 2
    done = subprocess.run(
        [sys.executable, "-m", "ftctl", "cleanup", "--namespace", NS,
         "--kubeconfig", str(kube_env.kubeconfig)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "removed 1 load Job(s) with their pods: ftctl-default-cl-crash-" in done.stdout
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []


def test_a_pod_killed_mid_run_keeps_its_records_and_is_reported(deployed, fake, tmp_path):
    from ftctl.events import EventLog
    from ftctl.reports.tables import render_text
    from ftctl.results import parse_result_dir

    spec = cluster_spec(requests_per_client=40, request_rate=4.0)
    platform, test = deployed("cl-podkill", spec)
    events = Events()
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"schema": "ftctl.run/v1"}))
    log = EventLog(out)

    def record(kind, t_ns=None, **fields):
        log.write(kind, t_ns, **fields)
        return events.write(kind, t_ns, **fields)

    load = platform.cluster_load(test, spec, out, record, out)
    try:
        load.start()
        assert load.wait_sending()
        victim = wait_for(
            "pod 1 to write records", lambda: load.pods[1].records >= 3 and load.pods[1]
        )
        fake.jobs.kill_pod(NS, victim.name)
        assert load.wait(180)
    finally:
        load.kill()
    records = _records(out)
    assert [len(records[c]) for c in (0, 2, 3)] == [40, 40, 40]
    assert 3 <= len(records[1]) < 40  # its partial records are kept
    (failed,) = events.of("load_pod_failed")
    assert failed["pod"] == victim.name and failed["index"] == 1 and failed["clients"] == [1]
    assert failed["exit_code"] == 137 and failed["records"] == len(records[1])
    assert any(victim.name in w and "died" in w for w in load.warnings)
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []
    # run.json keeps every pod's clock offsets, measured at the start and (if alive) the end.
    pods = json.loads((out / "run.json").read_text())["cluster_loads"]["default"]["pods"]
    assert [p["index"] for p in pods] == [0, 1, 2, 3]
    assert all(isinstance(p["clock_offset_ns"], int) for p in pods)
    assert [p["end_clock_offset_ns"] is None for p in pods] == [False, True, False, False]
    # The tables say which pod died; its records still count.
    log.close()
    result = parse_result_dir(out)
    assert result.overall.requests == sum(len(r) for r in records.values())
    text = render_text([result], "markdown")
    assert f"Job pod {victim.name} (index 1, client(s) 1) died before it finished" in text


SHIPPED = REPO / "scenario_files" / "kubernetes" / "cluster" / "cluster-load.yaml"


def _shape(value):
    """The layout of a JSON document: keys all the way down, one element per list."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "value"


def _parse_json(folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "ftctl", "parse", str(folder), "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_shipped_cluster_scenario_runs_green_with_4_job_pods_like_a_local_load(
    kube_env, fake, tmp_path
):
    """A worker kill under a 4-pod cluster load: fault verified, recovery measured, and the
    result directory parses to the same shape as the same scenario with a local load."""
    import yaml

    out = tmp_path / "out"
    done = subprocess.run(
        _run_argv(kube_env, SHIPPED, out), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    test_dir = out / "cluster-load-decode_worker"
    report = json.loads((test_dir / "report.json").read_text())
    fault = report["faults"][0]
    assert fault["verified"] and fault["service"] == "VllmDecodeWorker"
    recovery = report["result"]["overall"]["recovery"]
    assert recovery["recovered"], recovery
    run = json.loads((test_dir / "run.json").read_text())
    pods = run["cluster_loads"]["default"]["pods"]
    assert len(pods) == 4 and len({p["pod"] for p in pods}) == 4
    assert all(p["phase"] == "Succeeded" and p["records"] == 50 for p in pods), pods
    # One host: the clocks agree within what the exec round trips can tell.
    assert all(p["clock_offset_ns"] == 0 for p in pods), pods
    events = [json.loads(line) for line in (test_dir / "events.jsonl").read_text().splitlines()]
    (start,) = [e for e in events if e["kind"] == "load_start"]
    (pods_event,) = [e for e in events if e["kind"] == "load_pods"]
    assert start["t_ns"] == pods_event["t_ns"]  # the load started at the barrier's one time
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []

    # The same scenario with a local load: the same files, the same parse output layout.
    local = yaml.safe_load(SHIPPED.read_text())
    local["metadata"]["name"] = "cluster-load-local"
    for key in ("placement", "pods", "image", "start_timeout"):
        local["load"].pop(key)
    local["deployment"]["manifest"] = str(SHIPPED.parent / local["deployment"]["manifest"])
    local_file = tmp_path / "local.yaml"
    local_file.write_text(yaml.safe_dump(local))
    done = subprocess.run(
        _run_argv(kube_env, local_file, out), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    local_dir = out / "cluster-load-local-decode_worker"
    clients = sorted(p.name for p in test_dir.glob("client_*"))
    assert (
        clients
        == sorted(p.name for p in local_dir.glob("client_*"))
        == [f"client_{i}.log.txt" for i in range(4)]
    )
    cluster_json, local_json = _parse_json(test_dir), _parse_json(local_dir)
    assert _shape(cluster_json) == _shape(local_json)


def test_status_lists_the_runs_and_their_client_groups_while_they_run(
    deployed, fake, kube_env, tmp_path
):
    spec = cluster_spec(pods=2, clients=2, image="never-ready:1")
    platform, test = deployed("cl-status", spec)
    load = platform.cluster_load(test, spec, tmp_path, Events().write, tmp_path)
    try:
        load.start()
        done = subprocess.run(
            [sys.executable, "-m", "ftctl", "status", "--namespace", NS,
             "--kubeconfig", str(kube_env.kubeconfig)],
            capture_output=True, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("kubernetes: context ")
        assert f"run {platform.run_id}  test cl-status: DGD ftctl-cl-status (successful)" in lines
        assert (
            f"  load 'default': Job {load.name}, 2 pods: 2 pending, 0 running, 0 succeeded, "
            "0 failed" in lines
        ), lines
        progress = load.progress()  # what the progress lines show per load
        assert progress.pods == {"Pending": 2} and (progress.ok, progress.failed) == (0, 0)
    finally:
        load.kill()


def test_ctrl_c_during_a_cluster_load_deletes_the_job_and_exits_130(kube_env, fake, tmp_path):
    import signal

    scenario = _scenario(tmp_path, "cl-intr", {"requests_per_client": 400}, failure=None)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _run_argv(kube_env, scenario, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = out / "cl-intr-none" / "client_0.log.txt"
    wait_for("the Job pods' first records", lambda: first.exists() and first.stat().st_size, 120)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []
    assert not [n for n in kube_env.dgd_names() if "cl-intr" in n], "DGD left behind"


def test_stop_load_asks_every_pod_to_finish_and_keeps_what_they_sent(deployed, fake, tmp_path):
    spec = cluster_spec(pods=2, clients=2, requests_per_client=400)
    platform, test = deployed("cl-stop", spec)
    out = tmp_path / "out"
    load = platform.cluster_load(test, spec, out, Events().write, out)
    try:
        load.start()
        assert load.wait_sending()
        wait_for("records from both pods", lambda: all(p.records >= 2 for p in load.pods.values()))
        load.stop()
        assert load.wait(60)
    finally:
        load.kill()
    records = _records(out)
    assert sorted(records) == [0, 1] and all(2 <= len(r) < 400 for r in records.values())
    assert all(p.done and p.phase == "Succeeded" for p in load.pods.values())


def test_an_api_server_without_indexed_jobs_is_refused_with_exit_3_and_the_job_deleted(
    deployed, fake, tmp_path
):
    from ftctl.errors import ExitStatus, PlatformError

    spec = cluster_spec(pods=2, clients=2)
    platform, test = deployed("cl-old", spec)
    load = platform.cluster_load(test, spec, tmp_path, Events().write, tmp_path)
    fake.jobs.drop_fields = {"completionMode", "backoffLimitPerIndex"}
    try:
        with pytest.raises(PlatformError) as info:
            load.start()
    finally:
        fake.jobs.drop_fields = set()
        load.kill()
    assert info.value.exit_code == ExitStatus.INFRA
    assert "dropped completionMode: Indexed" in str(info.value)
    wait_for("the Job's pods to go", lambda: not fake.jobs.pod_names(NS))
    assert fake.jobs.job_names(NS) == []


def test_an_image_without_python_fails_the_barrier_with_the_pods_last_log_line(
    deployed, fake, tmp_path
):
    from ftctl.errors import PlatformError

    spec = cluster_spec(pods=2, clients=2, image="no-python:1")
    platform, test = deployed("cl-nopy", spec)
    load = platform.cluster_load(test, spec, tmp_path, Events().write, tmp_path)
    try:
        load.start()
        with pytest.raises(PlatformError) as info:
            load.wait_sending()
    finally:
        load.kill()
    text = str(info.value)
    assert "ended (Failed, Error, exit 128) before the start barrier" in text, text
    assert 'its log ends: exec: "no-such-python3": No such file or directory' in text, text
    assert "needs python3 with ftctl installed" in text
    assert fake.jobs.job_names(NS) == [] and fake.jobs.pod_names(NS) == []
