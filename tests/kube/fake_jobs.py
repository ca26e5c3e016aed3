"""The fake API server's batch/v1 Job controller and kubelet for Job pods (issue 15).

Indexed Jobs become pods (``JOB_COMPLETION_INDEX`` in the env, the completion-index
annotation and label) whose containers run as real local processes: ``python3 -m ftctl ...``
becomes this interpreter with the repo on the path. What the cluster would provide is
emulated at its boundary: a Service's cluster DNS name (``<svc>.<ns>.svc.cluster.local:PORT``
in the env) becomes a loopback TCP proxy to the ready pods behind it (kube-proxy), and paths
under ``/tmp`` are the pod's own (a container's filesystem). Job status (active, succeeded,
failed, failedIndexes, conditions) follows the pods, with ``backoffLimitPerIndex`` semantics: a
failed index is not retried and the others go on. DELETE honours ``propagationPolicy``; its
REST default for Jobs is ``Orphan`` (the pods stay), as on a real apiserver.

Hooked into FakeCluster by one middleware: requests for Jobs, and pod log/exec/delete of Job
pods, are answered here; everything else goes on to the fake's own handlers.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ftctl.platforms.proxy import TcpProxy
from tests.kube import channels
from tests.kube.pod_processes import FRONTEND_PORT, NEVER_READY_IMAGE

if TYPE_CHECKING:
    from tests.kube.fake_apiserver import FakeCluster

REPO = Path(__file__).resolve().parents[2]
JOBS = re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/]+))?$")
POD_SUB = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)(?:/(?P<sub>\w+))?$")
SERVICE_DNS = re.compile(
    r"(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc\.cluster\.local:(?P<port>\d+)"
)
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
NO_PYTHON_IMAGE = "no-python"  # images containing this have no python3: the container fails


@dataclass
class FakeJobPod:
    """A pod of a Job: its process (None while Pending) and what the API shows."""

    name: str
    namespace: str
    job: str
    index: int
    labels: dict[str, str]
    container: dict[str, Any]
    root: Path  # the container's filesystem: /tmp/... lives under it
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_ns: int = field(default_factory=time.time_ns)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    started_ns: int | None = None
    finished_ns: int | None = None
    exit_code: int | None = None
    deleting: bool = False

    @property
    def log_path(self) -> Path:
        return self.root / "container.log"

    @property
    def phase(self) -> str:
        if self.exit_code is not None:
            return "Succeeded" if self.exit_code == 0 else "Failed"
        return "Running" if self.proc is not None else "Pending"


@dataclass
class FakeJob:
    obj: dict[str, Any]
    pods: dict[int, FakeJobPod] = field(default_factory=dict)


class JobController:
    """Jobs of the fake cluster and the processes of their pods."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.jobs: dict[tuple[str, str], FakeJob] = {}
        self.pods: dict[tuple[str, str], FakeJobPod] = {}
        self.proxies: dict[tuple[str, str, int], TcpProxy] = {}
        self.deleted: list[tuple[str, str, str]] = []  # (namespace, job, propagation)
        # spec fields an older apiserver does not know and drops silently on create (1.20:
        # completionMode and backoffLimitPerIndex, shared/k8s/REAL-CONTROL-PLANE.md style)
        self.drop_fields: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-jobs", daemon=True)
        self._thread.start()

    # -- hooks for tests ------------------------------------------------------------------------
    def kill_pod(self, namespace: str, name: str) -> None:
        """SIGKILL a Job pod's process (its container dies: exit 137, the pod stays Failed)."""
        pod = self.pods[(namespace, name)]
        if pod.proc is not None and pod.proc.poll() is None:
            os.killpg(pod.proc.pid, signal.SIGKILL)

    def job_names(self, namespace: str) -> list[str]:
        with self.cluster.lock:
            return sorted(n for (ns, n) in self.jobs if ns == namespace)

    def pod_names(self, namespace: str) -> list[str]:
        with self.cluster.lock:
            return sorted(n for (ns, n) in self.pods if ns == namespace)

    def stop(self) -> None:
        self._stop.set()
        with self.cluster.lock:
            pods = list(self.pods.values())
        for pod in pods:
            self._terminate(pod, 0)
        for proxy in self.proxies.values():
            proxy.close()
        self._thread.join(5)

    # -- the middleware -------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler):
        path = request.path
        if path == "/apis/batch/v1":
            return self._resources()
        m = JOBS.match(path)
        if m:
            ns, name = m.group("ns"), m.group("name")
            if name is None and request.method == "POST":
                return await self._create(request, ns)
            if name is None and request.method == "GET":
                return self._list(ns, request.query.get("labelSelector"))
            if name is not None and request.method == "GET":
                return self._get(ns, name)
            if name is not None and request.method == "DELETE":
                return await self._delete(request, ns, name)
            return web.json_response({"kind": "Status", "code": 405}, status=405)
        m = POD_SUB.match(path)
        if m:
            key = (m.group("ns"), m.group("name"))
            with self.cluster.lock:
                pod = self.pods.get(key)
            if pod is not None:
                sub = m.group("sub")
                if sub == "log" and request.method == "GET":
                    return await self._log(request, pod)
                if sub == "exec":
                    return await self._exec(request, pod)
                if sub is None and request.method == "DELETE":
                    return await self._delete_pod(request, pod)
        return await handler(request)

    # -- Jobs -----------------------------------------------------------------------------------
    def _resources(self) -> web.Response:
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "batch/v1",
                "resources": [
                    {
                        "name": "jobs",
                        "singularName": "",
                        "kind": "Job",
                        "namespaced": True,
                        "verbs": ["create", "delete", "get", "list", "patch", "watch"],
                    }
                ],
            }
        )

    async def _create(self, request: web.Request, ns: str) -> web.Response:
        from tests.kube.fake_apiserver import error_response

        body = await request.json()
        meta = body.setdefault("metadata", {})
        name = meta.get("name", "")
        spec = body.get("spec") or {}
        for key in self.drop_fields:
            spec.pop(key, None)
        template = spec.get("template") or {}
        containers = (template.get("spec") or {}).get("containers") or []
        problems = []
        if not containers:
            problems.append(("spec.template.spec.containers", "Required value"))
        if (template.get("spec") or {}).get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(("spec.template.spec.restartPolicy", 'Unsupported value: "Always"'))
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
            problems.append(("spec.completions", "Required value: when completionMode is Indexed"))
        if "backoffLimitPerIndex" in spec and spec.get("completionMode") != "Indexed":
            problems.append(("spec.backoffLimitPerIndex", "requires completionMode Indexed"))
        if problems:
            return error_response(
                422,
                f'Job.batch "{name}" is invalid: ' + ", ".join(f"{f}: {m}" for f, m in problems),
                name=name,
                kind="Job",
                group="batch",
            )
        with self.cluster.lock:
            if (missing := self.cluster._no_namespace(ns)) is not None:
                return missing
            if (ns, name) in self.jobs:
                return error_response(
                    409, f'jobs.batch "{name}" already exists', name=name, kind="jobs"
                )
            body.update(apiVersion="batch/v1", kind="Job")
            self.cluster._new_meta(meta, ns)
            # As the real apiserver does: the selector and the template's two labels.
            uid_labels = {"controller-uid": meta["uid"], "job-name": name}
            template.setdefault("metadata", {}).setdefault("labels", {}).update(uid_labels)
            spec.setdefault("selector", {"matchLabels": {"controller-uid": meta["uid"]}})
            spec.setdefault("parallelism", 1)
            spec.setdefault("completions", 1)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            if "backoffLimitPerIndex" not in spec:
                spec.setdefault("backoffLimit", 6)
            job = FakeJob(body)
            self.jobs[(ns, name)] = job
            body["status"] = {"active": 0, "startTime": _rfc3339(time.time_ns())}
            for index in range(min(int(spec["parallelism"]), int(spec["completions"]))):
                self._new_pod(ns, job, index)
            self._update_status(ns, job)
            return web.json_response(copy.deepcopy(body), status=201)

    def _new_pod(self, ns: str, job: FakeJob, index: int) -> FakeJobPod:
        meta, spec = job.obj["metadata"], job.obj["spec"]
        template = spec["template"]
        name = f"{meta['name']}-{index}-{secrets.token_hex(3)[:5]}"
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
            INDEX_KEY: str(index),
        }
        container = copy.deepcopy(template["spec"]["containers"][0])
        root = self.cluster.workdir / "job-pods" / name
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        pod = FakeJobPod(name, ns, meta["name"], index, labels, container, root)
        pod.env = self._env(pod, container)
        job.pods[index] = pod
        self.pods[(ns, name)] = pod
        self._render(pod, "ADDED")
        self.cluster.record_event(
            ns, "Pod", name, "Scheduled", f"assigned {ns}/{name} to fake-node"
        )
        return pod

    def _env(self, pod: FakeJobPod, container: dict[str, Any]) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(pod.root),
            "PYTHONPATH": str(REPO),
            "HOSTNAME": pod.name,
            "JOB_COMPLETION_INDEX": str(pod.index),
        }
        for item in container.get("env") or []:
            if item.get("name") and item.get("value") is not None:
                env[item["name"]] = self._resolve(pod, str(item["value"]))
        return env

    def _resolve(self, pod: FakeJobPod, value: str) -> str:
        """The container's view: cluster DNS names to a kube-proxy, /tmp to its own."""
        value = SERVICE_DNS.sub(lambda m: self._service_address(m), value)
        if value.startswith("/tmp/") or value == "/tmp":
            value = str(pod.root) + value
        return value

    def _service_address(self, m: re.Match) -> str:
        key = (m.group("ns"), m.group("svc"), int(m.group("port")))
        proxy = self.proxies.get(key)
        if proxy is None:
            proxy = TcpProxy(lambda key=key: self._endpoints(*key))
            proxy.start()
            self.proxies[key] = proxy
        host, port = proxy.address
        return f"{host}:{port}"

    def _endpoints(self, ns: str, service: str, port: int) -> list[tuple[str, int]]:
        """The ready pods behind a DGD frontend Service ``<dgd>-<lower(service)>``."""
        out = []
        with self.cluster.lock:
            for pod in self.cluster.pods.values():
                if pod.namespace != ns or f"{pod.dgd}-{pod.service.lower()}" != service:
                    continue
                r = pod.replica
                if port == FRONTEND_PORT and port in pod.ports and r.running and r.ready_ns:
                    if pod.deletion_ns is None:
                        out.append(("127.0.0.1", pod.ports[port]))
        return out

    def _start(self, pod: FakeJobPod) -> None:
        command = [str(a) for a in pod.container.get("command") or []]
        argv = command + [str(a) for a in pod.container.get("args") or []]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        if NO_PYTHON_IMAGE in str(pod.container.get("image", "")):
            argv[0] = str(pod.root / "no-such-python3")  # an image without python3
        log = pod.log_path.open("ab")
        try:
            pod.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,  # a container log holds both
                env=pod.env,
                cwd=pod.root,
                start_new_session=True,
            )
        except OSError as exc:  # what a runtime reports when the command is missing
            log.write(f'exec: "{Path(argv[0]).name}": {exc.strerror}\n'.encode())
            pod.exit_code, pod.finished_ns = 128, time.time_ns()
        finally:
            log.close()
        pod.started_ns = time.time_ns()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reconcile()
            except Exception as exc:  # keep the controller alive; a test sees the symptom
                print(f"fake job controller: {exc!r}", file=sys.stderr)
            self._stop.wait(0.05)

    def _reconcile(self) -> None:
        with self.cluster.lock:
            pods = list(self.pods.values())
        for pod in pods:
            changed = False
            if pod.proc is None and pod.exit_code is None and not pod.deleting:
                if NEVER_READY_IMAGE in str(pod.container.get("image", "")):
                    continue  # the image never pulls: Pending for ever
                self._start(pod)
                changed = True
            if pod.proc is not None and pod.exit_code is None:
                code = pod.proc.poll()
                if code is not None:
                    pod.exit_code = 128 - code if code < 0 else code  # killed by 9: 137
                    pod.finished_ns = time.time_ns()
                    changed = True
            with self.cluster.lock:
                if pod.deleting and pod.exit_code is not None:
                    self._remove(pod)
                    continue
                if changed:
                    self._render(pod, "MODIFIED")
                    job = self.jobs.get((pod.namespace, pod.job))
                    if job is not None:
                        self._update_status(pod.namespace, job)

    def _update_status(self, ns: str, job: FakeJob) -> None:
        spec = job.obj["spec"]
        pods = list(job.pods.values())
        status = job.obj.setdefault("status", {})
        active = sum(1 for p in pods if p.exit_code is None and not p.deleting)
        succeeded = [p.index for p in pods if p.exit_code == 0]
        failed = [p.index for p in pods if p.exit_code not in (None, 0)]
        status.update(active=active, succeeded=len(succeeded), failed=len(failed))
        status["ready"] = sum(1 for p in pods if p.phase == "Running")
        if succeeded:
            status["completedIndexes"] = ",".join(map(str, sorted(succeeded)))
        if failed and "backoffLimitPerIndex" in spec:
            status["failedIndexes"] = ",".join(map(str, sorted(failed)))
        if not active and pods and "conditions" not in status:
            kind = "Complete" if len(succeeded) == int(spec["completions"]) else "Failed"
            status["conditions"] = [
                {"type": kind, "status": "True", "lastTransitionTime": _rfc3339(time.time_ns())}
            ]
            status["completionTime" if kind == "Complete" else "failedTime"] = _rfc3339(
                time.time_ns()
            )
        job.obj["metadata"]["resourceVersion"] = str(self.cluster._next_rv())

    def _list(self, ns: str, selector: str | None) -> web.Response:
        from tests.kube.fake_apiserver import match_labels

        with self.cluster.lock:
            items = [
                copy.deepcopy(j.obj)
                for (n, _), j in sorted(self.jobs.items())
                if n == ns and match_labels(j.obj["metadata"].get("labels") or {}, selector)
            ]
            rv = str(self.cluster.rv)
        return web.json_response(
            {
                "apiVersion": "batch/v1",
                "kind": "JobList",
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    def _get(self, ns: str, name: str) -> web.Response:
        from tests.kube.fake_apiserver import error_response

        with self.cluster.lock:
            job = self.jobs.get((ns, name))
            if job is None:
                return error_response(
                    404, f'jobs.batch "{name}" not found', name=name, kind="jobs", group="batch"
                )
            return web.json_response(copy.deepcopy(job.obj))

    async def _delete(self, request: web.Request, ns: str, name: str) -> web.Response:
        from tests.kube.fake_apiserver import error_response, status_obj

        policy = request.query.get("propagationPolicy")
        grace = request.query.get("gracePeriodSeconds")
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = {}
            policy = policy or body.get("propagationPolicy")
            if grace is None:
                grace = body.get("gracePeriodSeconds")
        policy = policy or "Orphan"  # the REST default for batch/v1 Jobs
        with self.cluster.lock:
            job = self.jobs.pop((ns, name), None)
            if job is None:
                return error_response(
                    404, f'jobs.batch "{name}" not found', name=name, kind="jobs", group="batch"
                )
            self.deleted.append((ns, name, policy))
            if policy != "Orphan":
                for pod in job.pods.values():
                    self._mark_deleted(pod, int(grace) if grace is not None else 30)
        return web.json_response(
            status_obj(
                200, "", "", name=name, group="batch", kind="jobs", uid=job.obj["metadata"]["uid"]
            )
            | {"status": "Success"}
        )

    # -- pods -----------------------------------------------------------------------------------
    def _mark_deleted(self, pod: FakeJobPod, grace: int) -> None:
        if pod.deleting:
            return
        pod.deleting = True
        self._render(pod, "MODIFIED")
        threading.Thread(target=self._terminate, args=(pod, grace), daemon=True).start()

    def _terminate(self, pod: FakeJobPod, grace: float) -> None:
        proc = pod.proc
        if proc is None:
            pod.exit_code = pod.exit_code if pod.exit_code is not None else 0
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL if grace == 0 else signal.SIGTERM)
                proc.wait(timeout=max(grace, 0.1))
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)

    def _remove(self, pod: FakeJobPod) -> None:
        key = (pod.namespace, pod.name)
        self.pods.pop(key, None)
        last = self.cluster.rendered.pop(key, None)
        if last is not None:
            last = copy.deepcopy(last)
            rv = self.cluster._next_rv()
            last["metadata"]["resourceVersion"] = str(rv)
            self.cluster._push_watch(rv, "DELETED", last)

    async def _delete_pod(self, request: web.Request, pod: FakeJobPod) -> web.Response:
        grace = request.query.get("gracePeriodSeconds")
        if grace is None and request.can_read_body:
            try:
                grace = (await request.json()).get("gracePeriodSeconds")
            except ValueError:
                grace = None
        with self.cluster.lock:
            self._mark_deleted(pod, int(grace) if grace is not None else 30)
            obj = copy.deepcopy(self.cluster.rendered.get((pod.namespace, pod.name)) or {})
        return web.json_response(obj)

    def _render(self, pod: FakeJobPod, etype: str) -> None:
        """Store the pod as the API shows it and tell the pod watchers (cluster lock held)."""
        now = _rfc3339
        if pod.exit_code is not None:
            state = {
                "terminated": {
                    "exitCode": pod.exit_code,
                    "reason": "Completed" if pod.exit_code == 0 else "Error",
                    "startedAt": now(pod.started_ns),
                    "finishedAt": now(pod.finished_ns),
                }
            }
        elif pod.proc is not None:
            state = {"running": {"startedAt": now(pod.started_ns)}}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        rv = self.cluster._next_rv()
        meta: dict[str, Any] = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "resourceVersion": str(rv),
            "creationTimestamp": now(pod.created_ns),
            "labels": dict(pod.labels),
            "annotations": {INDEX_KEY: str(pod.index)},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": pod.job,
                    "uid": pod.labels["controller-uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if pod.deleting:
            meta["deletionTimestamp"] = now(time.time_ns())
            meta["deletionGracePeriodSeconds"] = 0
        container = {
            k: v
            for k, v in pod.container.items()
            if k in ("name", "image", "command", "args", "env")
        }
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {"nodeName": "fake-node", "restartPolicy": "Never", "containers": [container]},
            "status": {
                "phase": pod.phase,
                "podIP": "127.0.0.1",
                "hostIP": "127.0.0.1",
                "startTime": now(pod.created_ns),
                "containerStatuses": [
                    {
                        "name": container.get("name", "main"),
                        "image": container.get("image", ""),
                        "imageID": f"fake://{container.get('image', '')}",
                        "ready": pod.phase == "Running",
                        "restartCount": 0,
                        "started": pod.proc is not None,
                        "state": state,
                        "lastState": {},
                    }
                ],
            },
        }
        self.cluster.rendered[(pod.namespace, pod.name)] = obj
        self.cluster._push_watch(rv, etype, obj)

    async def _log(self, request: web.Request, pod: FakeJobPod):
        follow = request.query.get("follow") in ("true", "1")
        try:
            data = pod.log_path.read_bytes()
        except OSError:
            data = b""
        tail = request.query.get("tailLines")
        if not follow:
            if tail:
                data = b"".join(data.splitlines(keepends=True)[-int(tail) :])
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        sent = len(data)
        if data:
            await resp.write(data)
        # Follow: what the container writes, until it ends (and all of it was sent).
        while not self._stop.is_set():
            ended = pod.exit_code is not None or (pod.proc is None and pod.deleting)
            try:
                size = pod.log_path.stat().st_size
            except OSError:
                size = sent
            if size > sent:
                with pod.log_path.open("rb") as f:
                    f.seek(sent)
                    chunk = f.read(size - sent)
                sent += len(chunk)
                await resp.write(chunk)
                continue
            if ended or (pod.namespace, pod.name) not in self.pods:
                break
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    async def _exec(self, request: web.Request, pod: FakeJobPod):
        argv = request.query.getall("command", [])
        ws = await channels.accept(request, (channels.V5, channels.V4))
        code, out, err = await asyncio.get_running_loop().run_in_executor(
            None, self._run_in_container, pod, argv
        )
        await channels.send_exec_result(ws, out, err, channels.exec_status(code))
        return ws

    def _run_in_container(self, pod: FakeJobPod, argv: list[str]) -> tuple[int, str, str]:
        if pod.proc is None or pod.exit_code is not None:
            return 1, "", "container not running\n"
        if not argv:
            return 127, "", "exec: no command\n"
        argv = [self._resolve(pod, a) for a in argv]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        try:
            done = subprocess.run(
                argv, env=pod.env, cwd=pod.root, capture_output=True, text=True, timeout=30
            )
        except FileNotFoundError:
            return 127, "", f'exec: "{argv[0]}": executable file not found in $PATH\n'
        except subprocess.TimeoutExpired:
            return 124, "", "timed out\n"
        return done.returncode, done.stdout, done.stderr


def _rfc3339(ns: int | None) -> str | None:
    from tests.kube.fake_apiserver import rfc3339

    return rfc3339(ns)
