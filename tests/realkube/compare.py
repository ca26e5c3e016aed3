"""What a real apiserver changed in an object it stored: pruned, added and changed paths."""

from __future__ import annotations

from typing import Any


def differences(sent: Any, stored: Any, path: str = "") -> list[str]:
    """One line per difference between what was sent and what was read back.

    ``pruned: spec.services.Frontend.volumeMounts`` is a field the CRD's schema does not know
    (the apiserver drops it silently); ``added: …`` is a server default; ``changed: …`` names
    both values. Lists are compared item by item (``[i]``).
    """
    here = path or "<root>"
    if isinstance(sent, dict) and isinstance(stored, dict):
        out = []
        for key, value in sent.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in stored:
                out.append(f"pruned: {child}")
            else:
                out += differences(value, stored[key], child)
        for key in stored.keys() - sent.keys():
            child = f"{path}.{key}" if path else str(key)
            out.append(f"added: {child} = {stored[key]!r}")
        return out
    if isinstance(sent, list) and isinstance(stored, list):
        if len(sent) != len(stored):
            return [f"changed: {here}: {len(sent)} item(s) sent, {len(stored)} stored"]
        out = []
        for i, (a, b) in enumerate(zip(sent, stored, strict=True)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    if sent != stored or type(sent) is not type(stored):
        return [f"changed: {here}: sent {sent!r}, stored {stored!r}"]
    return []


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target`` (a new object)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
