"""End to end through the Kubernetes path: real Dynamo processes, real faults, real recovery.

Every test here runs on the fake API server and on the real kube-apiserver with the operator
and kubelet stand-ins (tests/kube/conftest.py), except the ones marked ``fake_only``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli
from tests.kube.conftest import REPO, make_test
from tests.kube.load import Load, recovery_time_s

NS = "fault-tolerance-test"
BOTH_TARGETS = True


def _run_with_fault(platform, tmp_path, fault, settle_s: float):
    platform.deploy(make_test(f"e2e-{fault}"), tmp_path)
    platform.wait_ready(60)
    load = Load(platform.endpoint(), "tiny", clients=3).start()
    try:
        time.sleep(2.0)
        if fault == "kill":
            pod = platform.pods("VllmDecodeWorker")[0]
            record = platform.terminate_process(pod, "dynamo.vllm", "SIGKILL")
        else:
            pod = platform.pods("Frontend")[0]
            record = platform.delete_pod(pod, force=True)
        record = platform.verify_fault(record, 60)
        time.sleep(settle_s)
    finally:
        records = load.stop()
    return record, records


def test_worker_sigkill_under_load_is_verified_and_recovery_is_measured(
    host_pids, platform_factory, tmp_path
):
    platform = platform_factory()
    record, records = _run_with_fault(platform, tmp_path, "kill", settle_s=11.0)
    assert record.verified and record.evidence["after"]["last_terminated"]["exit_code"] == 137
    # Readiness and the fault's effect came through watches that were served, not by polling.
    stats = platform.watch_stats()
    assert set(stats) == {"pods", "dgd"}
    assert all(s["watching"] and s["watch_failures"] == 0 for s in stats.values()), stats
    before = [r for r in records if r.end_ns < record.t_ns]
    assert before and all(r.ok for r in before)
    failed = [r for r in records if not r.ok]
    assert failed, "a SIGKILLed worker without migration must fail some requests"
    recovery = recovery_time_s(records, record.t_ns, window_s=10.0)
    assert recovery is not None, "the graph never recovered"
    assert recovery > 0
    print(
        f"\nworker SIGKILL: {len(records)} requests, {len(failed)} failed, "
        f"client recovery {recovery:.2f}s, pod recovery {record.pod_recovery_time_s:.2f}s"
    )


def test_frontend_pod_deletion_keeps_the_endpoint_usable(platform_factory, tmp_path):
    platform = platform_factory()
    record, records = _run_with_fault(platform, tmp_path, "delete", settle_s=4.0)
    url_before = platform.endpoint()
    assert record.verified and record.evidence["replacement"] != record.pod
    after = [r for r in records if r.start_ns > record.pod_recovered_ns]
    assert after and all(r.ok for r in after), "requests after the replacement was ready failed"
    recovery = recovery_time_s(records, record.t_ns, window_s=3.0)
    assert recovery is not None
    assert platform.endpoint() == url_before  # the same URL served before and after the delete
    print(
        f"\nfrontend pod delete: {len(records)} requests, "
        f"{sum(not r.ok for r in records)} failed, client recovery {recovery:.2f}s, "
        f"pod recovery {record.pod_recovery_time_s:.2f}s"
    )


def _ftctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftctl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


def test_cli_cleanup_removes_a_crashed_runs_dgd(kube_env, platform_factory, tmp_path):
    platform = platform_factory(keep_deployment=True)
    platform.deploy(make_test("crashed"), tmp_path)
    platform.teardown()
    done = _ftctl("cleanup", "--namespace", NS, "--kubeconfig", str(kube_env.kubeconfig))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("kubernetes: context ")
    assert "ftctl-crashed" in done.stdout
    again = _ftctl("cleanup", "--namespace", NS, "--kubeconfig", str(kube_env.kubeconfig))
    assert "nothing to clean up" in again.stdout


def test_cli_refuses_a_system_namespace_with_exit_2(kube_env):
    done = _ftctl("cleanup", "--namespace", "kube-system", "--kubeconfig", str(kube_env.kubeconfig))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("ftctl: error: kubernetes: refusing to use namespace")
    assert "Traceback" not in done.stderr


@pytest.mark.fake_only  # injects a 403 into the listing
def test_cli_forbidden_listing_exits_3_with_one_line(fake, kube_env):
    fake.fail("GET", r"/dynamographdeployments$", 403)
    result = run_cli("cleanup", "--kubeconfig", str(kube_env.kubeconfig), expect=3)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "forbidden" in lines[0] and "HTTP 403" in lines[0]


DRIVER = """
import sys, time
from pathlib import Path
from ftctl.platforms.kubernetes import KubernetesPlatform
from tests.kube.conftest import make_test
platform = KubernetesPlatform(kubeconfig=sys.argv[1], skip_service_restart=True)
try:
    platform.deploy(make_test("interrupted"), Path(sys.argv[2]))
    print(platform.endpoint(), flush=True)
    time.sleep(120)
except KeyboardInterrupt:
    print("interrupted", flush=True)
finally:
    platform.teardown()
    print("torn down", flush=True)
"""


def test_ctrl_c_mid_run_deletes_the_dgd_and_closes_the_forward(
    kube_env, platform_factory, tmp_path
):
    import signal
    import socket

    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(kube_env.kubeconfig), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert platform_factory()._get_dgd("ftctl-interrupted") is not None
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in out and "torn down" in out
    assert platform_factory()._get_dgd("ftctl-interrupted") is None
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", port))


def _kube_scenario(tmp_path, name: str, failure: str | None, requests: int = 40):
    import yaml

    document = {
        "apiVersion": "ftctl/v1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "deployment": {"backend": "vllm", "model": "tiny"},
        "load": {
            "client": "legacy",
            "clients": 2,
            "requests_per_client": requests,
            "request_rate": 4,
            "input_tokens": 16,
            "output_tokens": 8,
            "retries": 0,
        },
        "checks": [{"kind": "fault_verified"}, {"kind": "min_requests", "min": 20}],
    }
    if failure:
        document["failures"] = [{"at": "4s", "type": failure}]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _ftctl_run_argv(kube_env, scenario, out, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ftctl", "run", str(scenario), "--platform", "kubernetes",
        "--kubeconfig", str(kube_env.kubeconfig), "--namespace", NS,
        "--skip-service-restart", "--output-dir", str(out), *extra,
    ]  # fmt: skip


def test_ftctl_run_frontend_pod_deletion_keeps_clients_going(kube_env, tmp_path):
    import json

    scenario = _kube_scenario(tmp_path, "kube-fe", "frontend_pod")
    out = tmp_path / "out"
    done = subprocess.run(
        _ftctl_run_argv(kube_env, scenario, out), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "kube-fe-frontend_pod" / "report.json").read_text())
    fault = report["faults"][0]
    assert fault["verified"] and fault["evidence"]["replacement"] != fault["pod"]
    after = report["result"]["overall"]["phases"]["after"]
    assert after["ok"] > 0, "clients kept going through the resilient endpoint"
    assert report["result"]["overall"]["recovery"]["recovered"]


def test_ftctl_run_deploy_never_ready_exits_3_and_leaves_nothing(kube_env, tmp_path):
    scenario = _kube_scenario(tmp_path, "kube-never", None)
    out = tmp_path / "out"
    done = subprocess.run(
        _ftctl_run_argv(
            kube_env, scenario, out, "--image", "never-ready:1", "--ready-timeout", "8"
        ),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "ready" in done.stdout + done.stderr
    assert not [n for n in kube_env.dgd_names() if "kube-never" in n], "DGD left behind"


def test_ftctl_run_ctrl_c_deletes_the_dgd_and_exits_130(kube_env, tmp_path):
    import signal

    scenario = _kube_scenario(tmp_path, "kube-intr", "decode_worker", requests=200)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _ftctl_run_argv(kube_env, scenario, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline
        and not (out / "kube-intr-decode_worker" / "client_0.log.txt").exists()
    ):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert not [n for n in kube_env.dgd_names() if "kube-intr" in n], "DGD left behind"


@pytest.mark.parametrize("operator_labels", ["dcd", "grove"], indirect=True)
def test_ftctl_run_through_kubernetes_kills_a_real_worker_and_reports(
    kube_env, operator_labels, tmp_path
):
    """The whole CLI on the Kubernetes path: DGD applied, exec kill verified, verdict, teardown.

    Run with pods labelled as each upstream operator path labels them: ``dcd`` pods carry
    ``nvidia.com/dynamo-component``, Grove pods only ``nvidia.com/selector`` and the types.
    """
    import json

    import yaml

    scenario = tmp_path / "kube-kill.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "ftctl/v1",
                "kind": "Scenario",
                "metadata": {"name": "kube-kill"},
                "deployment": {"backend": "vllm", "model": "tiny"},
                "load": {
                    "client": "legacy",
                    "clients": 2,
                    "requests_per_client": 40,
                    "request_rate": 4,
                    "input_tokens": 16,
                    "output_tokens": 8,
                    "retries": 0,
                },
                "failures": [{"at": "4s", "type": "decode_worker"}],
                "checks": [{"kind": "fault_verified"}, {"kind": "min_requests", "min": 60}],
            }
        )
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftctl",
            "run",
            str(scenario),
            "--platform",
            "kubernetes",
            "--kubeconfig",
            str(kube_env.kubeconfig),
            "--namespace",
            NS,
            "--skip-service-restart",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kubernetes: context " in done.stderr  # target named before anything changed
    report = json.loads((out / "kube-kill-decode_worker" / "report.json").read_text())
    fault = report["faults"][0]
    assert fault["verified"] and fault["service"] == "VllmDecodeWorker"
    if kube_env.main_is_pid1:  # SIGKILL to PID 1 is ignored: SIGINT was sent instead
        assert fault["evidence"]["pid1"]
    else:  # the worker is not PID 1 (kubelet stand-in): SIGKILL reached it
        assert fault["evidence"]["after"]["last_terminated"]["exit_code"] == 137
    logs = list((out / "kube-kill-decode_worker" / "VllmDecodeWorker").glob("*.log"))
    assert logs, "worker logs were collected"
    manifests = list((out / "kube-kill-decode_worker" / "VllmDecodeWorker").glob("*.yaml"))
    labels = yaml.safe_load(manifests[0].read_text())["metadata"]["labels"]
    assert ("nvidia.com/dynamo-component" in labels) == (operator_labels == "dcd"), labels
    assert labels["nvidia.com/selector"] == "ftctl-kube-kill-vllmdecodeworker", labels
    # Every pod was scraped through a port-forward while the test ran; its resources came
    # from the kubelet's stats through the node proxy (unavailable while a pod restarts).
    from ftctl.results.server import read_server_series

    pods = read_server_series(out / "kube-kill-decode_worker")
    for service in ("Frontend", "VllmDecodeWorker"):
        scraped = [s for p in pods if p.service == service for s in p.scrapes]
        assert any(s.ok and s.samples for s in scraped), f"no good scrape of {service}"
        resources = [
            json.loads(line)
            for f in (out / "kube-kill-decode_worker" / service).glob("*.resources.jsonl")
            for line in f.read_text().splitlines()
        ]
        assert all(r["ok"] or "kubelet stats unavailable" in r["error"] for r in resources)
        assert any(r["ok"] and r["rss_bytes"] > 0 for r in resources), resources[:3]
    assert not [n for n in kube_env.dgd_names() if "kube-kill" in n], "DGD deleted at teardown"


@pytest.mark.fake_only  # the fake refuses every port-forward
def test_ftctl_run_with_a_broken_port_forward_exits_3_with_the_cause_not_a_verdict(
    fake, kube_env, tmp_path
):
    import json

    scenario = _kube_scenario(tmp_path, "kube-pf", None, requests=200)
    out = tmp_path / "out"
    fake.fail("GET", r"/portforward$", 404, times=100_000, message="pod proxy not found")
    try:
        done = subprocess.run(
            _ftctl_run_argv(kube_env, scenario, out, "--endpoint-timeout", "3"),
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        fake.faults.clear()
    text = done.stdout + done.stderr
    assert done.returncode == 3, text
    causes = [
        line for line in text.splitlines() if "error: kubernetes: no frontend reachable" in line
    ]
    assert len(causes) == 1, text
    assert "pod proxy not found" in causes[0] and "port-forward" in causes[0]
    # Each pod's failure is logged once, however many connections failed.
    logged = [line for line in done.stderr.splitlines() if "endpoint: cannot forward" in line]
    assert len(logged) == 1, done.stderr
    report = json.loads((out / "kube-pf-none" / "report.json").read_text())
    overall = report["result"]["overall"]["phases"]["overall"]
    assert overall["endpoint_failures"] >= 2, overall
    assert "Endpoint" in done.stdout  # the phase table has the column
    assert not [n for n in kube_env.dgd_names() if "kube-pf" in n], "DGD deleted at teardown"
