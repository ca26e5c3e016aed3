"""The 1.20 adaptation of the real DGD CRD: exactly the listed changes, nothing else."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import yaml

from tools.kube.controlplane import DGD_CRD
from tools.kube.crd import adapt_for_1_20

UPSTREAM_SHA256 = "69407230c510c2d5d484f18f234f8b04becae1628d719c3fb7576c8563b8b11a"
EXPECTED_CHANGES = [
    'v1alpha1: spec.envs[].valueFrom.configMapKeyRef.name: dropped default ""',
    'v1alpha1: spec.envs[].valueFrom.secretKeyRef.name: dropped default ""',
]


def _without(node: Any, keys: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_without(v, keys) for v in node]
    return node


def _crd(schema: dict) -> dict:
    return {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}}


def test_the_test_data_crd_is_the_unmodified_upstream_copy():
    assert hashlib.sha256(DGD_CRD.read_bytes()).hexdigest() == UPSTREAM_SHA256


def test_real_crd_loses_two_empty_defaults_and_nothing_else():
    original = yaml.safe_load(DGD_CRD.read_text())
    pristine = copy.deepcopy(original)
    adapted, changes = adapt_for_1_20(original)
    assert changes == EXPECTED_CHANGES
    assert original == pristine, "the input must not be mutated"
    # Same properties, types and everything else: only `default` (and `required`) may differ.
    assert _without(adapted, {"default", "required"}) == _without(original, {"default", "required"})


def test_defaults_under_additional_properties_are_kept():
    schema = {
        "type": "object",
        "properties": {
            "m": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"x": {"type": "string", "default": ""}},
                },
            }
        },
    }
    adapted, changes = adapt_for_1_20(_crd(schema))
    assert changes == []
    assert adapted == _crd(schema)


def test_a_list_map_key_losing_its_default_becomes_required():
    schema = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "default": ""},
                        "other": {"type": "string", "default": ""},
                        "kept": {"type": "string", "default": "x"},
                    },
                },
            }
        },
    }
    adapted, changes = adapt_for_1_20(_crd(schema))
    item = adapted["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["items"]
    assert item["items"]["required"] == ["name"]
    assert item["items"]["properties"]["kept"] == {"type": "string", "default": "x"}
    assert changes == [
        'v1: items[].name: dropped default ""',
        "v1: items[].name: marked required (a list-map key)",
        'v1: items[].other: dropped default ""',
    ]
