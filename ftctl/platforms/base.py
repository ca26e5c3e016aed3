"""The platform interface shared by the local and Kubernetes platforms (DESIGN.md §1).

Everything above it — runner, clients, parsers, checks, reports — is platform-blind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from ftctl.errors import FtctlError, OptionNotTakenError, PlatformError
from ftctl.scenario.model import TestCase


@dataclass
class Pod:
    """A pod: a Kubernetes pod, or a supervised replica of the local platform."""

    name: str
    service: str
    role: str  # frontend | decode | prefill
    ready: bool
    restart_count: int
    phase: str = "Running"  # Pending | Running | Terminating | Succeeded | Failed
    created_ns: int = 0
    index: int = 0  # replica index within the service


@dataclass
class FaultRecord:
    """What a fault did, with the evidence that it took effect."""

    action: str  # terminate_process | delete_pod | stall_process | reset_connections | partition
    service: str
    pod: str
    t_ns: int  # T_f: epoch ns taken immediately before the kill/delete call
    signal: str | None = None
    process: str | None = None
    pids: list[int] = field(default_factory=list)
    verified: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)
    verified_ns: int | None = None  # when the effect was observed
    pod_recovered_ns: int | None = None  # container restarted / replacement Ready
    skipped_reason: str | None = None  # known limitation, e.g. a zombie subprocess
    resumed_ns: int | None = None  # stall: SIGCONT sent; partition: healed (None: not yet)

    @property
    def pod_recovery_time_s(self) -> float | None:
        """T_f → restarted container / ready replacement, in seconds."""
        if self.pod_recovered_ns is None:
            return None
        return (self.pod_recovered_ns - self.t_ns) / 1e9


@dataclass
class CommandResult:
    """What a run_command returned (exit_code None: killed by the timeout or cut off)."""

    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None = None  # why there is no exit code


@dataclass(frozen=True)
class ScrapeTarget:
    """One pod's Prometheus endpoint, as the platform reaches it (loopback or port-forward)."""

    service: str
    pod: str
    fetch: Callable[[float], bytes]  # GET /metrics with a timeout in seconds; raises on failure
    pid: int | None = None  # root of the pod's process tree, where this machine can see it
    # Elsewhere (Kubernetes: the kubelet's stats): a resources line {"ok", "cpu_s", "rss_bytes"
    # | "error"}; may raise. None with no pid: resources are not sampled.
    sample: Callable[[], dict[str, Any]] | None = None


class Platform(Protocol):
    """What the runner needs of a platform. All methods block; all raise PlatformError."""

    name: str
    # A local tokenizer folder for clients that need one offline (aiperf); None: use the model id.
    tokenizer_path: Path | None

    def deploy(self, test: TestCase, run_dir: Path) -> None:
        """Start the graph of ``test``; ``run_dir`` is the test's result directory."""

    def wait_ready(self, timeout: float) -> None:
        """Block until every expected replica serves; PlatformError on timeout."""

    def endpoint(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``) that survives frontend restarts."""

    def endpoint_failures(self) -> list[dict[str, Any]]:
        """Connections the endpoint could not forward: ``{t_ns, pod, reason}``, oldest first."""

    def endpoint_problem(self) -> str | None:
        """One line saying why no frontend has been reachable for the endpoint timeout, else None.

        A run that sees one has measured ftctl's own path to the deployment, not the deployment.
        """

    def pods(self, service: str | None = None) -> list[Pod]:
        """Current pods, optionally of one service, in a stable order."""

    def terminate_process(
        self, pod: Pod, process: str, signal: str, ranks: tuple[int, ...] | None = None
    ) -> FaultRecord:
        """Send ``signal`` to processes of ``pod`` whose command line contains ``process``.

        ``ranks``: only these positions among the matches in ascending PID order
        (``select_ranks``); None: every match.
        """

    def delete_pod(self, pod: Pod, force: bool) -> FaultRecord:
        """Delete ``pod`` (grace or force); its controller replaces it under a new name."""

    def stall_process(
        self, pod: Pod, process: str, ranks: tuple[int, ...] | None = None
    ) -> FaultRecord:
        """SIGSTOP the pod's processes matching ``process``; evidence holds their states after.

        T_f is taken right before the stop; ``states_after_stop`` maps pid → process state
        letter as read after the signal (``T`` = stopped). The platform remembers what it
        stopped, so that ``resume_process`` and ``teardown`` can always continue it.
        """

    def resume_process(self, fault: FaultRecord) -> FaultRecord:
        """SIGCONT what ``fault`` stopped; set ``resumed_ns`` and ``states_after_resume``."""

    def reset_connections(self, pod: Pod) -> FaultRecord:
        """RST the established TCP connections into ``pod``; evidence lists what was reset.

        PlatformError where the platform has no way to do it (Kubernetes).
        """

    def partition(self, pod: Pod) -> FaultRecord:
        """Cut the traffic between the frontend and ``pod`` until ``heal_partition``."""

    def heal_partition(self, fault: FaultRecord) -> FaultRecord:
        """End the cut of ``fault``; set ``resumed_ns`` (the heal time)."""

    def run_command(self, pod: Pod, argv: list[str], timeout: float) -> CommandResult:
        """Run ``argv`` (never a shell string) where ``pod``'s main process runs.

        Local: a process with the replica's environment and working directory. Kubernetes:
        exec in the pod's main container. A non-zero exit is returned, not raised.
        """

    def verify_fault(self, fault: FaultRecord, timeout: float) -> FaultRecord:
        """Wait until the fault's effect is observed; fill verified/evidence/pod_recovered_ns."""

    def wait_for_recovery(self, timeout: float) -> None:
        """Block until every expected replica is ready again."""

    def wait_for_log_pattern(self, service: str, pattern: str, timeout: float) -> int:
        """Block until a log line of ``service`` matches ``pattern``; return epoch ns."""

    def rolling_upgrade(self, services: list[str], timeout: float) -> None:
        """Restart the replicas of ``services`` one by one, waiting for each to be ready."""

    def scrape_targets(self) -> list[ScrapeTarget]:
        """The /metrics endpoint of every running pod of every service, now."""

    def collect_logs(self, dest: Path) -> None:
        """Write ``<Service>/<pod>.log`` / ``.previous.log`` / ``.metrics.log`` / ``.yaml``."""

    def teardown(self) -> None:
        """Remove everything deployed. Idempotent; safe to call on any exit path."""


def select_ranks(
    matches: list[tuple[int, str]], ranks: tuple[int, ...] | None, where: str
) -> list[tuple[int, str]]:
    """The matches at ``ranks`` in ascending PID order (None: all of them).

    PID order is the rank order: inside a pod (its own PID namespace) PIDs are handed out
    upwards, so the engine's first-started process is rank 0. Both platforms see PIDs (ps,
    /proc), where start times have only 1 s resolution in ``ps``.

    Raises:
        PlatformError: a rank beyond the matches (which are listed).
    """
    ordered = sorted(matches)
    if ranks is None:
        return ordered
    missing = [r for r in ranks if r >= len(ordered)]
    if missing:
        listed = ", ".join(f"rank {i}: pid {pid}" for i, (pid, _) in enumerate(ordered))
        raise PlatformError(
            f"{where}: rank {missing[0]} out of range: {len(ordered)} matching process(es)"
            + (f" ({listed})" if listed else "")
        )
    return [ordered[r] for r in dict.fromkeys(ranks)]


STOPPED_STATES = ("T", "t")  # /proc/<pid>/stat and ps STAT: stopped by a signal / traced


def judge_stall(fault: FaultRecord) -> FaultRecord:
    """Verify a stall from the evidence its platform gathered: stopped, then running again.

    Verified when every matched pid was seen stopped (state ``T``) after SIGSTOP, and after
    SIGCONT every one is alive and no longer stopped. No restart is expected: a stall that
    restarted the container is reported (``restart_count`` changed) and not verified.
    """
    stopped = fault.evidence.get("states_after_stop") or {}
    resumed = fault.evidence.get("states_after_resume") or {}
    fault.evidence["restart_expected"] = False
    if fault.evidence.get("error") or not fault.pids:
        fault.evidence.setdefault("error", "no process was stopped")
        return fault
    not_stopped = [p for p in fault.pids if (stopped.get(str(p)) or "")[:1] not in STOPPED_STATES]
    if not_stopped:
        fault.evidence["error"] = f"pids {not_stopped} were not seen stopped (state T)"
        return fault
    if fault.resumed_ns is None:
        fault.evidence["error"] = "the stopped processes were not resumed"
        return fault
    still = [p for p in fault.pids if (resumed.get(str(p)) or "")[:1] in (*STOPPED_STATES, "", "Z")]
    if still:
        fault.evidence["error"] = f"pids {still} did not run again after SIGCONT"
        return fault
    before = fault.evidence.get("restart_count_before")
    after = fault.evidence.get("restart_count_after")
    if before is not None and after is not None and after != before:
        fault.evidence["error"] = f"the container restarted ({before} -> {after}) during a stall"
        return fault
    fault.verified = True
    fault.verified_ns = fault.resumed_ns
    fault.pod_recovered_ns = fault.resumed_ns  # the pod serves again once its process runs
    return fault


def judge_reset(fault: FaultRecord) -> FaultRecord:
    """Verify a reset_connections: at least one connection was reset and none is established.

    No connection into the pod at that moment means the fault did nothing: not verified.
    """
    if fault.evidence.get("error"):
        return fault
    if not fault.evidence.get("count"):
        fault.evidence["error"] = f"no established connection into {fault.pod} to reset"
        return fault
    if fault.evidence.get("still_established"):
        fault.evidence["error"] = "connections still established after the reset"
        return fault
    fault.verified = True
    fault.verified_ns = fault.t_ns
    return fault


def judge_partition(fault: FaultRecord) -> FaultRecord:
    """Verify a partition: the frontend's connections were cut, and it reconnected after.

    The frontend must have met the cut (a connection reset when it began or one refused
    during it); a partition nobody crossed did nothing visible. After the heal the frontend
    must reach the worker again (``reconnected_ns``, also the pod recovery time).
    """
    if fault.evidence.get("error"):
        return fault
    seen = len(fault.evidence.get("reset") or []) + int(
        fault.evidence.get("refused_during_cut") or 0
    )
    fault.evidence["connections_cut"] = seen
    if seen == 0:
        fault.evidence["error"] = "no connection from the frontend was cut (none reset or refused)"
        return fault
    if fault.resumed_ns is None:
        fault.evidence["error"] = "the partition was not healed"
        return fault
    if fault.evidence.get("reconnected_ns") is None:
        fault.evidence["error"] = "the frontend did not reconnect to the worker after the heal"
        return fault
    fault.verified = True
    fault.verified_ns = fault.resumed_ns
    fault.pod_recovered_ns = fault.evidence["reconnected_ns"]
    return fault


@dataclass(frozen=True)
class LocalPlatformOptions:
    """The command-line options the local platform takes: none (it runs on this machine)."""


@dataclass(frozen=True)
class KubernetesPlatformOptions:
    """The command-line options the kubernetes platform takes."""

    namespace: str | None = None  # None: the platform's default namespace
    allow_namespaces: tuple[str, ...] = ()
    kubeconfig: Path | None = None
    context: str | None = None
    skip_service_restart: bool = False
    endpoint_timeout: float | None = None  # None: the platform's default


PLATFORM_OPTIONS: dict[str, type[LocalPlatformOptions] | type[KubernetesPlatformOptions]] = {
    "local": LocalPlatformOptions,
    "kubernetes": KubernetesPlatformOptions,
}


def platform_options(
    platform: str, given: dict[str, Any], test: str | None = None
) -> LocalPlatformOptions | KubernetesPlatformOptions:
    """The typed options of ``platform`` from those given (field name → value, only those set).

    Raises:
        OptionNotTakenError: an option the platform does not take (named by its field).
        FtctlError: an unknown platform.
    """
    cls = PLATFORM_OPTIONS.get(platform)
    if cls is None:
        raise FtctlError(f"unknown platform '{platform}' (choose local or kubernetes)")
    taken = {f.name for f in fields(cls)}
    for option in given:
        if option not in taken:
            raise OptionNotTakenError(option, platform, test)
    values = dict(given)
    if "allow_namespaces" in values:
        values["allow_namespaces"] = tuple(values["allow_namespaces"])
    return cls(**values)
