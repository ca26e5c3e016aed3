"""KubernetesPlatform against the fake API server (or a real cluster with --kubeconfig)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftctl.errors import ExitStatus, PlatformError, UsageError
from tests.kube.conftest import make_test

NS = "fault-tolerance-test"


def test_deploy_waits_ready_and_lists_pods_by_role(platform_factory, tmp_path):
    lines: list[str] = []
    platform = platform_factory(log=lines.append)
    platform.deploy(make_test("ready"), tmp_path)
    platform.wait_ready(60)
    pods = platform.pods()
    assert [(p.service, p.role, p.index, p.ready) for p in pods] == [
        ("Frontend", "frontend", 0, True),
        ("VllmDecodeWorker", "decode", 0, True),
    ]
    assert lines[0].startswith("kubernetes: context ")
    assert lines[0].endswith(f"namespace {NS}")


def test_refused_namespace_is_a_usage_error_before_anything_happens(kube_env):
    from ftctl.platforms.kubernetes import KubernetesPlatform

    with pytest.raises(UsageError) as info:
        KubernetesPlatform(namespace="kube-system", kubeconfig=kube_env.kubeconfig)
    assert info.value.exit_code == ExitStatus.INVALID


def test_killing_pid1_sends_sigint_and_the_restart_is_verified(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("kill-pid1"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    record = platform.terminate_process(worker, "dynamo.vllm", "SIGKILL")
    assert record.pids == [1]
    assert record.evidence["signal_sent"] == "SIGINT"
    record = platform.verify_fault(record, 60)
    assert record.verified, record.evidence
    assert (
        record.evidence["after"]["restart_count"] == record.evidence["before"]["restart_count"] + 1
    )
    assert record.evidence["after"]["last_terminated"] is not None
    assert record.pod_recovered_ns is not None and record.pod_recovered_ns > record.t_ns
    assert platform.pods("VllmDecodeWorker")[0].restart_count == 1


@pytest.mark.fake_only
def test_sigkill_of_a_non_pid1_worker_exits_137(fake, platform_factory, tmp_path):
    fake.main_is_pid1 = False
    try:
        platform = platform_factory()
        platform.deploy(make_test("kill-137"), tmp_path)
        platform.wait_ready(60)
        worker = platform.pods("VllmDecodeWorker")[0]
        record = platform.verify_fault(
            platform.terminate_process(worker, "dynamo.vllm", "SIGKILL"), 60
        )
    finally:
        fake.main_is_pid1 = True
    assert record.evidence["signal_sent"] == "SIGKILL"
    assert record.verified
    assert record.evidence["after"]["last_terminated"]["exit_code"] == 137


def _proc_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(part.decode() for part in raw.split(b"\0") if part)


def test_process_list_holds_whole_command_lines_past_80_columns(platform_factory, tmp_path):
    # ps writing to a pipe cuts lines at 80 columns; a long install path then hides the
    # module name a terminate_process fault matches on.
    platform = platform_factory()
    platform.deploy(make_test("ps-width"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    listed = [cmd for _, cmd in platform.list_processes(worker.name) if not cmd.startswith("ps ")]
    # The pod's processes are host processes here (the fake may renumber the main one to 1).
    on_host = {_proc_cmdline(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit()}
    assert any(len(cmd) > 80 for cmd in listed), listed
    assert [cmd for cmd in listed if cmd not in on_host] == []


def test_a_process_that_does_not_exist_is_not_verified(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("kill-none"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    record = platform.verify_fault(platform.terminate_process(worker, "no-such-proc", "SIGKILL"), 5)
    assert not record.verified
    assert "no process matching" in record.evidence["error"]


def test_deleted_pod_is_saved_then_replaced_under_a_new_name(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("delete"), tmp_path)
    platform.wait_ready(60)
    old = platform.pods("VllmDecodeWorker")[0]
    record = platform.verify_fault(platform.delete_pod(old, force=True), 60)
    assert record.verified, record.evidence
    new = platform.pods("VllmDecodeWorker")
    assert (
        len(new) == 1 and new[0].name != old.name and new[0].name == record.evidence["replacement"]
    )
    saved = tmp_path / "VllmDecodeWorker"
    for suffix in (".yaml", ".log", ".metrics.log", ".events.log"):
        assert (saved / f"{old.name}.before_delete{suffix}").is_file(), suffix
    assert "Registered endpoint" in (saved / f"{old.name}.before_delete.log").read_text()
    assert "dynamo_component" in (saved / f"{old.name}.before_delete.metrics.log").read_text()
    platform.wait_for_recovery(60)


def test_collect_logs_writes_current_previous_metrics_yaml_and_events(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("logs"), tmp_path / "run")
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    platform.verify_fault(platform.terminate_process(worker, "dynamo.vllm", "SIGKILL"), 60)
    platform.collect_logs(tmp_path / "out")
    folder = tmp_path / "out" / "VllmDecodeWorker"
    assert (folder / f"{worker.name}.previous.log").read_text().strip()
    assert "restartCount: 1" in (folder / f"{worker.name}.yaml").read_text()
    assert "Started" in (folder / f"{worker.name}.events.log").read_text()
    front = platform.pods("Frontend")[0].name
    assert "dynamo_frontend" in (tmp_path / "out" / "Frontend" / f"{front}.metrics.log").read_text()
    assert (tmp_path / "out" / "dgd.yaml").is_file()


def test_log_pattern_is_found_in_the_service_logs(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("pattern"), tmp_path)
    platform.wait_ready(60)
    assert platform.wait_for_log_pattern("VllmDecodeWorker", r"Registered endpoint", 10) > 0
    with pytest.raises(PlatformError, match="matched 'never-printed'"):
        platform.wait_for_log_pattern("Frontend", "never-printed", 1)


def test_rolling_upgrade_replaces_the_pods_and_waits_ready(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("rollout"), tmp_path)
    platform.wait_ready(60)
    before = {p.name for p in platform.pods("VllmDecodeWorker")}
    platform.rolling_upgrade(["VllmDecodeWorker"], 60)
    after = platform.pods("VllmDecodeWorker")
    assert len(after) == 1 and after[0].ready and after[0].name not in before


def test_deploy_that_never_becomes_ready_fails_clearly_and_teardown_leaves_nothing(
    platform_factory, tmp_path, kube_env
):
    platform = platform_factory()
    platform.deploy(make_test("stuck", image="ftctl.invalid/never-ready:0"), tmp_path)
    with pytest.raises(PlatformError) as info:
        platform.wait_ready(3)
    message = info.value.message
    assert "not ready after 3s" in message
    assert "VllmDecodeWorker 0/1 ready" in message
    assert "recent events" in message
    assert info.value.exit_code == ExitStatus.INFRA
    platform.teardown()
    assert platform._get_dgd("ftctl-stuck") is None
    assert platform._list_pods(dgd="ftctl-stuck") == []


def test_deploy_replaces_an_existing_dgd_of_the_same_name(platform_factory, tmp_path):
    first = platform_factory()
    first.deploy(make_test("same"), tmp_path)
    first.wait_ready(60)
    old = {p.name for p in first.pods()}
    second = platform_factory()
    second.deploy(make_test("same"), tmp_path)
    second.wait_ready(60)
    assert not old & {p.name for p in second.pods()}


@pytest.mark.fake_only
def test_etcd_and_nats_are_restarted_unless_skipped(fake, platform_factory, tmp_path):
    fake.add_statefulset(NS, "dynamo-platform-etcd")
    fake.add_statefulset(NS, "dynamo-platform-nats")
    try:
        platform = platform_factory(skip_service_restart=False)
        platform.deploy(make_test("restart-svc"), tmp_path)
        history = {k[1]: v["status"]["scaleHistory"] for k, v in fake.statefulsets.items()}
    finally:
        fake.statefulsets.clear()
    assert history == {"dynamo-platform-etcd": [0, 1], "dynamo-platform-nats": [0, 1]}


def test_teardown_deletes_the_dgd_and_is_idempotent(platform_factory, tmp_path):
    said: list[str] = []
    platform = platform_factory(log=said.append)
    platform.deploy(make_test("teardown"), tmp_path)
    platform.endpoint()
    platform.teardown()
    platform.teardown()
    assert platform._get_dgd("ftctl-teardown") is None
    # The first teardown deleted it; the second found nothing and says so.
    teardown_lines = [
        line for line in said if "ftctl-teardown " in line or line.endswith("ftctl-teardown")
    ]
    assert teardown_lines[-2:] == [
        "kubernetes: DynamoGraphDeployment ftctl-teardown deleted",
        "kubernetes: DynamoGraphDeployment ftctl-teardown already gone",
    ]


def test_cleanup_removes_only_what_ftctl_labelled(platform_factory, tmp_path, kube_env):
    from ftctl.platforms.kubernetes import cleanup

    platform = platform_factory(keep_deployment=True)
    platform.deploy(make_test("leftover"), tmp_path)
    platform.teardown()  # keep_deployment: the DGD survives, as after a crash
    assert platform._get_dgd("ftctl-leftover") is not None
    removed = cleanup(NS, kubeconfig=kube_env.kubeconfig)
    assert "ftctl-leftover" in removed
    assert platform_factory()._get_dgd("ftctl-leftover") is None


@pytest.mark.fake_only
def test_a_lagging_status_falls_back_to_the_pods(fake, platform_factory, tmp_path):
    fake.frozen_status.add("ftctl-lagging")
    try:
        platform = platform_factory()
        platform.deploy(make_test("lagging"), tmp_path)
        platform.wait_ready(60)
        dgd = platform._get_dgd("ftctl-lagging")
    finally:
        fake.frozen_status.discard("ftctl-lagging")
    assert "status" not in dgd  # the apiserver drops status on create; no operator wrote one
    assert all(p.ready for p in platform.pods())
