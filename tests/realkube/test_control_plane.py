"""The real control plane itself: the DGD CRD installs, a DGD round-trips, starts fail cleanly."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.realkube.compare import differences
from tests.realkube.test_crd_adaptation import EXPECTED_CHANGES
from tools.kube.build import KUBE_VERSION
from tools.kube.controlplane import DGD_CRD, Binaries, ControlPlane, ControlPlaneError
from tools.kube.crd import adapt_for_1_20

REPO = Path(__file__).resolve().parents[2]
G, V, P = "nvidia.com", "v1alpha1", "dynamographdeployments"


def _dgd(name: str, **service) -> dict:
    svc = {
        "componentType": "worker",
        "replicas": 1,
        "resources": {"limits": {"gpu": "1"}},
        "extraPodSpec": {"mainContainer": {"image": "img:1", "args": ["--model", "m"]}},
        **service,
    }
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ftctl"}},
        "spec": {"backendFramework": "vllm", "services": {"Worker": svc}},
    }


def test_the_apiserver_is_1_20_2_with_the_dgd_crd_installed_as_listed(real_kube):
    from kubernetes import client

    assert client.VersionApi(real_kube.api).get_code().git_version == f"v{KUBE_VERSION}"
    assert real_kube.plane.crd_changes == EXPECTED_CHANGES
    crd = client.ApiextensionsV1Api(real_kube.api).read_custom_resource_definition(f"{P}.{G}")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    assert [(v.name, v.served, v.storage) for v in crd.spec.versions] == [(V, True, True)]
    assert crd.spec.names.short_names == ["dgd"]


def test_a_dgd_round_trips_create_get_patch_delete(real_kube):
    custom, ns = real_kube.custom, real_kube.namespace
    sent = _dgd("round-trip")
    created = custom.create_namespaced_custom_object(G, V, ns, P, copy.deepcopy(sent))
    try:
        got = custom.get_namespaced_custom_object(G, V, ns, P, "round-trip")
        assert differences(sent["spec"], got["spec"]) == []
        assert got["metadata"]["labels"] == sent["metadata"]["labels"]
        assert got["metadata"]["generation"] == created["metadata"]["generation"] == 1
        patch = {"spec": {"services": {"Worker": {"replicas": 3}}}}
        patched = custom.patch_namespaced_custom_object(G, V, ns, P, "round-trip", patch)
        assert patched["spec"]["services"]["Worker"]["replicas"] == 3
        assert patched["metadata"]["generation"] == 2
    finally:
        done = custom.delete_namespaced_custom_object(G, V, ns, P, "round-trip")
    assert done["status"] == "Success"
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(G, V, ns, P, "round-trip")
    assert missing.value.status == 404


def test_an_unknown_field_is_pruned_silently_and_the_comparison_names_it(real_kube):
    custom, ns = real_kube.custom, real_kube.namespace
    sent = _dgd("pruned", volumeMounts=[{"name": "cache", "mountPath": "/c"}])
    custom.create_namespaced_custom_object(G, V, ns, P, copy.deepcopy(sent))
    try:
        got = custom.get_namespaced_custom_object(G, V, ns, P, "pruned")
    finally:
        custom.delete_namespaced_custom_object(G, V, ns, P, "pruned")
    assert differences(sent["spec"], got["spec"]) == ["pruned: services.Worker.volumeMounts"]


def test_a_schema_violation_is_refused_with_422_naming_the_field(real_kube):
    bad = _dgd("bad-gpu", resources={"limits": {"gpu": 1}})
    with pytest.raises(ApiException) as refused:
        real_kube.custom.create_namespaced_custom_object(G, V, real_kube.namespace, P, bad)
    assert refused.value.status == 422
    assert "spec.services.Worker.resources.limits.gpu" in refused.value.body


def test_the_crd_as_shipped_is_refused_by_1_20_which_is_why_it_is_adapted(real_kube):
    from kubernetes import client

    crd = yaml.safe_load(DGD_CRD.read_text())
    # Another group, so the refusal cannot be the name clash with the installed one.
    crd["spec"]["group"] = "unadapted.ftctl.test"
    crd["metadata"]["name"] = f"{P}.unadapted.ftctl.test"
    ext = client.ApiextensionsV1Api(real_kube.api)
    with pytest.raises(ApiException) as refused:
        ext.create_custom_resource_definition(crd)
        ext.delete_custom_resource_definition(crd["metadata"]["name"])  # not reached if right
    assert refused.value.status == 422
    assert "must be of type string" in refused.value.body
    assert "valueFrom" in refused.value.body
    adapted, _ = adapt_for_1_20(crd)
    ext.create_custom_resource_definition(adapted, dry_run="All")


@pytest.mark.real_apiserver
def test_a_failing_start_names_the_step_and_leaves_nothing_behind():
    spawned: list[tuple[int, Path]] = []

    class Recording(ControlPlane):
        def _spawn(self, name, argv):
            super()._spawn(name, argv)
            spawned.append((self._procs[name].pid, self.work))

    etcd = Binaries.from_cache().etcd
    plane = Recording(binaries=Binaries(Path("/bin/false"), etcd), crd=None, log=lambda _: 0)
    with pytest.raises(ControlPlaneError, match=r"^step 'start kube-apiserver' failed: exited 1"):
        plane.start()
    assert len(spawned) == 2  # etcd ran, then the apiserver failed
    for pid, work in spawned:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still there"
        assert not work.exists()
    assert plane.work is None


def _build(env: dict[str, str]) -> subprocess.CompletedProcess:
    script = str(REPO / "tools" / "kube" / "build.py")
    return subprocess.run(
        [sys.executable, script], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_build_step_that_cannot_be_done_prints_one_line_naming_it(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path), "FTCTL_KUBE_CACHE": str(tmp_path / "c")}
    done = _build(env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "ftctl-kube: error: step 'find apt-get' failed: apt-get is not on PATH"
    ]


@pytest.mark.real_apiserver
def test_a_warm_build_reuses_the_cache_in_seconds():
    started = time.monotonic()
    done = _build(dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "cached in" in done.stdout
    assert time.monotonic() - started < 10
