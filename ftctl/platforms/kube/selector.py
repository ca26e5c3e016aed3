"""Which pods belong to which service of a DGD, under both upstream operator paths.

The upstream operator labels pods differently by path (shared/k8s/OPERATOR-FACTS.md §2):

- **DynamoComponentDeployment path** (annotation ``nvidia.com/enable-grove: "false"``, or no
  Grove): ``nvidia.com/dynamo-component=<service as written>``, plus
  ``nvidia.com/dynamo-graph-deployment-name`` and ``nvidia.com/selector=<dgd>-<service
  lowercased>`` (removed from LeaderWorkerSet pods, which keep ``dynamo-component``).
- **Grove path** (the operator's default): no ``dynamo-component``;
  ``nvidia.com/selector=<dgd>-<service lowercased>`` (``-ldr`` / ``-wkr`` appended for a
  multinode service's leader and worker cliques), ``nvidia.com/dynamo-graph-deployment-name``,
  and ``component-type`` / ``sub-component-type`` when the service sets them.

Both carry the graph-deployment-name label, so the pods of a graph are listed by that one label
and each pod is given to its service by :func:`service_of`. One list serves every service: a
label selector cannot say "this label or that one".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"  # DCD path only
LABEL_SELECTOR = "nvidia.com/selector"  # Grove path, and DCD Deployments
LABEL_COMPONENT_TYPE = "nvidia.com/dynamo-component-type"
LABEL_SUB_COMPONENT_TYPE = "nvidia.com/dynamo-sub-component-type"
ANNOTATION_GROVE = "nvidia.com/enable-grove"
MULTINODE_SUFFIXES = ("", "-ldr", "-wkr")  # Grove cliques of a multinode service


def graph_selector(dgd: str) -> str:
    """The label selector listing every pod of the DGD ``dgd`` (both operator paths)."""
    return f"{LABEL_DGD}={dgd}"


def selector_value(dgd: str, service: str) -> str:
    """``nvidia.com/selector`` of a single-node service's pods: ``<dgd>-<service lowercased>``."""
    return f"{dgd}-{service.lower()}"


def service_of(
    labels: Mapping[str, str] | None, dgd: str, services: Mapping[str, Any]
) -> str | None:
    """The service (a key of the DGD's ``spec.services``) a pod with ``labels`` belongs to.

    In order: ``nvidia.com/dynamo-component`` naming a service (DCD path); ``nvidia.com/selector``
    equal to ``<dgd>-<service lowercased>`` or its ``-ldr`` / ``-wkr`` clique (Grove path); last,
    component type (+ sub-component type) when exactly one service has them (a Grove pod whose
    selector label a user's ``labels`` overrode). None: not a pod of any service of ``dgd``.
    """
    labels = labels or {}
    if labels.get(LABEL_DGD) != dgd:
        return None
    component = labels.get(LABEL_COMPONENT)
    if component in services:
        return component
    selector = labels.get(LABEL_SELECTOR)
    if selector:
        for name in services:
            if selector in (selector_value(dgd, name) + s for s in MULTINODE_SUFFIXES):
                return name
    ctype = labels.get(LABEL_COMPONENT_TYPE)
    if ctype:
        sub = labels.get(LABEL_SUB_COMPONENT_TYPE, "")
        same = [
            name
            for name, spec in services.items()
            if str((spec or {}).get("componentType", "")) == ctype
            and str((spec or {}).get("subComponentType", "")) == sub
        ]
        if len(same) == 1:
            return same[0]
    return None


def describe(dgd: str, service: str) -> str:
    """How :func:`service_of` finds ``service``'s pods, in one line (shown by ``plan``)."""
    value = selector_value(dgd, service)
    return (
        f"{graph_selector(dgd)}, then {LABEL_COMPONENT}={service} (DynamoComponentDeployment "
        f"path) or {LABEL_SELECTOR}={value}[-ldr|-wkr] (Grove path)"
    )


def operator_path(manifest: Mapping[str, Any]) -> str:
    """Which operator path a DGD asks for, from its ``nvidia.com/enable-grove`` annotation."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(ANNOTATION_GROVE, "")).lower() == "false":
        return "dcd"
    return "default"
