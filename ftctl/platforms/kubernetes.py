"""The Kubernetes platform: a DynamoGraphDeployment, faults by pod exec and pod delete (issue 7)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from ftctl.errors import PlatformError
from ftctl.layout import (
    DGD_FILE,
    LOG_SUFFIX,
    METRICS_LOG_SUFFIX,
    POD_EVENTS_SUFFIX,
    POD_YAML_SUFFIX,
    PREVIOUS_LOG_SUFFIX,
)
from ftctl.platforms.base import (
    STOPPED_STATES,
    CommandResult,
    FaultRecord,
    Pod,
    ScrapeTarget,
    judge_stall,
    select_ranks,
)
from ftctl.platforms.kube.client import (
    DEFAULT_NAMESPACE,
    DGD_GROUP,
    DGD_PLURAL,
    DGD_VERSION,
    LABEL_MANAGED_BY,
    KubeTarget,
    api_call,
    check_namespace,
    load_configuration,
    status_of,
)
from ftctl.platforms.kube.dgd import (
    build_dgd,
    expected_replicas,
    label_value,
    role_of,
    set_service_env,
)
from ftctl.platforms.kube.netpol import LABEL_PARTITION, partition_policy
from ftctl.platforms.kube.procs import PS_ARGV, STAT_ARGV, kill_argv, parse_states, probe_argv
from ftctl.platforms.kube.selector import (
    ANNOTATION_GROVE,
    describe,
    graph_selector,
    operator_path,
    service_of,
)
from ftctl.platforms.kube.stream import ResilientEndpoint, http_get_via_forward, pod_exec
from ftctl.platforms.kube.watch import FALLBACK_POLL_S, WatchCache
from ftctl.scenario.model import FAULT_EVENT_KINDS, TestCase

FRONTEND_PORT = 8000
WORKER_METRICS_PORT = 9090
# Exec probes during a held fault (process state of a stall, reachability across a partition):
# short waits on something no watch reports.
PROBE_POLL_S = 0.5
DEFAULT_ENDPOINT_TIMEOUT_S = 30.0  # no frontend reachable this long: the run measures nothing
# Signals a process cannot catch: sent to PID 1 from inside its namespace they are dropped, so
# upstream sends SIGINT to a Python PID 1 instead (REFERENCE §2).
_UNCATCHABLE = ("SIGKILL", "SIGSTOP")
RESET_UNAVAILABLE = (
    "kubernetes: reset_connections is not available: ftctl's port-forward carries only its "
    "own load, and resetting a pod's sockets from inside needs a tool the Dynamo images do not "
    "ship (ss -K, with NET_ADMIN and a kernel built with INET_DIAG_DESTROY); use it on the "
    "local platform, or run_command with a tool your image has"
)
ROLLOUT_ENV = "FTCTL_ROLLOUT"
# FTCTL_KUBE_WATCH=0 turns the watches off: pods and the DGD are then polled every
# FALLBACK_POLL_S (for a cluster whose RBAC grants no `watch`, and to measure the difference).
WATCH_ENV = "FTCTL_KUBE_WATCH"


def watch_enabled(value: str | None) -> bool:
    """Whether a FTCTL_KUBE_WATCH value leaves the watches on (unset: on)."""
    return (value or "1").strip().lower() not in ("0", "off", "false", "no")


def parse_time_ns(value: Any) -> int | None:
    """Epoch ns of a Kubernetes timestamp (datetime or RFC 3339 string); None if absent."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1e9)
    return None


def _pod_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or (pod.status.phase or "") != "Running":
        return False
    statuses = pod.status.container_statuses or []
    return bool(statuses) and all(c.ready for c in statuses)


def _main_status(pod: Any) -> Any:
    statuses = pod.status.container_statuses or []
    return next((c for c in statuses if c.name == "main"), statuses[0] if statuses else None)


def _container_evidence(pod: Any) -> dict[str, Any]:
    """restartCount and lastState.terminated of the main container (stage-1 evidence)."""
    c = _main_status(pod)
    if c is None:
        return {"restart_count": 0, "last_terminated": None, "ready": False}
    term = c.last_state.terminated if c.last_state else None
    return {
        "restart_count": int(c.restart_count or 0),
        "ready": bool(c.ready),
        "container_id": c.container_id,
        "last_terminated": None
        if term is None
        else {
            "exit_code": term.exit_code,
            "reason": term.reason,
            "signal": term.signal,
            "finished_ns": parse_time_ns(term.finished_at),
        },
    }


def _ready_since_ns(pod: Any) -> int | None:
    for cond in pod.status.conditions or []:
        if cond.type == "Ready" and cond.status == "True":
            return parse_time_ns(cond.last_transition_time)
    return None


STATS_MAX_AGE_S = 0.5  # one kubelet summary serves all pods of a node in a scrape round


def recovered_ns(since_ns: int | None, fault_ns: int, seen_ns: int | None = None) -> int:
    """When a pod became ready after a fault: never earlier than it really did.

    ``since_ns`` is the Ready condition's lastTransitionTime. A real apiserver stores it in
    whole seconds, so the transition happened somewhere in that second: its end is taken,
    capped by ``seen_ns`` (when ready was observed, default now). A transition before the
    fault (a stale condition) or none gives ``seen_ns``.
    """
    seen = time.time_ns() if seen_ns is None else seen_ns
    if since_ns is None:
        return seen
    if since_ns % 1_000_000_000 == 0:
        since_ns += 1_000_000_000 - 1
    since_ns = min(since_ns, seen)
    return since_ns if since_ns >= fault_ns else seen


class KubernetesPlatform:
    """Runs a test's graph as a DGD in a namespace; implements ftctl.platforms.base.Platform."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        in_cluster: bool | None = None,
        allow_namespaces: tuple[str, ...] | list[str] = (),
        skip_service_restart: bool = False,
        keep_deployment: bool = False,
        run_id: str | None = None,
        ready_timeout: float = 1800.0,
        endpoint_timeout: float = DEFAULT_ENDPOINT_TIMEOUT_S,
        log: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None,
        watch: bool | None = None,
    ) -> None:
        check_namespace(namespace, allow_namespaces)
        self.namespace = namespace
        self.skip_service_restart = skip_service_restart
        self.keep_deployment = keep_deployment
        self.run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.ready_timeout = ready_timeout
        self.endpoint_timeout = endpoint_timeout
        self.log = log or (lambda _line: None)
        self.configuration, self.target = load_configuration(
            kubeconfig, context, in_cluster, namespace
        )
        if not self.target.tls_verified:  # urllib3's per-request warning is silenced instead
            (warn or self.log)(f"TLS verification is off for {self.target.server}")
        from kubernetes import client

        self._api_client = client.ApiClient(configuration=self.configuration)
        self.core = client.CoreV1Api(self._api_client)
        self.custom = client.CustomObjectsApi(self._api_client)
        self.networking = client.NetworkingV1Api(self._api_client)
        self.apps = client.AppsV1Api(self._api_client)
        self.manifest: dict[str, Any] | None = None
        self._pod_nodes: dict[str, str | None] = {}  # pod name -> node, as last listed
        self._node_stats: dict[str, tuple[float, dict[str, Any]]] = {}  # node -> (at, summary)
        self._node_stats_lock = threading.Lock()
        self.dgd_name: str | None = None
        self.run_dir: Path | None = None
        self.roles: dict[str, str] = {}
        self._endpoint: ResilientEndpoint | None = None
        self._announced = False
        self._lock = threading.Lock()
        # Watches of this run's pods and DGD (kube/watch.py): waits wake on their changes.
        self.use_watch = watch if watch is not None else watch_enabled(os.environ.get(WATCH_ENV))
        self._changed = threading.Condition()
        self._caches: dict[str, WatchCache] = {}
        self._watched: str | None = None  # the DGD whose pods and status the caches hold
        # Pods this platform deleted: never a connection target again, whatever a cache that
        # has not seen the delete yet says.
        self._deleted: set[str] = set()
        self._stopped: dict[str, set[int]] = {}  # pod -> pids ftctl sent SIGSTOP, not yet continued
        self._policies: dict[str, str] = {}  # partition NetworkPolicy -> the pod it labelled
        self._partitions = 0

    # -- target ---------------------------------------------------------------------------------
    def describe_target(self) -> KubeTarget:
        """Context, cluster and namespace this platform acts on."""
        return self.target

    def _announce(self) -> None:
        # Said once, before the first mutating call, so a user sees where ftctl is acting.
        if not self._announced:
            self._announced = True
            self.log(self.target.describe())

    # -- deploy ---------------------------------------------------------------------------------
    def build_manifest(self, test: TestCase) -> dict[str, Any]:
        """The DGD that ``deploy(test)`` would apply (for --dry-run / plan); mutates nothing."""
        return build_dgd(test, self.run_id)

    def deploy(self, test: TestCase, run_dir: Path) -> None:
        """Delete a same-named DGD, restart etcd/NATS unless skipped, create the DGD."""
        manifest = self.build_manifest(test)
        self.run_dir = Path(run_dir)
        self.manifest = manifest
        self.dgd_name = manifest["metadata"]["name"]
        self.roles = {n: role_of(n, s) for n, s in manifest["spec"]["services"].items()}
        self._announce()
        self.log(f"kubernetes: deploying DynamoGraphDeployment {self.dgd_name}")
        self._start_watches(self.dgd_name)  # a same-named DGD's delete is waited on by them too
        self._delete_dgd(self.dgd_name, wait=120.0)
        if not self.skip_service_restart:
            self.restart_platform_services()
        with api_call(f"create DynamoGraphDeployment {self.namespace}/{self.dgd_name}"):
            self.custom.create_namespaced_custom_object(
                DGD_GROUP, DGD_VERSION, self.namespace, DGD_PLURAL, manifest
            )

    # -- watches --------------------------------------------------------------------------------
    def _start_watches(self, dgd: str) -> None:
        """List-then-watch the pods of ``dgd`` and the DGD itself (by name); replaces any."""
        self._stop_watches()
        if not self.use_watch:
            return
        self._caches = {
            "pods": WatchCache(
                self.core.list_namespaced_pod,
                (self.namespace,),
                {"label_selector": graph_selector(dgd)},
                self._changed,
                "kube-watch-pods",
            ).start(),
            "dgd": WatchCache(  # every custom resource can be selected by metadata.name
                self.custom.list_namespaced_custom_object,
                (DGD_GROUP, DGD_VERSION, self.namespace, DGD_PLURAL),
                {"field_selector": f"metadata.name={dgd}"},
                self._changed,
                "kube-watch-dgd",
            ).start(),
        }
        self._watched = dgd

    def _stop_watches(self) -> None:
        caches, self._caches, self._watched = self._caches, {}, None
        for cache in caches.values():
            cache.stop()

    def _cached(self, kind: str, dgd: str | None) -> list[Any] | None:
        """What the cache of ``kind`` holds for ``dgd``; None: ask the API."""
        cache = self._caches.get(kind) if dgd is not None and dgd == self._watched else None
        return cache.snapshot() if cache is not None else None

    def watch_stats(self) -> dict[str, dict[str, Any]]:
        """Per cache: whether it watches, its lists, 410s and refused watches (for tests)."""
        return {
            kind: {
                "synced": c.synced,
                "watching": c.watching,
                "relists": c.relists,
                "expired": c.expired,
                "watch_failures": c.watch_failures,
                "resource_version": c.resource_version,
            }
            for kind, c in list(self._caches.items())
        }

    def _changes(self) -> int:
        return sum(c.version for c in list(self._caches.values()))

    def _wait_change(self, seen: int, deadline: float) -> None:
        """Until a watched object changed since ``seen``, FALLBACK_POLL_S passed, or deadline."""
        timeout = max(0.0, min(FALLBACK_POLL_S, deadline - time.monotonic()))
        with self._changed:
            self._changed.wait_for(lambda: self._changes() != seen, timeout=timeout)

    def restart_platform_services(self, timeout: float = 300.0) -> None:
        """Scale the platform's etcd and NATS StatefulSets to 0, drop their PVCs, scale to 1."""
        for component, sts in (("etcd", "dynamo-platform-etcd"), ("nats", "dynamo-platform-nats")):
            try:
                with api_call(f"read StatefulSet {self.namespace}/{sts}"):
                    self.apps.read_namespaced_stateful_set(sts, self.namespace)
            except PlatformError as exc:
                if status_of(exc) == 404:
                    self.log(f"kubernetes: no StatefulSet {sts} here; {component} not restarted")
                    continue
                raise
            self.log(f"kubernetes: restarting {sts}")
            with api_call(f"restart StatefulSet {self.namespace}/{sts}"):
                self.apps.patch_namespaced_stateful_set_scale(
                    sts, self.namespace, {"spec": {"replicas": 0}}
                )
                self.core.delete_collection_namespaced_persistent_volume_claim(
                    self.namespace, label_selector=f"app.kubernetes.io/component={component}"
                )
                self.apps.patch_namespaced_stateful_set_scale(
                    sts, self.namespace, {"spec": {"replicas": 1}}
                )
            deadline = time.monotonic() + timeout
            while True:
                with api_call(f"read StatefulSet {self.namespace}/{sts}"):
                    obj = self.apps.read_namespaced_stateful_set(sts, self.namespace)
                if (obj.status.ready_replicas or 0) >= 1:
                    break
                if time.monotonic() > deadline:
                    raise PlatformError(f"kubernetes: {sts} not ready {timeout:.0f}s after restart")
                time.sleep(1.0)

    def _get_dgd(self, name: str) -> dict[str, Any] | None:
        cached = self._cached("dgd", name)
        if cached is not None:
            return next((d for d in cached if d["metadata"]["name"] == name), None)
        return self._get_dgd_direct(name)

    def _get_dgd_direct(self, name: str) -> dict[str, Any] | None:
        try:
            with api_call(f"read DynamoGraphDeployment {self.namespace}/{name}"):
                return self.custom.get_namespaced_custom_object(
                    DGD_GROUP, DGD_VERSION, self.namespace, DGD_PLURAL, name
                )
        except PlatformError as exc:
            if status_of(exc) == 404:
                return None
            raise

    def _delete_dgd(self, name: str, wait: float) -> bool:
        """Delete the DGD ``name`` if present and wait until it is gone; True if one existed."""
        try:
            with api_call(f"delete DynamoGraphDeployment {self.namespace}/{name}"):
                self.custom.delete_namespaced_custom_object(
                    DGD_GROUP, DGD_VERSION, self.namespace, DGD_PLURAL, name
                )
        except PlatformError as exc:
            if status_of(exc) == 404:
                return False
            raise
        self.log(f"kubernetes: deleting DynamoGraphDeployment {name}")
        deadline = time.monotonic() + wait
        seen_present = False  # the DGD cache held it: its absence now is a DELETED event seen
        while time.monotonic() < deadline:
            seen = self._changes()
            present = self._get_dgd(name) is not None
            seen_present = seen_present or present
            if not present and not self._list_pods(dgd=name):
                # A cache that never held the DGD may not have seen its creation yet (a delete
                # right after the create): then the API has the last word.
                if (
                    seen_present
                    or self._cached("dgd", name) is None
                    or (self._get_dgd_direct(name) is None and not self._list_pods_direct(name))
                ):
                    return True
            self._wait_change(seen, deadline)
        raise PlatformError(
            f"kubernetes: DynamoGraphDeployment {name} still present {wait:.0f}s after delete"
        )

    # -- readiness ------------------------------------------------------------------------------
    def _services(self) -> dict[str, Any]:
        return ((self.manifest or {}).get("spec") or {}).get("services") or {}

    def _service_of(self, pod: Any) -> str | None:
        """The service of a listed pod, by either operator path's labels (kube/selector.py)."""
        return service_of(pod.metadata.labels, self.dgd_name or "", self._services())

    def _list_pods(self, dgd: str | None = None, service: str | None = None) -> list[Any]:
        """Pods of the graph (one list by the graph label), only ``service``'s when given."""
        cached = self._cached("pods", dgd or self.dgd_name)
        items = cached if cached is not None else self._list_pods_direct(dgd or self.dgd_name or "")
        if service is None:
            return items
        return [p for p in items if self._service_of(p) == service]

    def _list_pods_direct(self, dgd: str) -> list[Any]:
        with api_call(f"list pods in {self.namespace}"):
            return list(
                self.core.list_namespaced_pod(
                    self.namespace, label_selector=graph_selector(dgd)
                ).items
            )

    def _ready_state(self) -> tuple[bool, str]:
        """(ready, summary) by REFERENCE §1: condition Ready + state successful, or the pods.

        Pods and the DGD come from two watches, and either may be delivered first: when the
        DGD says ready and the pod cache does not yet, the API is asked which one is behind,
        so that pods() right after a wait sees what the DGD's status saw.
        """
        dgd = self._get_dgd(self.dgd_name or "")
        if dgd is None:
            return False, "the DynamoGraphDeployment does not exist"
        status = dgd.get("status") or {}
        state = status.get("state", "?")
        cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        summary = f"state={state}, Ready={cond.get('status', '?')}"
        if cond.get("message"):
            summary += f" ({cond.get('reason', '')}: {cond['message']})"
        status_ready = cond.get("status") == "True" and state == "successful"
        # The status can lag: accept all pods Running + ready, as many as the spec asks.
        expected = expected_replicas(self.manifest or dgd)
        pods_ready, per_service = self._pods_ready(expected, self._list_pods())
        if status_ready and not pods_ready and self._cached("pods", self.dgd_name) is not None:
            # Ready by the status, not by the cached pods: if the API's pods are ready, the
            # cache is behind (wait for its events); if not, the status decides, as it did.
            if self._pods_ready(expected, self._list_pods_direct(self.dgd_name or ""))[0]:
                return False, summary + "; " + per_service + " (the pod watch is behind)"
            return True, summary
        if status_ready:
            return True, summary
        return pods_ready, summary + "; " + per_service

    def _pods_ready(self, expected: dict[str, int], pods: list[Any]) -> tuple[bool, str]:
        """(each service has its expected replicas ready, "svc r/n ready, ...")."""
        pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        per_service = []
        all_ready = True
        for svc, want in expected.items():
            have = [p for p in pods if self._service_of(p) == svc]
            ready = sum(1 for p in have if _pod_ready(p))
            per_service.append(f"{svc} {ready}/{want} ready")
            all_ready = all_ready and ready >= want
        return all_ready, ", ".join(per_service)

    def _recent_events(self, limit: int = 8) -> list[str]:
        names = {self.dgd_name or ""} | {p.metadata.name for p in self._list_pods()}
        try:
            with api_call(f"list events in {self.namespace}"):
                items = self.core.list_namespaced_event(self.namespace).items
        except PlatformError:
            return []
        rows = []
        for ev in items:
            if ev.involved_object and ev.involved_object.name in names:
                when = ev.last_timestamp or ev.first_timestamp or ev.event_time
                rows.append(
                    (
                        parse_time_ns(when) or 0,
                        f"{ev.involved_object.name}: {ev.reason}: {ev.message}",
                    )
                )
        return [text for _, text in sorted(rows)[-limit:]]

    def wait_ready(self, timeout: float) -> None:
        """Block until the DGD is ready; PlatformError with status and recent events if not."""
        deadline = time.monotonic() + timeout
        summary = ""
        while time.monotonic() < deadline:
            seen = self._changes()
            ready, summary = self._ready_state()
            if ready:
                return
            self._wait_change(seen, deadline)
        events = self._recent_events()
        detail = "; recent events: " + " | ".join(events) if events else ""
        raise PlatformError(
            f"kubernetes: DynamoGraphDeployment {self.namespace}/{self.dgd_name} not ready after "
            f"{timeout:.0f}s: {summary}{detail}"
        )

    def wait_for_recovery(self, timeout: float) -> None:
        """Block until every expected replica is ready again."""
        self.wait_ready(timeout)

    # -- pods -----------------------------------------------------------------------------------
    def pods(self, service: str | None = None) -> list[Pod]:
        """Current (not terminating) pods of the graph, by service then creation time."""
        items = [
            (self._service_of(p), p)
            for p in self._list_pods()
            if p.metadata.deletion_timestamp is None
        ]
        items = [(svc, p) for svc, p in items if svc and (service is None or svc == service)]
        items.sort(
            key=lambda sp: (
                sp[0],
                parse_time_ns(sp[1].metadata.creation_timestamp) or 0,
                sp[1].metadata.name,
            )
        )
        out: list[Pod] = []
        index: dict[str, int] = {}
        for svc, p in items:
            self._pod_nodes[p.metadata.name] = p.spec.node_name if p.spec else None
            c = _main_status(p)
            out.append(
                Pod(
                    name=p.metadata.name,
                    service=svc,
                    role=self.roles.get(svc, "decode"),
                    ready=_pod_ready(p),
                    restart_count=int(c.restart_count or 0) if c else 0,
                    phase=p.status.phase or "Pending",
                    created_ns=parse_time_ns(p.metadata.creation_timestamp) or 0,
                    index=index.setdefault(svc, 0),
                )
            )
            index[svc] += 1
        return out

    def _read_pod(self, name: str, fresh: bool = False) -> Any | None:
        """The pod ``name`` (None if gone): from the watch cache, or the API when ``fresh``."""
        cached = None if fresh else self._cached("pods", self.dgd_name)
        if cached is not None:
            return next((p for p in cached if p.metadata.name == name), None)
        try:
            with api_call(f"read pod {self.namespace}/{name}"):
                return self.core.read_namespaced_pod(name, self.namespace)
        except PlatformError as exc:
            if status_of(exc) == 404:
                return None
            raise

    def _ready_frontends(self) -> list[str]:
        """Ready frontend pods to connect to: the cache's, else (none there) the API's.

        A cache may not have seen a delete or a new pod's readiness yet: pods this platform
        deleted are left out, and when the cache names none the API is asked, so a connection
        made after a replacement became ready finds it.
        """
        names = {s for s, r in self.roles.items() if r == "frontend"}

        def ready(pods: list[Any]) -> list[str]:
            return [
                p.metadata.name
                for p in pods
                if _pod_ready(p)
                and self._service_of(p) in names
                and p.metadata.name not in self._deleted
            ]

        found = ready(self._list_pods())
        if not found and self._cached("pods", self.dgd_name) is not None:
            found = ready(self._list_pods_direct(self.dgd_name or ""))
        return found

    def endpoint(self) -> str:
        """A local URL whose every connection reaches a ready frontend pod via port-forward."""
        with self._lock:
            if self._endpoint is None:
                self._endpoint = ResilientEndpoint(
                    self.configuration,
                    self.namespace,
                    self._ready_frontends,
                    FRONTEND_PORT,
                    log=self.log,
                )
                self._endpoint.start()
            return self._endpoint.url

    def endpoint_failures(self) -> list[dict[str, Any]]:
        """Connections the endpoint could not forward (``{t_ns, pod, reason}``), oldest first."""
        endpoint = self._endpoint
        return list(endpoint.failures) if endpoint is not None else []

    def endpoint_problem(self) -> str | None:
        """Why no frontend was reachable through a port-forward for ``endpoint_timeout``."""
        endpoint = self._endpoint
        outage = endpoint.outage() if endpoint is not None else None
        if outage is None or outage[0] < self.endpoint_timeout:
            return None
        return (
            f"kubernetes: no frontend reachable through a port-forward for "
            f"{self.endpoint_timeout:g}s ({len(endpoint.failures)} connections failed), last: "
            f"{outage[1]}; ftctl's tunnel failed, so the load measured nothing of the deployment"
        )

    # -- faults ---------------------------------------------------------------------------------
    def exec(self, pod: str, argv: list[str], timeout: float = 30.0):
        """Run ``argv`` in the main container of ``pod`` (see stream.pod_exec)."""
        return pod_exec(self.configuration, self.namespace, pod, argv, timeout=timeout)

    def list_processes(self, pod: str) -> list[tuple[int, str]]:
        """(pid, command line) of a pod's processes, from ``ps -ww -eo pid,args``.

        ``-ww``: ps writing to a pipe cuts lines at 80 columns, which drops the module name
        from a long interpreter path (``/opt/venv/bin/python3 -m dynamo.vllm`` ...). A ps
        without it (busybox built without wide output) gets the plain form.
        """
        result = self.exec(pod, list(PS_ARGV))
        if result.exit_code not in (0, None):
            result = self.exec(pod, [arg for arg in PS_ARGV if arg != "-ww"])
        if result.exit_code not in (0, None) or not result.stdout.strip():
            raise PlatformError(
                f"kubernetes: ps in pod {pod} failed (exit {result.exit_code}): "
                f"{result.stderr.strip()[:200]}"
            )
        procs = []
        for line in result.stdout.splitlines()[1:]:
            pid, _, args = line.strip().partition(" ")
            if pid.isdigit():
                procs.append((int(pid), args.strip()))
        return procs

    def _matches(
        self, pod: str, process: str, ranks: tuple[int, ...] | None
    ) -> list[tuple[int, str]]:
        procs = self.list_processes(pod)
        matched = [(pid, cmd) for pid, cmd in procs if process in cmd and not cmd.startswith("ps ")]
        if not matched:
            return []
        return select_ranks(matched, ranks, f"kubernetes: pod {pod}, {process!r}")

    def terminate_process(
        self, pod: Pod, process: str, signal: str, ranks: tuple[int, ...] | None = None
    ) -> FaultRecord:
        """Exec ``ps``, match ``process`` in command lines, exec ``kill -s SIG PID...``."""
        sig = signal.upper() if signal.upper().startswith("SIG") else f"SIG{signal.upper()}"
        before = self._read_pod(pod.name, fresh=True)  # the state right before, not a cache's
        if before is None:
            raise PlatformError(f"kubernetes: pod {pod.name} is gone; cannot kill {process!r}")
        matched = self._matches(pod.name, process, ranks)
        record = FaultRecord(
            action="terminate_process",
            service=pod.service,
            pod=pod.name,
            t_ns=time.time_ns(),
            signal=sig,
            process=process,
            pids=[pid for pid, _ in matched],
            evidence={"before": _container_evidence(before), "matched": matched},
        )
        if not matched:
            record.evidence["error"] = f"no process matching {process!r} in pod {pod.name}"
            return record
        sent = sig
        if sig in _UNCATCHABLE and any(pid == 1 for pid, _ in matched):
            sent = "SIGINT"
            record.evidence["pid1"] = f"{sig} to PID 1 is ignored by the kernel; sent SIGINT"
        record.evidence["signal_sent"] = sent
        argv = kill_argv(sent, [pid for pid, _ in matched])
        record.t_ns = time.time_ns()  # T_f: right before the kill exec
        result = self.exec(pod.name, argv)
        record.evidence["kill_exit_code"] = result.exit_code
        if result.exit_code not in (0, None):
            record.evidence["error"] = (
                f"kill exited {result.exit_code}: {result.stderr.strip()[:200]}"
            )
        return record

    def reset_connections(self, pod: Pod) -> FaultRecord:
        """Not available: see RESET_UNAVAILABLE."""
        raise PlatformError(RESET_UNAVAILABLE)

    def _probe(self, frontend: str, target: Pod) -> dict[str, Any]:
        """Exec a connection probe in ``frontend`` to the target pod's IP and serving port."""
        obj = self._read_pod(target.name)
        ip = obj.status.pod_ip if obj is not None and obj.status else None
        if not ip:
            return {"from": frontend, "exit_code": None, "error": "the target pod has no IP"}
        port = FRONTEND_PORT if target.role == "frontend" else WORKER_METRICS_PORT
        result = self.exec(frontend, probe_argv(ip, port))
        return {
            "from": frontend,
            "to": f"{ip}:{port}",
            "exit_code": result.exit_code,
            "stderr": result.stderr.strip()[-200:],
            "t_ns": time.time_ns(),
        }

    def _label_pod(self, pod: str, value: str | None) -> None:
        with api_call(f"label pod {self.namespace}/{pod}"):
            self.core.patch_namespaced_pod(
                pod, self.namespace, {"metadata": {"labels": {LABEL_PARTITION: value}}}
            )

    def partition(self, pod: Pod) -> FaultRecord:
        """Label ``pod``, apply a NetworkPolicy cutting it from the frontends, probe the cut.

        The policy and the label carry this run's id; ``heal_partition``, ``teardown`` and
        ``ftctl cleanup`` remove them. Whether traffic stops is up to the cluster's CNI: a
        probe exec'd in a frontend pod must fail to connect, else the fault is not verified.
        """
        frontends = sorted(s for s, r in self.roles.items() if r == "frontend")
        ready = [p for p in self.pods() if p.role == "frontend" and p.ready]
        with self._lock:
            self._partitions += 1
            number = self._partitions
        pid = label_value(f"{self.run_id}-{number}")
        name = label_value(f"ftctl-partition-{pid}").lower()
        policy = partition_policy(
            name, self.namespace, label_value(self.run_id), self.dgd_name or "", frontends, pid
        )
        record = FaultRecord(
            action="partition",
            service=pod.service,
            pod=pod.name,
            t_ns=0,
            evidence={"policy": name, "partition_label": f"{LABEL_PARTITION}={pid}"},
        )
        with self._lock:
            self._policies[name] = pod.name
        self._label_pod(pod.name, pid)
        record.t_ns = time.time_ns()  # T_f: right before the policy is created
        with api_call(f"create NetworkPolicy {self.namespace}/{name}"):
            self.networking.create_namespaced_network_policy(self.namespace, policy)
        with api_call(f"read NetworkPolicy {self.namespace}/{name}"):
            self.networking.read_namespaced_network_policy(name, self.namespace)
        record.evidence["policy_exists"] = True
        if not ready:
            record.evidence["error"] = "no ready frontend pod to probe the cut from"
            return record
        deadline = time.monotonic() + 10.0  # CNIs apply a policy within a few seconds
        while True:
            probe = self._probe(ready[0].name, pod)
            if probe["exit_code"] != 0 or time.monotonic() >= deadline:
                break
            time.sleep(PROBE_POLL_S)
        record.evidence["probe_during"] = probe
        if probe["exit_code"] == 0:
            record.evidence["error"] = (
                f"traffic from {ready[0].name} to {pod.name} still flows with the policy in "
                "place: this cluster's CNI does not enforce NetworkPolicies"
            )
        elif probe["exit_code"] != 1:
            record.evidence["error"] = (
                f"cannot probe the cut: {probe_argv('', 0)[0]} in {ready[0].name} exited "
                f"{probe['exit_code']} ({probe.get('stderr') or probe.get('error')})"
            )
        return record

    def heal_partition(self, fault: FaultRecord) -> FaultRecord:
        """Delete the partition's policy and label; probe that traffic flows again."""
        name = fault.evidence.get("policy")
        if not name:
            return fault
        fault.resumed_ns = time.time_ns()
        self._remove_policy(name)
        ready = [p for p in self.pods() if p.role == "frontend" and p.ready]
        target = next((p for p in self.pods() if p.name == fault.pod), None)
        if ready and target is not None and "probe_during" in fault.evidence:
            deadline = time.monotonic() + 30.0
            while True:
                probe = self._probe(ready[0].name, target)
                if probe["exit_code"] == 0 or time.monotonic() >= deadline:
                    break
                time.sleep(PROBE_POLL_S)
            fault.evidence["probe_after"] = probe
        return fault

    def _remove_policy(self, name: str) -> None:
        with self._lock:
            pod = self._policies.pop(name, None)
        try:
            with api_call(f"delete NetworkPolicy {self.namespace}/{name}"):
                self.networking.delete_namespaced_network_policy(name, self.namespace)
        except PlatformError as exc:
            if status_of(exc) != 404:
                raise
        if pod is not None:
            try:
                self._label_pod(pod, None)
            except PlatformError as exc:
                if status_of(exc) != 404:  # a deleted pod took its label with it
                    raise

    def run_command(self, pod: Pod, argv: list[str], timeout: float) -> CommandResult:
        """Exec ``argv`` in the pod's main container (no shell); the exit code as returned."""
        result = self.exec(pod.name, list(argv), timeout=timeout)
        error = None
        if result.exit_code is None:
            error = "the exec stream ended without an exit status (container gone?)"
        return CommandResult(result.exit_code, result.stdout, result.stderr, error=error)

    def process_states(self, pod: str, pids: list[int]) -> dict[str, str | None]:
        """``{pid: STAT}`` of ``pids`` in ``pod`` from ``ps -eo pid,stat`` (None: not listed)."""
        result = self.exec(pod, list(STAT_ARGV))
        if result.exit_code not in (0, None):
            raise PlatformError(
                f"kubernetes: ps -o stat in pod {pod} failed (exit {result.exit_code}): "
                f"{result.stderr.strip()[:200]}"
            )
        states = parse_states(result.stdout)
        return {str(pid): states.get(pid) for pid in pids}

    def _wait_states(self, pod: str, pids: list[int], stopped: bool) -> dict[str, str | None]:
        deadline = time.monotonic() + 10.0
        while True:
            states = self.process_states(pod, pids)
            done = all(((s or "")[:1] in STOPPED_STATES) == stopped for s in states.values())
            if done or time.monotonic() >= deadline:
                return states
            time.sleep(PROBE_POLL_S)

    def stall_process(
        self, pod: Pod, process: str, ranks: tuple[int, ...] | None = None
    ) -> FaultRecord:
        """Exec ``ps``, match ``process``, exec ``kill -s STOP PID...``; states by ``ps -o stat``.

        SIGSTOP to PID 1 is ignored by the kernel inside the container's PID namespace (as
        SIGKILL is), so a match on PID 1 is an error, not a stall that silently did nothing.
        """
        before = self._read_pod(pod.name)
        if before is None:
            raise PlatformError(f"kubernetes: pod {pod.name} is gone; cannot stall {process!r}")
        matched = self._matches(pod.name, process, ranks)
        pids = [pid for pid, _ in matched]
        record = FaultRecord(
            action="stall_process",
            service=pod.service,
            pod=pod.name,
            t_ns=time.time_ns(),
            signal="SIGSTOP",
            process=process,
            pids=pids,
            evidence={
                "before": _container_evidence(before),
                "matched": matched,
                "restart_count_before": _container_evidence(before)["restart_count"],
            },
        )
        if not matched:
            record.evidence["error"] = f"no process matching {process!r} in pod {pod.name}"
            return record
        if 1 in pids:
            record.evidence["error"] = (
                "SIGSTOP to PID 1 is ignored by the kernel inside its PID namespace: choose a "
                "process other than the container's main one (process: or rank:)"
            )
            return record
        with self._lock:
            self._stopped.setdefault(pod.name, set()).update(pids)
        argv = kill_argv("SIGSTOP", pids)
        record.t_ns = time.time_ns()  # T_f: right before the kill exec
        result = self.exec(pod.name, argv)
        record.evidence["kill_exit_code"] = result.exit_code
        if result.exit_code not in (0, None):
            record.evidence["error"] = (
                f"kill exited {result.exit_code}: {result.stderr.strip()[:200]}"
            )
            return record
        record.evidence["states_after_stop"] = self._wait_states(pod.name, pids, stopped=True)
        return record

    def resume_process(self, fault: FaultRecord) -> FaultRecord:
        """Exec ``kill -s CONT PID...`` for what ``fault`` stopped; states by ``ps -o stat``."""
        with self._lock:
            stopped = self._stopped.get(fault.pod, set())
            pids = [pid for pid in fault.pids if pid in stopped]
        if not pids:
            return fault
        fault.resumed_ns = time.time_ns()
        self._continue(fault.pod, pids)
        fault.evidence["states_after_resume"] = self._wait_states(fault.pod, pids, stopped=False)
        pod = self._read_pod(fault.pod)
        if pod is not None:
            fault.evidence["restart_count_after"] = _container_evidence(pod)["restart_count"]
        return fault

    def _continue(self, pod: str, pids: list[int]) -> None:
        result = self.exec(pod, kill_argv("SIGCONT", pids))
        if result.exit_code not in (0, None):
            raise PlatformError(
                f"kubernetes: kill -s CONT in pod {pod} exited {result.exit_code}: "
                f"{result.stderr.strip()[:200]}"
            )
        with self._lock:
            self._stopped.get(pod, set()).difference_update(pids)

    def _save_before_delete(self, pod: Pod) -> None:
        if self.run_dir is None:
            return
        folder = self.run_dir / pod.service
        folder.mkdir(parents=True, exist_ok=True)
        self._write_pod_files(folder, pod.name, pod.service, suffix=".before_delete")

    def delete_pod(self, pod: Pod, force: bool) -> FaultRecord:
        """Save manifest/logs/metrics with ``.before_delete``, then delete (force: grace 0)."""
        before = self._read_pod(pod.name, fresh=True)
        if before is None:
            raise PlatformError(f"kubernetes: pod {pod.name} is already gone")
        self._save_before_delete(pod)
        record = FaultRecord(
            action="delete_pod",
            service=pod.service,
            pod=pod.name,
            t_ns=0,
            evidence={
                "uid": before.metadata.uid,
                "force": force,
                "others": [p.name for p in self.pods(pod.service) if p.name != pod.name],
            },
        )
        kwargs = {"grace_period_seconds": 0} if force else {}
        record.t_ns = time.time_ns()  # T_f: right before the delete call
        self._deleted.add(pod.name)
        with api_call(f"delete pod {self.namespace}/{pod.name}"):
            self.core.delete_namespaced_pod(pod.name, self.namespace, **kwargs)
        return record

    def verify_fault(self, fault: FaultRecord, timeout: float) -> FaultRecord:
        """Wait for the fault's effect; fill verified, evidence, verified_ns, pod_recovered_ns."""
        if fault.action == "delete_pod":
            return self._verify_delete(fault, timeout)
        if fault.action == "stall_process":
            return judge_stall(fault)
        if fault.action == "partition":
            return _judge_policy_partition(fault)
        return self._verify_kill(fault, timeout)

    def _verify_kill(self, fault: FaultRecord, timeout: float) -> FaultRecord:
        if not fault.pids or "kill_exit_code" not in fault.evidence:
            fault.verified = False
            return fault
        before = fault.evidence.get("before") or {}
        deadline = time.monotonic() + timeout
        zombie_after = time.monotonic() + min(10.0, timeout)
        main_killed = any(pid == 1 for pid in fault.pids)
        while time.monotonic() < deadline:
            seen = self._changes()
            pod = self._read_pod(fault.pod)
            if pod is None:
                fault.evidence["error"] = "pod disappeared"
                return fault
            now = _container_evidence(pod)
            # A cache that lags the direct read of `before` shows an older restart count: its
            # older lastState is not this fault's.
            restarted = now["restart_count"] > before.get("restart_count", 0) or (
                now["last_terminated"] is not None
                and now["last_terminated"] != before.get("last_terminated")
                and now["restart_count"] >= before.get("restart_count", 0)
            )
            if restarted and fault.verified_ns is None:
                fault.verified = True
                fault.verified_ns = time.time_ns()
                fault.evidence["after"] = now
            if fault.verified and now["ready"]:
                fault.pod_recovered_ns = recovered_ns(_ready_since_ns(pod), fault.t_ns)
                fault.evidence["after"] = now
                return fault
            if not restarted and not main_killed and time.monotonic() > zombie_after:
                alive = {pid for pid, _ in self.list_processes(fault.pod)}
                if not alive & set(fault.pids):
                    fault.verified = True
                    fault.verified_ns = time.time_ns()
                    fault.skipped_reason = (
                        "killed a subprocess: it is gone (possibly a zombie) but the container "
                        "did not restart — known limitation (REFERENCE §2)"
                    )
                    fault.evidence["after"] = now
                    return fault
            self._wait_change(seen, deadline)
        fault.evidence.setdefault("error", f"no container restart within {timeout:.0f}s")
        return fault

    def _verify_delete(self, fault: FaultRecord, timeout: float) -> FaultRecord:
        deadline = time.monotonic() + timeout
        old_uid = fault.evidence.get("uid")
        gone_ns = None
        known = set(fault.evidence.get("others") or []) | {fault.pod}
        while time.monotonic() < deadline:
            seen = self._changes()
            old = self._read_pod(fault.pod)
            if gone_ns is None and (old is None or old.metadata.uid != old_uid):
                gone_ns = time.time_ns()
                fault.evidence["old_gone_ns"] = gone_ns
            fresh = [
                p
                for p in self._list_pods(service=fault.service)
                if p.metadata.name not in known and p.metadata.deletion_timestamp is None
            ]
            if fresh and fault.verified_ns is None:
                fault.evidence["replacement"] = fresh[0].metadata.name
            if gone_ns is not None and fresh:
                fault.verified = True
                fault.verified_ns = fault.verified_ns or time.time_ns()
                ready = [p for p in fresh if _pod_ready(p)]
                if ready:
                    fault.pod_recovered_ns = recovered_ns(_ready_since_ns(ready[0]), fault.t_ns)
                    fault.evidence["replacement"] = ready[0].metadata.name
                    return fault
            self._wait_change(seen, deadline)
        if not fault.verified:
            fault.evidence["error"] = (
                f"old pod {'gone' if gone_ns else 'still present'}, "
                f"no replacement within {timeout:.0f}s"
            )
        else:
            fault.evidence["error"] = f"replacement not ready within {timeout:.0f}s"
        return fault

    def wait_for_log_pattern(self, service: str, pattern: str, timeout: float) -> int:
        """Poll the logs of ``service``'s pods until a line matches; return epoch ns."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pod in self.pods(service):
                if regex.search(self._pod_log(pod.name)):
                    return time.time_ns()
            time.sleep(0.5)
        raise PlatformError(
            f"kubernetes: no log line of {service} matched {pattern!r} within {timeout:.0f}s"
        )

    def rolling_upgrade(self, services: list[str], timeout: float) -> None:
        """Patch an env var on each service (a rollout), wait unready then ready."""
        self._announce()
        for service in services:
            old = {p.name for p in self.pods(service)}
            patch = set_service_env(self.manifest or {}, service, ROLLOUT_ENV, str(time.time_ns()))
            with api_call(f"patch DynamoGraphDeployment {self.namespace}/{self.dgd_name}"):
                self.custom.patch_namespaced_custom_object(
                    DGD_GROUP, DGD_VERSION, self.namespace, DGD_PLURAL, self.dgd_name, patch
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:  # unready: an old pod replaced or not ready
                seen = self._changes()
                current = self.pods(service)
                if {p.name for p in current} != old or not all(p.ready for p in current):
                    break
                self._wait_change(seen, deadline)
            else:
                raise PlatformError(f"kubernetes: rollout of {service} never started")
            while time.monotonic() < deadline:
                seen = self._changes()
                current = self.pods(service)
                want = expected_replicas(self.manifest or {}).get(service, 1)
                fresh = [p for p in current if p.name not in old and p.ready]
                if len(fresh) >= want and len(current) == want:
                    break
                self._wait_change(seen, deadline)
            else:
                raise PlatformError(f"kubernetes: rollout of {service} not done in {timeout:.0f}s")

    # -- logs -----------------------------------------------------------------------------------
    def _pod_log(self, name: str, previous: bool = False) -> str:
        try:
            with api_call(f"read log of pod {self.namespace}/{name}"):
                return self.core.read_namespaced_pod_log(
                    name, self.namespace, container="main", previous=previous
                )
        except PlatformError as exc:
            if status_of(exc) in (400, 404):
                return ""
            raise

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every current pod's /metrics, fetched through a port-forward of the API server."""
        targets = []
        for pod in self.pods():
            port = FRONTEND_PORT if pod.role == "frontend" else WORKER_METRICS_PORT
            fetch = functools.partial(self._fetch, pod.name, port)
            sample = functools.partial(self._pod_resources, pod.name)
            targets.append(ScrapeTarget(pod.service, pod.name, fetch, sample=sample))
        return targets

    def _pod_resources(self, pod: str) -> dict[str, Any]:
        """CPU seconds and memory of ``pod`` from its kubelet's /stats/summary (node proxy).

        Raises (recorded as unavailable by the scraper) when the pod has no node, the kubelet
        does not answer, or the summary does not list the pod. One summary per node is read at
        most every STATS_MAX_AGE_S, however many of its pods are sampled."""
        node = self._pod_nodes.get(pod)
        if not node:
            raise PlatformError(f"kubelet stats unavailable: pod {pod} is on no node")
        summary = self._node_summary(node)
        for entry in summary.get("pods") or []:
            ref = entry.get("podRef") or {}
            if ref.get("name") == pod and ref.get("namespace") == self.namespace:
                cpu = (entry.get("cpu") or {}).get("usageCoreNanoSeconds")
                memory = entry.get("memory") or {}
                rss = memory.get("rssBytes", memory.get("workingSetBytes"))
                if cpu is None or rss is None:
                    break
                return {"ok": True, "cpu_s": round(cpu / 1e9, 3), "rss_bytes": int(rss)}
        raise PlatformError(f"kubelet stats unavailable: node {node} has no stats of pod {pod}")

    def _node_summary(self, node: str) -> dict[str, Any]:
        with self._node_stats_lock:
            cached = self._node_stats.get(node)
            if cached is not None and time.monotonic() - cached[0] < STATS_MAX_AGE_S:
                return cached[1]
        try:
            # Raw body: the client would turn a JSON answer typed `str` into a Python repr.
            response = self.core.connect_get_node_proxy_with_path(
                node, "stats/summary", _preload_content=False, _request_timeout=5
            )
            summary = json.loads(response.data)
        except Exception as exc:
            reason = getattr(exc, "status", None) or type(exc).__name__
            raise PlatformError(f"kubelet stats unavailable: node {node}: {reason}") from exc
        if not isinstance(summary, dict):
            raise PlatformError(f"kubelet stats unavailable: node {node}: not a summary")
        with self._node_stats_lock:
            self._node_stats[node] = (time.monotonic(), summary)
        return summary

    def _fetch(self, pod: str, port: int, timeout: float) -> bytes:
        text = http_get_via_forward(
            self.configuration, self.namespace, pod, port, "/metrics", timeout=timeout
        )
        return text.encode("utf-8")

    def _write_pod_files(self, folder: Path, name: str, service: str, suffix: str = "") -> None:
        pod = self._read_pod(name)
        if pod is None:
            return
        data = self._api_client.sanitize_for_serialization(pod)
        (folder / f"{name}{suffix}{POD_YAML_SUFFIX}").write_text(
            yaml.safe_dump(data, sort_keys=False)
        )
        (folder / f"{name}{suffix}{LOG_SUFFIX}").write_text(self._pod_log(name))
        c = _main_status(pod)
        if c is not None and (c.restart_count or 0) > 0:
            (folder / f"{name}{suffix}{PREVIOUS_LOG_SUFFIX}").write_text(self._pod_log(name, True))
        port = FRONTEND_PORT if self.roles.get(service) == "frontend" else WORKER_METRICS_PORT
        try:
            metrics = http_get_via_forward(
                self.configuration, self.namespace, name, port, "/metrics"
            )
        except PlatformError as exc:
            metrics = f"# scrape failed: {exc}\n"
        (folder / f"{name}{suffix}{METRICS_LOG_SUFFIX}").write_text(metrics)
        lines = []
        try:
            with api_call(f"list events of pod {name}"):
                events = self.core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.name={name}"
                ).items
            for ev in events:
                when = ev.last_timestamp or ev.first_timestamp or ev.event_time
                lines.append(f"{when} {ev.type} {ev.reason}: {ev.message}")
        except PlatformError as exc:
            lines.append(f"# events unavailable: {exc}")
        (folder / f"{name}{suffix}{POD_EVENTS_SUFFIX}").write_text("\n".join(lines) + "\n")

    def collect_logs(self, dest: Path) -> None:
        """Write ``<Service>/<pod>.log``, ``.previous.log``, ``.metrics.log``, ``.yaml``, ``.events.log``."""
        if self.dgd_name is None:
            return
        dest = Path(dest)
        for pod in self.pods():
            folder = dest / pod.service
            folder.mkdir(parents=True, exist_ok=True)
            self._write_pod_files(folder, pod.name, pod.service)
        dgd = self._get_dgd(self.dgd_name)
        if dgd is not None:
            (dest / DGD_FILE).write_text(yaml.safe_dump(dgd, sort_keys=False))

    # -- teardown -------------------------------------------------------------------------------
    def teardown(self) -> None:
        """Continue what ftctl stopped; close forwards; delete the DGD unless keep_deployment.

        Idempotent."""
        with self._lock:
            policies = list(self._policies)
        for name in policies:  # no cut outlives the run, kept deployment or not
            try:
                self._remove_policy(name)
            except Exception as exc:
                self.log(f"kubernetes: could not remove NetworkPolicy {name}: {exc}")
        with self._lock:
            stopped = {pod: sorted(pids) for pod, pids in self._stopped.items() if pids}
        for pod, pids in stopped.items():  # best effort: a deleted pod took its processes
            try:
                self._continue(pod, pids)
            except Exception as exc:
                self.log(f"kubernetes: could not continue pids {pids} in pod {pod}: {exc}")
        with self._lock:
            endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.close()
        self._delete_load_jobs()  # issue 15: a cluster load's Job goes on every exit path
        if self.dgd_name and not self.keep_deployment:
            if self._delete_dgd(self.dgd_name, wait=120.0):
                self.log(f"kubernetes: DynamoGraphDeployment {self.dgd_name} deleted")
            else:  # a 404: never created, or deleted by someone else first
                self.log(f"kubernetes: DynamoGraphDeployment {self.dgd_name} already gone")
        self._stop_watches()
        self._api_client.close()

    def _delete_load_jobs(self) -> None:
        from ftctl.platforms.kube.client import LABEL_RUN
        from ftctl.platforms.kube.cluster_load import delete_jobs
        from ftctl.platforms.kube.dgd import label_value

        if not getattr(self, "_load_jobs", False):
            return  # no cluster load ran: no Job to look for (nor RBAC to ask for)
        try:
            delete_jobs(self, f"{LABEL_RUN}={label_value(self.run_id)}")
        except PlatformError as exc:
            self.log(f"kubernetes: deleting this run's load Jobs: {exc}")

    # -- cluster loads (issue 15): ftctl/platforms/kube/cluster_load.py -------------------------
    def cluster_load(self, test: TestCase, spec: Any, out_dir: Path, record_event, result_dir):
        """The handle of a ``placement: cluster`` load: an Indexed Job (not started)."""
        from ftctl.platforms.kube.cluster_load import ClusterLoad

        self._load_jobs = True
        return ClusterLoad(self, test, spec, out_dir, record_event, result_dir)

    def pick(self, pods: list[Pod], selector: Any) -> list[Pod]:
        """Resolve an event's ``pods:`` (all | random | indices) against ``pods``."""
        if selector == "all":
            return list(pods)
        if selector == "random":
            return [random.choice(pods)] if pods else []
        return [p for p in pods if p.index in set(selector)]


def _judge_policy_partition(fault: FaultRecord) -> FaultRecord:
    """Verified: the policy existed, a frontend could not connect, and could again after."""
    if fault.evidence.get("error"):
        return fault
    if fault.resumed_ns is None:
        fault.evidence["error"] = "the partition was not healed"
        return fault
    after = fault.evidence.get("probe_after") or {}
    if after.get("exit_code") != 0:
        fault.evidence["error"] = "traffic from the frontend did not come back after the heal"
        return fault
    fault.verified = True
    fault.verified_ns = fault.resumed_ns
    fault.pod_recovered_ns = after.get("t_ns")
    return fault


def api_platform(
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    allow_namespaces: tuple[str, ...] | list[str] = (),
    **kwargs: Any,
) -> KubernetesPlatform:
    """A platform for API calls outside a run (cleanup, status, pod endpoints): it deploys
    nothing and restarts no etcd/NATS; the namespace guard still applies."""
    return KubernetesPlatform(
        namespace=namespace,
        kubeconfig=kubeconfig,
        context=context,
        allow_namespaces=allow_namespaces,
        skip_service_restart=True,
        **kwargs,
    )


def cleanup(
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    allow_namespaces: tuple[str, ...] | list[str] = (),
    wait: float = 120.0,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    removed_jobs: list[str] | None = None,
) -> list[str]:
    """Delete every DGD ftctl created in ``namespace`` (found by label); return their names.

    ``removed_jobs`` gets the names of the cluster-load Jobs deleted with their pods (issue 15).
    """
    platform = api_platform(namespace, kubeconfig, context, allow_namespaces, log=log, warn=warn)
    with api_call(f"list DynamoGraphDeployments in {namespace}"):
        items = platform.custom.list_namespaced_custom_object(
            DGD_GROUP,
            DGD_VERSION,
            namespace,
            DGD_PLURAL,
            label_selector=f"{LABEL_MANAGED_BY}=ftctl",
        ).get("items", [])
    names = [item["metadata"]["name"] for item in items]
    with api_call(f"list NetworkPolicies in {namespace}"):
        policies = platform.networking.list_namespaced_network_policy(
            namespace, label_selector=f"{LABEL_MANAGED_BY}=ftctl"
        ).items
    if names or policies:
        platform._announce()
    for policy in policies:  # a crashed run's partitions: the cut goes first
        with api_call(f"delete NetworkPolicy {namespace}/{policy.metadata.name}"):
            platform.networking.delete_namespaced_network_policy(policy.metadata.name, namespace)
        names.append(f"networkpolicy/{policy.metadata.name}")
    for name in names:
        if not name.startswith("networkpolicy/"):
            platform._delete_dgd(name, wait=wait)
    from ftctl.platforms.kube.cluster_load import leftover_jobs

    jobs = leftover_jobs(platform, warn)
    if removed_jobs is not None:
        removed_jobs.extend(jobs)
    platform.teardown()
    return names


DRY_RUN_HEADER = "# DynamoGraphDeployment for "


def operator_path_note(test: TestCase, manifest: dict[str, Any]) -> str:
    """One plan line: which upstream operator path the DGD asks for, who chose it and why."""
    if operator_path(manifest) == "dcd":
        who = "the manifest" if test.deployment.manifest else "ftctl's generated manifest"
        return (
            f'# operator path: DynamoComponentDeployment ({ANNOTATION_GROVE}: "false", set by '
            f"{who}: one Deployment per service, the same with or without Grove installed); "
            "pods are found by either path's labels"
        )
    return (
        f"# operator path: the operator's default (Grove when it is enabled; no {ANNOTATION_GROVE}"
        " annotation is added); pods are found by either path's labels"
    )


def dry_run_plan(test: TestCase, run_id: str = "dry-run") -> str:
    """What ``run --dry-run`` / ``plan --platform kubernetes`` shows: the DGD and fault targets.

    Touches no cluster: the pods a fault would hit are named by service and replica index.
    """
    manifest = build_dgd(test, run_id)
    services = manifest["spec"]["services"]
    lines = [f"{DRY_RUN_HEADER}{test.name}", yaml.safe_dump(manifest, sort_keys=False)]
    lines.append(operator_path_note(test, manifest))
    dgd = manifest["metadata"]["name"]
    for event in test.events:
        if event.kind not in (*FAULT_EVENT_KINDS, "rolling_upgrade"):
            continue
        for svc in event.services:
            replicas = int((services.get(svc) or {}).get("replicas", 1))
            if event.pods == "all":
                which = f"all {replicas} pod(s)"
            elif event.pods == "random":
                which = f"1 random pod of {replicas}"
            else:
                which = "pod index " + ", ".join(str(i) for i in event.pods)
            what = event.kind
            if event.kind == "terminate_process":
                what += f" {event.process!r} with {event.signal or 'SIGKILL'}"
            if event.ranks is not None:
                what += f", rank {', '.join(map(str, event.ranks))} of the matches by PID"
            elif event.kind == "delete_pod":
                what += " (force)" if event.force else " (graceful)"
            elif event.kind == "stall_process":
                what += f" {event.process!r} for {event.duration:g}s (SIGSTOP, then SIGCONT)"
            lines.append(f"# {what}: service {svc}, {which}; pods: {describe(dgd, svc)}")
    return "\n".join(lines).rstrip() + "\n"


# Frontend pods of any DGD, on both operator paths: the operator labels them by componentType.
FRONTEND_SELECTOR = "nvidia.com/dynamo-component-type=frontend"


@contextlib.contextmanager
def pod_endpoints(
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    allow_namespaces: tuple[str, ...] | list[str] = (),
    selector: str = FRONTEND_SELECTOR,
    port: int = FRONTEND_PORT,
) -> Iterator[list[tuple[str, str]]]:
    """(pod, local URL) for every ready pod ``selector`` matches in ``namespace``, each URL a
    127.0.0.1 listener whose connections all go to that one pod by port-forward (``ftctl load
    --each-pod --namespace``: one pod at a time, not spread). Closed on exit.

    Raises:
        PlatformError: the pods cannot be listed, or none is ready.
    """
    platform = api_platform(namespace, kubeconfig, context, allow_namespaces)
    with api_call(f"list pods {selector!r} in {namespace}"):
        pods = platform.core.list_namespaced_pod(namespace, label_selector=selector).items
    ready = sorted(p.metadata.name for p in pods if _pod_ready(p))
    if not ready:
        seen = ", ".join(sorted(p.metadata.name for p in pods)) or "none"
        raise PlatformError(
            f"kubernetes: no ready pod matches {selector!r} in namespace {namespace} "
            f"(pods matching: {seen})"
        )
    endpoints = [
        ResilientEndpoint(platform.configuration, namespace, lambda name=name: [name], port)
        for name in ready
    ]
    try:
        for endpoint in endpoints:
            endpoint.start()
        yield [(name, ep.url) for name, ep in zip(ready, endpoints, strict=True)]
    finally:
        for endpoint in endpoints:
            endpoint.close()
