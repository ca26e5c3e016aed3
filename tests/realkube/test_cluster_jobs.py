"""Cluster-load Jobs against the real kube-apiserver 1.20.2 (issue 15): what it stores.

1.20 predates Indexed Jobs: it drops ``completionMode`` and ``backoffLimitPerIndex`` silently
and keeps a plain Job. ftctl must notice from the stored object and refuse (exit 3), leaving no
Job behind, rather than run pods that do not know their share of the clients. And a Job
deleted without a propagation policy gets the ``orphan`` finalizer: why ftctl passes one.
"""

from __future__ import annotations

import dataclasses

import pytest

from ftctl.errors import ExitStatus, PlatformError
from ftctl.platforms.kube.dgd import build_dgd
from ftctl.scenario.model import LoadSpec
from tests.kube.conftest import make_test
from tests.realkube.conftest import NAMESPACE


def test_a_1_20_apiserver_drops_indexed_mode_and_ftctl_refuses_leaving_no_job(real_kube, tmp_path):
    from kubernetes import client

    from ftctl.platforms.kube.cluster_load import ClusterLoad
    from ftctl.platforms.kubernetes import KubernetesPlatform

    spec = LoadSpec(client="legacy", placement="cluster", pods=2, clients=2)
    test = dataclasses.replace(make_test("real-jobs"), loads=(spec,))
    platform = KubernetesPlatform(
        kubeconfig=real_kube.kubeconfig, namespace=NAMESPACE, skip_service_restart=True
    )
    try:
        platform.manifest = build_dgd(test, platform.run_id)  # as deploy() leaves it
        load = ClusterLoad(platform, test, spec, tmp_path, None)
        with pytest.raises(PlatformError) as info:
            load.start()
        assert info.value.exit_code == ExitStatus.INFRA
        assert "dropped completionMode: Indexed" in str(info.value)
        jobs = client.BatchV1Api(real_kube.api).list_namespaced_job(NAMESPACE).items
        assert [j.metadata.name for j in jobs] == []  # Background: no orphan finalizer
    finally:
        platform.teardown()


def test_a_job_deleted_without_a_propagation_policy_waits_on_the_orphan_finalizer(real_kube):
    from kubernetes import client

    batch = client.BatchV1Api(real_kube.api)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "orphan-default"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                }
            }
        },
    }
    made = batch.create_namespaced_job(NAMESPACE, job)
    assert made.spec.template.metadata.labels["job-name"] == "orphan-default"
    batch.delete_namespaced_job("orphan-default", NAMESPACE)
    left = batch.read_namespaced_job("orphan-default", NAMESPACE)
    assert left.metadata.deletion_timestamp is not None
    assert left.metadata.finalizers == ["orphan"]  # the REST default for Jobs
    # No garbage collector runs here: finish what it would do.
    batch.patch_namespaced_job("orphan-default", NAMESPACE, {"metadata": {"finalizers": None}})
