"""Build the DynamoGraphDeployment manifest for a test, always on a copy (REFERENCE §1, §9.7)."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from ftctl.errors import ScenarioError
from ftctl.platforms.kube.client import (
    DGD_GROUP,
    DGD_KIND,
    DGD_VERSION,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    LABEL_TEST,
)
from ftctl.scenario.model import Deployment, TestCase

DYNAMO_VERSION = "1.6.1"
IMAGES = {
    "vllm": f"nvcr.io/nvidia/ai-dynamo/vllm-runtime:{DYNAMO_VERSION}",
    "sglang": f"nvcr.io/nvidia/ai-dynamo/sglang-runtime:{DYNAMO_VERSION}",
    "trtllm": f"nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{DYNAMO_VERSION}",
}
# REFERENCE §1 fallback table: service names by backend and role.
SERVICE_NAMES = {
    ("vllm", "agg", "decode"): "VllmDecodeWorker",
    ("vllm", "disagg", "decode"): "VllmDecodeWorker",
    ("vllm", "disagg", "prefill"): "VllmPrefillWorker",
    ("sglang", "agg", "decode"): "decode",
    ("sglang", "disagg", "decode"): "decode",
    ("sglang", "disagg", "prefill"): "prefill",
    ("trtllm", "agg", "decode"): "TRTLLMWorker",
    ("trtllm", "disagg", "decode"): "TRTLLMDecodeWorker",
    ("trtllm", "disagg", "prefill"): "TRTLLMPrefillWorker",
}
_TP_FLAG = {"vllm": "--tensor-parallel-size", "sglang": "--tp", "trtllm": "--tensor-parallel-size"}
_MAX_LEN_FLAG = {"vllm": "--max-model-len", "sglang": "--context-length", "trtllm": "--max-seq-len"}
_MODEL_FLAGS = ("--model", "--model-path", "--served-model-name")


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label made from ``text`` (lowercase alnum and '-', at most ``limit``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:limit].rstrip("-") or "ftctl"


def label_value(text: str) -> str:
    """A valid label value (≤ 63 chars of alnum, '-', '_', '.')."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.")


def run_labels(run_id: str, test_name: str) -> dict[str, str]:
    """Labels carried by everything ftctl creates (cleanup finds leftovers by them)."""
    return {
        LABEL_MANAGED_BY: "ftctl",
        LABEL_RUN: label_value(run_id),
        LABEL_TEST: label_value(test_name),
    }


def role_of(name: str, spec: dict[str, Any]) -> str:
    """frontend | decode | prefill, from componentType/subComponentType, else REFERENCE §1."""
    ctype = str(spec.get("componentType", "")).lower()
    sub = str(spec.get("subComponentType", "")).lower()
    if ctype == "frontend":
        return "frontend"
    if sub in ("prefill", "decode"):
        return sub
    args = " ".join(_args_list(spec)[0])
    if "--is-prefill-worker" in args or "disaggregation-mode prefill" in args:
        return "prefill"
    if ctype == "worker":
        return "decode"
    lowered = name.lower()
    if "frontend" in lowered:
        return "frontend"
    return "prefill" if "prefill" in lowered else "decode"


def expected_replicas(manifest: dict[str, Any]) -> dict[str, int]:
    """Replicas per service of a DGD manifest."""
    services = (manifest.get("spec") or {}).get("services") or {}
    return {name: int((spec or {}).get("replicas", 1)) for name, spec in services.items()}


def _main_container(spec: dict[str, Any]) -> dict[str, Any]:
    return spec.setdefault("extraPodSpec", {}).setdefault("mainContainer", {})


def _args_list(spec: dict[str, Any]) -> tuple[list[str], bool]:
    """(args as a token list, whether they were one shell string after ``sh -c``)."""
    main = (spec.get("extraPodSpec") or {}).get("mainContainer") or {}
    args = list(main.get("args") or [])
    command = list(main.get("command") or [])
    if len(args) == 1 and command and command[-1] == "-c":
        return shlex.split(args[0]), True
    return [str(a) for a in args], False


def _store_args(spec: dict[str, Any], tokens: list[str], shell: bool) -> None:
    # A manifest's own `sh -c` string is re-quoted token by token: values never reach a shell raw.
    _main_container(spec)["args"] = [shlex.join(tokens)] if shell else tokens


def set_flag(tokens: list[str], flag: str, value: str | None) -> list[str]:
    """Set ``flag value`` (or a bare ``flag`` when value is None) in an argv list, replacing."""
    out = list(tokens)
    for i, tok in enumerate(out):
        if tok == flag:
            if value is not None and i + 1 < len(out):
                out[i + 1] = value
            return out
        if tok.startswith(flag + "="):
            out[i] = f"{flag}={value}" if value is not None else flag
            return out
    return out + ([flag, value] if value is not None else [flag])


def _set_env(envs: list[dict[str, Any]], name: str, value: str) -> list[dict[str, Any]]:
    out = [e for e in envs if e.get("name") != name]
    out.append({"name": name, "value": value})
    return out


def generated_manifest(dep: Deployment, name: str) -> dict[str, Any]:
    """A DGD for ``dep`` when the scenario names no manifest template."""
    services: dict[str, Any] = {
        "Frontend": {
            "componentType": "frontend",
            "replicas": 1,
            "extraPodSpec": {
                "mainContainer": {
                    "image": IMAGES[dep.backend],
                    "command": ["python3", "-m", "dynamo.frontend"],
                    "args": ["--http-port", "8000"],
                }
            },
        }
    }
    roles = ["decode"] if dep.topology == "agg" else ["decode", "prefill"]
    for role in roles:
        svc_name = SERVICE_NAMES[(dep.backend, dep.topology, role)]
        if dep.backend == "vllm":
            args = ["--model", dep.model]
            if dep.topology == "disagg":
                args.append("--is-prefill-worker" if role == "prefill" else "--is-decode-worker")
        else:
            args = ["--model-path", dep.model, "--served-model-name", dep.model]
            if dep.topology == "disagg":
                args += ["--disaggregation-mode", role]
        spec: dict[str, Any] = {
            "componentType": "worker",
            "replicas": 1,
            "resources": {"limits": {"gpu": "1"}},
            "extraPodSpec": {
                "mainContainer": {
                    "image": IMAGES[dep.backend],
                    "workingDir": "/workspace",
                    "command": ["python3", "-m", f"dynamo.{dep.backend}"],
                    "args": args,
                }
            },
        }
        if dep.topology == "disagg":
            spec["subComponentType"] = role
        services[svc_name] = spec
    return {
        "apiVersion": f"{DGD_GROUP}/{DGD_VERSION}",
        "kind": DGD_KIND,
        "metadata": {"name": name, "annotations": {"nvidia.com/enable-grove": "false"}},
        "spec": {
            "backendFramework": dep.backend,
            "envs": [
                {"name": "DYN_LOGGING_JSONL", "value": "true"},
                {"name": "DYN_LOG", "value": "info"},
            ],
            "services": services,
        },
    }


def load_template(path: Path) -> dict[str, Any]:
    """Read a DGD template with ``yaml.safe_load``; ScenarioError naming the file if bad."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read manifest ({exc.strerror})", file=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    if not isinstance(data, dict) or not isinstance((data.get("spec") or {}).get("services"), dict):
        raise ScenarioError("not a DynamoGraphDeployment (no spec.services)", file=str(path))
    return data


def build_dgd(test: TestCase, run_id: str, name: str | None = None) -> dict[str, Any]:
    """The DGD to apply for ``test``: template or generated, with overrides and run labels.

    Never mutates the template or the test (upstream leaked a token-overflow limit into other
    scenarios that way).
    """
    dep = test.deployment
    if dep.manifest is not None:
        manifest = copy.deepcopy(load_template(Path(dep.manifest)))
        manifest.setdefault("apiVersion", f"{DGD_GROUP}/{DGD_VERSION}")
        manifest.setdefault("kind", DGD_KIND)
    else:
        manifest = generated_manifest(dep, f"ftctl-{test.scenario}")
    meta = manifest.setdefault("metadata", {})
    meta["name"] = dns_name(name or meta.get("name") or f"ftctl-{test.scenario}", 52)
    meta.pop("namespace", None)
    meta.pop("resourceVersion", None)
    meta.pop("uid", None)
    meta["labels"] = {**(meta.get("labels") or {}), **run_labels(run_id, test.name)}
    spec = manifest["spec"]
    spec.setdefault("backendFramework", dep.backend)
    overrides = dict(dep.overrides)
    for svc_name, svc in spec["services"].items():
        svc = svc if isinstance(svc, dict) else {}
        spec["services"][svc_name] = svc
        role = role_of(svc_name, svc)
        if dep.dp > 1:
            svc["replicas"] = dep.dp
        svc.setdefault("replicas", 1)
        if dep.image:
            _main_container(svc)["image"] = dep.image
        if role != "frontend":
            tokens, shell = _args_list(svc)
            for flag in _MODEL_FLAGS:
                if flag in tokens:
                    tokens = set_flag(tokens, flag, dep.model)
            if dep.tp > 1 or _TP_FLAG[dep.backend] in tokens:
                tokens = set_flag(tokens, _TP_FLAG[dep.backend], str(dep.tp))
                svc.setdefault("resources", {}).setdefault("limits", {})["gpu"] = str(dep.tp)
            if dep.max_model_len:
                tokens = set_flag(tokens, _MAX_LEN_FLAG[dep.backend], str(dep.max_model_len))
            _store_args(svc, tokens, shell)
        override = overrides.get(svc_name)
        if override is not None:
            if override.replicas is not None:
                svc["replicas"] = override.replicas
            if override.image:
                _main_container(svc)["image"] = override.image
            if override.args:
                tokens, shell = _args_list(svc)
                _store_args(svc, tokens + list(override.args), shell)
            envs = list(svc.get("envs") or [])
            for key, value in override.env:
                envs = _set_env(envs, key, value)
            if envs:
                svc["envs"] = envs
    return manifest


def set_service_env(manifest: dict[str, Any], service: str, name: str, value: str) -> dict:
    """A merge patch setting env ``name`` on ``service`` (the rolling-upgrade trigger)."""
    svc = ((manifest.get("spec") or {}).get("services") or {}).get(service) or {}
    envs = _set_env(list(svc.get("envs") or []), name, value)
    return {"spec": {"services": {service: {"envs": envs}}}}
