"""The operator and kubelet stand-ins, seen only through the real apiserver's API."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ftctl.platforms.kube.dgd import build_dgd
from tests.kube.conftest import make_test
from tests.realkube.conftest import NAMESPACE

G, V, P = "nvidia.com", "v1alpha1", "dynamographdeployments"
LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"


def wait_for(what: str, check: Callable[[], object], timeout: float = 90.0) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:.0f}s")


@pytest.fixture(scope="module")
def graph(real_cluster):
    """A DGD of ftctl's builder (1 frontend, 2 workers), ready; deleted afterwards."""
    from kubernetes import client

    api = real_cluster.api
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    dgd = build_dgd(make_test("standins", dp=2), "standins")
    dgd["spec"]["services"]["Frontend"]["replicas"] = 1
    name = dgd["metadata"]["name"]
    custom.create_namespaced_custom_object(G, V, NAMESPACE, P, dgd)

    def ready():
        got = custom.get_namespaced_custom_object(G, V, NAMESPACE, P, name)
        return got if (got.get("status") or {}).get("state") == "successful" else None

    wait_for("DGD successful", ready)
    yield core, custom, name
    try:
        custom.delete_namespaced_custom_object(G, V, NAMESPACE, P, name)
    except client.ApiException:
        pass


def _pods(core, name: str, service: str | None = None) -> list:
    selector = f"{LABEL_DGD}={name}"
    if service:
        selector += f",nvidia.com/dynamo-component={service}"
    return [
        p
        for p in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        if p.metadata.deletion_timestamp is None
    ]


def test_one_pod_per_replica_with_the_dcd_paths_names_labels_and_owner(graph):
    core, custom, name = graph
    dgd = custom.get_namespaced_custom_object(G, V, NAMESPACE, P, name)
    workers = _pods(core, name, "VllmDecodeWorker")
    assert len(workers) == 2 and len(_pods(core, name, "Frontend")) == 1
    pod = workers[0]
    assert pod.metadata.name.startswith(f"{name}-vllmdecodeworker-")
    labels = pod.metadata.labels
    assert labels["nvidia.com/selector"] == f"{name}-vllmdecodeworker"
    assert labels["nvidia.com/dynamo-namespace"] == f"dynamo-{name}"
    assert labels["nvidia.com/dynamo-component-type"] == "worker"
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == ("DynamoGraphDeployment", dgd["metadata"]["uid"], True)  # fmt: skip
    assert pod.spec.containers[0].name == "main"
    assert "nvidia.com/finalizer" in dgd["metadata"]["finalizers"]
    cond = dgd["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "True", "all_resources_are_ready")  # fmt: skip


def test_exec_runs_real_ps_and_kill_scoped_to_the_pod(graph, real_cluster):
    from ftctl.platforms.kube.procs import PS_ARGV
    from ftctl.platforms.kube.stream import pod_exec

    core, _, name = graph
    pod = _pods(core, name, "VllmDecodeWorker")[0].metadata.name
    configuration = core.api_client.configuration
    ps = pod_exec(configuration, NAMESPACE, pod, list(PS_ARGV))
    assert ps.exit_code == 0 and "dynamo.vllm" in ps.stdout
    assert "kube-apiserver" not in ps.stdout  # only the pod's process tree
    stranger = real_cluster.plane._procs["etcd"].pid
    kill = pod_exec(configuration, NAMESPACE, pod, ["kill", "-s", "TERM", str(stranger)])
    assert kill.exit_code == 1 and "No such process" in kill.stderr
    assert pod_exec(configuration, NAMESPACE, pod, ["true"]).exit_code == 0
    # kube-apiserver 1.20 passed the client's WebSocket offer through unchanged (no SPDY
    # translation) and renamed stdout/stderr to output/error; the kubelet answered v4.
    kind, offer, keys = real_cluster.kubelet.upgrades[-1]
    assert (kind, offer) == ("exec", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
    assert {"command", "output", "error"} <= set(keys) and "stdout" not in keys


def test_port_forward_reaches_the_frontend_through_the_apiserver(graph, real_cluster):
    from ftctl.platforms.kube.stream import http_get_via_forward

    core, _, name = graph
    pod = _pods(core, name, "Frontend")[0].metadata.name
    body = http_get_via_forward(core.api_client.configuration, NAMESPACE, pod, 8000, "/v1/models")
    assert '"tiny"' in body
    kind, offer, keys = real_cluster.kubelet.upgrades[-1]
    assert kind == "portForward" and "port" in keys and "ports" not in keys
    assert offer == ["v5.channel.k8s.io", "v4.channel.k8s.io"]


def test_a_deleted_pod_is_stopped_then_removed_and_replaced(graph):
    core, _, name = graph
    old = _pods(core, name, "VllmDecodeWorker")[0]
    answer = core.delete_namespaced_pod(old.metadata.name, NAMESPACE)
    assert answer.metadata.deletion_timestamp is not None  # graceful: the kubelet finishes it

    def gone():
        names = [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items]
        return old.metadata.name not in names

    wait_for("old pod removed by the kubelet", gone)
    fresh = wait_for("two workers again", lambda: len(_pods(core, name, "VllmDecodeWorker")) == 2)
    assert fresh
    assert old.metadata.name not in [p.metadata.name for p in _pods(core, name)]


def test_previous_log_is_400_until_a_restart(graph):
    from kubernetes.client import ApiException

    core, _, name = graph
    pod = _pods(core, name, "Frontend")[0].metadata.name
    assert core.read_namespaced_pod_log(pod, NAMESPACE, container="main").strip()
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod, NAMESPACE, container="main", previous=True)
    assert caught.value.status == 400 and "previous terminated container" in caught.value.body


def test_deleting_the_dgd_removes_its_pods_and_the_finalizer(real_cluster):
    from kubernetes import client

    core, custom = client.CoreV1Api(real_cluster.api), client.CustomObjectsApi(real_cluster.api)
    dgd = build_dgd(make_test("standins-gone"), "gone")
    name = dgd["metadata"]["name"]
    custom.create_namespaced_custom_object(G, V, NAMESPACE, P, dgd)
    wait_for("pods created", lambda: len(_pods(core, name)) == 2)
    custom.delete_namespaced_custom_object(G, V, NAMESPACE, P, name)

    def all_gone():
        try:
            custom.get_namespaced_custom_object(G, V, NAMESPACE, P, name)
            return False
        except client.ApiException as exc:
            return (
                exc.status == 404
                and not core.list_namespaced_pod(
                    NAMESPACE, label_selector=f"{LABEL_DGD}={name}"
                ).items
            )

    wait_for("DGD and pods gone", all_gone)
