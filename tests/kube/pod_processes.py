"""Which local process a DGD service's container becomes, and when it counts as ready.

Shared by the fake API server (tests/kube/fake_apiserver.py) and the kubelet stand-in behind
the real apiserver (tests/realkube/kubelet.py): the Dynamo frontend for a frontend, a Dynamo
mocker under the container's module name for a worker, a sleeper for a never-ready image.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

from ftctl.platforms.supervisor import ProcessSpec, Replica

NEVER_READY_IMAGE = "never-ready"  # images containing this never pass the readiness probe
FRONTEND_PORT = 8000
WORKER_SYSTEM_PORT = 9090
REGISTERED = re.compile(r"Registered endpoint '[\w.-]+\.generate'")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A currently free 127.0.0.1 TCP port below 32768.

    Dynamo parses DYN_SYSTEM_PORT as an i16, so ephemeral ports (≥ 32768) crash the worker.
    """
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def is_frontend(component_type: str, command: list[str]) -> bool:
    """A frontend by componentType, or by a ``dynamo.frontend`` command when the type is unset."""
    if component_type:
        return component_type == "frontend"
    return "dynamo.frontend" in command


def container_port(frontend: bool) -> int:
    """The one port a pod serves: the frontend's HTTP port or the worker's system port."""
    return FRONTEND_PORT if frontend else WORKER_SYSTEM_PORT


def host_ports(frontend: bool) -> dict[int, int]:
    """Container port -> a fresh loopback port (every "pod" shares 127.0.0.1)."""
    return {container_port(frontend): free_port()}


def process_spec(
    *,
    component_type: str,
    sub_component_type: str,
    container: dict[str, Any],
    env_items: list[dict[str, Any]],
    ports: dict[int, int],
    workdir: Path,
    tokenizer: Path,
    worker_args: list[str],
) -> ProcessSpec:
    """What runs for a container: Dynamo frontend, mocker worker, or a never-ready sleeper.

    Args:
        component_type: the service's componentType (``frontend``, ``worker``, or empty).
        sub_component_type: ``prefill``/``decode`` or empty.
        container: the container (``image``, ``command``, ``args``).
        env_items: EnvVar entries (name/value) in order; later ones win.
        ports: container port -> host port, from :func:`host_ports`.
        workdir: the graph's folder (file discovery store and HOME), shared by its pods.
        tokenizer: the tokenizer folder the mocker loads.
        worker_args: extra mocker arguments (speed-up ratio).
    """
    image = str(container.get("image", ""))
    command = [str(t) for t in container.get("command") or []]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DYN_DISCOVERY_BACKEND": "file",
        "DYN_FILE_KV": str(workdir / "kv"),
        "DYN_REQUEST_PLANE": "tcp",
        "DYN_EVENT_PLANE": "zmq",
        "DYN_TCP_RPC_HOST": "127.0.0.1",
        "DYN_EVENT_PLANE_HOST": "127.0.0.1",
        "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1",
        "DYN_SYSTEM_HOST": "127.0.0.1",
        "HOME": str(workdir / "home"),
        "PYTHONUNBUFFERED": "1",
    }
    (workdir / "kv").mkdir(parents=True, exist_ok=True)
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    for item in env_items:
        if item.get("name") and item.get("value") is not None:
            env[item["name"]] = str(item["value"])
    if NEVER_READY_IMAGE in image:
        argv = [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"]
        return ProcessSpec(argv=argv, env=env)
    if is_frontend(component_type, command):
        http = str(ports[FRONTEND_PORT])
        env["DYNAMO_PORT"] = env["DYN_HTTP_PORT"] = http  # the operator sets 8000: remapped
        argv = [
            sys.executable,
            "-m",
            "dynamo.frontend",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            http,
            "--router-mode",
            "round-robin",
        ]
        return ProcessSpec(argv=argv, env=env)
    tokens = [str(a) for a in container.get("args") or []]
    if len(tokens) == 1 and " " in tokens[0]:
        tokens = tokens[0].split()
    model = "tiny"
    for flag in ("--served-model-name", "--model", "--model-path"):
        if flag in tokens and tokens.index(flag) + 1 < len(tokens):
            model = tokens[tokens.index(flag) + 1]
            break
    mode = sub_component_type if sub_component_type in ("prefill", "decode") else "agg"
    if "--is-prefill-worker" in tokens:
        mode = "prefill"
    # Run the mocker under the container's own module name (dynamo.vllm, ...), so that
    # `ps` in the pod matches what a real worker pod shows.
    label = next((t for t in command if t.startswith("dynamo.")), "dynamo.mocker")
    env["PYTHONPATH"] = str(REPO)
    argv = [
        sys.executable,
        "-m",
        "ftctl.platforms.local_launch",
        label,
        "--",
        "--model-path",
        str(tokenizer),
        "--model-name",
        model,
        "--disaggregation-mode",
        mode,
        *worker_args,
    ]
    for flag in ("--max-model-len", "--context-length", "--max-seq-len"):
        if flag in tokens and tokens.index(flag) + 1 < len(tokens):
            argv += ["--max-model-len", tokens[tokens.index(flag) + 1]]
    env["DYN_SYSTEM_PORT"] = str(ports[WORKER_SYSTEM_PORT])
    env["DYN_SYSTEM_ENABLED"] = "true"
    return ProcessSpec(argv=argv, env=env)


def probe(image: str, replica: Replica, ports: dict[int, int]) -> bool:
    """The readiness probe: a frontend that serves a model, a worker that registered."""
    if NEVER_READY_IMAGE in image or not replica.running:
        return False
    if FRONTEND_PORT in ports:
        # Ready once it serves a model (REFERENCE §6), not merely once /health answers.
        url = f"http://127.0.0.1:{ports[FRONTEND_PORT]}/v1/models"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as resp:
                return resp.status == 200 and bool(json.loads(resp.read()).get("data"))
        except (OSError, ValueError):
            return False
    try:
        text = replica.log_path.read_text(errors="replace")
    except OSError:
        return False
    # The endpoint's namespace is DYN_NAMESPACE when the operator sets it (dynamo-<dgd>).
    return REGISTERED.search(text) is not None


def stats_summary(node: str, pods: list[tuple[str, str, int]]) -> dict[str, Any]:
    """The kubelet's /stats/summary (the fields ftctl reads) for running pods given as
    (namespace, name, pid of the main process): each pod's process tree sampled here."""
    from ftctl.observe import sample_resources

    entries = []
    for namespace, name, pid in pods:
        sample = sample_resources(pid)
        if not sample.get("ok"):
            continue
        entries.append(
            {
                "podRef": {"name": name, "namespace": namespace},
                "cpu": {"usageCoreNanoSeconds": int(sample["cpu_s"] * 1e9)},
                "memory": {"workingSetBytes": sample["rss_bytes"], "rssBytes": sample["rss_bytes"]},
            }
        )
    return {"node": {"nodeName": node}, "pods": entries}
