"""The DGD CRD's structural schema applied as kube-apiserver 1.20 applies it: prune, default, check.

The real apiserver drops fields the schema does not know (silently), fills in ``default``
values, then refuses a wrong type, enum value, minimum or missing required field with 422
(tests/realkube/test_contract.py checks both servers answer alike). The schema is the real
CRD with the one 1.20 adaptation (tools/kube/crd.py), so the fake prunes exactly what the real
apiserver prunes. Only the keywords the DGD CRD uses are implemented.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

CRD = (
    Path(__file__).resolve().parents[1] / "data" / "crds" / "nvidia.com_dynamographdeployments.yaml"
)
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


@functools.cache
def dgd_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the DGD's served version, adapted for 1.20 (parsed once)."""
    import yaml

    from tools.kube.crd import adapt_for_1_20

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd, _ = adapt_for_1_20(yaml.load(CRD.read_text(), Loader=loader))
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name in ("integer", "number", "string", "object", "array"):
        if isinstance(value, _TYPES[name]):
            return name
    return type(value).__name__


def _has_type(obj: Any, want: str) -> bool:
    if isinstance(obj, bool) and want != "boolean":
        return False
    return isinstance(obj, _TYPES[want])


def prune(obj: Any, schema: dict[str, Any]) -> None:
    """Drop, in place, every field ``schema`` does not declare (a structural schema's pruning)."""
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(obj):
            if props is not None and key in props:
                prune(obj[key], props[key])
            elif isinstance(extra, dict):
                prune(obj[key], extra)
            elif props is not None or extra is False:
                del obj[key]
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            prune(item, schema["items"])


def default(obj: Any, schema: dict[str, Any]) -> None:
    """Fill in, in place, each declared ``default`` of an absent property."""
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
        for key, value in obj.items():
            sub = props.get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                default(value, sub)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            default(item, schema["items"])


def errors(obj: Any, schema: dict[str, Any], path: str) -> list[dict[str, str]]:
    """Status causes (reason, message, field) for what ``obj`` violates, in 1.20's words."""
    if schema.get("x-kubernetes-int-or-string"):
        if obj is None or isinstance(obj, int | str) and not isinstance(obj, bool):
            return []
        kind = _json_type(obj)
        why = f"{path} in body must be of type integer,string: {json.dumps(kind)}"
        return [_invalid(path, kind, why)]
    want = schema.get("type")
    if obj is None and schema.get("nullable"):
        return []
    if want and not _has_type(obj, want):
        kind = _json_type(obj)
        why = f"{path} in body must be of type {want}: {json.dumps(kind)}"
        return [_invalid(path, kind, why)]
    out: list[dict[str, str]] = []
    if "enum" in schema and obj not in schema["enum"]:
        values = ", ".join(json.dumps(v) for v in schema["enum"])
        message = f"Unsupported value: {json.dumps(obj)}: supported values: {values}"
        out.append({"reason": "FieldValueNotSupported", "message": message, "field": path})
    if "minimum" in schema and isinstance(obj, int | float) and obj < schema["minimum"]:
        why = f"{path} in body should be greater than or equal to {schema['minimum']}"
        out.append(_invalid(path, obj, why))
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in obj:
                out.append(
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": f"{path}.{key}",
                    }
                )
        for key, value in obj.items():
            sub = props.get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                out += errors(value, sub, f"{path}.{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            out += errors(item, schema["items"], f"{path}[{i}]")
    return out


def _invalid(path: str, value: Any, why: str) -> dict[str, str]:
    message = f"Invalid value: {json.dumps(value)}: {why}"
    return {"reason": "FieldValueInvalid", "message": message, "field": path}


def admit(body: dict[str, Any]) -> list[dict[str, str]]:
    """Prune and default ``body``'s spec and status in place; return the causes of a 422.

    ``apiVersion``, ``kind`` and ``metadata`` are the apiserver's own (not pruned here).
    """
    schema = dgd_schema()["properties"]
    causes: list[dict[str, str]] = []
    for part in ("spec", "status"):
        if part in body:
            prune(body[part], schema[part])
            default(body[part], schema[part])
            causes += errors(body[part], schema[part], part)
    return causes


def message(kind: str, name: str, causes: list[dict[str, str]]) -> str:
    """The 422 message: one cause inline, several in brackets."""
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    listed = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return f'{kind} "{name}" is invalid: {listed}'
