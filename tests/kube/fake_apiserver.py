"""A loopback fake Kubernetes API server (aiohttp) whose pods are real local processes.

It speaks the real REST, watch, exec and port-forward protocols well enough for the unmodified
``kubernetes`` client (REFERENCE §7). Its "operator" turns a DynamoGraphDeployment into pods run
by the shared Supervisor: the Dynamo frontend and mocker workers. What a real cluster would
decide differently (pod names/labels, exec stream on container death) is isolated here.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import json
import os
import re
import signal as signal_mod
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ftctl.platforms.kube.procs import PROBE_CODE
from ftctl.platforms.supervisor import ProcessSpec, Replica, Supervisor
from tests.kube import channels, crd_schema
from tests.kube.pod_processes import (
    NEVER_READY_IMAGE,
    host_ports,
    is_frontend,
    probe,
    process_spec,
    stats_summary,
)

GROUP, VERSION, PLURAL = "nvidia.com", "v1alpha1", "dynamographdeployments"
# How the fake operator labels and names pods: like the upstream DynamoComponentDeployment
# path ("dcd") or the Grove path ("grove"), shared/k8s/OPERATOR-FACTS.md §2. Chosen per cluster
# (FakeCluster.label_style; $FTCTL_FAKE_LABELS for the standalone server), fixed per DGD.
LABEL_STYLES = ("dcd", "grove")
WATCH_HISTORY = 500  # pod watch events kept; older resourceVersions get 410 Expired
# The field labels the real apiserver (1.20) accepts in field selectors; others are 400.
POD_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}
EVENT_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}
# What the real apiserver names in Status details for a DGD (the resource, not the kind).
DGD_DETAILS = {"group": GROUP, "kind": PLURAL}
_RFC1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def rfc3339(ns: int | None) -> str | None:
    """RFC 3339 UTC with microseconds (the client parses it)."""
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status_obj(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A metav1.Status as the apiserver sends it."""
    obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        obj["details"] = details
    return obj


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    410: "Expired",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def error_response(code: int, message: str, **details: Any) -> web.Response:
    """A JSON Status response with ``code`` (and ``details``, as the apiserver adds them)."""
    reason = _REASONS.get(code, "Unknown")
    return web.json_response(status_obj(code, reason, message, **details), status=code)


def invalid_response(
    what: str, name: str, field: str, value: Any, why: str, **details: Any
) -> web.Response:
    """A 422 Invalid Status with one FieldValueInvalid cause, worded as the apiserver does.

    ``what`` is the kind as the message names it (``DynamoGraphDeployment.nvidia.com``);
    ``details`` are the Status details besides name and causes (group, kind).
    """
    cause = f"Invalid value: {json.dumps(value)}: {why}"
    return error_response(
        422,
        f'{what} "{name}" is invalid: {field}: {cause}',
        name=name,
        **details,
        causes=[{"reason": "FieldValueInvalid", "message": cause, "field": field}],
    )


def pod_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The defaults the real apiserver fills in on pod create (what ftctl may read)."""
    spec = body.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault(
        "tolerations",
        [
            {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute"}
            | {"tolerationSeconds": 300}
            for t in ("not-ready", "unreachable")
        ],
    )
    requests = limits = 0
    guaranteed = True
    for c in spec.get("containers") or []:
        res = c.setdefault("resources", {})
        if res.get("limits"):
            res.setdefault("requests", dict(res["limits"]))
        requests += len(res.get("requests") or {})
        limits += len(res.get("limits") or {})
        guaranteed = guaranteed and {"cpu", "memory"} <= set(res.get("limits") or {})
        guaranteed = guaranteed and res.get("requests") == res.get("limits")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = str(c.get("image", ""))
        untagged = ":" not in image.rsplit("/", 1)[-1]
        pull = "Always" if untagged or image.endswith(":latest") else "IfNotPresent"
        c.setdefault("imagePullPolicy", pull)
    qos = "Guaranteed" if guaranteed else ("Burstable" if requests or limits else "BestEffort")
    body["status"] = {"phase": "Pending", "qosClass": qos}
    return body


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    """Equality, inequality, existence and set-based label selectors."""
    if not selector:
        return True
    for term in re.split(r",(?![^()]*\))", selector):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if m:
            values = {v.strip() for v in m.group(3).split(",")}
            has = labels.get(m.group(1)) in values
            if has != (m.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _cr_terms(fsel: str | None) -> list[tuple[str, str, str]] | None:
    """(field, op, value) of a custom resource's field selector; None if it names another
    field (a custom resource can be selected by metadata.name and metadata.namespace only)."""
    terms = []
    for term in (fsel or "").split(","):
        if not term:
            continue
        m = re.match(r"^(metadata\.name|metadata\.namespace)(==|!=|=)(.*)$", term)
        if m is None:
            return None
        terms.append(m.groups())
    return terms


def _cr_fields_ok(fsel: str | None) -> bool:
    return _cr_terms(fsel) is not None


def match_cr_fields(obj: dict[str, Any], fsel: str | None) -> bool:
    """Whether a custom resource matches a (valid) field selector."""
    return all(
        (_field_str(obj, key) == value) == (op != "!=") for key, op, value in _cr_terms(fsel) or []
    )


def _field(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _field_str(obj: dict[str, Any], path: str) -> str:
    """A field as a field selector compares it: absent is the empty string."""
    if path == "source":  # events: the field label "source" is source.component
        path = "source.component"
    value = _field(obj, path)
    return "" if value is None else str(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def sig_caught(pid: int, signum: int) -> bool:
    """Whether ``pid`` installed a handler for ``signum`` (SigCgt in /proc/<pid>/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


@dataclass
class PodState:
    """A pod of the fake: the replica that backs it and what the API shows about it."""

    name: str
    namespace: str
    dgd: str
    service: str
    replica: Replica
    ports: dict[int, int]  # container port -> real 127.0.0.1 port
    image: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    ready_since_ns: int | None = None
    deletion_ns: int | None = None
    events_seen: set = field(default_factory=set)
    label_style: str = "dcd"
    extra_labels: dict = field(default_factory=dict)  # set by PATCH (metadata.labels)
    ip: str = "127.0.0.1"  # a pod IP of its own (10.244.0.N): what a probe connects to


_POD_IPS = itertools.count(2)


def _next_pod_ip() -> str:
    n = next(_POD_IPS)
    return f"10.244.{n // 250}.{n % 250 + 1}"


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against ``labels``; {} matches all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass
class DgdState:
    """A DynamoGraphDeployment object and the supervisor running its pods."""

    obj: dict[str, Any]
    supervisor: Supervisor
    workdir: Path
    ports: dict[tuple[str, int], dict[int, int]] = field(default_factory=dict)
    deleting: bool = False
    rolling: set = field(default_factory=set)
    label_style: str = "dcd"  # the operator path its pods are labelled by (LABEL_STYLES)


def _host_state(pid: int) -> str:
    """The state letter of a host process from /proc/<pid>/stat, as ps shows STAT."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return "Z"
    return raw[raw.rfind(b")") + 2 :][:1].decode() or "?"


def _ps_width(args: list[str]) -> int:
    """procps' output width with no terminal: 80 columns, 132 with one ``w``, unlimited with two.

    Real ps cuts every line there when it writes to a pipe, as it does under exec.
    """
    ws = sum(arg.count("w") for arg in args if arg.startswith("-") and not arg.startswith("--"))
    return {0: 80, 1: 132}.get(ws, 1 << 30)


class FakeCluster:
    """State, operator and HTTP handlers of the fake API server."""

    def __init__(self, workdir: Path, tokenizer: Path, restart_delay: float = 0.5) -> None:
        self.workdir = Path(workdir)
        self.tokenizer = Path(tokenizer)
        self.restart_delay = restart_delay
        self.lock = threading.RLock()
        self.rv = 1
        self.dgds: dict[tuple[str, str], DgdState] = {}
        self.pods: dict[tuple[str, str], PodState] = {}
        self.rendered: dict[tuple[str, str], dict[str, Any]] = {}  # last rendered pods
        self.pod_watch: list[tuple[int, str, dict[str, Any]]] = []
        self.compacted_rv = 0  # watch from a resourceVersion below this: 410 Expired
        # DGD watch history. Like the real apiserver's watch cache of a custom resource, which
        # starts when the CRD is established, it begins now: RV 1 is always too old (410).
        self.dgd_watch: list[tuple[int, str, dict[str, Any]]] = []
        self.dgd_watch_from = self._next_rv()  # a watch from below this: 410 Expired
        # The namespaces that exist: the system ones and the one a cluster set up for ftctl has;
        # more are created through the API. Objects in any other namespace are refused (404).
        self.namespaces = {
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "fault-tolerance-test",
        }
        self.api_pods: set[tuple[str, str]] = set()  # pods created through the API (no process)
        self.frozen_status: set[str] = set()  # DGDs whose status is never updated (a lag)
        self.events: list[dict[str, Any]] = []
        self.statefulsets: dict[tuple[str, str], dict[str, Any]] = {}
        self.faults: list[dict[str, Any]] = []  # injected API errors
        self.exec_mode = "normal"  # normal | no_status
        # A container's main process is PID 1 in its namespace (SIGKILL from inside is dropped).
        # False shows host pids instead, as when a shell wrapper is PID 1 and Python its child.
        self.main_is_pid1 = True
        # Like a cluster whose CNI enforces NetworkPolicies (True) or does not (False, e.g.
        # flannel alone): decides what a connection probe exec'd in a pod finds.
        self.enforce_network_policies = False
        self.netpols: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        # Every request as (monotonic time, method, path, query string): bench/kube_api_rate.py.
        self.request_log: list[tuple[float, str, str, str]] = []
        self.refuse_watch = False  # answer every watch 403, as RBAC without the watch verb
        self.watch_epoch = 0  # bumped by compact_watch(): open watches end
        self.worker_args: list[str] = ["--speedup-ratio", "5.0"]
        self.label_style = os.environ.get("FTCTL_FAKE_LABELS", "dcd")
        self._stop = threading.Event()
        self._operator = threading.Thread(target=self._operate, name="fake-operator", daemon=True)
        from tests.kube.fake_jobs import JobController  # batch/v1 Jobs (issue 15)

        self.jobs = JobController(self)

    # -- hooks for tests ------------------------------------------------------------------------
    def fail(
        self, method: str, path_regex: str, status: int, times: int = 1, message: str = ""
    ) -> None:
        """Make the next ``times`` requests matching ``method`` and ``path_regex`` fail."""
        with self.lock:
            self.faults.append(
                {
                    "method": method.upper(),
                    "re": re.compile(path_regex),
                    "status": status,
                    "times": times,
                    "message": message or f"injected {status}",
                }
            )

    def dgd_names(self, namespace: str) -> list[str]:
        """Names of the DGDs present in ``namespace``."""
        with self.lock:
            return sorted(n for (ns, n) in self.dgds if ns == namespace)

    def replica_of(self, namespace: str, pod: str) -> Replica:
        """The supervised replica behind a pod."""
        return self.pods[(namespace, pod)].replica

    def add_statefulset(self, namespace: str, name: str) -> None:
        """A platform StatefulSet (etcd/NATS) that becomes ready as soon as it is scaled up."""
        with self.lock:
            self.statefulsets[(namespace, name)] = {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": "1",
                    "generation": 1,
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "serviceName": name,
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "main", "image": name}]},
                    },
                },
                "status": {"replicas": 1, "readyReplicas": 1, "scaleHistory": []},
            }

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._operator.start()

    def stop(self) -> None:
        """Stop the operator and every pod process."""
        self._stop.set()
        self.jobs.stop()
        with self.lock:
            states = list(self.dgds.values())
        for state in states:
            state.supervisor.stop_all(grace=3.0)
        self._operator.join(timeout=5)

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def record_event(
        self, namespace: str, kind: str, name: str, reason: str, message: str, etype: str = "Normal"
    ) -> None:
        """A CoreV1 event about an object."""
        now = rfc3339(time.time_ns())
        with self.lock:
            self.events.append(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {
                        "name": f"{name}.{uuid.uuid4().hex[:12]}",
                        "namespace": namespace,
                        "resourceVersion": str(self._next_rv()),
                        "creationTimestamp": now,
                    },
                    "involvedObject": {
                        "kind": kind,
                        "name": name,
                        "namespace": namespace,
                        "apiVersion": "v1",
                    },
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "source": {"component": "fake-operator"},
                    # A core/v1 event as the real apiserver stores it: eventTime is null.
                    "eventTime": None,
                    "reportingComponent": "",
                    "reportingInstance": "",
                }
            )

    # -- operator -------------------------------------------------------------------------------
    def _process_spec(
        self, state: DgdState, svc_name: str, svc: dict[str, Any], index: int, ports: dict[int, int]
    ) -> ProcessSpec:
        """What the fake runs for a service's container (tests/kube/pod_processes.py)."""
        spec_envs = (state.obj.get("spec") or {}).get("envs") or []
        return process_spec(
            component_type=str(svc.get("componentType", "")),
            sub_component_type=str(svc.get("subComponentType", "")),
            container=(svc.get("extraPodSpec") or {}).get("mainContainer") or {},
            env_items=[*spec_envs, *(svc.get("envs") or [])],
            ports=ports,
            workdir=state.workdir,
            tokenizer=self.tokenizer,
            worker_args=self.worker_args,
        )

    def _create_pods(self, namespace: str, name: str, state: DgdState) -> None:
        for svc_name, svc in (state.obj["spec"].get("services") or {}).items():
            command = ((svc.get("extraPodSpec") or {}).get("mainContainer") or {}).get("command")
            frontend = is_frontend(str(svc.get("componentType", "")), command or [])
            for index in range(int(svc.get("replicas", 1))):
                ports = host_ports(frontend)
                state.ports[(svc_name, index)] = ports
                spec = self._process_spec(state, svc_name, svc, index, ports)
                state.supervisor.start_replica(
                    svc_name, svc.get("componentType", "worker"), spec, index
                )

    def _pod_name(self, state: DgdState, dgd: str, replica: Replica) -> str:
        # Pod names come from the Deployment / Grove controllers, not the operator: a guess,
        # kept in one place. Grove names pods after the clique, `<dgd>-0-<service>`.
        if state.label_style == "grove":
            return f"{dgd}-0-{replica.name.lower()}"
        return f"{dgd}-{replica.name.lower()}"

    @staticmethod
    def pod_labels(style: str, dgd: str, service: str, svc: dict[str, Any]) -> dict[str, str]:
        """The labels the upstream operator puts on a single-node service's pods, by path."""
        labels = {
            "nvidia.com/dynamo-graph-deployment-name": dgd,
            "nvidia.com/selector": f"{dgd}-{service.lower()}",
            "nvidia.com/metrics-enabled": "true",
        }
        if style == "dcd":  # the DCD's own labels; Grove pods do not get these two
            labels["nvidia.com/dynamo-component"] = service
            labels["nvidia.com/dynamo-namespace"] = f"dynamo-{dgd}"
        for key, field_name in (
            ("nvidia.com/dynamo-component-type", "componentType"),
            ("nvidia.com/dynamo-sub-component-type", "subComponentType"),
        ):
            if svc.get(field_name):
                labels[key] = str(svc[field_name])
        return labels

    def _probe(self, pod: PodState) -> bool:
        return probe(pod.image, pod.replica, pod.ports)

    def _render_pod(self, pod: PodState, dgd_obj: dict[str, Any]) -> dict[str, Any]:
        r = pod.replica
        ready = r.running and r.ready_ns is not None and pod.deletion_ns is None
        svc = dgd_obj["spec"]["services"].get(pod.service, {})
        labels = self.pod_labels(pod.label_style, pod.dgd, pod.service, svc)
        labels.update(pod.extra_labels)
        labels.update(
            {
                k: v
                for k, v in (dgd_obj["metadata"].get("labels") or {}).items()
                if k.startswith("ftctl.io/") or k == "app.kubernetes.io/managed-by"
            }
        )
        if r.running:
            state = {"running": {"startedAt": rfc3339(r.started_ns)}}
        elif NEVER_READY_IMAGE in pod.image:
            state = {"waiting": {"reason": "ContainerCreating"}}
        else:
            state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}
        last: dict[str, Any] = {}
        if r.last_terminated_ns is not None:
            code = r.last_exit_code if r.last_exit_code is not None else 0
            last = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "finishedAt": rfc3339(r.last_terminated_ns),
                    "containerID": f"fake://{pod.name}/{r.restart_count - 1}",
                }
            }
        transition = rfc3339(pod.ready_since_ns or r.started_ns or r.created_ns)
        main = (svc.get("extraPodSpec") or {}).get("mainContainer") or {}
        meta: dict[str, Any] = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "creationTimestamp": rfc3339(r.created_ns),
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "DynamoGraphDeployment",
                    "name": pod.dgd,
                    "uid": dgd_obj["metadata"]["uid"],
                    "controller": True,
                }
            ],
        }
        if pod.deletion_ns is not None:
            meta["deletionTimestamp"] = rfc3339(pod.deletion_ns)
            meta["deletionGracePeriodSeconds"] = 0
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {
                "nodeName": "fake-node",
                "restartPolicy": "Always",
                "containers": [
                    {
                        "name": "main",
                        "image": pod.image,
                        "args": [str(a) for a in main.get("args") or []],
                        "ports": [{"containerPort": p, "protocol": "TCP"} for p in pod.ports],
                    }
                ],
            },
            "status": {
                "phase": "Running",
                "podIP": pod.ip,
                "hostIP": "127.0.0.1",
                "startTime": rfc3339(r.created_ns),
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "True",
                        "lastTransitionTime": rfc3339(r.created_ns),
                    },
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": transition,
                    },
                    {
                        "type": "ContainersReady",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": transition,
                    },
                ],
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": pod.image,
                        "imageID": f"fake://{pod.image}",
                        "ready": bool(ready),
                        "restartCount": int(r.restart_count),
                        "started": bool(r.running),
                        "state": state,
                        "lastState": last,
                        "containerID": f"fake://{pod.name}/{r.restart_count}",
                    }
                ],
            },
        }

    def _operate(self) -> None:
        while not self._stop.is_set():
            try:
                self._reconcile()
            except Exception as exc:  # keep the operator alive; a test will see the symptom
                print(f"fake operator: {exc!r}", file=sys.stderr)
            self._stop.wait(0.1)

    def _reconcile(self) -> None:
        with self.lock:
            states = list(self.dgds.items())
        for (ns, name), state in states:
            for replica in state.supervisor.all_replicas():
                key = (ns, self._pod_name(state, name, replica))
                with self.lock:
                    pod = self.pods.get(key)
                    if pod is None and not replica.deleted and not state.deleting:
                        svc = state.obj["spec"]["services"].get(replica.service, {})
                        image = ((svc.get("extraPodSpec") or {}).get("mainContainer") or {}).get(
                            "image", ""
                        )
                        pod = PodState(
                            key[1],
                            ns,
                            name,
                            replica.service,
                            replica,
                            state.ports.get((replica.service, replica.index), {}),
                            image,
                            label_style=state.label_style,
                            ip=_next_pod_ip(),
                        )
                        self.pods[key] = pod
                        self.record_event(
                            ns,
                            "Pod",
                            pod.name,
                            "Scheduled",
                            f"assigned {ns}/{pod.name} to fake-node",
                        )
                        self.record_event(ns, "Pod", pod.name, "Started", "Started container main")
                if pod is None:
                    continue
                if (replica.deleted or state.deleting) and pod.deletion_ns is None:
                    pod.deletion_ns = time.time_ns()
                    self.record_event(ns, "Pod", pod.name, "Killing", "Stopping container main")
                if (
                    replica.running
                    and replica.ready_ns is None
                    and pod.deletion_ns is None
                    and self._probe(pod)
                ):
                    replica.mark_ready()
                    pod.ready_since_ns = replica.ready_ns
                if not replica.running and ("exit", replica.restart_count) not in pod.events_seen:
                    pod.events_seen.add(("exit", replica.restart_count))
                    if pod.deletion_ns is None:
                        self.record_event(
                            ns,
                            "Pod",
                            pod.name,
                            "BackOff",
                            "Back-off restarting failed container main",
                            "Warning",
                        )
                if (
                    replica.running
                    and replica.restart_count
                    and ("start", replica.restart_count) not in pod.events_seen
                ):
                    pod.events_seen.add(("start", replica.restart_count))
                    self.record_event(ns, "Pod", pod.name, "Started", "Started container main")
                if NEVER_READY_IMAGE in pod.image and "unhealthy" not in pod.events_seen:
                    pod.events_seen.add("unhealthy")
                    self.record_event(
                        ns,
                        "Pod",
                        pod.name,
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        "Warning",
                    )
                gone = pod.deletion_ns is not None and not replica.running
                with self.lock:
                    if gone:
                        self.pods.pop(key, None)
                        last = self.rendered.pop(key, None)
                        if last is not None:
                            rv = self._next_rv()
                            last = copy.deepcopy(last)
                            last["metadata"]["resourceVersion"] = str(rv)
                            self._push_watch(rv, "DELETED", last)
                        continue
                    rendered = self._render_pod(pod, state.obj)
                    previous = self.rendered.get(key)
                    comparable = copy.deepcopy(previous) if previous else None
                    if comparable:
                        comparable["metadata"].pop("resourceVersion", None)
                    if comparable != rendered:
                        rv = self._next_rv()
                        rendered["metadata"]["resourceVersion"] = str(rv)
                        self.rendered[key] = rendered
                        self._push_watch(rv, "ADDED" if previous is None else "MODIFIED", rendered)
            self._update_dgd_status(ns, name, state)

    def _push_watch(self, rv: int, etype: str, obj: dict[str, Any]) -> None:
        self.pod_watch.append((rv, etype, copy.deepcopy(obj)))
        if len(self.pod_watch) > WATCH_HISTORY:
            self.compacted_rv = self.pod_watch[-WATCH_HISTORY - 1][0]
            del self.pod_watch[:-WATCH_HISTORY]

    def compact_watch(self) -> None:
        """Forget the watch history (like an etcd compaction) and end the open watches.

        Every resourceVersion handed out so far becomes too old: a watch re-opened from one
        (as a client does after its watch ended) gets 410 Expired and must relist. Pods and
        DGDs alike.
        """
        with self.lock:
            self.compacted_rv = self._next_rv()
            self.dgd_watch_from = self.compacted_rv
            self.pod_watch.clear()
            self.dgd_watch.clear()
            self.watch_epoch += 1

    def _update_dgd_status(self, ns: str, name: str, state: DgdState) -> None:
        with self.lock:
            if state.deleting:
                if not any(r.running for r in state.supervisor.all_replicas()) and not any(
                    k[0] == ns and p.dgd == name for k, p in self.pods.items()
                ):
                    if self.dgds.pop((ns, name), None) is not None:  # the finalizer is done
                        gone = copy.deepcopy(state.obj)
                        gone["metadata"]["resourceVersion"] = str(self._next_rv())
                        self._push_dgd_watch("DELETED", gone)
                return
            if name in self.frozen_status:
                return  # a lagging status: clients must fall back to the pods
            services = {}
            all_ready = True
            for svc_name, svc in state.obj["spec"]["services"].items():
                want = int(svc.get("replicas", 1))
                pods = [
                    p
                    for p in self.pods.values()
                    if p.namespace == ns
                    and p.dgd == name
                    and p.service == svc_name
                    and p.deletion_ns is None
                ]
                ready = sum(1 for p in pods if p.replica.running and p.replica.ready_ns is not None)
                services[svc_name] = {
                    "replicas": len(pods),
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                }
                all_ready = all_ready and ready >= want and not state.rolling
            old = state.obj.get("status") or {}
            old_cond = next((c for c in old.get("conditions") or [] if c["type"] == "Ready"), {})
            flag = "True" if all_ready else "False"
            cond = {
                "type": "Ready",
                "status": flag,
                "reason": "AllComponentsReady" if all_ready else "ComponentsNotReady",
                "message": "All resources are ready"
                if all_ready
                else "Some components are not ready",
                "lastTransitionTime": old_cond.get("lastTransitionTime")
                if old_cond.get("status") == flag
                else rfc3339(time.time_ns()),
            }
            status = {
                "state": "successful" if all_ready else "pending",
                "conditions": [cond],
                "services": services,
            }
            if status != old:  # a status write: watchers see a MODIFIED, as on a real apiserver
                state.obj["status"] = status
                state.obj["metadata"]["resourceVersion"] = str(self._next_rv())
                self._push_dgd_watch("MODIFIED", state.obj)

    def _delete_dgd_async(self, ns: str, name: str, state: DgdState) -> None:
        state.deleting = True
        self.record_event(ns, "DynamoGraphDeployment", name, "Deleting", "deleting graph")
        threading.Thread(
            target=state.supervisor.stop_all, kwargs={"grace": 5.0}, daemon=True
        ).start()

    def _rollout(self, ns: str, name: str, state: DgdState, service: str) -> None:
        """Replace a service's pods one by one with the new spec, waiting for each to be ready."""
        try:
            svc = state.obj["spec"]["services"][service]
            for replica in list(state.supervisor.replicas(service)):
                if state.deleting:
                    return
                ports = state.ports.get((service, replica.index), {})
                replica.spec = self._process_spec(state, service, svc, replica.index, ports)
                new = state.supervisor.restart_replica(replica.name, grace=5.0)
                deadline = time.monotonic() + 60
                while new.ready_ns is None and time.monotonic() < deadline and not state.deleting:
                    time.sleep(0.1)
        finally:
            state.rolling.discard(service)

    # -- HTTP -----------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware, self.jobs.middleware])
        r = app.router
        r.add_get("/version", self.h_version)
        r.add_get("/api", self.h_api)
        r.add_get("/apis", self.h_apis)
        r.add_get("/api/v1", self.h_api_v1)
        r.add_get(f"/apis/{GROUP}/{VERSION}", self.h_group_dgd)
        r.add_get("/apis/apps/v1", self.h_group_apps)
        r.add_get("/api/v1/namespaces/{ns}", self.h_namespace)
        r.add_post("/api/v1/namespaces", self.h_namespace_create)
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}"
        r.add_get(base, self.h_dgd_list)
        r.add_post(base, self.h_dgd_create)
        r.add_get(base + "/{name}", self.h_dgd_get)
        r.add_patch(base + "/{name}", self.h_dgd_patch)
        r.add_delete(base + "/{name}", self.h_dgd_delete)
        r.add_patch(base + "/{name}/status", self.h_dgd_status_patch)
        r.add_get("/api/v1/namespaces/{ns}/pods", self.h_pod_list)
        r.add_post("/api/v1/namespaces/{ns}/pods", self.h_pod_create)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.h_pod_get)
        r.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self.h_pod_delete)
        r.add_patch("/api/v1/namespaces/{ns}/pods/{name}", self.h_pod_patch)
        netpol = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
        r.add_get("/apis/networking.k8s.io/v1", self.h_group_networking)
        r.add_post(netpol, self.h_netpol_create)
        r.add_get(netpol, self.h_netpol_list)
        r.add_get(netpol + "/{name}", self.h_netpol_get)
        r.add_delete(netpol + "/{name}", self.h_netpol_delete)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self.h_pod_log)
        r.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/exec", self.h_exec)
        r.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/portforward", self.h_portforward)
        r.add_get("/api/v1/namespaces/{ns}/events", self.h_events)
        # The client sends the proxied path as one parameter: "stats%2Fsummary".
        r.add_get("/api/v1/nodes/{node}/proxy/{path:.*}", self.h_node_stats)
        r.add_post("/api/v1/namespaces/{ns}/events", self.h_event_create)
        r.add_get("/api/v1/namespaces/{ns}/services/{name}", self.h_service)
        r.add_delete("/api/v1/namespaces/{ns}/persistentvolumeclaims", self.h_pvc_delete)
        sts = "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}"
        r.add_get(sts, self.h_sts_get)
        r.add_patch(sts + "/scale", self.h_sts_scale)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path))
        self.request_log.append(
            (time.monotonic(), request.method, request.path, request.query_string)
        )
        if self.refuse_watch and request.query.get("watch") in ("true", "1"):
            return error_response(403, "injected: watch is forbidden")
        with self.lock:
            for fault in self.faults:
                if (
                    fault["times"] > 0
                    and fault["method"] in (request.method, "*")
                    and fault["re"].search(request.path)
                ):
                    fault["times"] -= 1
                    return error_response(fault["status"], fault["message"])
        return await handler(request)

    async def h_version(self, request):
        return web.json_response(
            {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-ftctl-fake",
                "gitCommit": "0",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.22",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def h_api(self, request):
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        )

    async def h_apis(self, request):
        def group(name, version):
            gv = {"groupVersion": f"{name}/{version}", "version": version}
            return {"name": name, "versions": [gv], "preferredVersion": gv}

        return web.json_response(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    group("apps", "v1"),
                    group("networking.k8s.io", "v1"),
                    group(GROUP, VERSION),
                ],
            }
        )

    @staticmethod
    def _resources(gv: str, items: list[tuple[str, str, bool, list[str]]]) -> web.Response:
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": [
                    {
                        "name": n,
                        "singularName": "",
                        "kind": k,
                        "namespaced": ns,
                        "verbs": verbs,
                        "shortNames": sn,
                    }
                    for n, k, ns, sn in items
                ],
            }
        )

    async def h_api_v1(self, request):
        return self._resources(
            "v1",
            [
                ("pods", "Pod", True, ["po"]),
                ("pods/log", "Pod", True, []),
                ("pods/exec", "PodExecOptions", True, []),
                ("pods/portforward", "PodPortForwardOptions", True, []),
                ("events", "Event", True, ["ev"]),
                ("services", "Service", True, ["svc"]),
                ("namespaces", "Namespace", False, ["ns"]),
                ("persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"]),
            ],
        )

    async def h_group_dgd(self, request):
        return self._resources(
            f"{GROUP}/{VERSION}", [(PLURAL, "DynamoGraphDeployment", True, ["dgd"])]
        )

    async def h_group_apps(self, request):
        return self._resources("apps/v1", [("statefulsets", "StatefulSet", True, ["sts"])])

    def _no_namespace(self, ns: str) -> web.Response | None:
        """The apiserver's 404 for an object created in a namespace that does not exist."""
        if ns in self.namespaces:
            return None
        return error_response(404, f'namespaces "{ns}" not found', name=ns, kind="namespaces")

    async def h_namespace(self, request):
        ns = request.match_info["ns"]
        if (missing := self._no_namespace(ns)) is not None:
            return missing
        return web.json_response(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "uid": ns},
                "status": {"phase": "Active"},
            }
        )

    def _new_meta(self, meta: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        """What the apiserver sets on every created object."""
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(self._next_rv()),
            creationTimestamp=rfc3339(time.time_ns()),
        )
        return meta

    async def h_namespace_create(self, request):
        body = await request.json()
        name = (body.get("metadata") or {}).get("name", "")
        with self.lock:
            if name in self.namespaces:
                return error_response(
                    409, f'namespaces "{name}" already exists', name=name, kind="namespaces"
                )
            self.namespaces.add(name)
            body.update(apiVersion="v1", kind="Namespace")
            self._new_meta(body.setdefault("metadata", {}), None)
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        return web.json_response(body, status=201)

    def _list(self, kind: str, items: list[dict[str, Any]]) -> web.Response:
        return web.json_response(
            {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    def _push_dgd_watch(self, etype: str, obj: dict[str, Any]) -> None:
        self.dgd_watch.append((int(obj["metadata"]["resourceVersion"]), etype, copy.deepcopy(obj)))
        if len(self.dgd_watch) > WATCH_HISTORY:
            self.dgd_watch_from = self.dgd_watch[-WATCH_HISTORY - 1][0]
            del self.dgd_watch[:-WATCH_HISTORY]

    async def _watch_dgds(self, request, ns: str):
        """DGD events after ``resourceVersion`` (created, patched, deleted through the API)."""
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 30)
        sel = request.query.get("labelSelector")
        fsel = request.query.get("fieldSelector")
        if not _cr_fields_ok(fsel):
            return error_response(400, f'field label not supported: "{fsel}"')
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        with self.lock:
            if 0 < since < self.dgd_watch_from:
                msg = f"too old resource version: {since} ({self.dgd_watch_from})"
                line = {"type": "ERROR", "object": status_obj(410, "Expired", msg)}
                await resp.write((json.dumps(line) + "\n").encode())
                return resp
            if since == 0:
                since = self.rv
                backlog = [(since, "ADDED", s.obj) for (n, _), s in self.dgds.items() if n == ns]
            else:
                backlog = []
        deadline = time.monotonic() + timeout
        epoch = self.watch_epoch
        while True:
            for rv, etype, obj in backlog:
                since = max(since, rv)
                if (
                    obj["metadata"]["namespace"] == ns
                    and match_labels(obj["metadata"].get("labels") or {}, sel)
                    and match_cr_fields(obj, fsel)
                ):
                    line = {"type": etype, "object": copy.deepcopy(obj)}
                    await resp.write((json.dumps(line) + "\n").encode())
            if time.monotonic() >= deadline or self._stop.is_set() or epoch != self.watch_epoch:
                return resp
            await asyncio.sleep(0.05)
            with self.lock:
                backlog = [e for e in self.dgd_watch if e[0] > since]

    async def h_dgd_list(self, request):
        ns = request.match_info["ns"]
        if request.query.get("watch") in ("true", "1"):
            try:
                return await self._watch_dgds(request, ns)
            except ConnectionResetError:  # the client ended its watch (as ftctl's teardown does)
                return web.Response(status=499)
        sel = request.query.get("labelSelector")
        fsel = request.query.get("fieldSelector")
        if not _cr_fields_ok(fsel):
            return error_response(400, f'field label not supported: "{fsel}"')
        with self.lock:
            items = [
                copy.deepcopy(s.obj)
                for (n, _), s in self.dgds.items()
                if n == ns
                and match_labels(s.obj["metadata"].get("labels") or {}, sel)
                and match_cr_fields(s.obj, fsel)
            ]
        return web.json_response(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DynamoGraphDeploymentList",
                "metadata": {"continue": "", "resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    async def h_dgd_create(self, request):
        ns = request.match_info["ns"]
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "request body is not JSON")
        name = (body.get("metadata") or {}).get("name")
        if name and not _RFC1123_SUBDOMAIN.fullmatch(name):
            return invalid_response(
                "DynamoGraphDeployment.nvidia.com",
                name,
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                group=GROUP,
                kind="DynamoGraphDeployment",
            )
        # status is a subresource: the apiserver drops it on create; the operator writes it.
        body.pop("status", None)
        causes = crd_schema.admit(body)  # prunes and defaults as the real CRD does
        if causes:
            return self._schema_refusal(name or "", causes)
        if (missing := self._no_namespace(ns)) is not None:
            return missing
        if not name or not isinstance((body.get("spec") or {}).get("services"), dict):
            return error_response(
                422,
                "DynamoGraphDeployment is invalid: metadata.name and spec.services are required",
            )
        with self.lock:
            if (ns, name) in self.dgds:
                return error_response(
                    409,
                    f'dynamographdeployments.nvidia.com "{name}" already exists',
                    name=name,
                    **DGD_DETAILS,
                )
            meta = body["metadata"]
            meta.update(
                {
                    "namespace": ns,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(self._next_rv()),
                    "creationTimestamp": rfc3339(time.time_ns()),
                    "generation": 1,
                }
            )
            workdir = self.workdir / ns / f"{name}-{meta['uid'][:8]}"
            (workdir / "kv").mkdir(parents=True, exist_ok=True)
            (workdir / "home").mkdir(parents=True, exist_ok=True)
            if self.label_style not in LABEL_STYLES:
                raise ValueError(f"label_style {self.label_style!r} is not one of {LABEL_STYLES}")
            state = DgdState(
                body,
                Supervisor(workdir / "logs", restart_delay=self.restart_delay),
                workdir,
                label_style=self.label_style,
            )
            self.dgds[(ns, name)] = state
            self._create_pods(ns, name, state)
            self.record_event(ns, "DynamoGraphDeployment", name, "Created", "graph created")
            self._push_dgd_watch("ADDED", body)
            return web.json_response(copy.deepcopy(body), status=201)

    @staticmethod
    def _schema_refusal(name: str, causes: list[dict[str, str]]) -> web.Response:
        return error_response(
            422,
            crd_schema.message("DynamoGraphDeployment.nvidia.com", name, causes),
            name=name,
            group=GROUP,
            kind="DynamoGraphDeployment",
            causes=causes,
        )

    def _dgd(self, request) -> DgdState | None:
        return self.dgds.get((request.match_info["ns"], request.match_info["name"]))

    async def h_dgd_get(self, request):
        with self.lock:
            state = self._dgd(request)
            if state is None:
                name = request.match_info["name"]
                return error_response(
                    404,
                    f'dynamographdeployments.nvidia.com "{name}" not found',
                    name=name,
                    **DGD_DETAILS,
                )
            return web.json_response(copy.deepcopy(state.obj))

    async def h_dgd_patch(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        patch = await request.json()
        with self.lock:
            state = self._dgd(request)
            if state is None:
                return error_response(
                    404,
                    f'dynamographdeployments.nvidia.com "{name}" not found',
                    name=name,
                    **DGD_DETAILS,
                )
            if isinstance(patch, list):
                return error_response(
                    415, "json-patch is not supported by this fake; use merge patch"
                )
            old_spec = copy.deepcopy(state.obj["spec"])
            old_services = old_spec["services"]
            status = state.obj.get("status")
            patched = merge_patch(state.obj, patch)
            # status is a subresource: a patch of the object itself leaves it alone.
            patched.pop("status", None)
            causes = crd_schema.admit(patched)
            if causes:
                return self._schema_refusal(name, causes)
            state.obj = patched
            if status is not None:
                state.obj["status"] = status
            state.obj["metadata"]["resourceVersion"] = str(self._next_rv())
            if state.obj["spec"] != old_spec:  # generation counts spec changes only
                state.obj["metadata"]["generation"] = state.obj["metadata"].get("generation", 1) + 1
            self._push_dgd_watch("MODIFIED", state.obj)
            changed = [
                s
                for s, spec in state.obj["spec"]["services"].items()
                if old_services.get(s) != spec
            ]
            for service in changed:
                if service not in state.rolling:
                    state.rolling.add(service)
                    threading.Thread(
                        target=self._rollout, args=(ns, name, state, service), daemon=True
                    ).start()
            return web.json_response(copy.deepcopy(state.obj))

    async def h_dgd_status_patch(self, request):
        """PATCH .../status: only ``status`` changes; generation stays."""
        name = request.match_info["name"]
        patch = await request.json()
        with self.lock:
            state = self._dgd(request)
            if state is None:
                return error_response(
                    404,
                    f'dynamographdeployments.nvidia.com "{name}" not found',
                    name=name,
                    **DGD_DETAILS,
                )
            if isinstance(patch, dict) and "status" in patch:
                status = {"status": merge_patch(state.obj.get("status") or {}, patch["status"])}
                causes = crd_schema.admit(status)
                if causes:
                    return self._schema_refusal(name, causes)
                state.obj["status"] = status["status"]
                state.obj["metadata"]["resourceVersion"] = str(self._next_rv())
                self._push_dgd_watch("MODIFIED", state.obj)
            return web.json_response(copy.deepcopy(state.obj))

    async def h_dgd_delete(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        with self.lock:
            state = self._dgd(request)
            if state is None:
                return error_response(
                    404,
                    f'dynamographdeployments.nvidia.com "{name}" not found',
                    name=name,
                    **DGD_DETAILS,
                )
            has_pods = any(p.namespace == ns and p.dgd == name for p in self.pods.values())
            if not has_pods and not any(r.running for r in state.supervisor.all_replicas()):
                # Nothing holds it (no finalizer): gone at once, answered with Status Success.
                self.dgds.pop((ns, name), None)
                state.deleting = True
                rv = str(self._next_rv())
                gone = copy.deepcopy(state.obj)
                gone["metadata"]["resourceVersion"] = rv
                self._push_dgd_watch("DELETED", gone)
                uid = state.obj["metadata"]["uid"]
                return web.json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {"name": name, **DGD_DETAILS, "uid": uid},
                    }
                )
            if not state.deleting:
                # The fake's operator holds the DGD until its pods are gone, as the real
                # operator's finalizer does: the answer is the object, being deleted.
                meta = state.obj["metadata"]
                meta["deletionTimestamp"] = rfc3339(time.time_ns())
                meta["finalizers"] = sorted({*meta.get("finalizers", []), "nvidia.com/finalizer"})
                meta["resourceVersion"] = str(self._next_rv())
                self._push_dgd_watch("MODIFIED", state.obj)
                self._delete_dgd_async(ns, name, state)
            return web.json_response(copy.deepcopy(state.obj))

    def _pods_matching(self, ns: str, query) -> list[dict[str, Any]] | web.Response:
        sel = query.get("labelSelector")
        fsel = query.get("fieldSelector")
        terms = []
        for term in (fsel or "").split(","):
            if not term:
                continue
            key, op, value = re.match(r"^([^=!]+)(==|!=|=)(.*)$", term).groups()
            if key not in POD_FIELDS:
                return error_response(400, f"field label not supported: {key}")
            terms.append((key, op, value))
        out = []
        with self.lock:
            for (n, _), obj in sorted(self.rendered.items()):
                if n != ns or not match_labels(obj["metadata"].get("labels") or {}, sel):
                    continue
                if all((_field_str(obj, k) == v) == (op != "!=") for k, op, v in terms):
                    out.append(copy.deepcopy(obj))
        return out

    async def h_pod_create(self, request):
        """A pod created through the API: stored with the apiserver's defaults, no process."""
        ns = request.match_info["ns"]
        body = await request.json()
        name = (body.get("metadata") or {}).get("name", "")
        if not (body.get("spec") or {}).get("containers"):
            return error_response(
                422,
                f'Pod "{name}" is invalid: spec.containers: Required value',
                name=name,
                kind="Pod",
                causes=[
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": "spec.containers",
                    }
                ],
            )
        with self.lock:
            if (missing := self._no_namespace(ns)) is not None:
                return missing
            if (ns, name) in self.rendered:
                return error_response(409, f'pods "{name}" already exists', name=name, kind="pods")
            body.update(apiVersion="v1", kind="Pod")
            self._new_meta(body.setdefault("metadata", {}), ns)
            pod_defaults(body)
            self.rendered[(ns, name)] = body
            self.api_pods.add((ns, name))
            self._push_watch(int(body["metadata"]["resourceVersion"]), "ADDED", body)
            return web.json_response(copy.deepcopy(body), status=201)

    def _delete_api_pod(self, ns: str, name: str, grace: int) -> dict[str, Any]:
        """Delete a pod created through the API as the apiserver does without a kubelet.

        A graceful delete of a pod bound to a node only marks it (deletionTimestamp = now +
        grace); the pod stays until a kubelet completes it or a delete with grace 0 comes. An
        unbound pod, or grace 0, goes at once. Either way the answer is the Pod.
        """
        obj = self.rendered[(ns, name)]
        meta = obj["metadata"]
        bound = bool(obj["spec"].get("nodeName"))
        if bound and grace > 0:
            if "deletionTimestamp" not in meta:
                meta["deletionTimestamp"] = rfc3339(time.time_ns() + grace * 10**9)
                meta["deletionGracePeriodSeconds"] = grace
                meta["resourceVersion"] = str(self._next_rv())
                self._push_watch(int(meta["resourceVersion"]), "MODIFIED", obj)
            return copy.deepcopy(obj)
        # Marked first (a MODIFIED a watch sees), then removed (DELETED), as the registry does.
        meta.setdefault("deletionTimestamp", rfc3339(time.time_ns()))
        meta["deletionGracePeriodSeconds"] = 0
        meta["resourceVersion"] = str(self._next_rv())
        self._push_watch(int(meta["resourceVersion"]), "MODIFIED", obj)
        meta["resourceVersion"] = str(self._next_rv())
        del self.rendered[(ns, name)]
        self.api_pods.discard((ns, name))
        self._push_watch(int(meta["resourceVersion"]), "DELETED", obj)
        return copy.deepcopy(obj)

    async def h_pod_list(self, request):
        ns = request.match_info["ns"]
        found = self._pods_matching(ns, request.query)
        if isinstance(found, web.Response):
            return found
        if request.query.get("watch") in ("true", "1"):
            try:
                return await self._watch_pods(request, ns)
            except ConnectionResetError:  # the client ended its watch (as ftctl's teardown does)
                return web.Response(status=499)
        return self._list("PodList", found)

    async def _watch_pods(self, request, ns: str):
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 30)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        with self.lock:
            expired = 0 < since < self.compacted_rv
            if since == 0:
                backlog = [
                    (self.rv, "ADDED", copy.deepcopy(o))
                    for o in self.rendered.values()
                    if o["metadata"]["namespace"] == ns
                ]
                since = self.rv
            else:
                backlog = []
        if expired:
            line = {
                "type": "ERROR",
                "object": status_obj(
                    410, "Expired", f"too old resource version: {since} ({self.compacted_rv})"
                ),
            }
            await resp.write((json.dumps(line) + "\n").encode())
            return resp
        for _, etype, obj in backlog:
            await resp.write((json.dumps({"type": etype, "object": obj}) + "\n").encode())
        deadline = time.monotonic() + timeout
        sel = request.query.get("labelSelector")
        epoch = self.watch_epoch
        while time.monotonic() < deadline and not self._stop.is_set() and epoch == self.watch_epoch:
            with self.lock:
                fresh = [e for e in self.pod_watch if e[0] > since]
            for rv, etype, obj in fresh:
                since = rv
                if obj["metadata"]["namespace"] == ns and match_labels(
                    obj["metadata"].get("labels") or {}, sel
                ):
                    await resp.write((json.dumps({"type": etype, "object": obj}) + "\n").encode())
            await asyncio.sleep(0.05)
        return resp

    def _pod(self, request) -> PodState | None:
        return self.pods.get((request.match_info["ns"], request.match_info["name"]))

    async def h_pod_patch(self, request):
        """Merge ``metadata.labels`` (null removes a label); the rest of a pod is not patchable."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        body = await request.json()
        with self.lock:
            pod = self.pods.get((ns, name))
            if pod is None or (ns, name) not in self.rendered:
                return error_response(404, f'pods "{name}" not found', name=name, kind="pods")
            labels = ((body or {}).get("metadata") or {}).get("labels") or {}
            for key, value in labels.items():
                if value is None:
                    pod.extra_labels.pop(key, None)
                else:
                    pod.extra_labels[key] = str(value)
            state = self.dgds.get((ns, pod.dgd))
            rendered = self._render_pod(pod, state.obj) if state else self.rendered[(ns, name)]
            rv = self._next_rv()
            rendered["metadata"]["resourceVersion"] = str(rv)
            self.rendered[(ns, name)] = rendered
            self._push_watch(rv, "MODIFIED", rendered)
            return web.json_response(copy.deepcopy(rendered))

    # -- networkpolicies ------------------------------------------------------------------------
    async def h_group_networking(self, request):
        return self._resources(
            "networking.k8s.io/v1", [("networkpolicies", "NetworkPolicy", True, ["netpol"])]
        )

    async def h_netpol_create(self, request):
        ns = request.match_info["ns"]
        body = await request.json()
        name = ((body or {}).get("metadata") or {}).get("name")
        if not name or "podSelector" not in (body.get("spec") or {}):
            return error_response(422, "NetworkPolicy needs metadata.name and spec.podSelector")
        with self.lock:
            if (ns, name) in self.netpols:
                return error_response(
                    409, f'networkpolicies.networking.k8s.io "{name}" already exists'
                )
            obj = copy.deepcopy(body)
            obj.update({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"})
            meta = obj["metadata"]
            meta.update(
                {
                    "namespace": ns,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(self._next_rv()),
                    "creationTimestamp": rfc3339(time.time_ns()),
                }
            )
            self.netpols[(ns, name)] = obj
            return web.json_response(copy.deepcopy(obj), status=201)

    async def h_netpol_list(self, request):
        ns = request.match_info["ns"]
        wanted = dict(
            part.split("=", 1)
            for part in request.query.get("labelSelector", "").split(",")
            if "=" in part
        )
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (n, _), obj in sorted(self.netpols.items())
                if n == ns
                and all(
                    (obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items()
                )
            ]
        return web.json_response(
            {
                "kind": "NetworkPolicyList",
                "apiVersion": "networking.k8s.io/v1",
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    async def h_netpol_get(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        with self.lock:
            obj = self.netpols.get(key)
        if obj is None:
            return error_response(404, f'networkpolicies.networking.k8s.io "{key[1]}" not found')
        return web.json_response(copy.deepcopy(obj))

    async def h_netpol_delete(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        with self.lock:
            obj = self.netpols.pop(key, None)
        if obj is None:
            return error_response(404, f'networkpolicies.networking.k8s.io "{key[1]}" not found')
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": key[1],
                    "group": "networking.k8s.io",
                    "kind": "networkpolicies",
                },
            }
        )

    def _blocked(self, src: PodState, dst: PodState) -> bool:
        """Whether an enforcing CNI would drop ``src`` → ``dst`` under the policies in force."""
        if not self.enforce_network_policies:
            return False
        labels = dict(
            self.rendered.get((src.namespace, src.name), {}).get("metadata", {}).get("labels") or {}
        )
        dst_labels = dict(
            self.rendered.get((dst.namespace, dst.name), {}).get("metadata", {}).get("labels") or {}
        )

        def allowed(
            obj: dict[str, Any], peer_labels: dict[str, str], rules_key: str, peers_key: str
        ) -> bool:
            for rule in obj["spec"].get(rules_key) or []:
                peers = rule.get(peers_key)
                if not peers:
                    return True
                for peer in peers:
                    if "namespaceSelector" in peer and "podSelector" not in peer:
                        continue  # other namespaces: the probe is within one namespace
                    if _selector_matches(peer.get("podSelector"), peer_labels):
                        return True
            return False

        for (ns, _), obj in self.netpols.items():
            spec = obj["spec"]
            types = spec.get("policyTypes") or ["Ingress"]
            if (
                ns == dst.namespace
                and "Ingress" in types
                and _selector_matches(spec["podSelector"], dst_labels)
            ):
                if not allowed(obj, labels, "ingress", "from"):
                    return True
            if (
                ns == src.namespace
                and "Egress" in types
                and _selector_matches(spec["podSelector"], labels)
            ):
                if not allowed(obj, dst_labels, "egress", "to"):
                    return True
        return False

    def _connect_probe(
        self, src: PodState, host: str, port: str, timeout: str
    ) -> tuple[int, str, str]:
        """The connection probe (kube.procs.PROBE_CODE) as the pod network would answer it."""
        dst = next((p for p in self.pods.values() if p.ip == host), None)
        if dst is None:
            return 1, "", f"connect {host}:{port}: no route to host\n"
        if self._blocked(src, dst):
            return 1, "", f"connect {host}:{port}: timed out\n"
        real = dst.ports.get(int(port))
        try:
            with socket.create_connection(("127.0.0.1", real or 1), timeout=float(timeout)):
                return 0, "", ""
        except OSError as exc:
            return 1, "", f"connect {host}:{port}: {exc}\n"

    async def h_pod_get(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        with self.lock:
            obj = self.rendered.get(key)
            if obj is None:
                return error_response(404, f'pods "{key[1]}" not found', name=key[1], kind="pods")
            return web.json_response(copy.deepcopy(obj))

    async def h_pod_delete(self, request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        grace = request.query.get("gracePeriodSeconds")
        if grace is None and request.can_read_body:
            try:
                grace = (await request.json()).get("gracePeriodSeconds")
            except ValueError:
                grace = None
        with self.lock:
            if (ns, name) in self.api_pods:
                default = self.rendered[(ns, name)]["spec"].get("terminationGracePeriodSeconds")
                grace = int(default if grace is None else grace)
                return web.json_response(self._delete_api_pod(ns, name, grace))
        grace = 30 if grace is None else int(grace)
        with self.lock:
            pod = self._pod(request)
            state = self.dgds.get((ns, pod.dgd)) if pod is not None else None
            if (
                pod is None
                or (state is not None and pod.name != self._pod_name(state, pod.dgd, pod.replica))
                or (ns, name) not in self.rendered
            ):
                return error_response(404, f'pods "{name}" not found', name=name, kind="pods")
            obj = copy.deepcopy(self.rendered[(ns, name)])
            if pod.deletion_ns is None and state is not None and not pod.replica.deleted:
                pod.deletion_ns = time.time_ns()
                obj["metadata"]["deletionTimestamp"] = rfc3339(pod.deletion_ns)
                self.record_event(ns, "Pod", name, "Killing", "Stopping container main")
                threading.Thread(
                    target=state.supervisor.delete_replica,
                    kwargs={"name": pod.replica.name, "force": grace == 0, "grace": float(grace)},
                    daemon=True,
                ).start()
        return web.json_response(obj)

    async def h_pod_log(self, request):
        with self.lock:
            pod = self._pod(request)
        if pod is None:
            return error_response(404, f'pods "{request.match_info["name"]}" not found')
        previous = request.query.get("previous") in ("true", "1")
        path = pod.replica.previous_log_path if previous else pod.replica.log_path
        if previous and not path.exists():
            return error_response(
                400, f'previous terminated container "main" in pod "{pod.name}" not found'
            )
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        tail = request.query.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        return web.Response(text=text, content_type="text/plain")

    async def h_node_stats(self, request):
        """The kubelet's /stats/summary through the node proxy, for every running pod."""
        path = urllib.parse.unquote(request.match_info["path"])
        if request.match_info["node"] != "fake-node" or path != "stats/summary":
            return error_response(404, f'nodes "{request.match_info["node"]}" not found')
        with self.lock:
            pods = [
                (ns, name, p.replica.pid)
                for (ns, name), p in self.pods.items()
                if p.replica.running
            ]
        return web.json_response(stats_summary("fake-node", pods))

    async def h_events(self, request):
        fsel = request.query.get("fieldSelector") or ""
        terms = []
        for term in fsel.split(","):
            if term:
                key, op, value = re.match(r"^([^=!]+)(==|!=|=)(.*)$", term).groups()
                if key not in EVENT_FIELDS:
                    return error_response(400, f"field label not supported: {key}")
                terms.append((key, op, value))
        ns = request.match_info["ns"]
        with self.lock:
            items = [
                copy.deepcopy(e)
                for e in self.events
                if e["metadata"]["namespace"] == ns
                and all((_field_str(e, k) == v) == (op != "!=") for k, op, v in terms)
            ]
        return self._list("EventList", items)

    async def h_event_create(self, request):
        """A core/v1 Event created through the API (eventTime stays null, as on a real one)."""
        ns = request.match_info["ns"]
        body = await request.json()
        name = (body.get("metadata") or {}).get("name", "")
        with self.lock:
            if (missing := self._no_namespace(ns)) is not None:
                return missing
            if any(
                e["metadata"]["namespace"] == ns and e["metadata"]["name"] == name
                for e in self.events
            ):
                return error_response(
                    409, f'events "{name}" already exists', name=name, kind="events"
                )
            body.update(apiVersion="v1", kind="Event")
            self._new_meta(body.setdefault("metadata", {}), ns)
            body.setdefault("eventTime", None)
            body.setdefault("reportingComponent", "")
            body.setdefault("reportingInstance", "")
            self.events.append(body)
            return web.json_response(copy.deepcopy(body), status=201)

    async def h_service(self, request):
        return error_response(404, f'services "{request.match_info["name"]}" not found')

    async def h_pvc_delete(self, request):
        return self._list("PersistentVolumeClaimList", [])

    async def h_sts_get(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        with self.lock:
            obj = self.statefulsets.get(key)
            if obj is None:
                return error_response(404, f'statefulsets.apps "{key[1]}" not found')
            return web.json_response(copy.deepcopy(obj))

    async def h_sts_scale(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        patch = await request.json()
        with self.lock:
            obj = self.statefulsets.get(key)
            if obj is None:
                return error_response(404, f'statefulsets.apps "{key[1]}" not found')
            replicas = int((patch.get("spec") or {}).get("replicas", obj["spec"]["replicas"]))
            obj["spec"]["replicas"] = replicas
            obj["status"]["replicas"] = obj["status"]["readyReplicas"] = replicas
            obj["status"]["scaleHistory"].append(replicas)
            return web.json_response(
                {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": key[1], "namespace": key[0]},
                    "spec": {"replicas": replicas},
                    "status": {"replicas": replicas},
                }
            )

    # -- exec -----------------------------------------------------------------------------------
    def _container_pid(self, pod: PodState, pid: int) -> int | None:
        """Host pid of a pid as seen in the container (the main process is PID 1)."""
        if pid == 1 and self.main_is_pid1:
            return pod.replica.pid if pod.replica.running else None
        return pid if pid in {p for p, _ in pod.replica.processes()} else None

    def _run_in_container(self, pod: PodState, argv: list[str]) -> tuple[int, str, str]:
        """The few commands the fake container has: ps, kill, true."""
        if not pod.replica.running:
            return 1, "", "container not running\n"
        prog = argv[0] if argv else ""
        if prog == "true":
            return 0, "", ""
        if prog == "python3" and len(argv) == 6 and argv[1:3] == ["-c", PROBE_CODE]:
            return self._connect_probe(pod, *argv[3:6])
        if prog == "ps":
            main = pod.replica.pid
            procs = [
                (1 if p == main and self.main_is_pid1 else p, cmd)
                for p, cmd in pod.replica.processes()
            ]
            procs.append((99999, "ps " + " ".join(argv[1:])))
            width = _ps_width(argv[1:])
            fmt = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-eo", "-o")), "")
            if fmt.split(",") == ["pid", "stat"]:  # the real state letter of the host process
                rows = [
                    f"{1 if p == main and self.main_is_pid1 else p:>7} {_host_state(p)}"
                    for p, _ in pod.replica.processes()
                ]
                rows.append(f"{99999:>7} R")  # ps itself
                return 0, "".join(x + "\n" for x in ["    PID STAT", *rows]), ""
            if "-eo" in argv or "-o" in argv:
                lines = ["    PID COMMAND", *(f"{p:>7} {c}" for p, c in procs)]
            else:
                lines = [
                    "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND",
                    *(
                        f"root     {p:>7}  0.0  0.0      0     0 ?        S    00:00   0:00 {c}"
                        for p, c in procs
                    ),
                ]
            return 0, "".join(line[:width] + "\n" for line in lines), ""
        if prog == "kill":
            args = argv[1:]
            signame = "TERM"
            if args and args[0] == "-s" and len(args) > 1:
                signame, args = args[1], args[2:]
            elif args and args[0].startswith("-") and not args[0][1:].isdigit():
                signame, args = args[0][1:], args[1:]
            signame = signame.upper().removeprefix("SIG")
            try:
                signum = int(getattr(signal_mod, f"SIG{signame}"))
            except AttributeError:
                return 1, "", f"kill: unknown signal {signame}\n"
            code, err = 0, ""
            for arg in args:
                if not arg.isdigit():
                    code, err = 1, err + f"kill: {arg}: arguments must be process or job IDs\n"
                    continue
                host = self._container_pid(pod, int(arg))
                if host is None:
                    code, err = 1, err + f"kill: ({arg}) - No such process\n"
                    continue
                # PID 1 only gets signals it installed a handler for; KILL/STOP never.
                if (
                    self.main_is_pid1
                    and int(arg) == 1
                    and (
                        signum in (signal_mod.SIGKILL, signal_mod.SIGSTOP)
                        or not sig_caught(host, signum)
                    )
                ):
                    continue
                try:
                    os.kill(host, signum)
                except ProcessLookupError:
                    code, err = 1, err + f"kill: ({arg}) - No such process\n"
            return code, "", err
        return 127, "", f'exec: "{prog}": executable file not found in $PATH\n'

    async def h_exec(self, request):
        with self.lock:
            pod = self._pod(request)
        if pod is None:
            return error_response(404, f'pods "{request.match_info["name"]}" not found')
        argv = request.query.getall("command", [])
        ws = await channels.accept(request, (channels.V5, channels.V4))
        code, out, err = await asyncio.get_running_loop().run_in_executor(
            None, self._run_in_container, pod, argv
        )
        status = None if self.exec_mode == "no_status" else channels.exec_status(code)
        await channels.send_exec_result(ws, out, err, status)
        return ws

    # -- port-forward ---------------------------------------------------------------------------
    async def h_portforward(self, request):
        with self.lock:
            pod = self._pod(request)
        if pod is None:
            return error_response(404, f'pods "{request.match_info["name"]}" not found')
        port = int(request.query.get("ports", "0").split(",")[0])
        # The client offers v5 then v4 and got v5 before this helper existed: unchanged.
        ws = await channels.accept(request, (channels.V5, channels.V4, "portforward.k8s.io"))
        real = pod.ports.get(port) if pod.replica.running else None
        await channels.forward_port(ws, port, real, pod.name)
        return ws


class FakeApiServer:
    """Runs a FakeCluster's aiohttp app on 127.0.0.1 (random port) on its own thread and loop."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeApiServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._runner = web.AppRunner(self.cluster.build_app(), handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-apiserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        self.cluster.start()
        return self

    def stop(self) -> None:
        self.cluster.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def write_kubeconfig(self, path: Path, namespace: str = "fault-tolerance-test") -> Path:
        """A kubeconfig whose current context points at this server."""
        import yaml

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {
                        "cluster": "fake-cluster",
                        "user": "fake-user",
                        "namespace": namespace,
                    },
                }
            ],
            "users": [{"name": "fake-user", "user": {"token": "fake-token"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path


def main() -> None:
    """Run a fake API server standalone: ``python -m tests.kube.fake_apiserver WORKDIR``."""
    import tempfile

    from tests.kube.tokenizer import make_tokenizer, repo_tokenizer

    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="fakekube-"))
    tok = repo_tokenizer() or make_tokenizer(workdir / "tokenizer")
    server = FakeApiServer(FakeCluster(workdir, tok)).start()
    cfg = server.write_kubeconfig(workdir / "kubeconfig")
    print(f"fake API server at {server.url}; KUBECONFIG={cfg}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
