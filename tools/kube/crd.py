"""The one adaptation the upstream DGD CRD needs before a 1.20 kube-apiserver accepts it.

1.20's defaulting validator reads ``default: ""`` as null ("must be of type string: null") and
refuses the CRD; newer servers accept it. The smallest change that makes 1.20 accept it, and
nothing more (shared/k8s/REAL-CONTROL-PLANE.md):

1. drop each ``default: ""`` that 1.20 checks, i.e. those not under ``additionalProperties``
   (1.20 does not walk into ``additionalProperties`` when it validates defaults);
2. where the property losing its default is a key of the enclosing list's
   ``x-kubernetes-list-map-keys`` (1.20 wants such keys defaulted or required), mark it
   required instead.

No ``properties`` or types change, so what 1.20 prunes is exactly what the real CRD prunes.
"""

from __future__ import annotations

import copy
from typing import Any

_NESTED_LISTS = ("allOf", "anyOf", "oneOf")


def adapt_for_1_20(crd: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``crd`` that 1.20 accepts, and one line per change made.

    Args:
        crd: a parsed apiextensions.k8s.io/v1 CustomResourceDefinition (left untouched).

    Returns:
        (adapted copy, changes), each change like
        ``v1alpha1: spec.envs[].valueFrom.secretKeyRef.name: dropped default ""``.
    """
    out = copy.deepcopy(crd)
    changes: list[str] = []
    for version in (out.get("spec") or {}).get("versions") or []:
        schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
        _walk(schema, "", False, (), lambda path, v=version["name"]: f"{v}: {path}", changes)
    return out, changes


def _walk(node: Any, path: str, under_ap: bool, map_keys: tuple, where, changes: list) -> None:
    """Visit ``node``; ``map_keys`` are the list-map keys when ``node`` is a list's item."""
    if not isinstance(node, dict):
        return
    for name, prop in (node.get("properties") or {}).items():
        child = f"{path}.{name}" if path else name
        if not under_ap and isinstance(prop, dict) and prop.get("default") == "":
            del prop["default"]
            changes.append(f'{where(child)}: dropped default ""')
            if name in map_keys and name not in (node.get("required") or []):
                node.setdefault("required", []).append(name)
                changes.append(f"{where(child)}: marked required (a list-map key)")
        _walk(prop, child, under_ap, (), where, changes)
    items = node.get("items")
    if isinstance(items, dict):
        keys = tuple(node.get("x-kubernetes-list-map-keys") or ())
        _walk(items, f"{path}[]", under_ap, keys, where, changes)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        _walk(extra, f"{path}.*", True, (), where, changes)
    for key in _NESTED_LISTS:
        for sub in node.get(key) or []:
            _walk(sub, path, under_ap, map_keys, where, changes)
    if isinstance(node.get("not"), dict):
        _walk(node["not"], path, under_ap, map_keys, where, changes)
