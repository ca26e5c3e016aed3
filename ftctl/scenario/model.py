"""The typed model every layer past the loader works with (DESIGN.md §3).

Nothing past ``ftctl.scenario.load`` sees a raw dict: YAML → schema → these frozen
dataclasses. Durations are float seconds. Fields may be added; existing names are a contract
shared by the runner, platforms, clients, results and checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

Backend = Literal["vllm", "sglang", "trtllm"]
Topology = Literal["agg", "disagg"]
Role = Literal["frontend", "decode", "prefill"]
ClientType = Literal["aiperf", "legacy"]
Arrival = Literal["closed", "constant", "poisson"]
Phase = Literal["before", "during", "after", "overall"]

BACKENDS: tuple[str, ...] = ("vllm", "sglang", "trtllm")
TOPOLOGIES: tuple[str, ...] = ("agg", "disagg")
ROLES: tuple[str, ...] = ("frontend", "decode", "prefill")
# Timeline events that inject a fault: each records T_f (fault_injected) and must be verified.
FAULT_EVENT_KINDS: tuple[str, ...] = (
    "terminate_process",
    "delete_pod",
    "stall_process",
    "reset_connections",
    "partition",
)


@dataclass(frozen=True)
class TokenDist:
    """Synthetic token length: mean and standard deviation."""

    mean: int = 100
    stddev: float = 0.0


@dataclass(frozen=True)
class LoadShape:
    """An open-loop load's rate over time (``load.shape``; ftctl.clients.shapes places arrivals).

    ``ramp``: rate_from → rate_to req/s over ``duration`` s; ``steps``: (rate, duration s)
    one after the other; ``burst``: ``burst_requests`` arrivals at ``burst_at`` s on top of
    the load's request_rate. After the shape, its last rate holds until the load ends.
    """

    kind: Literal["ramp", "steps", "burst"]
    rate_from: float | None = None
    rate_to: float | None = None
    duration: float | None = None
    steps: tuple[tuple[float, float], ...] = ()
    burst_requests: int = 0
    burst_at: float = 0.0


@dataclass(frozen=True)
class LoadSpec:
    """One named load (DESIGN.md §3.1 ``load:`` / ``loads:``)."""

    name: str = "default"
    client: ClientType = "aiperf"
    clients: int = 10
    requests_per_client: int | None = 150  # None when `duration` is set
    duration: float | None = None
    concurrency: int = 1
    request_rate: float | None = None  # closed: max req/s per client; open: total req/s
    arrival: Arrival = "closed"
    input_tokens: TokenDist = TokenDist()
    output_tokens: TokenDist = TokenDist()
    prompts: tuple[str, ...] = ()
    temperature: float = 0.0
    streaming: bool = True
    retries: int = 3
    retry_delay: float = 1.0
    timeout: float = 30.0
    placement: Literal["local", "cluster"] = "local"
    # placement: cluster — the load is an Indexed Job of `pods` pods in the test namespace,
    # each running clients/pods logical clients; `image` has ftctl (default: the graph's).
    pods: int = 1
    image: str | None = None
    start_timeout: float = 300.0  # cluster: every Job pod Running within this, else exit 3
    endpoint: str = "/v1/chat/completions"
    protocol: Literal["http", "grpc"] = "http"  # grpc: KServe v2 ModelInfer/ModelStreamInfer
    seed: int = 100
    # Where this load's client files go, relative to the output dir. None: the test's own
    # directory. Token overflow uses "<test>_overflow" / "<test>_recovery" (REFERENCE §2).
    result_dir: str | None = None
    shape: LoadShape | None = None  # open loop only: ramp | steps | burst
    warmup: int = 0  # requests per client sent first and not counted (legacy: warmup_N.log.txt)


@dataclass(frozen=True)
class ServiceOverride:
    """Per-service overrides from ``deployment.services``."""

    replicas: int | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    image: str | None = None


@dataclass(frozen=True)
class LocalOptions:
    """Options of the local platform (``deployment.local``)."""

    migration_limit: int = 0
    speedup_ratio: float = 1.0
    restart_delay: float = 1.0
    router_mode: str | None = None
    kserve_grpc: bool = False  # frontend --kserve-grpc-server: the endpoint speaks KServe gRPC


@dataclass(frozen=True)
class Service:
    """A service of the graph with its role, resolved from the manifest or REFERENCE §1."""

    name: str
    role: Role
    replicas: int = 1


@dataclass(frozen=True)
class Deployment:
    """What to deploy: backend, topology, parallelism and the resolved services."""

    backend: Backend = "vllm"
    topology: Topology = "agg"
    tp: int = 1
    dp: int = 1
    model: str = "Qwen/Qwen3-0.6B"
    manifest: Path | None = None  # absolute, resolved relative to the scenario file
    image: str | None = None
    services: tuple[Service, ...] = ()
    overrides: tuple[tuple[str, ServiceOverride], ...] = ()
    local: LocalOptions = LocalOptions()
    max_model_len: int | None = None  # token overflow: the model's context limit
    # "replicas": dp sets replicas of frontend and workers (upstream matrix); "engine": the
    # engine runs data parallelism itself (vLLM MoE, --data-parallel-size), replicas stay 1.
    data_parallel: Literal["replicas", "engine"] = "replicas"

    def services_for(self, role: str) -> tuple[Service, ...]:
        """Every service with ``role``; ``workers`` means decode and prefill."""
        if role == "workers":
            return tuple(s for s in self.services if s.role in ("decode", "prefill"))
        return tuple(s for s in self.services if s.role == role)

    def service_for(self, role: str) -> Service | None:
        """The first service with ``role`` (frontend | decode | prefill), or None."""
        return next((s for s in self.services if s.role == role), None)

    @property
    def decode_replicas(self) -> int:
        """Replicas of the decode worker(s): what upstream picks high availability by."""
        return sum(s.replicas for s in self.services_for("decode"))


@dataclass(frozen=True)
class FailureType:
    """One entry of the FailureCatalog (DESIGN.md §3.4)."""

    name: str
    description: str = ""
    # None for `none` and client-side token_overflow; "workers" = every decode/prefill service
    target: Role | Literal["workers"] | None = None
    action: Literal[
        "none",
        "terminate_process",
        "delete_pod",
        "token_overflow",
        "rolling_upgrade",
        "stall_process",
        "reset_connections",
        "partition",
    ] = "none"
    process: str | None = None  # may hold "{backend}"
    signal: str = "SIGKILL"
    backends: tuple[str, ...] = ("all",)
    topologies: tuple[str, ...] = ("agg", "disagg")
    platforms: tuple[str, ...] = ("kubernetes", "local")
    order: int = 0  # position in the catalog: row order of the legacy table
    in_all: bool = True  # part of `matrix.failure: all` (token_overflow, rolling_upgrade: no)
    timeout: float | None = None  # rolling_upgrade: how long to wait for the rollout
    duration: float | None = None  # stall_process / partition: how long it lasts
    max_model_len: int | None = None  # token_overflow: the context limit to deploy with
    overflow_multiplier: float = 2.0  # token_overflow: oversized prompt = limit × this
    # A documented behaviour upstream does not expect to recover from (SGLang subprocess kills
    # leave a zombie and no restart): shown by `list`, and no recovery_time threshold applies.
    known_limitation: str | None = None

    def applies_to(self, backend: str) -> bool:
        """True when this failure exists for ``backend``."""
        return "all" in self.backends or backend in self.backends


PodSelector = Literal["all", "random"] | tuple[int, ...]


@dataclass(frozen=True)
class Event:
    """One step of the timeline (DESIGN.md §3.2); fields unused by a kind stay None."""

    kind: Literal[
        "start_load",
        "wait",
        "terminate_process",
        "delete_pod",
        "stall_process",
        "reset_connections",
        "partition",
        "run_command",
        "capture_metrics",
        "wait_for_recovery",
        "wait_for_log_pattern",
        "rolling_upgrade",
        "stop_load",
        "wait_for_load_completion",
    ]
    load: str | None = None
    duration: float | None = None
    services: tuple[str, ...] = ()
    process: str | None = None  # substring of the command line, {backend} substituted
    signal: str | None = None
    pods: PodSelector = "all"
    force: bool = False
    timeout: float | None = None
    service: str | None = None
    pattern: str | None = None
    failure: str | None = None  # the catalog failure this event came from
    at: float | None = None  # planned offset from load start (for plan and lag)
    # terminate_process / stall_process: positions among a pod's matching processes in
    # ascending PID order (rank: N / ranks: [..]); None = every match
    ranks: tuple[int, ...] | None = None
    argv: tuple[str, ...] = ()  # run_command: exec'd as is, never through a shell
    expect_exit: int | None = None  # run_command: another exit code fails check command_exit
    label: str | None = None  # capture_metrics: <Service>/<pod>.<label>.metrics.log


# Checks judged on the scraped /metrics series (ftctl.checks_server).
ServerCheckKind = Literal[
    "metric",
    "worker_removed_after_fault",
    "queue_drains_after_fault",
    "no_throughput_collapse",
    "memory_growth",
    "no_engine_restart",
]


@dataclass(frozen=True)
class Check:
    """One check (DESIGN.md §3.3); fields unused by a kind stay None."""

    kind: (
        Literal[
            "zero_errors",
            "max_errors",
            "max_failed_attempts",
            "min_requests",
            "was_cancelled",
            "success_rate",
            "recovery_time",
            "latency",
            "service_log_contains",
            "service_log_not_contains",
            "fault_verified",
            "command_exit",
        ]
        | ServerCheckKind
    )
    load: str | None = None
    min: float | None = None
    max: float | None = None
    expected: bool | None = None
    phase: Phase = "overall"
    # success_rate: of requests (a retried request that succeeded counts once, as a success)
    # or of attempts (every failed try counts)
    of: Literal["requests", "attempts"] = "requests"
    stat: str | None = None
    service: str | None = None
    pattern: str | None = None
    source: str = "scenario"  # scenario | profile:<name> | stage1
    metric: str | None = None  # server-side checks: the Prometheus metric
    labels: tuple[tuple[str, str], ...] = ()  # ... restricted to samples with these labels
    agg: str | None = None  # max | min | mean | last | increase | rate
    min_samples: int = 2  # fewer scrapes in the window: inconclusive, never a pass


@dataclass(frozen=True)
class ThresholdProfile:
    """A named set of limits that turns into checks (DESIGN.md §3.4)."""

    name: str
    success_rate_min: float | None = None
    failed_requests_max: int | None = None
    recovery_time_max: float | None = None
    load: str | None = None  # the load the limits apply to; None = every load
    success_rate_max: float | None = None  # e.g. token overflow: mostly rejected
    per_load: tuple[ThresholdProfile, ...] = ()  # `loads:` limits, one per named load


@dataclass(frozen=True)
class Source:
    """Where a document came from, for error messages."""

    file: str
    line: int | None = None


@dataclass(frozen=True)
class Observe:
    """Server-side observation: how often every pod's /metrics is scraped (0: never)."""

    interval: float = 1.0
    resources: bool = True  # sample CPU and RSS of each pod's processes where visible


@dataclass(frozen=True)
class TestCase:
    """One expanded, runnable test: a scenario × matrix cell × failure."""

    name: str
    scenario: str  # metadata.name
    source: Source
    description: str
    tags: tuple[str, ...]
    platform: Literal["local", "kubernetes"]
    deployment: Deployment
    loads: tuple[LoadSpec, ...]
    failure: FailureType | None  # None = no failure ("none")
    events: tuple[Event, ...]
    checks: tuple[Check, ...]
    thresholds_profile: str | None
    recovery_window: float = 10.0
    reports: tuple[str, ...] = ("summary", "markdown", "timeline")
    skip_reason: str | None = None  # set when the failure cannot apply here
    observe: Observe = Observe()

    __test__ = False  # not a pytest class

    def with_run_options(self, *, image: str | None = None, client: str | None = None) -> TestCase:
        """This test as ``ftctl run --image/--client-type`` runs it (and ``plan`` shows it)."""
        test = self
        if image:
            test = replace(test, deployment=replace(test.deployment, image=image))
        if client:
            test = replace(test, loads=tuple(replace(s, client=client) for s in test.loads))
        return test

    def load(self, name: str = "default") -> LoadSpec:
        """The load called ``name``."""
        for spec in self.loads:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass
class Catalogs:
    """The FailureCatalog and Thresholds documents in force."""

    failures: dict[str, FailureType] = field(default_factory=dict)
    profiles: dict[str, ThresholdProfile] = field(default_factory=dict)
    rules: list[tuple[dict, str]] = field(default_factory=list)  # (when, profile)
