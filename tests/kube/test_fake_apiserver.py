"""The fake API server speaks the real protocols: the official client and kubectl use it as is."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.kube.conftest import make_test

pytestmark = pytest.mark.fake_only


@pytest.fixture
def core(kube_env):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kube_env.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def test_watch_streams_pod_events_and_expires_old_versions(fake, core, platform_factory, tmp_path):
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    platform = platform_factory()
    platform.deploy(make_test("watch"), tmp_path)
    platform.wait_ready(60)
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, "fault-tolerance-test", timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name))
    assert {name for _, name in seen} == {p.name for p in platform.pods()}
    assert {kind for kind, _ in seen} == {"ADDED"}
    fake.compact_watch()  # resourceVersion 2 is gone now
    with pytest.raises(ApiException) as info:
        for _ in watch.Watch().stream(
            core.list_namespaced_pod,
            "fault-tolerance-test",
            resource_version="2",
            timeout_seconds=1,
        ):
            pass
    assert info.value.status == 410


def test_unknown_field_selector_is_rejected_like_a_real_apiserver(fake, core):
    from kubernetes.client.exceptions import ApiException

    # status.podIP is a real pod field label (tests/realkube/test_contract.py); hostIP is not.
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod("fault-tolerance-test", field_selector="status.hostIP=1.2.3.4")
    assert info.value.status == 400
    assert "field label not supported: status.hostIP" in info.value.body


def test_exec_returns_exit_code_in_the_status_channel(fake, core, platform_factory, tmp_path):
    from kubernetes.stream import stream

    platform = platform_factory()
    platform.deploy(make_test("exec"), tmp_path)
    platform.wait_ready(60)
    pod = platform.pods("Frontend")[0].name
    out = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "fault-tolerance-test",
        command=["ps", "-ww", "-eo", "pid,args"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert "dynamo.frontend" in out
    result = platform.exec(pod, ["kill", "-s", "TERM", "424242"])
    assert result.exit_code == 1
    assert "No such process" in result.stderr
    assert platform.exec(pod, ["no-such-binary"]).exit_code == 127


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_discovers_the_dgd_resource_by_short_name(
    fake, kube_env, platform_factory, tmp_path
):
    platform = platform_factory()
    platform.deploy(make_test("kubectl"), tmp_path)
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube_env.kubeconfig), "get", "dgd", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ftctl-kubectl" in done.stdout
