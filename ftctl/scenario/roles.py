"""Roles (frontend | decode | prefill) → service names, from a DGD manifest or REFERENCE §1."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ftctl.errors import ScenarioError
from ftctl.scenario.yamlio import read_document

# REFERENCE.md §1: service names by backend and topology when no manifest says otherwise.
FALLBACK: dict[tuple[str, str], dict[str, str]] = {
    ("vllm", "agg"): {"frontend": "Frontend", "decode": "VllmDecodeWorker"},
    ("vllm", "disagg"): {
        "frontend": "Frontend",
        "decode": "VllmDecodeWorker",
        "prefill": "VllmPrefillWorker",
    },
    ("sglang", "agg"): {"frontend": "Frontend", "decode": "decode"},
    ("sglang", "disagg"): {"frontend": "Frontend", "decode": "decode", "prefill": "prefill"},
    ("trtllm", "agg"): {"frontend": "Frontend", "decode": "TRTLLMWorker"},
    ("trtllm", "disagg"): {
        "frontend": "Frontend",
        "decode": "TRTLLMDecodeWorker",
        "prefill": "TRTLLMPrefillWorker",
    },
}


def fallback_roles(backend: str, topology: str) -> list[tuple[str, str]]:
    """[(service, role)] from REFERENCE §1's table."""
    return [(name, role) for role, name in FALLBACK[(backend, topology)].items()]


@cache
def manifest_roles(manifest: Path) -> tuple[tuple[str, str], ...]:
    """[(service, role)] from a DGD manifest's ``spec.services.*.componentType/subComponentType``.

    Raises:
        ScenarioError: unreadable manifest or no frontend / worker in it.
    """
    doc = read_document(manifest)
    services = (doc.data.get("spec") or {}).get("services")
    if not isinstance(services, dict) or not services:
        raise doc.error(["spec", "services"], "a DGD manifest needs spec.services")
    out: list[tuple[str, str]] = []
    for name, spec in services.items():
        spec = spec if isinstance(spec, dict) else {}
        ctype = str(spec.get("componentType", "")).lower()
        sub = str(spec.get("subComponentType", "")).lower()
        if ctype == "frontend":
            out.append((str(name), "frontend"))
        elif ctype == "worker":
            out.append((str(name), "prefill" if sub == "prefill" else "decode"))
    roles = {role for _, role in out}
    if "frontend" not in roles or "decode" not in roles:
        raise ScenarioError(
            "needs a service with componentType: frontend and one with componentType: worker",
            file=doc.file,
            line=doc.locate(["spec", "services"])[0],
            column=doc.locate(["spec", "services"])[1],
            field="spec.services",
        )
    order = {"frontend": 0, "decode": 1, "prefill": 2}
    return tuple(sorted(out, key=lambda sr: order[sr[1]]))


@cache
def manifest_replicas(manifest: Path) -> dict[str, int]:
    """``{service: spec.services.<service>.replicas}`` of a DGD manifest (1 when unset).

    What the DGD deploys at dp 1, and so what the threshold rules count (upstream picks the
    high-availability profile by decode-worker replicas).
    """
    services = (read_document(manifest).data.get("spec") or {}).get("services") or {}
    out: dict[str, int] = {}
    for name, spec in services.items():
        value = spec.get("replicas", 1) if isinstance(spec, dict) else 1
        out[str(name)] = value if isinstance(value, int) and value >= 0 else 1
    return out
