"""A kubelet stand-in: a Node whose pods are real local processes, behind the real apiserver.

It registers a Node (InternalIP 127.0.0.1, kubelet port = its own TLS port), runs each pod bound
to that node through the local platform's Supervisor (tests/kube/pod_processes.py decides which
Dynamo process a container becomes), writes pod status through ``pods/status``, completes
graceful deletes, and serves what the apiserver proxies to a kubelet: ``/containerLogs``,
``/exec`` and ``/portForward`` (WebSocket, channel.k8s.io). ``ps`` and ``kill`` in exec are the
real binaries run against the pod's process tree.

There is no PID namespace: ``ps`` shows host pids and the main process is not PID 1, as in a
container whose PID 1 is a shell wrapper. A pid outside the pod's tree is "No such process".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ftctl.platforms.supervisor import Replica, Supervisor
from tests.kube import channels
from tests.kube.pod_processes import (
    NEVER_READY_IMAGE,
    host_ports,
    is_frontend,
    probe,
    stats_summary,
)
from tests.kube.pod_processes import process_spec as container_process

LABEL_TYPE = "nvidia.com/dynamo-component-type"
LABEL_SUB = "nvidia.com/dynamo-sub-component-type"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
MIN_GRACE_S = 2.0  # the kubelet's minimum termination grace period
# A 1.20 kubelet speaks v4 and older; the client offers v5 first, the kubelet answers v4.
EXEC_PROTOCOLS = (channels.V4, "channel.k8s.io")
PORTFORWARD_PROTOCOLS = (channels.V4, "portforward.k8s.io")


def rfc3339(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl (argv, no shell)."""
    cert, key = folder / "kubelet.crt", folder / "kubelet.key"
    done = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubelet stand-in: openssl failed: {done.stderr.strip()[-200:]}")
    return cert, key


@dataclass
class PodRun:
    """A pod this node runs: its supervised container and what was last written about it."""

    namespace: str
    name: str
    uid: str
    image: str
    supervisor: Supervisor
    replica: Replica
    ports: dict[int, int]
    stopping: bool = False
    ready_since_ns: int | None = None
    written: dict[str, Any] | None = None
    seen: set = field(default_factory=set)  # events already recorded


class KubeletStandIn:
    """The Node ``name``: ``start()`` registers it and serves; ``stop()`` ends every process."""

    def __init__(
        self,
        api_client: Any,
        workdir: Path,
        tokenizer: Path,
        name: str = "ftctl-standin-node",
        restart_delay: float = 0.5,
        worker_args: tuple[str, ...] = ("--speedup-ratio", "5.0"),
    ) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.workdir = Path(workdir)
        self.tokenizer = Path(tokenizer)
        self.name = name
        self.restart_delay = restart_delay
        self.worker_args = list(worker_args)
        self.port = 0
        self.runs: dict[str, PodRun] = {}  # by pod uid
        self.errors: list[str] = []
        # (path kind, offered subprotocols, query keys) of each proxied exec/port-forward:
        # what the apiserver passed through, for tests to check.
        self.upgrades: list[tuple[str, list[str], list[str]]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> KubeletStandIn:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed(self.workdir)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        ready = threading.Event()
        server = threading.Thread(target=self._serve, args=(tls, ready), daemon=True)
        server.start()
        if not ready.wait(10) or not self.port:
            raise RuntimeError("kubelet stand-in: HTTPS server did not start")
        self._threads.append(server)
        self._register_node()
        for target in (self._sync_loop, self._watch_pods):
            thread = threading.Thread(target=target, name=f"kubelet-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop syncing, end every pod's processes, stop serving."""
        self._stop.set()
        self._dirty.set()
        for thread in self._threads[1:]:
            thread.join(timeout=10)
        with self._lock:
            runs = list(self.runs.values())
            self.runs.clear()
        for run in runs:
            run.supervisor.stop_all(grace=3.0)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._threads:
            self._threads[0].join(timeout=10)

    def _serve(self, tls: ssl.SSLContext, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/healthz", self.h_healthz)
        app.router.add_get("/stats/summary", self.h_stats_summary)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.h_logs)
        app.router.add_route("*", "/exec/{ns}/{pod}/{container}", self.h_exec)
        app.router.add_route("*", "/portForward/{ns}/{pod}", self.h_portforward)
        runner = web.AppRunner(app, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def _register_node(self) -> None:
        now = rfc3339(time.time_ns())
        self.core.create_node({"metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name}}})  # fmt: skip
        self.core.patch_node_status(
            self.name,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet stand-in is posting ready status",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                }
            },
        )

    def _note(self, text: str) -> None:
        if not self._stop.is_set():
            self.errors.append(text)
            print(f"kubelet stand-in: {text}", file=sys.stderr)

    # -- pod sync -----------------------------------------------------------------------------
    def _watch_pods(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                for _ in watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.name}",
                    timeout_seconds=5,
                ):
                    self._dirty.set()
                    if self._stop.is_set():
                        return
            except Exception as exc:
                self._note(f"watch: {exc!r}")
                self._stop.wait(0.5)

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(0.25)  # also the probe period
            self._dirty.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception as exc:  # keep the node alive; a test sees the symptom
                self._note(f"sync: {exc!r}")
                self._stop.wait(0.2)

    def sync(self) -> None:
        pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.name}")
        present = set()
        for pod in pods.items:
            uid = pod.metadata.uid
            present.add(uid)
            with self._lock:
                run = self.runs.get(uid)
            if pod.metadata.deletion_timestamp is not None:
                if run is None:
                    self._finish_delete(pod.metadata.namespace, pod.metadata.name, uid)
                elif not run.stopping:
                    grace = float(pod.metadata.deletion_grace_period_seconds or 0)
                    self._stop_run(run, max(MIN_GRACE_S, grace), finish=True)
                continue
            if run is None:
                run = self._start_run(pod)
            self._update_status(run)
        with self._lock:
            gone = [r for uid, r in self.runs.items() if uid not in present and not r.stopping]
        for run in gone:  # deleted with grace 0: the object is gone, the container still runs
            self._stop_run(run, MIN_GRACE_S, finish=False)

    def _start_run(self, pod: Any) -> PodRun:
        labels = pod.metadata.labels or {}
        container = pod.spec.containers[0]
        spec = self.core.api_client.sanitize_for_serialization(container)
        owner = next(iter(pod.metadata.owner_references or []), None)
        graph = f"{pod.metadata.namespace}-{owner.name}-{owner.uid[:8]}" if owner else pod.metadata.uid  # fmt: skip
        frontend = is_frontend(labels.get(LABEL_TYPE, ""), spec.get("command") or [])
        ports = host_ports(frontend)
        process = container_process(
            component_type=labels.get(LABEL_TYPE, ""),
            sub_component_type=labels.get(LABEL_SUB, ""),
            container=spec,
            env_items=spec.get("env") or [],
            ports=ports,
            workdir=self.workdir / "graphs" / graph,
            tokenizer=self.tokenizer,
            worker_args=self.worker_args,
        )
        folder = self.workdir / "pods" / f"{pod.metadata.namespace}_{pod.metadata.name}"
        supervisor = Supervisor(folder, restart_delay=self.restart_delay)
        service = labels.get(LABEL_COMPONENT, pod.metadata.name)
        replica = supervisor.start_replica(service, "frontend" if frontend else "worker", process)
        run = PodRun(
            pod.metadata.namespace,
            pod.metadata.name,
            pod.metadata.uid,
            spec.get("image", ""),
            supervisor,
            replica,
            ports,
        )
        with self._lock:
            self.runs[run.uid] = run
        self._event(run, "Started", "Started container main")
        return run

    def _stop_run(self, run: PodRun, grace: float, finish: bool) -> None:
        run.stopping = True
        self._event(run, "Killing", "Stopping container main")

        def stop() -> None:
            run.supervisor.stop_all(grace=grace)
            with self._lock:
                self.runs.pop(run.uid, None)
            if finish:
                self._finish_delete(run.namespace, run.name, run.uid)

        threading.Thread(target=stop, name=f"kubelet-stop-{run.name}", daemon=True).start()

    def _finish_delete(self, namespace: str, name: str, uid: str) -> None:
        """What a kubelet does once the containers are gone: delete with grace 0 (uid-bound)."""
        from kubernetes import client

        try:
            self.core.delete_namespaced_pod(
                name,
                namespace,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
                ),
            )
        except Exception as exc:
            if getattr(exc, "status", None) not in (404, 409):
                self._note(f"delete {namespace}/{name}: {exc!r}")

    def _update_status(self, run: PodRun) -> None:
        r = run.replica
        if r.running and r.ready_ns is None and probe(run.image, r, run.ports):
            r.mark_ready()
        if r.ready and run.ready_since_ns is None:
            run.ready_since_ns = r.ready_ns
        elif not r.ready:
            run.ready_since_ns = None
        if NEVER_READY_IMAGE in run.image and "unhealthy" not in run.seen:
            run.seen.add("unhealthy")
            self._event(run, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", "Warning")  # fmt: skip
        if not r.running and ("exit", r.restart_count) not in run.seen:
            run.seen.add(("exit", r.restart_count))
            self._event(run, "BackOff", "Back-off restarting failed container main", "Warning")
        status = self._render_status(run)
        if status != run.written:
            self.core.patch_namespaced_pod_status(
                run.name,
                run.namespace,
                {"status": status},
                _content_type="application/merge-patch+json",  # lists replaced whole
            )
            run.written = status

    def _render_status(self, run: PodRun) -> dict[str, Any]:
        r = run.replica
        ready = r.ready and not run.stopping
        if r.running:
            state: dict[str, Any] = {"running": {"startedAt": rfc3339(r.started_ns)}}
        elif NEVER_READY_IMAGE in run.image:
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
                    "containerID": f"containerd://{run.uid[:8]}{r.restart_count - 1:04d}",
                }
            }
            if r.last_signal:
                last["terminated"]["signal"] = r.last_signal
        since = rfc3339(run.ready_since_ns or r.started_ns or r.created_ns)
        flag = "True" if ready else "False"
        created = rfc3339(r.created_ns)
        return {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": created,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": created},
                {"type": "Ready", "status": flag, "lastTransitionTime": since},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": since},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "image": run.image,
                    "imageID": f"docker-pullable://{run.image}",
                    "ready": bool(ready),
                    "restartCount": int(r.restart_count),
                    "started": bool(r.running),
                    "state": state,
                    "lastState": last,
                    "containerID": f"containerd://{run.uid[:8]}{r.restart_count:04d}",
                }
            ],
        }

    def _event(self, run: PodRun, reason: str, message: str, etype: str = "Normal") -> None:
        now = rfc3339(time.time_ns())
        try:
            self.core.create_namespaced_event(
                run.namespace,
                {
                    "metadata": {"name": f"{run.name}.{uuid.uuid4().hex[:16]}"},
                    "involvedObject": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": run.name,
                        "namespace": run.namespace,
                        "uid": run.uid,
                        "fieldPath": "spec.containers{main}",
                    },
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "source": {"component": "kubelet", "host": self.name},
                },
            )
        except Exception as exc:
            self._note(f"event {reason} for {run.name}: {exc!r}")

    # -- what the apiserver proxies -----------------------------------------------------------
    def _run_of(self, request: web.Request) -> PodRun | None:
        ns, name = request.match_info["ns"], request.match_info["pod"]
        with self._lock:
            return next(
                (r for r in self.runs.values() if (r.namespace, r.name) == (ns, name)), None
            )

    async def h_healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def h_stats_summary(self, request: web.Request) -> web.Response:
        """The kubelet's stats summary of the pods this node runs."""
        with self._lock:
            pods = [
                (r.namespace, r.name, r.replica.pid)
                for r in self.runs.values()
                if r.replica.running
            ]
        return web.json_response(stats_summary(self.name, pods))

    async def h_logs(self, request: web.Request) -> web.Response:
        run = self._run_of(request)
        if run is None:
            return web.Response(status=404, text=f'pod "{request.match_info["pod"]}" not found')
        previous = request.query.get("previous") in ("true", "1")
        path = run.replica.previous_log_path if previous else run.replica.log_path
        if previous and not path.exists():
            return web.Response(
                status=400,
                text=f'previous terminated container "main" in pod "{run.name}" not found',
            )
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        tail = request.query.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        return web.Response(text=text, content_type="text/plain")

    async def h_exec(self, request: web.Request) -> web.StreamResponse:
        run = self._run_of(request)
        if run is None:
            return web.Response(status=404, text=f'pod "{request.match_info["pod"]}" not found')
        if request.headers.get("Upgrade", "").lower() != "websocket":
            # What an old kubectl would send (SPDY/3.1): this stand-in speaks WebSocket only.
            return web.Response(status=400, text="kubelet stand-in: only WebSocket exec")
        argv = request.query.getall("command", [])
        self.upgrades.append(("exec", channels.offered(request), sorted(set(request.query))))
        ws = await channels.accept(request, EXEC_PROTOCOLS)
        result = await asyncio.get_running_loop().run_in_executor(None, self.run_in_pod, run, argv)
        code, out, err = result
        if code is None:
            status = {"metadata": {}, "status": "Failure", "reason": "InternalError", "message": err}  # fmt: skip
            await channels.send_exec_result(ws, "", "", status)
        else:
            await channels.send_exec_result(ws, out, err, channels.exec_status(code))
        return ws

    async def h_portforward(self, request: web.Request) -> web.StreamResponse:
        run = self._run_of(request)
        if run is None:
            return web.Response(status=404, text=f'pod "{request.match_info["pod"]}" not found')
        # The apiserver renames the client's `ports` to `port`.
        raw = request.query.get("port") or request.query.get("ports") or "0"
        port = int(raw.split(",")[0])
        self.upgrades.append(("portForward", channels.offered(request), sorted(set(request.query))))
        ws = await channels.accept(request, PORTFORWARD_PROTOCOLS)
        real = run.ports.get(port) if run.replica.running else None
        await channels.forward_port(ws, port, real, run.name)
        return ws

    # -- exec ---------------------------------------------------------------------------------
    def run_in_pod(self, run: PodRun, argv: list[str]) -> tuple[int | None, str, str]:
        """Run ``ps``/``kill``/``true`` for real, scoped to the pod's processes.

        Returns (exit code, stdout, stderr); exit code None when the container is not running
        (the kubelet then answers with a Failure Status and no exit code).
        """
        if not run.replica.running or run.stopping:
            return None, "", f"container not running ({run.name}/main)"
        prog = argv[0] if argv else ""
        pids = [pid for pid, _ in run.replica.processes()]
        if prog == "ps":
            args = []
            for arg in argv[1:]:
                if arg in ("-e", "-A"):
                    continue
                if arg.startswith("-") and not arg.startswith("--") and "e" in arg[1:]:
                    arg = "-" + arg[1:].replace("e", "")  # -eo -> -o: every process *here*
                args.append(arg)
            return self._real(["ps", *args, "-p", ",".join(str(p) for p in pids)])
        if prog == "kill":
            keep, missing, skip_next = [], [], False
            for arg in argv[1:]:
                if skip_next or not arg.isdigit():
                    keep.append(arg)
                    skip_next = arg in ("-s", "-n", "--signal")
                elif int(arg) in pids:
                    keep.append(arg)
                else:
                    missing.append(arg)
            err = "".join(f"kill: ({pid}) - No such process\n" for pid in missing)
            if not any(a.isdigit() and int(a) in pids for a in keep):
                return 1, "", err or "kill: not enough arguments\n"
            code, out, more = self._real(["kill", *keep])
            return (code or (1 if missing else 0)), out, more + err
        if prog == "true":
            return self._real(["true"])
        return 127, "", f'exec: "{prog}": executable file not found in $PATH\n'

    @staticmethod
    def _real(argv: list[str]) -> tuple[int, str, str]:
        path = shutil.which(argv[0])
        if path is None:
            return 127, "", f'exec: "{argv[0]}": executable file not found in $PATH\n'
        done = subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr


def node_name() -> str:
    """A fresh node name (one control plane may outlive several stand-ins in a session)."""
    return f"ftctl-node-{secrets.token_hex(3)}"
