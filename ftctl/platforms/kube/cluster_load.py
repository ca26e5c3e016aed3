"""A running cluster load (``placement: cluster``): its Indexed Job, barrier, clocks and records.

The runner holds it like a local load (the LoadHandle methods). ``start`` creates the Job;
``wait_sending`` waits until every pod is Running, reads each pod's clock by exec (NTP-like:
the pod's reading lies between two of ftctl's), releases the barrier by exec with one start
time, and returns at that time (the load's ``load_start``). Each pod's log is followed from
then on: record lines go to ``client_N.log.txt`` with times corrected to the ftctl host's
clock, as a local load writes them. ``wait`` ends when every released pod finished (its end
clock read) or died; the Job is deleted with its pods on every path (``kill``).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftctl import barrier
from ftctl.errors import PlatformError, UsageError
from ftctl.events import LOAD_CLOCKS, LOAD_POD_FAILED, LOAD_PODS
from ftctl.layout import RUN_FILE, client_log
from ftctl.platforms.kube.client import LABEL_MANAGED_BY, LABEL_RUN, LABEL_TEST, api_call, status_of
from ftctl.platforms.kube.dgd import label_value
from ftctl.platforms.kube.jobs import (
    COMPONENT,
    CONTAINER,
    LABEL_COMPONENT,
    LABEL_LOAD,
    build_job,
    check_cluster_loads,
)
from ftctl.platforms.kube.stream import pod_exec
from ftctl.scenario.model import LoadSpec, TestCase

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
POLL_S = 0.25
# The clock resolution that matters: recovery is measured from attempt times, so a pod clock
# known to worse than this is flagged in the tables.
CLOCK_WARN_NS = 100_000_000
CLOCK_SAMPLES = 3  # exec round trips per clock reading; the shortest bounds it best
GONE_WAIT_S = 60.0  # after the Job is deleted: how long ftctl waits for its pods to go


@dataclass
class ClusterProgress:
    """A LoadProgress (ftctl.clients.base) plus the Job's pods by phase."""

    ok: int = 0
    failed: int = 0
    in_flight: int = 0
    rate: float = 0.0
    pods: dict[str, int] = field(default_factory=dict)  # Pending/Running/Succeeded/Failed


@dataclass
class JobPod:
    """One pod of the Job as ftctl follows it."""

    name: str
    index: int
    clients: list[int] = field(default_factory=list)
    phase: str = "Pending"
    offset_ns: int = 0  # pod clock − host clock, at start
    uncertainty_ns: int = 0  # half the exec round trip of that reading
    end_offset_ns: int | None = None
    end_uncertainty_ns: int | None = None
    start_lag_ns: int | None = None  # the pod started this late after the released time
    bounds: tuple[int, int] | None = None  # what the offset is known to lie in
    end_bounds: tuple[int, int] | None = None
    records: int = 0
    lines_seen: int = 0
    done: bool = False  # the worker printed "done"
    exit_sent: bool = False  # ftctl read its end clock and let it exit
    summary: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    reason: str | None = None


def _phase(pod: Any) -> str:
    return (pod.status.phase if pod.status else None) or "Pending"


def _terminated(pod: Any) -> tuple[int | None, str | None]:
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        term = cs.state.terminated if cs.state else None
        if term is not None:
            return term.exit_code, term.reason
    return None, None


def _correct(record: dict[str, Any], offset_ns: int) -> None:
    """Move a record's pod-clock times to the ftctl host's clock (phases use these)."""
    for key in ("start_ns", "end_ns", "scheduled_ns"):
        if isinstance(record.get(key), int):
            record[key] -= offset_ns
    for attempt in record.get("results") or []:
        if isinstance(attempt, dict):
            for key in ("start_ns", "end_ns"):
                if isinstance(attempt.get(key), int):
                    attempt[key] -= offset_ns


class ClusterLoad:
    """A cluster load as the runner drives it (implements ftctl.clients.base.LoadHandle)."""

    def __init__(
        self,
        platform: Any,
        test: TestCase,
        spec: LoadSpec,
        out_dir: Path,
        record_event: Any = None,
        result_dir: Path | None = None,
    ) -> None:
        check_cluster_loads(test)
        if platform.manifest is None:
            raise UsageError("a cluster load needs the deployment first (its frontend Service)")
        from kubernetes import client

        self.platform = platform
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.result_dir = Path(result_dir) if result_dir else self.out_dir
        self.namespace = platform.namespace
        self.job = build_job(test, spec, platform.run_id, platform.namespace, platform.manifest)
        self.name = self.job["metadata"]["name"]
        self.selector = ",".join(
            [
                f"{LABEL_MANAGED_BY}=ftctl",
                f"{LABEL_COMPONENT}={COMPONENT}",
                f"{LABEL_RUN}={label_value(platform.run_id)}",
                f"{LABEL_TEST}={label_value(test.name)}",
                f"{LABEL_LOAD}={label_value(spec.name)}",
            ]
        )
        self.batch = client.BatchV1Api(platform._api_client)
        self.core = platform.core
        self._record_event = record_event or (lambda *a, **k: None)
        self.pods: dict[int, JobPod] = {}
        self.start_ns: int | None = None
        self.started_ns: int | None = None
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._files: dict[int, Any] = {}
        self._created = False
        self._deleted = False
        self._finished = False
        self._closing = False  # client files closed: late lines are dropped
        self._stop_sent = False
        self._history: list[tuple[float, int]] = []
        self._refreshed = 0.0
        self.warnings: list[str] = []

    # -- LoadHandle ------------------------------------------------------------------------
    def start(self) -> None:
        """Create the Job; return at once (its pods start in the cluster)."""
        if self._created:
            raise PlatformError(f"cluster load {self.name} was already started")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.platform.log(
            f"kubernetes: creating Indexed Job {self.name} ({self.spec.pods} pods, "
            f"{self.spec.clients} clients)"
        )
        with api_call(f"create Job {self.namespace}/{self.name}"):
            made = self.batch.create_namespaced_job(self.namespace, self.job)
        self._created = True
        # An apiserver older than the field drops it silently (1.20 stores a plain Job with
        # backoffLimit 6): without Indexed mode no pod knows its share of the clients.
        if getattr(made.spec, "completion_mode", None) != "Indexed":
            self._delete_job()
            raise PlatformError(
                f"kubernetes: the API server dropped completionMode: Indexed from Job "
                f"{self.name} (Kubernetes before 1.21, or the IndexedJob feature off): a "
                "cluster load needs Indexed Jobs (on by default from 1.22); the Job was deleted"
            )
        if getattr(made.spec, "backoff_limit_per_index", None) is None:
            self.platform.log(
                f"kubernetes: the API server dropped backoffLimitPerIndex from Job {self.name} "
                "(before 1.28): a dead pod's index may be retried; the retry is never released "
                "and sends nothing"
            )

    def wait_sending(self, timeout: float | None = None, on_wait: object = None) -> bool:
        """Barrier: all pods Running → clocks read → one start time released; return at it.

        ``on_wait`` is not called: the pods' phases are the start-up progress (``progress``).

        Raises:
            PlatformError: the pods were not all Running within ``load.start_timeout`` (exit
                3), or one ended before the start; the caller's cleanup deletes the Job.
        """
        limit = self.spec.start_timeout
        deadline = time.monotonic() + limit
        while True:
            listed = self._list_pods()
            running = [p for p in listed if _phase(p) == "Running"]
            ended = [p for p in listed if _phase(p) in ("Succeeded", "Failed")]
            if ended:
                pod = ended[0]
                code, reason = _terminated(pod)
                raise PlatformError(
                    f"cluster load '{self.spec.name}': Job pod {pod.metadata.name} ended "
                    f"({_phase(pod)}, {reason or 'no reason'}, exit {code}) before the start "
                    f"barrier; its log ends: {self._log_tail(pod.metadata.name)}. The image "
                    "needs python3 with ftctl installed (README, Cluster loads)"
                )
            if len(running) >= self.spec.pods:
                break
            if time.monotonic() > deadline:
                raise PlatformError(self._barrier_timeout(listed, limit))
            time.sleep(POLL_S)
        for pod in running[: self.spec.pods]:
            index = self._index_of(pod)
            self.pods[index] = JobPod(
                name=pod.metadata.name,
                index=index,
                clients=barrier.pod_clients(self.spec.clients, self.spec.pods, index),
                phase="Running",
            )
        started = time.monotonic()
        self._read_clocks("start")
        rtt = time.monotonic() - started
        for pod in self.pods.values():  # follow the logs before anything can be written
            thread = threading.Thread(target=self._follow, args=(pod,), daemon=True)
            thread.start()
            self._readers.append(thread)
        # Far enough ahead that every release lands before it: the reads took `rtt` already.
        start_ns = time.time_ns() + int((0.5 + 2 * rtt) * 1e9)
        self._each(
            lambda p: self._exec(p, barrier.argv("release", start_ns + p.offset_ns)), "release"
        )
        while (left := start_ns - time.time_ns()) > 0:
            time.sleep(left / 1e9)
        self.start_ns = self.started_ns = start_ns
        self._record_event(
            LOAD_PODS,
            start_ns,
            load=self.spec.name,
            job=self.name,
            pods=[self._pod_json(p) for p in self._sorted()],
        )
        return True

    def progress(self) -> ClusterProgress:
        """Requests so far (from the pods' stats lines) and the pods by phase."""
        if self.pods and not self._finished and time.monotonic() - self._refreshed > 2.0:
            self._refresh()  # the phases, at most every 2 s (one list call)
        with self._lock:
            ok = sum(int(p.stats.get("ok", 0)) for p in self.pods.values())
            failed = sum(int(p.stats.get("failed", 0)) for p in self.pods.values())
            flight = sum(int(p.stats.get("in_flight", 0)) for p in self.pods.values())
            phases: dict[str, int] = {}
            for p in self.pods.values():
                phases[p.phase] = phases.get(p.phase, 0) + 1
            now = time.monotonic()
            self._history.append((now, ok + failed))
            while len(self._history) > 2 and now - self._history[0][0] > 2.0:
                self._history.pop(0)
            t0, d0 = self._history[0]
        rate = (ok + failed - d0) / (now - t0) if now - t0 > 0.05 else 0.0
        if not self.pods:
            phases = {"Pending": self.spec.pods}
        return ClusterProgress(ok=ok, failed=failed, in_flight=flight, rate=rate, pods=phases)

    def stop(self) -> None:
        """Ask every running pod to finish now (stop file by exec: no new requests)."""
        if self._stop_sent or not self.pods:
            return
        self._stop_sent = True
        live = [p for p in self.pods.values() if not p.done and p.phase == "Running"]
        self._each(lambda p: self._exec(p, barrier.argv("stop")), "stop", live)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every released pod finished or died; then gather and delete the Job."""
        if self._finished:
            return True
        if not self.pods:
            return self._deleted
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._refresh()
            if all(
                (p.done and p.exit_sent) or p.phase in ("Succeeded", "Failed")
                for p in self.pods.values()
            ):
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())) if deadline else POLL_S)
        self._finish()
        return True

    def kill(self) -> None:
        """Delete the Job and its pods now (every exit path). Idempotent."""
        self._delete_job()
        for thread in self._readers:
            thread.join(5)
        self._closing = True
        self._close_files()

    # -- internals -------------------------------------------------------------------------
    def _sorted(self) -> list[JobPod]:
        return [self.pods[i] for i in sorted(self.pods)]

    def _pod_json(self, p: JobPod) -> dict[str, Any]:
        return {
            "pod": p.name,
            "index": p.index,
            "clients": p.clients,
            "clock_offset_ns": p.offset_ns,
            "clock_uncertainty_ns": p.uncertainty_ns,
            "end_clock_offset_ns": p.end_offset_ns,
            "end_clock_uncertainty_ns": p.end_uncertainty_ns,
            "clock_bounds_ns": p.bounds,
            "end_clock_bounds_ns": p.end_bounds,
            "start_lag_ns": p.start_lag_ns,
            "phase": p.phase,
            "exit_code": p.exit_code,
            "records": p.records,
        }

    def _list_pods(self, terminating: bool = False) -> list[Any]:
        with api_call(f"list pods of Job {self.namespace}/{self.name}"):
            items = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        return [p for p in items.items if terminating or not p.metadata.deletion_timestamp]

    def _index_of(self, pod: Any) -> int:
        for source in (pod.metadata.annotations or {}, pod.metadata.labels or {}):
            if INDEX_ANNOTATION in source:
                return int(source[INDEX_ANNOTATION])
        raise PlatformError(f"Job pod {pod.metadata.name} carries no {INDEX_ANNOTATION}")

    def _log_tail(self, name: str, lines: int = 3) -> str:
        try:
            with api_call(f"read log of Job pod {self.namespace}/{name}"):
                text = self.core.read_namespaced_pod_log(
                    name, self.namespace, container=CONTAINER, tail_lines=lines
                )
        except PlatformError as exc:
            return f"(unavailable: {exc})"
        return (
            " | ".join(line.strip() for line in str(text).splitlines() if line.strip()) or "(empty)"
        )

    def _barrier_timeout(self, listed: list[Any], limit: float) -> str:
        states = []
        for pod in listed:
            waiting = ""
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                if cs.state and cs.state.waiting and cs.state.waiting.reason:
                    waiting = f" ({cs.state.waiting.reason})"
            states.append(f"{pod.metadata.name} {_phase(pod)}{waiting}")
        running = sum(1 for p in listed if _phase(p) == "Running")
        seen = "; ".join(states) or "no pod created"
        return (
            f"cluster load '{self.spec.name}': start barrier not complete after {limit:g}s: "
            f"{running} of {self.spec.pods} Job pods Running ({seen}); nothing was sent. "
            f"Check the image ({self.job['spec']['template']['spec']['containers'][0]['image']}) "
            "and the namespace's quota, or raise load.start_timeout"
        )

    def _exec(self, pod: JobPod, argv: list[str]) -> str:
        result = pod_exec(
            self.platform.configuration, self.namespace, pod.name, argv, container=CONTAINER
        )
        if result.exit_code != 0:
            raise PlatformError(
                f"exec {' '.join(argv)} in Job pod {pod.name} exited {result.exit_code}: "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )
        return result.stdout

    def _each(self, fn: Any, what: str, pods: list[JobPod] | None = None) -> None:
        pods = self._sorted() if pods is None else pods
        if not pods:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(pods))) as pool:
            futures = [(p, pool.submit(fn, p)) for p in pods]
        errors = []
        for p, future in futures:
            try:
                future.result()
            except Exception as exc:  # one pod's failure is reported, the others proceed
                errors.append(f"{p.name}: {exc}")
        if errors and what in ("clock", "release"):
            raise PlatformError(
                f"cluster load '{self.spec.name}': {what} failed: " + "; ".join(errors)
            )
        self.warnings.extend(f"{what}: {e}" for e in errors)

    def _read_clocks(self, when: str, pods: list[JobPod] | None = None) -> None:
        def read(p: JobPod) -> None:
            samples = []
            for _ in range(CLOCK_SAMPLES):
                t0 = time.time_ns()
                out = self._exec(p, barrier.argv("clock"))
                t1 = time.time_ns()
                samples.append((t0, int(out.strip().splitlines()[-1]), t1))
            offset, spread, low, high = barrier.offset_from(samples)
            if when == "start":
                p.offset_ns, p.uncertainty_ns, p.bounds = offset, spread, (low, high)
            else:
                p.end_offset_ns, p.end_uncertainty_ns, p.end_bounds = offset, spread, (low, high)

        self._each(read, "clock" if when == "start" else "end clock", pods)

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        try:
            listed = {p.metadata.name: p for p in self._list_pods()}
        except PlatformError as exc:  # a hiccup of the API: the next poll tries again
            self.warnings.append(str(exc))
            return
        finished_now = []
        with self._lock:
            for p in self.pods.values():
                obj = listed.get(p.name)
                phase = _phase(obj) if obj is not None else "Failed"
                if obj is None and p.reason is None:
                    p.reason = "pod deleted"
                if obj is not None and phase in ("Succeeded", "Failed"):
                    p.exit_code, reason = _terminated(obj)
                    p.reason = p.reason or reason
                p.phase = phase
                if p.done and not p.exit_sent and phase == "Running":
                    p.exit_sent = True
                    finished_now.append(p)
        if finished_now:  # read the end clock, then let the pod exit
            self._read_clocks("end", finished_now)
            self._each(lambda p: self._exec(p, barrier.argv("exit")), "exit", finished_now)

    def _follow(self, pod: JobPod) -> None:
        """Stream the pod's log into the client files; resume after a cut without duplicates."""
        for _ in range(20):
            try:
                with api_call(f"read log of Job pod {self.namespace}/{pod.name}"):
                    resp = self.core.read_namespaced_pod_log(
                        pod.name,
                        self.namespace,
                        container=CONTAINER,
                        follow=True,
                        _preload_content=False,
                    )
                skip, buffer = pod.lines_seen, b""
                try:
                    for chunk in resp.stream(65536):
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            if skip:
                                skip -= 1
                                continue
                            pod.lines_seen += 1
                            self._line(pod, line)
                finally:
                    resp.release_conn()
                # a last line without its newline: the pod died writing it (at most one lost)
            except PlatformError as exc:
                if status_of(exc) in (400, 404):
                    return  # the pod is gone: its log with it
                self.warnings.append(str(exc))
            if pod.done or pod.phase in ("Succeeded", "Failed") or self._deleted:
                return
            time.sleep(POLL_S)

    def _line(self, pod: JobPod, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return  # a warning line of the worker, or a cut one
        if not isinstance(msg, dict):
            return
        kind = msg.get("ftctl")
        if kind is not None:
            with self._lock:
                if kind == "stats":
                    pod.stats = msg
                elif kind == "summary":
                    pod.summary = msg
                elif kind == "done":
                    pod.done = True
                elif kind == "start" and isinstance(msg.get("planned_ns"), int):
                    pod.start_lag_ns = int(msg.get("t_ns", 0)) - msg["planned_ns"]
            return
        client = msg.get("client")
        if not isinstance(client, int) or client not in pod.clients or self._closing:
            return
        _correct(msg, pod.offset_ns)
        msg["load_pod"] = pod.name
        handle = self._files.get(client)
        if handle is None:
            handle = (self.out_dir / client_log(client)).open("ab")
            self._files[client] = handle
        handle.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        handle.flush()
        pod.records += 1

    def _finish(self) -> None:
        # The released pods exit once their end clock is read: their last phase and exit code
        # go into run.json (a pod that stays up is deleted with the Job below anyway).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            p.phase not in ("Succeeded", "Failed") for p in self.pods.values()
        ):
            time.sleep(POLL_S)
            self._refresh()
        for thread in self._readers:
            thread.join(30)
        self._closing = True
        self._close_files()
        for p in self._sorted():
            for warning in (p.summary or {}).get("warnings") or []:  # the engine's own
                self.warnings.append(f"Job pod {p.name}: {warning}")
            if not p.done:
                self.warnings.append(
                    f"Job pod {p.name} (index {p.index}, clients {_span(p.clients)}) died "
                    f"before it finished ({p.reason or p.phase}, exit {p.exit_code}); "
                    f"its {p.records} records are kept"
                )
                self._record_event(
                    LOAD_POD_FAILED,
                    None,
                    load=self.spec.name,
                    pod=p.name,
                    index=p.index,
                    clients=p.clients,
                    exit_code=p.exit_code,
                    reason=p.reason or p.phase,
                    records=p.records,
                )
        self._record_event(
            LOAD_CLOCKS,
            None,
            load=self.spec.name,
            warn_ns=CLOCK_WARN_NS,
            pods=[self._pod_json(p) for p in self._sorted()],
        )
        self._write_run_json()
        self._finished = True
        self._delete_job()

    def _write_run_json(self) -> None:
        path = self.result_dir / RUN_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        loads = data.setdefault("cluster_loads", {})
        loads[self.spec.name] = {
            "job": self.name,
            "namespace": self.namespace,
            "start_ns": self.start_ns,
            "pods": [self._pod_json(p) for p in self._sorted()],
            "warnings": self.warnings,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        tmp.replace(path)

    def _delete_job(self) -> None:
        if self._deleted or not self._created:
            return
        self._deleted = True
        delete_job(self.platform, self.batch, self.namespace, self.name)
        deadline = time.monotonic() + GONE_WAIT_S
        while time.monotonic() < deadline:  # pods go with the Job (propagation Background)
            try:
                if not self._list_pods(terminating=True):
                    return
            except PlatformError:
                return
            time.sleep(POLL_S)
        self.platform.log(f"kubernetes: pods of Job {self.name} still terminating")

    def _close_files(self) -> None:
        for handle in self._files.values():
            try:
                handle.close()
            except OSError:
                pass
        self._files.clear()


def _span(clients: list[int]) -> str:
    return f"{clients[0]}-{clients[-1]}" if len(clients) > 1 else str(clients[0] if clients else "")


def delete_job(platform: Any, batch: Any, namespace: str, name: str) -> bool:
    """Delete a Job and its pods (Background: the REST default for Jobs orphans them)."""
    try:
        with api_call(f"delete Job {namespace}/{name}"):
            batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", grace_period_seconds=0
            )
    except PlatformError as exc:
        if status_of(exc) == 404:
            return False
        raise
    platform.log(f"kubernetes: Job {name} deleted with its pods")
    return True


def delete_jobs(platform: Any, extra_selector: str = "") -> list[str]:
    """Delete every load Job ftctl created in the platform's namespace (``extra_selector``
    narrows it, e.g. to one run); return their names. For teardown and ``ftctl cleanup``."""
    from kubernetes import client

    batch = client.BatchV1Api(platform._api_client)
    selector = f"{LABEL_MANAGED_BY}=ftctl,{LABEL_COMPONENT}={COMPONENT}"
    if extra_selector:
        selector += f",{extra_selector}"
    with api_call(f"list Jobs in {platform.namespace}"):
        items = batch.list_namespaced_job(platform.namespace, label_selector=selector).items
    names = [job.metadata.name for job in items]
    for name in names:
        delete_job(platform, batch, platform.namespace, name)
    return names


def leftover_jobs(platform: Any, warn: Any = None) -> list[str]:
    """``ftctl cleanup``: delete every load Job; without the right to list Jobs, say so."""
    try:
        return delete_jobs(platform)
    except PlatformError as exc:
        if status_of(exc) != 403:
            raise
        (warn or platform.log)(f"kubernetes: load Jobs not checked: {exc}")
        return []


def status_rows(platform: Any) -> list[dict[str, Any]]:
    """``ftctl status``: ftctl's DGDs and load Jobs in the namespace, from their labels.

    One row per run and test: the DGD (state) and each load Job with its pods by phase
    (pending, running, succeeded, failed) and completions.
    """
    from kubernetes import client

    from ftctl.platforms.kube.client import DGD_GROUP, DGD_PLURAL, DGD_VERSION

    ns = platform.namespace
    managed = f"{LABEL_MANAGED_BY}=ftctl"
    with api_call(f"list DynamoGraphDeployments in {ns}"):
        dgds = platform.custom.list_namespaced_custom_object(
            DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, label_selector=managed
        ).get("items", [])
    batch = client.BatchV1Api(platform._api_client)
    try:
        with api_call(f"list Jobs in {ns}"):
            jobs = batch.list_namespaced_job(
                ns, label_selector=f"{managed},{LABEL_COMPONENT}={COMPONENT}"
            ).items
        with api_call(f"list load pods in {ns}"):
            pods = platform.core.list_namespaced_pod(
                ns, label_selector=f"{managed},{LABEL_COMPONENT}={COMPONENT}"
            ).items
    except PlatformError as exc:
        if status_of(exc) != 403:
            raise
        jobs, pods = [], []
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(labels: dict[str, str]) -> dict[str, Any]:
        key = (labels.get(LABEL_RUN, ""), labels.get(LABEL_TEST, ""))
        return rows.setdefault(
            key, {"run": key[0], "test": key[1], "dgd": None, "state": None, "loads": []}
        )

    for dgd in dgds:
        meta = dgd.get("metadata") or {}
        r = row(meta.get("labels") or {})
        r["dgd"] = meta.get("name")
        r["state"] = (dgd.get("status") or {}).get("state") or "pending"
    for job in jobs:
        labels = job.metadata.labels or {}
        phases = {"Pending": 0, "Running": 0, "Succeeded": 0, "Failed": 0}
        for pod in pods:
            owners = [o.name for o in pod.metadata.owner_references or []]
            if job.metadata.name in owners:
                phases[_phase(pod)] = phases.get(_phase(pod), 0) + 1
        row(labels)["loads"].append(
            {
                "load": labels.get(LABEL_LOAD, ""),
                "job": job.metadata.name,
                "completions": job.spec.completions,
                "pods": phases,
                "finished": any(
                    c.type in ("Complete", "Failed") and c.status == "True"
                    for c in (job.status.conditions or [])
                ),
            }
        )
    return [rows[k] for k in sorted(rows)]
