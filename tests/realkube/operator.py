"""A Dynamo operator stand-in: turns DynamoGraphDeployments into pods through the real API.

It watches DGDs and pods through the apiserver and reconciles level-triggered, as a controller
does. What it creates follows shared/k8s/OPERATOR-FACTS.md (the DCD path, which ftctl's DGDs
select with ``nvidia.com/enable-grove: "false"``): one pod per replica per service, the DCD
path's labels, container ``main`` with the operator's ports and env, the finalizer, and the DGD
``status`` (state + Ready condition) written through the status subresource. Every guess where
the facts are silent is in the GUESSES block below, nowhere else.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import threading
import time
from typing import Any

GROUP, VERSION, PLURAL = "nvidia.com", "v1alpha1", "dynamographdeployments"
FINALIZER = "nvidia.com/finalizer"
LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
LABEL_HASH = "pod-template-hash"  # the Deployment controller's label

# ---- GUESSES: where OPERATOR-FACTS.md is silent --------------------------------------------
# 1. Ownership: upstream a pod is owned by a ReplicaSet of the Deployment of the DCD of the
#    DGD. No DCD, Deployment or ReplicaSet is created here; the pod's single controller owner
#    reference points at the DGD, and this stand-in also does the garbage collector's work
#    (pods whose DGD is gone are deleted).
# 2. Pod names: as a Deployment's ReplicaSet names them, ``<dgd>-<lower(service)>-<hash>-<5>``:
#    generateName ``<Deployment name>-<pod-template-hash>-``, the apiserver adds 5 characters.
#    The hash is ours (sha256 of the service spec and the DGD envs), not the controller's fnv.
# 3. Rollout when a service's template changes: the Deployment defaults (25 % surge rounded up,
#    25 % unavailable rounded down), i.e. one extra pod at a time, none unavailable.
# 4. Env precedence: operator defaults < spec.envs < service envs < mainContainer.env.
# 5. "Not ready" reason in the Ready message: ``<dgd>-<lower(service)>: <ready>/<want> ready``.
# 6. A frontend without a command gets ``python3 -m dynamo.frontend``; others ``/bin/sh -c``.
TEMPLATE_HASH_LEN = 10
MAX_SURGE = 1
# ----------------------------------------------------------------------------------------------

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' SafeEncodeString


def deployment_name(dgd: str, service: str) -> str:
    """``<dgd-name>-<lower(service-name)>``: the DCD's and its Deployment's name."""
    return f"{dgd}-{service.lower()}"


def dynamo_namespace(dgd: dict[str, Any]) -> str:
    """A service's ``dynamoNamespace`` if one sets it, else ``dynamo-<dgd-name>``."""
    for svc in (dgd["spec"].get("services") or {}).values():
        if svc.get("dynamoNamespace"):
            return str(svc["dynamoNamespace"])
    return f"dynamo-{dgd['metadata']['name']}"


def template_hash(dgd: dict[str, Any], service: str) -> str:
    """A short stable hash of what a service's pod template is made from (guess 2)."""
    made_of = {"svc": dgd["spec"]["services"][service], "envs": dgd["spec"].get("envs") or []}
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:TEMPLATE_HASH_LEN])


def _merge_env(*layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for item in layer or []:
            if item.get("name"):
                merged[item["name"]] = copy.deepcopy(item)
    return list(merged.values())


def pod_labels(dgd: dict[str, Any], service: str) -> dict[str, str]:
    """The DCD path's pod labels (OPERATOR-FACTS.md, "Labels on pods")."""
    name = dgd["metadata"]["name"]
    svc = dgd["spec"]["services"][service]
    labels = {
        LABEL_COMPONENT: service,
        "nvidia.com/dynamo-namespace": dynamo_namespace(dgd),
        LABEL_DGD: name,
        "nvidia.com/selector": deployment_name(name, service),
        "nvidia.com/metrics-enabled": "true",
    }
    if svc.get("componentType"):
        labels["nvidia.com/dynamo-component-type"] = str(svc["componentType"])
    if svc.get("subComponentType"):
        labels["nvidia.com/dynamo-sub-component-type"] = str(svc["subComponentType"])
    labels.update((svc.get("extraPodMetadata") or {}).get("labels") or {})
    labels[LABEL_HASH] = template_hash(dgd, service)
    return labels


def pod_manifest(dgd: dict[str, Any], service: str, node: str) -> dict[str, Any]:
    """The pod the operator's Deployment would create for one replica of ``service``."""
    name = dgd["metadata"]["name"]
    svc = dgd["spec"]["services"][service]
    main = copy.deepcopy((svc.get("extraPodSpec") or {}).get("mainContainer") or {})
    ctype = str(svc.get("componentType", ""))
    defaults = [
        {"name": "DYN_NAMESPACE", "value": dynamo_namespace(dgd)},
        {"name": "DYN_PARENT_DGD_K8S_NAME", "value": name},
        {"name": "DYN_PARENT_DGD_K8S_NAMESPACE", "value": dgd["metadata"]["namespace"]},
    ]
    if ctype == "frontend":
        defaults += [{"name": "DYNAMO_PORT", "value": "8000"}, {"name": "DYN_HTTP_PORT", "value": "8000"}]  # fmt: skip
        ports = [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        command = ["python3", "-m", "dynamo.frontend"]
    else:
        defaults += [
            {"name": "DYN_SYSTEM_ENABLED", "value": "true"},
            {"name": "DYN_SYSTEM_PORT", "value": "9090"},
            {"name": "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "value": '["generate"]'},
        ]
        ports = [{"name": "system", "containerPort": 9090, "protocol": "TCP"}]
        command = ["/bin/sh", "-c"]
    container = {
        **main,
        "name": "main",
        "image": main.get("image") or "unset",
        "command": main.get("command") or command,
        "env": _merge_env(
            defaults, dgd["spec"].get("envs") or [], svc.get("envs") or [], main.get("env") or []
        ),
        "ports": main.get("ports") or ports,
        "volumeMounts": [{"name": "shared-memory", "mountPath": "/dev/shm"}],
    }
    if not container.get("args"):
        container.pop("args", None)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{deployment_name(name, service)}-{template_hash(dgd, service)}-",
            "namespace": dgd["metadata"]["namespace"],
            "labels": pod_labels(dgd, service),
            "annotations": dict((svc.get("extraPodMetadata") or {}).get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "DynamoGraphDeployment",
                    "name": name,
                    "uid": dgd["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 60,
            "containers": [container],
            "volumes": [
                {"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
            ],
        },
    }


def _ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


class OperatorStandIn:
    """Reconciles every DGD of the cluster into pods on ``node``; ``start()`` / ``stop()``."""

    def __init__(self, api_client: Any, node: str, resync_s: float = 2.0) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.node = node
        self.resync_s = resync_s
        self.errors: list[str] = []
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name="operator-reconcile", daemon=True),
            threading.Thread(target=self._watch_dgds, name="operator-watch-dgd", daemon=True),
            threading.Thread(target=self._watch_pods, name="operator-watch-pods", daemon=True),
        ]

    def start(self) -> OperatorStandIn:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        for thread in self._threads:
            thread.join(timeout=10)

    # -- watches: they only wake the reconcile loop -------------------------------------------
    def _watch(self, list_call, **kwargs: Any) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                for _ in watch.Watch().stream(list_call, timeout_seconds=5, **kwargs):
                    self._dirty.set()
                    if self._stop.is_set():
                        return
            except Exception as exc:  # a 410 or a dropped stream: list again, watch again
                self._note(f"watch: {exc!r}")
                self._stop.wait(0.5)
            self._dirty.set()

    def _watch_dgds(self) -> None:
        self._watch(self.custom.list_cluster_custom_object, group=GROUP, version=VERSION, plural=PLURAL)  # fmt: skip

    def _watch_pods(self) -> None:
        self._watch(self.core.list_pod_for_all_namespaces, label_selector=LABEL_DGD)

    def _note(self, text: str) -> None:
        if not self._stop.is_set():
            self.errors.append(text)
            print(f"operator stand-in: {text}", file=sys.stderr)

    # -- reconcile ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self.resync_s)
            self._dirty.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile_all()
            except Exception as exc:  # keep reconciling; the symptom shows in a test
                self._note(f"reconcile: {exc!r}")
                self._stop.wait(0.2)

    def reconcile_all(self) -> None:
        dgds = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        pods = self.core.list_pod_for_all_namespaces(label_selector=LABEL_DGD).items
        uids = {d["metadata"]["uid"] for d in dgds}
        for pod in pods:  # guess 1: the garbage collector's part
            owners = [o.uid for o in pod.metadata.owner_references or []]
            if owners and not set(owners) & uids and pod.metadata.deletion_timestamp is None:
                self._delete_pod(pod)
        for dgd in dgds:
            mine = [
                p
                for p in pods
                if any(o.uid == dgd["metadata"]["uid"] for o in p.metadata.owner_references or [])
            ]
            self.reconcile(dgd, mine)

    def reconcile(self, dgd: dict[str, Any], pods: list[Any]) -> None:
        meta = dgd["metadata"]
        ns, name = meta["namespace"], meta["name"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:  # nothing of ours to clean up beyond the pods (GC)
                finalizers.remove(FINALIZER)
                self._patch_dgd(ns, name, {"metadata": {"finalizers": finalizers or None}})
            return
        if FINALIZER not in finalizers:
            self._patch_dgd(ns, name, {"metadata": {"finalizers": [*finalizers, FINALIZER]}})
        not_ready = []
        for service, svc in (dgd["spec"].get("services") or {}).items():
            want = int(svc.get("replicas", 1))
            current_hash = template_hash(dgd, service)
            live = [
                p
                for p in pods
                if (p.metadata.labels or {}).get(LABEL_COMPONENT) == service
                and p.metadata.deletion_timestamp is None
            ]
            current = [p for p in live if p.metadata.labels.get(LABEL_HASH) == current_hash]
            old = [p for p in live if p not in current]
            ready_current = sum(1 for p in current if _ready(p))
            ready_old = sum(1 for p in old if _ready(p))
            limit = want + (MAX_SURGE if old else 0)
            for _ in range(min(want - len(current), limit - len(live))):
                self._create_pod(dgd, service)
            if old:  # guess 3: scale the old set down as new pods become ready
                removable = ready_current + ready_old - want
                for pod in sorted(old, key=_ready):  # unready old pods first
                    if not _ready(pod) and len(current) >= want:
                        self._delete_pod(pod)
                    elif removable > 0:
                        removable -= 1
                        self._delete_pod(pod)
            elif len(current) > want:
                newest = sorted(current, key=lambda p: p.metadata.creation_timestamp)
                for pod in newest[want:]:
                    self._delete_pod(pod)
            if ready_current < want or old:
                not_ready.append(f"{deployment_name(name, service)}: {ready_current}/{want} ready")
        self._write_status(dgd, not_ready)

    def _write_status(self, dgd: dict[str, Any], not_ready: list[str]) -> None:
        meta = dgd["metadata"]
        ready = not not_ready
        cond = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "all_resources_are_ready" if ready else "some_resources_are_not_ready",
            "message": "All resources are ready"
            if ready
            else "Resources not ready: " + "; ".join(not_ready),
            "observedGeneration": meta.get("generation", 1),
        }
        state = "successful" if ready else "pending"
        old = dgd.get("status") or {}
        old_cond = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), {})
        if old.get("state") == state and all(old_cond.get(k) == v for k, v in cond.items()):
            return
        # The operator resets lastTransitionTime on every reconcile that writes the condition.
        cond["lastTransitionTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                meta["namespace"],
                PLURAL,
                meta["name"],
                {"status": {"state": state, "conditions": [cond]}},
            )
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    # -- API writes ---------------------------------------------------------------------------
    def _patch_dgd(self, ns: str, name: str, patch: dict[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def _create_pod(self, dgd: dict[str, Any], service: str) -> None:
        manifest = pod_manifest(dgd, service, self.node)
        self.core.create_namespaced_pod(dgd["metadata"]["namespace"], manifest)

    def _delete_pod(self, pod: Any) -> None:
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
