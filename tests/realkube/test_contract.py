"""The differential contract: the same client calls against the fake and the real apiserver.

Every case runs twice, on ``fake`` (tests/kube/fake_apiserver.py) and on ``real`` (kube-apiserver
1.20.2 + etcd with the real DGD CRD, marker ``real_apiserver``), made the way ftctl makes them:
ftctl's own configuration loader and stream helpers where they exist, else the official
``kubernetes`` client. They compare the shapes ftctl reads (keys, types, status codes, reasons,
Status details), never timestamps or uids. Objects are created directly through the API in the
suite's own namespaces, so the fake's operator (which runs pods for a DGD) only ever sees DGDs
without replicas, like the real apiserver that has no operator at all.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

G, V, P = "nvidia.com", "v1alpha1", "dynamographdeployments"
NS = "contract"  # DGDs, pods and events the suite creates itself
RUN_NS = "contract-run"  # the running pod of the pod-subresource cases
NODE = "contract-node"  # pods bound to it have no kubelet behind them

TARGETS = [
    pytest.param("fake", id="fake"),
    pytest.param("real", id="real", marks=pytest.mark.real_apiserver),
]


@dataclass
class Target:
    """One apiserver under contract and the clients on it."""

    name: str
    kubeconfig: Path
    configuration: Any  # kubernetes.client.Configuration, from ftctl's own loader
    core: Any  # kubernetes.client.CoreV1Api
    custom: Any  # kubernetes.client.CustomObjectsApi
    fake: Any  # the FakeCluster, or None on the real apiserver


@pytest.fixture(scope="session")
def fake_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    from tests.kube.conftest import tokenizer_dir
    from tests.kube.fake_apiserver import FakeApiServer, FakeCluster

    work = tmp_path_factory.mktemp("contract-fake")
    cluster = FakeCluster(work, tokenizer_dir(work), restart_delay=0.5)
    server = FakeApiServer(cluster).start()
    try:
        yield cluster, server.write_kubeconfig(work / "kubeconfig")
    finally:
        server.stop()


@pytest.fixture(scope="session", params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    from kubernetes import client

    from ftctl.platforms.kube.client import load_configuration

    if request.param == "fake":
        fake, kubeconfig = request.getfixturevalue("fake_kube")
    else:
        fake, kubeconfig = None, request.getfixturevalue("real_kube").kubeconfig
    configuration, _ = load_configuration(kubeconfig, namespace=NS)
    with client.ApiClient(configuration) as api, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real one's self-signed loopback certificate
        core = client.CoreV1Api(api)
        for ns in (NS, RUN_NS):
            core.create_namespace({"metadata": {"name": ns}})
        yield Target(
            request.param, kubeconfig, configuration, core, client.CustomObjectsApi(api), fake
        )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def refused(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the Status body of a call that must fail."""
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as err:
        call()
    return err.value.status, json.loads(err.value.body)


def shape(obj: Any) -> Any:
    """Keys and value types, recursively (what ftctl can read), without the values."""
    if isinstance(obj, dict):
        return {k: shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shape(v) for v in obj]
    return type(obj).__name__


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:.0f}s")


# -- DynamoGraphDeployment ------------------------------------------------------------------------


def dgd(name: str, **extra: Any) -> dict[str, Any]:
    """A DGD whose service has no replicas: the fake's operator runs nothing for it."""
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ftctl-contract"}},
        "spec": {
            "backendFramework": "vllm",
            "services": {"Worker": {"componentType": "worker", "replicas": 0}},
        },
        **extra,
    }


@pytest.fixture
def made_dgd(target: Target) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create DGDs; delete whatever is left of them afterwards."""
    names: list[str] = []

    def make(name: str, spec: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        names.append(name)
        body = dgd(name, **extra)
        if spec is not None:
            body["spec"] = spec
        return target.custom.create_namespaced_custom_object(G, V, NS, P, body)

    yield make
    from kubernetes.client.exceptions import ApiException

    for name in names:
        try:
            target.custom.delete_namespaced_custom_object(G, V, NS, P, name)
        except ApiException:
            pass


def test_a_created_dgd_carries_server_metadata_and_no_status(target, made_dgd):
    name = unique("created")
    created = made_dgd(name, status={"state": "successful"})
    meta = created["metadata"]
    assert {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
    } <= set(meta)
    assert (meta["name"], meta["namespace"], meta["generation"]) == (name, NS, 1)
    assert isinstance(meta["resourceVersion"], str) and isinstance(meta["uid"], str)
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "ftctl-contract"}
    assert created["spec"] == dgd(name)["spec"]
    # status is a subresource: what the client sends with the object is dropped.
    assert "status" not in created


def test_creating_a_dgd_twice_is_409_already_exists(target, made_dgd):
    name = unique("twice")
    made_dgd(name)
    code, body = refused(
        lambda: target.custom.create_namespaced_custom_object(G, V, NS, P, dgd(name))
    )
    assert code == 409
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'dynamographdeployments.nvidia.com "{name}" already exists',
        "reason": "AlreadyExists",
        "details": {"name": name, "group": G, "kind": P},
        "code": 409,
    }


def test_a_dgd_with_an_invalid_name_is_422_naming_metadata_name(target):
    code, body = refused(
        lambda: target.custom.create_namespaced_custom_object(G, V, NS, P, dgd("Bad_Name"))
    )
    assert code == 422
    assert (body["reason"], body["code"], body["status"]) == ("Invalid", 422, "Failure")
    assert body["message"].startswith(
        'DynamoGraphDeployment.nvidia.com "Bad_Name" is invalid: metadata.name: Invalid value: '
        '"Bad_Name": a lowercase RFC 1123 subdomain must consist of'
    )
    details = body["details"]
    assert (details["name"], details["group"], details["kind"]) == (
        "Bad_Name",
        G,
        "DynamoGraphDeployment",
    )
    assert [(c["reason"], c["field"]) for c in details["causes"]] == [
        ("FieldValueInvalid", "metadata.name")
    ]


def worker(**fields: Any) -> dict[str, Any]:
    return {"componentType": "worker", "replicas": 0, **fields}


def with_worker(name: str, **fields: Any) -> dict[str, Any]:
    body = dgd(name)
    body["spec"]["services"]["Worker"] = worker(**fields)
    return body


def test_fields_the_crd_does_not_know_are_pruned_silently(target, made_dgd):
    from tests.realkube.compare import differences

    name = unique("pruned")
    sent = with_worker(name, volumeMounts=[{"name": "cache", "mountPath": "/c"}])
    sent["spec"]["notInTheCrd"] = {"a": 1}
    created = made_dgd(name, spec=copy.deepcopy(sent["spec"]))
    got = target.custom.get_namespaced_custom_object(G, V, NS, P, name)
    assert created["spec"] == got["spec"]
    assert differences(sent["spec"], got["spec"]) == [
        "pruned: services.Worker.volumeMounts",
        "pruned: notInTheCrd",
    ]
    patched = target.custom.patch_namespaced_custom_object(
        G, V, NS, P, name, {"spec": {"services": {"Worker": {"alsoUnknown": True}}}}
    )
    assert "alsoUnknown" not in patched["spec"]["services"]["Worker"]
    assert patched["metadata"]["generation"] == 1  # nothing the schema knows changed


def test_the_crds_defaults_are_filled_in(target, made_dgd):
    name = unique("defaulted")
    ports = [{"containerPort": 8000, "name": "http"}]
    spec = with_worker(
        name, multinode={}, extraPodSpec={"mainContainer": {"image": "i:1", "ports": ports}}
    )["spec"]
    created = made_dgd(name, spec=spec)
    svc = created["spec"]["services"]["Worker"]
    assert svc["multinode"] == {"nodeCount": 2}
    assert svc["extraPodSpec"]["mainContainer"]["ports"] == [
        {"containerPort": 8000, "name": "http", "protocol": "TCP"}
    ]


@pytest.mark.parametrize(
    ("fields", "field", "cause"),
    [
        pytest.param(
            {"replicas": "two"},
            "spec.services.Worker.replicas",
            'Invalid value: "string": spec.services.Worker.replicas in body must be of type '
            'integer: "string"',
            id="string-replicas",
        ),
        pytest.param(
            {"resources": {"limits": {"gpu": 1}}},
            "spec.services.Worker.resources.limits.gpu",
            'Invalid value: "integer": spec.services.Worker.resources.limits.gpu in body must '
            'be of type string: "integer"',
            id="integer-gpu",
        ),
        pytest.param(
            {"multinode": {"nodeCount": 1}},
            "spec.services.Worker.multinode.nodeCount",
            "Invalid value: 1: spec.services.Worker.multinode.nodeCount in body should be "
            "greater than or equal to 2",
            id="nodeCount-below-minimum",
        ),
    ],
)
def test_a_value_the_schema_refuses_is_422_naming_the_field(target, fields, field, cause):
    name = unique("refused")
    code, body = refused(
        lambda: target.custom.create_namespaced_custom_object(
            G, V, NS, P, with_worker(name, **fields)
        )
    )
    assert code == 422
    assert body["reason"] == "Invalid"
    assert (
        body["message"] == f'DynamoGraphDeployment.nvidia.com "{name}" is invalid: {field}: {cause}'
    )
    assert body["details"] == {
        "name": name,
        "group": G,
        "kind": "DynamoGraphDeployment",
        "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": field}],
    }


def test_an_enum_value_outside_the_crd_is_422_unsupported_value(target):
    name = unique("enum")
    body = dgd(name)
    body["spec"]["backendFramework"] = "tensorflow"
    code, status = refused(lambda: target.custom.create_namespaced_custom_object(G, V, NS, P, body))
    assert code == 422
    (cause,) = status["details"]["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueNotSupported", "spec.backendFramework")
    assert cause["message"] == (
        'Unsupported value: "tensorflow": supported values: "sglang", "vllm", "trtllm"'
    )


def test_a_patch_the_schema_refuses_is_422_and_changes_nothing(target, made_dgd):
    name = unique("badpatch")
    made_dgd(name)
    code, body = refused(
        lambda: target.custom.patch_namespaced_custom_object(
            G, V, NS, P, name, {"spec": {"services": {"Worker": {"replicas": "three"}}}}
        )
    )
    assert (code, body["reason"]) == (422, "Invalid")
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.services.Worker.replicas"]
    got = target.custom.get_namespaced_custom_object(G, V, NS, P, name)
    assert (got["spec"], got["metadata"]["generation"]) == (dgd(name)["spec"], 1)


@pytest.mark.parametrize("verb", ["get", "patch", "delete"])
def test_a_missing_dgd_is_404_not_found_with_details(target, verb):
    calls = {
        "get": lambda: target.custom.get_namespaced_custom_object(G, V, NS, P, "missing"),
        "patch": lambda: target.custom.patch_namespaced_custom_object(
            G, V, NS, P, "missing", {"spec": {}}
        ),
        "delete": lambda: target.custom.delete_namespaced_custom_object(G, V, NS, P, "missing"),
    }
    code, body = refused(calls[verb])
    assert code == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'dynamographdeployments.nvidia.com "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "group": G, "kind": P},
        "code": 404,
    }


def test_a_merge_patch_of_spec_bumps_generation_and_one_of_labels_does_not(target, made_dgd):
    name = unique("patched")
    created = made_dgd(name)
    custom = target.custom
    labelled = custom.patch_namespaced_custom_object(
        G, V, NS, P, name, {"metadata": {"labels": {"ftctl.io/test": "contract"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["labels"]["ftctl.io/test"] == "contract"
    assert labelled["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    patched = custom.patch_namespaced_custom_object(
        G, V, NS, P, name, {"spec": {"services": {"Worker": {"replicas": 2}}}}
    )
    assert patched["metadata"]["generation"] == 2
    assert patched["spec"]["services"]["Worker"] == {"componentType": "worker", "replicas": 2}
    got = custom.get_namespaced_custom_object(G, V, NS, P, name)
    assert got["metadata"]["generation"] == 2
    assert got["spec"] == patched["spec"]


def test_status_is_a_subresource_written_only_through_it(target, made_dgd):
    name = unique("status")
    made_dgd(name)
    custom = target.custom
    via_main = custom.patch_namespaced_custom_object(
        G, V, NS, P, name, {"status": {"state": "from-the-object"}}
    )
    # Ignored (on the fake its operator may have written a status of its own meanwhile).
    assert (via_main.get("status") or {}).get("state") != "from-the-object"
    written = custom.patch_namespaced_custom_object_status(
        G, V, NS, P, name, {"status": {"state": "from-the-subresource"}}
    )
    assert written["status"]["state"] == "from-the-subresource"
    assert written["metadata"]["generation"] == 1


def test_a_dgd_without_finalizers_is_deleted_at_once_with_status_success(target, made_dgd):
    name = unique("deleted")
    uid = made_dgd(name)["metadata"]["uid"]
    done = target.custom.delete_namespaced_custom_object(G, V, NS, P, name)
    assert done == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": G, "kind": P, "uid": uid},
    }
    code, _ = refused(lambda: target.custom.get_namespaced_custom_object(G, V, NS, P, name))
    assert code == 404


def test_listing_dgds_filters_by_label_selector(target, made_dgd):
    one, two = unique("listed"), unique("listed")
    made_dgd(one)
    made_dgd(two)
    target.custom.patch_namespaced_custom_object(
        G, V, NS, P, two, {"metadata": {"labels": {"ftctl.io/run-id": "r2"}}}
    )
    found = target.custom.list_namespaced_custom_object(
        G, V, NS, P, label_selector="app.kubernetes.io/managed-by=ftctl-contract,ftctl.io/run-id"
    )
    assert (found["kind"], found["apiVersion"]) == ("DynamoGraphDeploymentList", f"{G}/{V}")
    assert isinstance(found["metadata"]["resourceVersion"], str)
    assert [i["metadata"]["name"] for i in found["items"]] == [two]


def test_a_dgd_watch_from_a_list_resource_version_sees_what_came_after(target, made_dgd):
    from kubernetes import watch

    rv = target.custom.list_namespaced_custom_object(G, V, NS, P)["metadata"]["resourceVersion"]
    name = unique("watched")
    made_dgd(name)
    seen = []
    w = watch.Watch()
    for event in w.stream(
        target.custom.list_namespaced_custom_object,
        G,
        V,
        NS,
        P,
        resource_version=rv,
        timeout_seconds=20,
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if seen[-1] == ("ADDED", name):
            w.stop()
    assert ("ADDED", name) in seen


def test_a_watch_from_a_too_old_resource_version_is_410_expired(target):
    """Deterministic on both: RV 1 is older than the DGD watch window of either server.

    The real apiserver serves watches from its watch cache; the cache of a custom resource
    starts at the resourceVersion at which the CRD was established, always above 1 because the
    apiserver writes its bootstrap objects first. (Pods are not usable for this: their cache
    starts with the empty store at RV 1, and compacting etcd does not shorten the cache.) The
    fake starts its DGD watch history at its own start, also above 1.
    """
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    raw = target.custom.list_namespaced_custom_object(
        G, V, NS, P, watch=True, resource_version="1", timeout_seconds=5, _preload_content=False
    )
    lines = [json.loads(line) for line in raw.read().splitlines() if line.strip()]
    assert raw.status == 200
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    status = lines[0]["object"]
    assert {k: status[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
    }
    assert status["message"].startswith("too old resource version: 1 (")
    with pytest.raises(ApiException) as expired:  # the client retries once, then raises
        for _ in watch.Watch().stream(
            target.custom.list_namespaced_custom_object,
            G,
            V,
            NS,
            P,
            resource_version="1",
            timeout_seconds=5,
        ):
            pass
    assert expired.value.status == 410


# -- pods -----------------------------------------------------------------------------------------


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": spec.pop("image", "img:1")}
    if "resources" in spec:
        container["resources"] = spec.pop("resources")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [container], **spec},
    }


@pytest.fixture
def made_pod(target: Target) -> Iterator[Callable[..., Any]]:
    """Create pods through the API; force-delete whatever is left of them afterwards."""
    names: list[str] = []

    def make(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Any:
        names.append(name)
        return target.core.create_namespaced_pod(NS, pod(name, labels, **spec))

    yield make
    from kubernetes.client.exceptions import ApiException

    for name in names:
        try:
            target.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        except ApiException:
            pass


def raw_pod(target: Target, name: str) -> dict[str, Any]:
    return json.loads(target.core.read_namespaced_pod(name, NS, _preload_content=False).data)


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        (None, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ],
)
def test_a_created_pod_is_pending_with_its_qos_class_and_the_server_defaults(
    target, made_pod, resources, qos
):
    name = unique("defaults")
    extra = {"resources": resources} if resources else {}
    made_pod(name, nodeName=NODE, **extra)
    got = raw_pod(target, name)
    assert got["status"] == {"phase": "Pending", "qosClass": qos}
    spec = got["spec"]
    assert {
        k: spec[k] for k in ("restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy")
    } == {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
    }
    assert (spec["schedulerName"], spec["priority"], spec["enableServiceLinks"]) == (
        "default-scheduler",
        0,
        True,
    )
    assert [t["key"] for t in spec["tolerations"]] == [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    (container,) = spec["containers"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    if resources and "limits" in resources:
        assert container["resources"]["requests"] == resources["limits"]
    meta = got["metadata"]
    assert {"uid", "resourceVersion", "creationTimestamp"} <= set(meta)
    assert "deletionTimestamp" not in meta
    # Through the client's model, as ftctl reads it: no container statuses before a kubelet.
    model = target.core.read_namespaced_pod(name, NS)
    assert (model.status.phase, model.status.container_statuses) == ("Pending", None)


@pytest.mark.parametrize(("image", "policy"), [("img", "Always"), ("img:latest", "Always")])
def test_an_untagged_or_latest_image_is_pulled_always(target, made_pod, image, policy):
    name = unique("pull")
    made_pod(name, image=image)
    assert raw_pod(target, name)["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_pod_errors_are_statuses_with_details(target, made_pod):
    name = unique("errors")
    made_pod(name)
    code, body = refused(lambda: target.core.create_namespaced_pod(NS, pod(name)))
    assert (code, body["reason"], body["details"]) == (
        409,
        "AlreadyExists",
        {"name": name, "kind": "pods"},
    )
    assert body["message"] == f'pods "{name}" already exists'
    code, body = refused(lambda: target.core.read_namespaced_pod("missing", NS))
    assert (code, body["reason"], body["message"], body["details"]) == (
        404,
        "NotFound",
        'pods "missing" not found',
        {"name": "missing", "kind": "pods"},
    )
    empty = {"metadata": {"name": "empty"}, "spec": {"containers": []}}
    code, body = refused(lambda: target.core.create_namespaced_pod(NS, empty))
    assert (code, body["reason"], body["message"]) == (
        422,
        "Invalid",
        'Pod "empty" is invalid: spec.containers: Required value',
    )
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]


@pytest.fixture
def selector_pods(target: Target, made_pod) -> str:
    """Three pods with one run label; returns it."""
    run = unique("sel")
    made_pod(f"{run}-a", {"run": run, "app": "x", "tier": "a"}, nodeName=NODE)
    made_pod(f"{run}-b", {"run": run, "app": "y"})
    made_pod(f"{run}-c", {"run": run, "app": "z", "tier": "b"}, nodeName=NODE)
    return run


def names(target: Target, **kwargs: Any) -> list[str]:
    return sorted(p.metadata.name for p in target.core.list_namespaced_pod(NS, **kwargs).items)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=x", ["a"]),
        ("app==x", ["a"]),
        ("app!=x", ["b", "c"]),
        ("app in (x,y)", ["a", "b"]),
        ("app notin (x,y)", ["c"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b"]),
        ("app in (x, z),tier notin (b)", ["a"]),
    ],
)
def test_pods_are_listed_by_equality_and_set_based_label_selectors(
    target, selector_pods, selector, expected
):
    got = names(target, label_selector=f"run={selector_pods},{selector}")
    assert got == [f"{selector_pods}-{x}" for x in expected]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("metadata.name={run}-a", ["a"]),
        ("metadata.name!={run}-a", ["b", "c"]),
        (f"spec.nodeName={NODE}", ["a", "c"]),
        ("spec.nodeName=", ["b"]),
        ("status.phase=Pending,spec.restartPolicy=Always", ["a", "b", "c"]),
        ("spec.schedulerName=default-scheduler,status.podIP=", ["a", "b", "c"]),
        (f"metadata.namespace={NS},status.nominatedNodeName=", ["a", "b", "c"]),
        ("spec.serviceAccountName=", ["a", "b", "c"]),
    ],
)
def test_pods_are_listed_by_the_field_selectors_the_apiserver_supports(
    target, selector_pods, fields, expected
):
    got = names(
        target,
        label_selector=f"run={selector_pods}",
        field_selector=fields.format(run=selector_pods),
    )
    assert got == [f"{selector_pods}-{x}" for x in expected]


@pytest.mark.parametrize("field", ["metadata.labels", "spec.containers", "status.hostIP"])
def test_an_unsupported_pod_field_selector_is_400_field_label_not_supported(target, field):
    code, body = refused(lambda: target.core.list_namespaced_pod(NS, field_selector=f"{field}=x"))
    assert code == 400
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"field label not supported: {field}",
        "reason": "BadRequest",
        "code": 400,
    }


def test_a_pod_watch_from_a_list_resource_version_sees_what_came_after(target, made_pod):
    """Bound pod force-deleted, unbound pod deleted: each a MODIFIED (marked) then DELETED."""
    from kubernetes import watch

    run = unique("watch")
    listed = target.core.list_namespaced_pod(NS, label_selector=f"run={run}")
    assert listed.items == []
    made_pod(f"{run}-a", {"run": run}, nodeName=NODE)
    made_pod(f"{run}-b", {"run": run})
    target.core.delete_namespaced_pod(f"{run}-a", NS, grace_period_seconds=0)
    target.core.delete_namespaced_pod(f"{run}-b", NS)
    seen: dict[str, list[tuple[str, bool]]] = {f"{run}-a": [], f"{run}-b": []}
    w = watch.Watch()
    for event in w.stream(
        target.core.list_namespaced_pod,
        NS,
        label_selector=f"run={run}",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    ):
        obj = event["object"]
        seen[obj.metadata.name].append((event["type"], obj.metadata.deletion_timestamp is not None))
        if all(s and s[-1][0] == "DELETED" for s in seen.values()):
            w.stop()
    expected = [("ADDED", False), ("MODIFIED", True), ("DELETED", True)]
    assert seen == {f"{run}-a": expected, f"{run}-b": expected}


def test_a_graceful_delete_answers_the_pod_marked_and_it_stays_until_completed(target, made_pod):
    name = unique("graceful")
    made_pod(name, nodeName=NODE)
    answer = json.loads(target.core.delete_namespaced_pod(name, NS, _preload_content=False).data)
    assert answer["kind"] == "Pod"
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 30
    assert isinstance(answer["metadata"]["deletionTimestamp"], str)
    # No kubelet completes it: the pod is still there, marked, and a second delete changes nothing.
    again = target.core.delete_namespaced_pod(name, NS)
    assert again.metadata.deletion_timestamp is not None
    still = target.core.read_namespaced_pod(name, NS)
    assert still.metadata.deletion_timestamp is not None
    assert name in names(target, field_selector=f"metadata.name={name}")
    forced = target.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
    assert forced.kind == "Pod"
    code, _ = refused(lambda: target.core.read_namespaced_pod(name, NS))
    assert code == 404


def test_an_unscheduled_pod_is_deleted_at_once_even_with_grace(target, made_pod):
    name = unique("unbound")
    made_pod(name)
    answer = target.core.delete_namespaced_pod(name, NS)
    assert answer.kind == "Pod"
    assert answer.metadata.deletion_grace_period_seconds == 0
    code, _ = refused(lambda: target.core.read_namespaced_pod(name, NS))
    assert code == 404


# -- events ---------------------------------------------------------------------------------------


def test_a_core_event_is_created_and_listed_with_a_null_event_time(target):
    name = unique("event")
    involved = {"kind": "Pod", "name": name, "namespace": NS, "apiVersion": "v1"}
    body = {
        "metadata": {"name": f"{name}.1"},
        "involvedObject": involved,
        "reason": "ContractTested",
        "message": "hello",
        "type": "Normal",
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:01Z",
        "count": 1,
        "source": {"component": "contract"},
    }
    created = target.core.create_namespaced_event(NS, copy.deepcopy(body))
    assert created.metadata.uid and created.metadata.resource_version
    listed = target.core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
    assert [e.metadata.name for e in listed.items] == [f"{name}.1"]
    (event,) = listed.items
    # What ftctl reads: last/first timestamp, else eventTime (null for core/v1 events).
    assert (event.reason, event.message, event.event_time) == ("ContractTested", "hello", None)
    assert event.last_timestamp is not None and event.involved_object.name == name
    raw = json.loads(
        target.core.list_namespaced_event(
            NS, field_selector=f"involvedObject.name={name}", _preload_content=False
        ).data
    )["items"][0]
    assert {k: raw[k] for k in ("eventTime", "reportingComponent", "reportingInstance")} == {
        "eventTime": None,
        "reportingComponent": "",
        "reportingInstance": "",
    }
    by_source = target.core.list_namespaced_event(
        NS, field_selector=f"source=contract,reason=ContractTested,involvedObject.name={name}"
    )
    assert len(by_source.items) == 1


def test_an_unsupported_event_field_selector_is_400_field_label_not_supported(target):
    code, body = refused(lambda: target.core.list_namespaced_event(NS, field_selector="foo.bar=x"))
    assert (code, body["reason"], body["message"]) == (
        400,
        "BadRequest",
        "field label not supported: foo.bar",
    )


# -- namespaces -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dgd", "pod", "event"])
def test_creating_in_a_namespace_that_does_not_exist_is_404_naming_it(target, kind):
    from ftctl.platforms.kube.client import api_error

    ns = unique("absent")
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}}
    calls = {
        "dgd": lambda: target.custom.create_namespaced_custom_object(G, V, ns, P, dgd("d")),
        "pod": lambda: target.core.create_namespaced_pod(ns, pod("p")),
        "event": lambda: target.core.create_namespaced_event(ns, event),
    }
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as err:
        calls[kind]()
    body = json.loads(err.value.body)
    assert (err.value.status, body["reason"], body["details"]) == (
        404,
        "NotFound",
        {"name": ns, "kind": "namespaces"},
    )
    # How ftctl reports it (exit 3): the apiserver's own words after ftctl's action.
    assert api_error(err.value, "create").message == (
        f'create: not found (HTTP 404): namespaces "{ns}" not found'
    )
    code, _ = refused(lambda: target.core.read_namespace(ns))
    assert code == 404


# -- pod subresources (need something behind the pod: the fake's operator, or a kubelet) --------


@dataclass
class RunningPod:
    """A Running, ready pod with a real process behind it, and the clients that reach it."""

    name: str
    configuration: Any
    core: Any


@pytest.fixture(scope="session")
def running_pod(target: Target, request: pytest.FixtureRequest) -> Iterator[RunningPod]:
    """On the fake, its operator runs the pod; on the real apiserver, the operator and kubelet
    stand-ins do (their own control plane: `real_cluster`), so the subresource calls go
    through kube-apiserver's proxy to a kubelet as on a cluster."""
    from kubernetes import client

    from ftctl.platforms.kube.client import load_configuration

    if target.fake is None:
        cluster = request.getfixturevalue("real_cluster")
        configuration, _ = load_configuration(cluster.kubeconfig, namespace=RUN_NS)
        api = client.ApiClient(configuration)
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        try:
            core.create_namespace({"metadata": {"name": RUN_NS}})
        except client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
    else:
        configuration, core, custom = target.configuration, target.core, target.custom
    name = unique("running")
    worker = {
        "componentType": "worker",
        "replicas": 1,
        "extraPodSpec": {
            "mainContainer": {
                "image": "contract:1",
                "command": ["python3", "-m", "dynamo.vllm"],
                "args": ["--model", "tiny"],
            }
        },
    }
    body = dgd(name)
    body["spec"]["services"] = {"VllmDecodeWorker": worker}
    custom.create_namespaced_custom_object(G, V, RUN_NS, P, body)

    def ready() -> str | None:
        selector = f"nvidia.com/dynamo-graph-deployment-name={name}"
        for p in core.list_namespaced_pod(RUN_NS, label_selector=selector).items:
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []):
                return p.metadata.name
        return None

    try:
        pod = wait_for(f"a ready pod of DGD {RUN_NS}/{name}", ready, timeout=120)
        yield RunningPod(pod, configuration, core)
    finally:
        custom.delete_namespaced_custom_object(G, V, RUN_NS, P, name)


def test_exec_returns_the_exit_code_from_the_status_channel(target, running_pod):
    from ftctl.platforms.kube.stream import pod_exec

    ok = pod_exec(running_pod.configuration, RUN_NS, running_pod.name, ["true"])
    assert (ok.exit_code, ok.status["status"]) == (0, "Success")
    failed = pod_exec(
        running_pod.configuration, RUN_NS, running_pod.name, ["kill", "-s", "TERM", "99998"]
    )
    assert failed.exit_code == 1
    assert failed.status["reason"] == "NonZeroExitCode"
    assert "No such process" in failed.stderr


def test_logs_are_read_and_a_missing_previous_container_is_400(target, running_pod):
    log = running_pod.core.read_namespaced_pod_log(running_pod.name, RUN_NS, container="main")
    assert isinstance(log, str) and log
    code, body = refused(
        lambda: running_pod.core.read_namespaced_pod_log(
            running_pod.name, RUN_NS, container="main", previous=True
        )
    )
    assert (code, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (
        f'previous terminated container "main" in pod "{running_pod.name}" not found'
    )


def test_a_port_forward_reaches_the_pods_port(target, running_pod):
    from ftctl.platforms.kube.stream import http_get_via_forward

    body = http_get_via_forward(
        running_pod.configuration, RUN_NS, running_pod.name, 9090, "/health"
    )
    assert json.loads(body)["status"] in ("ready", "healthy", "notready")


# -- list envelopes -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pods", "events", "dgds"])
def test_a_list_answers_kind_api_version_a_resource_version_and_items(target, kind):
    calls = {
        "pods": lambda: target.core.list_namespaced_pod(NS, _preload_content=False),
        "events": lambda: target.core.list_namespaced_event(NS, _preload_content=False),
        "dgds": lambda: target.custom.list_namespaced_custom_object(
            G, V, NS, P, _preload_content=False
        ),
    }
    listed = json.loads(calls[kind]().data)
    expected = {
        "pods": ("PodList", "v1"),
        "events": ("EventList", "v1"),
        "dgds": ("DynamoGraphDeploymentList", f"{G}/{V}"),
    }
    assert (listed["kind"], listed["apiVersion"]) == expected[kind]
    assert set(listed) == {"kind", "apiVersion", "metadata", "items"}
    # A custom resource list also says "continue": "" (the CR store's own list code).
    extra = {"continue": ""} if kind == "dgds" else {}
    rv = listed["metadata"]["resourceVersion"]
    assert isinstance(rv, str) and listed["metadata"] == {"resourceVersion": rv, **extra}
    assert isinstance(listed["items"], list)
