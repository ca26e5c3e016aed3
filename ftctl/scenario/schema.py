"""JSON Schema (draft 2020-12) validation with messages that name file, line, column and field."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ftctl.errors import raise_all
from ftctl.scenario.yamlio import Document, did_you_mean

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILES = {
    "Scenario": "scenario.schema.json",
    "FailureCatalog": "failure-catalog.schema.json",
    "Thresholds": "thresholds.schema.json",
}


def schema_path(kind: str) -> Path:
    """The schema file of ``kind`` (shipped inside the package)."""
    return SCHEMA_DIR / SCHEMA_FILES[kind]


@cache
def _validator(kind: str):
    # jsonschema costs ~0.2 s to import: only pay for it when a document is validated.
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _messages(err) -> list[tuple[str, list, bool]]:
    """(message, path, point-at-key) for one jsonschema error (several for unknown keys)."""
    path = list(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    instance = err.instance
    if "x-error" in schema:
        return [(f"{instance!r} is not {schema['x-error']}", path, False)]
    if err.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        if extra and allowed:
            return [
                (f"unknown key '{key}'{did_you_mean(key, allowed)}", [*path, key], True)
                for key in extra
            ]
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return [("missing required field", [*path, missing], False)]
    if err.validator == "enum":
        choices = [str(c) for c in err.validator_value]
        hint = did_you_mean(str(instance), choices)
        return [(f"{instance!r} is not one of {', '.join(choices)}{hint}", path, False)]
    if err.validator == "const":
        return [(f"{instance!r} is not supported, expected {err.validator_value!r}", path, False)]
    if err.validator == "propertyNames":
        return [(f"invalid name {instance!r}", path, True)]
    return [(err.message, path, False)]


def validate_schema(doc: Document, kind: str) -> None:
    """Validate ``doc`` against the schema of ``kind``; raise every error, in document order.

    Raises:
        ScenarioError: one error, file:line:col: field.path: message.
        ScenarioErrors: several, sorted by line and column.
    """
    found: dict[tuple, tuple] = {}
    for err in _validator(kind).iter_errors(doc.data):
        for message, path, key in _messages(err):
            line, col = doc.locate(path, key=key)
            # One problem per place: a missing field of a parent can locate on the parent.
            here = (line, col, tuple(path), key)
            if here not in found:
                found[here] = (path, message, key)
    raise_all([doc.error(path, message, key=key) for path, message, key in found.values()])


def check_kind(doc: Document, expected: tuple[str, ...]) -> str:
    """The document's kind, checked against ``expected``; a clear error otherwise."""
    data: dict[str, Any] = doc.data
    if "kind" not in data:
        raise doc.error([], f"missing 'kind' (one of {', '.join(expected)})")
    kind = data["kind"]
    if kind not in expected:
        hint = ""
        if kind in SCHEMA_FILES:
            flag = {"Thresholds": "--thresholds", "FailureCatalog": "--failures"}.get(kind)
            hint = f" (pass a {kind} file with {flag})" if flag else ""
        else:
            hint = did_you_mean(str(kind), list(SCHEMA_FILES))
        raise doc.error(["kind"], f"expected {' or '.join(expected)}, got {kind!r}{hint}")
    if data.get("apiVersion") != "ftctl/v1":
        if "apiVersion" not in data:
            raise doc.error([], "missing 'apiVersion: ftctl/v1'")
        raise doc.error(
            ["apiVersion"], f"{data['apiVersion']!r} is not supported, expected 'ftctl/v1'"
        )
    return kind
