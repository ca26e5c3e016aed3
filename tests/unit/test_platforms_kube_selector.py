"""Pods are given to services by either upstream operator path's labels (OPERATOR-FACTS §2)."""

from __future__ import annotations

from ftctl.platforms.kube.selector import describe, graph_selector, operator_path, service_of

SERVICES = {
    "Frontend": {"componentType": "frontend"},
    "VllmDecodeWorker": {"componentType": "worker", "subComponentType": "decode"},
    "VllmPrefillWorker": {"componentType": "worker", "subComponentType": "prefill"},
}
DGD = "g"


def grove(service: str, suffix: str = "", **extra: str) -> dict[str, str]:
    spec = SERVICES[service]
    labels = {
        "nvidia.com/selector": f"{DGD}-{service.lower()}{suffix}",
        "nvidia.com/dynamo-graph-deployment-name": DGD,
        "nvidia.com/dynamo-component-type": spec["componentType"],
        "nvidia.com/metrics-enabled": "true",
    }
    if "subComponentType" in spec:
        labels["nvidia.com/dynamo-sub-component-type"] = spec["subComponentType"]
    return {**labels, **extra}


def test_grove_pods_without_the_component_label_are_found_by_their_selector_label():
    for service in SERVICES:
        assert "nvidia.com/dynamo-component" not in grove(service)
        assert service_of(grove(service), DGD, SERVICES) == service


def test_dcd_pods_are_found_by_the_component_label_as_written():
    labels = {
        "nvidia.com/dynamo-component": "VllmDecodeWorker",
        "nvidia.com/dynamo-namespace": "dynamo-g",
        "nvidia.com/dynamo-graph-deployment-name": DGD,
        "nvidia.com/selector": "g-vllmdecodeworker",
    }
    assert service_of(labels, DGD, SERVICES) == "VllmDecodeWorker"


def test_multinode_leader_and_worker_cliques_belong_to_their_service():
    assert service_of(grove("VllmDecodeWorker", "-ldr"), DGD, SERVICES) == "VllmDecodeWorker"
    assert service_of(grove("VllmDecodeWorker", "-wkr"), DGD, SERVICES) == "VllmDecodeWorker"
    lws = {  # DCD path, LeaderWorkerSet: nvidia.com/selector removed, role added
        "nvidia.com/dynamo-component": "VllmPrefillWorker",
        "nvidia.com/dynamo-graph-deployment-name": DGD,
        "role": "worker",
    }
    assert service_of(lws, DGD, SERVICES) == "VllmPrefillWorker"


def test_component_types_find_a_grove_pod_whose_selector_label_a_user_overrode():
    labels = grove("VllmPrefillWorker", **{"nvidia.com/selector": "mine"})
    assert service_of(labels, DGD, SERVICES) == "VllmPrefillWorker"
    # Two services with the same types: ambiguous, so no service rather than a guess.
    twins = {"A": {"componentType": "worker"}, "B": {"componentType": "worker"}}
    other = {
        "nvidia.com/dynamo-graph-deployment-name": DGD,
        "nvidia.com/dynamo-component-type": "worker",
    }
    assert service_of(other, DGD, twins) is None


def test_pods_of_another_graph_or_unknown_service_belong_to_none():
    assert service_of(grove("Frontend"), "other", SERVICES) is None
    stray = {"nvidia.com/dynamo-graph-deployment-name": DGD, "nvidia.com/selector": "g-nope"}
    assert service_of(stray, DGD, SERVICES) is None
    assert service_of(None, DGD, SERVICES) is None


def test_the_listing_selector_is_the_label_both_paths_carry_and_plan_names_both():
    assert graph_selector(DGD) == "nvidia.com/dynamo-graph-deployment-name=g"
    text = describe(DGD, "VllmDecodeWorker")
    assert "nvidia.com/dynamo-component=VllmDecodeWorker" in text
    assert "nvidia.com/selector=g-vllmdecodeworker" in text


def test_operator_path_follows_the_grove_annotation_only():
    assert (
        operator_path({"metadata": {"annotations": {"nvidia.com/enable-grove": "false"}}}) == "dcd"
    )
    assert operator_path({"metadata": {}}) == "default"
