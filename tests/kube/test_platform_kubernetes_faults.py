"""Faults and commands of issue 14 on Kubernetes through exec: stall (kill -s STOP / CONT, ps -o stat), run_command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kube.conftest import make_test


def _host_state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :][:1].decode()


@pytest.mark.fake_only
def test_a_stalled_worker_is_seen_stopped_by_ps_then_runs_again_without_restart(
    fake, platform_factory, tmp_path
):
    fake.main_is_pid1 = False  # PIDs in the pod are host PIDs: the kernel's state is checkable
    try:
        platform = platform_factory()
        platform.deploy(make_test("stall"), tmp_path)
        platform.wait_ready(60)
        worker = platform.pods("VllmDecodeWorker")[0]
        record = platform.stall_process(worker, "dynamo.vllm")
        assert record.pids and "error" not in record.evidence, record.evidence
        assert set(record.evidence["states_after_stop"].values()) == {"T"}
        assert [_host_state(pid) for pid in record.pids] == ["T"] * len(record.pids)
        platform.resume_process(record)
        assert "T" not in [_host_state(pid) for pid in record.pids]
        record = platform.verify_fault(record, 30)
    finally:
        fake.main_is_pid1 = True
    assert record.verified, record.evidence
    assert record.evidence["restart_expected"] is False
    assert record.pod_recovered_ns == record.resumed_ns
    assert platform.pods("VllmDecodeWorker")[0].restart_count == 0


@pytest.mark.fake_only
def test_teardown_continues_a_process_left_stopped(fake, kube_env, platform_factory, tmp_path):
    from ftctl.platforms.kubernetes import cleanup

    fake.main_is_pid1 = False
    try:
        platform = platform_factory(keep_deployment=True)
        platform.deploy(make_test("stall-teardown"), tmp_path)
        platform.wait_ready(60)
        worker = platform.pods("VllmDecodeWorker")[0]
        record = platform.stall_process(worker, "dynamo.vllm")
        assert [_host_state(pid) for pid in record.pids] == ["T"] * len(record.pids)
        platform.teardown()  # the deployment is kept: its processes must not stay frozen
        assert "T" not in [_host_state(pid) for pid in record.pids]
    finally:
        fake.main_is_pid1 = True
        cleanup(kube_env.namespace, kubeconfig=kube_env.kubeconfig)


def test_stalling_pid1_is_an_error_not_a_silent_no_op(platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("stall-pid1"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    record = platform.stall_process(worker, "dynamo.vllm")
    if record.pids != [1]:
        pytest.skip("the main process is not PID 1 on this target")
    platform.resume_process(record)
    record = platform.verify_fault(record, 5)
    assert not record.verified
    assert "PID 1" in record.evidence["error"]


def test_run_command_execs_the_argv_in_the_main_container_and_returns_its_exit(
    platform_factory, tmp_path
):
    platform = platform_factory()
    platform.deploy(make_test("run-command"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    assert platform.run_command(worker, ["true"], 30).exit_code == 0
    missing = platform.run_command(worker, ["no-such-tool", "--flag"], 30)
    assert missing.exit_code not in (0, None)
    assert "no-such-tool" in missing.stderr


def _policies(fake) -> list[dict]:
    with fake.lock:
        return [dict(obj) for obj in fake.netpols.values()]


def _pod_labels(platform, name: str) -> dict:
    return platform.core.read_namespaced_pod(name, platform.namespace).metadata.labels or {}


@pytest.mark.fake_only
def test_a_partition_policy_that_a_cni_enforces_is_verified_and_removed_on_heal(
    fake, platform_factory, tmp_path
):
    fake.enforce_network_policies = True
    try:
        platform = platform_factory()
        platform.deploy(make_test("partition"), tmp_path)
        platform.wait_ready(60)
        worker = platform.pods("VllmDecodeWorker")[0]
        record = platform.partition(worker)
        (policy,) = _policies(fake)
        labels = policy["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "ftctl"
        assert labels["ftctl.io/run-id"] == platform.run_id
        assert policy["spec"]["podSelector"]["matchLabels"] == {
            "ftctl.io/partition": _pod_labels(platform, worker.name)["ftctl.io/partition"]
        }
        assert record.evidence["probe_during"]["exit_code"] == 1  # the frontend cannot connect
        platform.heal_partition(record)
        assert _policies(fake) == []
        assert "ftctl.io/partition" not in _pod_labels(platform, worker.name)
        record = platform.verify_fault(record, 10)
    finally:
        fake.enforce_network_policies = False
    assert record.verified, record.evidence
    assert record.evidence["probe_after"]["exit_code"] == 0


@pytest.mark.fake_only
def test_a_partition_a_cni_does_not_enforce_is_not_verified_and_says_why(
    fake, platform_factory, tmp_path
):
    platform = platform_factory()
    platform.deploy(make_test("partition-no-cni"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    record = platform.partition(worker)
    platform.heal_partition(record)
    record = platform.verify_fault(record, 10)
    assert not record.verified
    assert "does not enforce NetworkPolicies" in record.evidence["error"]
    assert _policies(fake) == []


@pytest.mark.fake_only
def test_teardown_and_cleanup_remove_partition_policies_left_behind(
    fake, kube_env, platform_factory, tmp_path
):
    from ftctl.platforms.kubernetes import cleanup

    platform = platform_factory()
    platform.deploy(make_test("partition-left"), tmp_path)
    platform.wait_ready(60)
    platform.partition(platform.pods("VllmDecodeWorker")[0])  # never healed
    assert len(_policies(fake)) == 1
    platform.teardown()
    assert _policies(fake) == []
    # A crashed run's policy (the process died before its teardown): cleanup removes it.
    other = platform_factory(keep_deployment=True)
    other.deploy(make_test("partition-crash"), tmp_path / "crash")
    other.wait_ready(60)
    other.partition(other.pods("VllmDecodeWorker")[0])
    removed = cleanup(kube_env.namespace, kubeconfig=kube_env.kubeconfig)
    assert any(name.startswith("networkpolicy/ftctl-partition-") for name in removed)
    assert _policies(fake) == []
