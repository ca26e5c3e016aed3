"""API errors reach the user as one clear PlatformError line (exit 3), never a traceback."""

from __future__ import annotations

import pytest

from ftctl.errors import ExitStatus, PlatformError
from ftctl.platforms.kube.procs import PS_ARGV
from tests.kube.conftest import make_test

pytestmark = pytest.mark.fake_only

DGD_PATH = r"/dynamographdeployments$"


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, "forbidden: the account lacks RBAC permission (HTTP 403): injected 403"),
        (404, "not found (HTTP 404)"),
        (409, "conflict: the object exists or was changed concurrently (HTTP 409)"),
        (500, "API server error (HTTP 500): injected 500"),
    ],
)
def test_create_errors_name_the_action_and_the_status(
    fake, platform_factory, tmp_path, status, words
):
    fake.fail("POST", DGD_PATH, status)
    platform = platform_factory()
    with pytest.raises(PlatformError) as info:
        platform.deploy(make_test(f"err-{status}"), tmp_path)
    message = info.value.message
    assert message.startswith(
        f"create DynamoGraphDeployment fault-tolerance-test/ftctl-err-{status}: "
    )
    assert words in message
    assert info.value.exit_code == ExitStatus.INFRA


def test_expired_list_is_reported_as_expired(fake, platform_factory, tmp_path):
    # Without watches (FTCTL_KUBE_WATCH=0) pods() lists the API itself: a 410 there is named.
    # With them, a 410 is the watch's to handle: tests/kube/test_watch.py.
    platform = platform_factory(watch=False)
    platform.deploy(make_test("err-410"), tmp_path)
    fake.fail("GET", r"/pods$", 410)
    with pytest.raises(PlatformError, match=r"list pods in fault-tolerance-test: expired"):
        platform.pods()


@pytest.mark.parametrize("watch", [True, False], ids=["watch", "poll"])
def test_server_error_while_waiting_is_not_swallowed(fake, platform_factory, tmp_path, watch):
    # Every read of the DGD fails, the watch's list included: the cache holds nothing, so the
    # wait reads the API itself and meets the error, as the polling wait does.
    fake.fail("GET", r"/dynamographdeployments(/ftctl-err-wait)?$", 500, times=10_000)
    platform = platform_factory(watch=watch)
    platform.deploy(make_test("err-wait"), tmp_path)
    with pytest.raises(PlatformError, match=r"read DynamoGraphDeployment .*HTTP 500"):
        platform.wait_ready(30)
    fake.faults.clear()


def test_exec_handshake_failure_is_a_clear_error(fake, platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("err-exec"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    fake.fail("GET", r"/exec$", 403)
    with pytest.raises(PlatformError) as info:
        platform.terminate_process(worker, "dynamo.vllm", "SIGKILL")
    assert "exec 'ps' in pod" in info.value.message
    assert "WebSocket handshake with the API server failed" in info.value.message
    assert "403" in info.value.message


def test_exec_stream_closed_without_status_does_not_crash(fake, platform_factory, tmp_path):
    platform = platform_factory()
    platform.deploy(make_test("err-nostatus"), tmp_path)
    platform.wait_ready(60)
    worker = platform.pods("VllmDecodeWorker")[0]
    fake.exec_mode = "no_status"
    result = platform.exec(worker.name, list(PS_ARGV))
    assert result.exit_code is None and result.status is None
    assert "dynamo.vllm" in result.stdout
    record = platform.verify_fault(platform.terminate_process(worker, "dynamo.vllm", "SIGKILL"), 60)
    assert record.evidence["kill_exit_code"] is None
    assert record.verified  # the effect is judged from the pod, not from the lost status


def test_unreachable_api_server_is_an_infrastructure_error(tmp_path):
    from ftctl.platforms.kubernetes import KubernetesPlatform
    from tests.kube.fake_apiserver import FakeApiServer, FakeCluster
    from tests.kube.pod_processes import free_port

    server = FakeApiServer(FakeCluster(tmp_path, tmp_path))
    server.port = free_port()  # never started: nothing listens there
    kubeconfig = server.write_kubeconfig(tmp_path / "kc")
    platform = KubernetesPlatform(kubeconfig=kubeconfig, skip_service_restart=True)
    platform.configuration.retries = 0
    with pytest.raises(PlatformError, match="cannot reach the API server") as info:
        platform.deploy(make_test("unreachable"), tmp_path)
    assert "\n" not in info.value.message
