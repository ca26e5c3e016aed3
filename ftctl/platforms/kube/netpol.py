"""The NetworkPolicy a Kubernetes partition applies: one definition for the platform and plan.

The target pod is marked with a label of its own (``ftctl.io/partition=<id>``) and the policy
selects it: ingress and egress are allowed from / to every pod of the namespace except the
frontends (matched by ``nvidia.com/selector``, which both operator paths set on single-node
pods) and from / to every other namespace. NetworkPolicies are allow-lists, so this cuts the
frontend both ways and nothing else — where a CNI enforces policies; without one the policy
is stored and does nothing, which the platform's probe then reports.
"""

from __future__ import annotations

from typing import Any

from ftctl.platforms.kube.client import LABEL_MANAGED_BY, LABEL_RUN
from ftctl.platforms.kube.selector import LABEL_SELECTOR, selector_value

LABEL_PARTITION = "ftctl.io/partition"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def partition_policy(
    name: str, namespace: str, run_label: str, dgd: str, frontends: list[str], partition_id: str
) -> dict[str, Any]:
    """The NetworkPolicy cutting the pod labelled ``partition_id`` from the ``frontends``."""
    not_frontend = {
        "podSelector": {
            "matchExpressions": [
                {
                    "key": LABEL_SELECTOR,
                    "operator": "NotIn",
                    "values": [selector_value(dgd, f) for f in frontends],
                }
            ]
        }
    }
    elsewhere = {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [namespace]}
            ]
        }
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED_BY: "ftctl",
                LABEL_RUN: run_label,
                LABEL_PARTITION: partition_id,
            },
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL_PARTITION: partition_id}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [not_frontend, elsewhere]}],
            "egress": [{"to": [not_frontend, elsewhere]}],
        },
    }
