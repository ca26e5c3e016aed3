"""Parsed results: the per-request table the readers fill and the metrics computed from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PHASES = ("before", "during", "after", "overall", "upstream_before", "upstream_after")
LATENCY_STATS = ("mean", "min", "max", "p50", "p90", "p95", "p99")


@dataclass
class Excluded:
    """Physically impossible records left out of one file (rule: ``ftctl.results.sanity``)."""

    path: str
    count: int
    reasons: dict[str, int]  # reason → records; each record counted under its first reason

    def message(self) -> str:
        """``FILE: 3 impossible records excluded (end before start: 2, negative latency: 1)``."""
        noun = "record" if self.count == 1 else "records"
        why = ", ".join(f"{reason}: {n}" for reason, n in self.reasons.items())
        return f"{self.path}: {self.count} impossible {noun} excluded ({why})"


@dataclass
class AttemptTable:
    """One row per attempt (each try of a logical request), as parallel numpy arrays.

    ``request`` is the row of the attempt's request in its RequestTable; times are epoch ns.
    """

    request: np.ndarray  # int64: row of the request in the RequestTable
    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    ok: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.ok.shape[0])

    @staticmethod
    def from_lists(
        request: list[int], start_ns: list[int], end_ns: list[int], ok: list[bool]
    ) -> AttemptTable:
        """A table from parallel Python lists."""
        import numpy as np

        return AttemptTable(
            np.array(request, np.int64),
            np.array(start_ns, np.int64),
            np.array(end_ns, np.int64),
            np.array(ok, bool),
        )


@dataclass
class RequestTable:
    """One row per logical request (retries folded in), as parallel numpy arrays.

    Times are epoch ns; latency/TTFT/ITL in seconds (NaN where unknown). The attempts behind
    the rows are in ``attempt_rows``; None means one attempt per request, with the request's
    own times and outcome (aiperf records, and ftctl records that were never retried).
    """

    client: np.ndarray  # int32: client index
    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    ok: np.ndarray  # bool
    latency_s: np.ndarray  # float64
    ttft_s: np.ndarray  # float64, NaN when not streamed
    itl_s: np.ndarray  # float64, NaN when not streamed
    # int64 open-loop schedule (ftctl's client), -1 where a request had none; None: no schedule
    scheduled_ns: np.ndarray | None = None
    # What the reader left out as impossible (not rows of the table), per file.
    excluded: list[Excluded] = field(default_factory=list)
    # Every attempt of every request; None: exactly one per request (see ``attempts``).
    attempt_rows: AttemptTable | None = None

    def attempts(self) -> AttemptTable:
        """Every attempt of the table's requests (one per request when none was recorded)."""
        import numpy as np

        if self.attempt_rows is not None:
            return self.attempt_rows
        return AttemptTable(
            np.arange(len(self), dtype=np.int64), self.start_ns, self.end_ns, self.ok
        )

    def attempt_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(attempts, failed attempts) per request row, as int64 arrays."""
        import numpy as np

        n = len(self)
        if self.attempt_rows is None:
            return np.ones(n, np.int64), (~self.ok).astype(np.int64)
        rows = self.attempt_rows
        total = np.bincount(rows.request, minlength=n).astype(np.int64)
        failed = np.bincount(rows.request[~rows.ok], minlength=n).astype(np.int64)
        return total, failed

    def __len__(self) -> int:
        return int(self.ok.shape[0])

    def shifted(self, delta_ns: int) -> RequestTable:
        """The same table with every time moved by ``delta_ns`` (a zone correction)."""
        import dataclasses

        attempts = self.attempt_rows
        if attempts is not None:
            attempts = dataclasses.replace(
                attempts, start_ns=attempts.start_ns + delta_ns, end_ns=attempts.end_ns + delta_ns
            )
        scheduled = self.scheduled_ns
        if scheduled is not None:
            scheduled = scheduled.copy()
            scheduled[scheduled >= 0] += delta_ns
        return dataclasses.replace(
            self,
            start_ns=self.start_ns + delta_ns,
            end_ns=self.end_ns + delta_ns,
            scheduled_ns=scheduled,
            attempt_rows=attempts,
        )

    @staticmethod
    def empty() -> RequestTable:
        """A table with no request."""
        import numpy as np

        return RequestTable(
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, bool),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
        )

    @staticmethod
    def from_lists(
        client: int,
        start_ns: list[int],
        end_ns: list[int],
        ok: list[bool],
        latency_s: list[float],
        ttft_s: list[float],
        itl_s: list[float],
        scheduled_ns: list[int] | None = None,
    ) -> RequestTable:
        """A table of one client's requests from parallel Python lists (schedule: -1 = none)."""
        import numpy as np

        return RequestTable(
            client=np.full(len(ok), client, np.int32),
            start_ns=np.array(start_ns, np.int64),
            end_ns=np.array(end_ns, np.int64),
            ok=np.array(ok, bool),
            latency_s=np.array(latency_s, np.float64),
            ttft_s=np.array(ttft_s, np.float64),
            itl_s=np.array(itl_s, np.float64),
            scheduled_ns=None if scheduled_ns is None else np.array(scheduled_ns, np.int64),
        )

    def select(self, keep: np.ndarray) -> RequestTable:
        """The rows where the boolean mask ``keep`` is True (``excluded`` carried over).

        The attempts of the rows left out are left out with them.
        """
        import numpy as np

        rows = self.attempt_rows
        if rows is not None:
            new_index = np.cumsum(keep, dtype=np.int64) - 1
            kept = keep[rows.request]
            rows = AttemptTable(
                new_index[rows.request[kept]],
                rows.start_ns[kept],
                rows.end_ns[kept],
                rows.ok[kept],
            )
        return RequestTable(
            *(getattr(self, name)[keep] for name in _COLUMNS),
            scheduled_ns=None if self.scheduled_ns is None else self.scheduled_ns[keep],
            excluded=list(self.excluded),
            attempt_rows=rows,
        )

    @staticmethod
    def concat(tables: list[RequestTable]) -> RequestTable:
        """All rows of ``tables`` in one table (and everything they excluded)."""
        import numpy as np

        excluded = [e for t in tables for e in t.excluded]
        tables = [t for t in tables if len(t)]
        if not tables:
            empty = RequestTable.empty()
            empty.excluded = excluded
            return empty
        scheduled = None
        if any(t.scheduled_ns is not None for t in tables):
            scheduled = np.concatenate(
                [
                    t.scheduled_ns if t.scheduled_ns is not None else np.full(len(t), -1, np.int64)
                    for t in tables
                ]
            )
        attempt_rows = None
        if any(t.attempt_rows is not None for t in tables):
            offsets = np.cumsum([0] + [len(t) for t in tables[:-1]])
            parts = [t.attempts() for t in tables]
            attempt_rows = AttemptTable(
                np.concatenate([p.request + o for p, o in zip(parts, offsets, strict=True)]),
                np.concatenate([p.start_ns for p in parts]),
                np.concatenate([p.end_ns for p in parts]),
                np.concatenate([p.ok for p in parts]),
            )
        return RequestTable(
            *(np.concatenate([getattr(t, name) for t in tables]) for name in _COLUMNS),
            scheduled_ns=scheduled,
            excluded=excluded,
            attempt_rows=attempt_rows,
        )


_COLUMNS = ("client", "start_ns", "end_ns", "ok", "latency_s", "ttft_s", "itl_s")


@dataclass
class PhaseStats:
    """Requests of one phase: counts, success rate and pooled latency of the successful ones.

    The attempts of a phase are the attempts of its requests (a request's phase is decided by
    the request's own start and end, DESIGN §5).
    """

    requests: int = 0
    ok: int = 0
    failed: int = 0
    success_rate: float | None = None  # ok / requests; None without requests
    attempts: int = 0  # every try of the phase's requests (≥ requests)
    failed_attempts: int = 0
    retried_requests: int = 0  # requests with more than one attempt
    attempt_success_rate: float | None = None  # successful attempts / attempts
    latency_s: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(LATENCY_STATS))
    ttft_mean_s: float | None = None
    itl_mean_s: float | None = None
    sla_violations: int | None = None  # successful requests slower than --sla; None without it
    # Connections the platform's endpoint could not forward to a frontend (events.jsonl
    # endpoint_failure), by their time: before T_f, or after (at or after it); an instant is
    # never "during". None: the platform records none (local, upstream directories).
    endpoint_failures: int | None = None


@dataclass
class Recovery:
    """Client-perceived recovery after the fault, measured on attempts (README, metric notes).

    A failed attempt *after the fault* is one that ended at or after T_f; its failure time is
    its start, or T_f when it was already in flight then.
    """

    recovery_time_s: float | None = None  # R − T_f; None when not recovered
    time_to_first_error_s: float | None = None  # first failure time − T_f (≤ recovery_time_s)
    downtime_s: float | None = None  # time after T_f during which no attempt succeeded
    failure_span_s: float | None = None  # last failure time − first failure time
    failed_attempts_after_fault: int = 0  # failed attempts that ended at or after T_f
    failed_requests_after_fault: int = 0  # failed requests that ended at or after T_f
    window_s: float = 10.0  # W actually used (shortened to the end of the load)
    recovered: bool = False
    no_visible_impact: bool = False  # no attempt failed after the fault


@dataclass
class FaultMetrics:
    """One fault of a test with several (README, metric notes: "Several faults").

    Phases relative to this fault's T_f, bounded by its neighbours: *before* ended before T_f
    and started at or after the previous fault; *during* was in flight at T_f and ended before
    the next fault; *after* started at or after T_f and ended before the next fault (a request
    in flight at the next fault is that fault's *during*). Recovery is measured on the attempts
    started before the next fault.
    """

    index: int  # 1-based, in time order
    t_ns: int  # T_f of this fault (epoch ns)
    at_s: float | None = None  # T_f − the load's first request start
    next_ns: int | None = None  # the next fault's T_f; None for the last
    phases: dict[str, PhaseStats] = field(default_factory=dict)  # before/during/after/overall
    recovery: Recovery | None = None


@dataclass
class LoadMetrics:
    """Metrics of one load (or of all loads pooled)."""

    name: str = "default"
    clients: int = 0
    requests: int = 0
    ok: int = 0
    failed: int = 0
    total_attempts: int = 0  # every try of every request (the "attempts" of DESIGN §5)
    failed_attempts: int = 0
    retried_requests: int = 0  # requests with more than one attempt
    phases: dict[str, PhaseStats] = field(default_factory=dict)
    recovery: Recovery | None = None  # None without a fault time
    throughput_rps: float | None = None  # successful requests / load wall time
    client_throughput_rps: dict[str, float] = field(default_factory=dict)
    avg_client_throughput_rps: float | None = None
    wall_time_s: float | None = None
    # aiperf: runs of each client's whole aiperf process (a rerun after a mostly failed run),
    # not request attempts; the run whose records are read is ``chosen_attempt``.
    attempts: dict[str, int] = field(default_factory=dict)
    chosen_attempt: dict[str, int | None] = field(default_factory=dict)  # aiperf
    # aiperf: failed requests by aiperf's own summaries of the clients read, when every one has
    # a count (it does not count a stream cut by an SSE error event as failed; ftctl does).
    aiperf_summary_failed: int | None = None
    # Open loop: start − scheduled time of the requests that had a schedule (requests, p50,
    # p99, max in ms); None when no request had one. Large values mean the client fell behind.
    dispatch_lag_ms: dict[str, float] | None = None
    # One entry per fault (time order) when the test has faults; with one, it repeats the
    # phases and recovery above.
    faults: list[FaultMetrics] = field(default_factory=list)


@dataclass
class ServiceServer:
    """What the scraper saw of one service (DESIGN.md §5, server side)."""

    service: str
    pods: int
    scrapes: int
    failed_scrapes: int
    # metric -> phase (before / after / overall) -> {"mean": x, "max": y} over every pod's scrapes
    gauges: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    rss_max_mb: float | None = None  # the largest pod's process tree at its peak
    cpu_s: float | None = None  # CPU seconds the service's processes used while observed


@dataclass
class TestResult:
    """Everything ``ftctl parse`` knows about one test directory."""

    name: str
    path: Path
    kind: str  # "legacy" | "aiperf"
    warnings: list[str] = field(default_factory=list)
    fault_times_ns: list[int] = field(default_factory=list)  # T_f; the first one sets phases
    fault_time_source: str | None = None  # "events" | "test.log (1 s resolution)" | None
    planned_faults: int | None = None  # fault events the timeline ran (events.jsonl); None: unknown
    # stall_process: when each stall was resumed (SIGCONT, epoch ns), by its T_f
    fault_resume_times_ns: dict[int, int] = field(default_factory=dict)
    # The first fault's client recovery counted from its resume instead of T_f: R − T_resume
    # (0 when the clients recovered before the resume); None without a resume or a recovery.
    recovery_from_resume_s: float | None = None
    startup_s: float | None = None
    overall: LoadMetrics = field(default_factory=LoadMetrics)
    loads: dict[str, LoadMetrics] = field(default_factory=dict)
    pod_recovery_s: float | None = None  # events.jsonl fault_verified pod_recovered_ns − T_f
    pod_recovered_ns: list[int] = field(default_factory=list)  # every pod-back time (epoch ns)
    upstream_log_recovery_s: float | None = None  # upstream dirs only: from service logs
    upstream_log_recovery_method: str | None = None  # how it was computed (label)
    was_cancelled: bool = False
    failure: str | None = None  # failure name from the test name (…-<failure>)
    repeat: int | None = None  # --repeat: i of the test's name T#i (1-based); None otherwise
    group: str | None = None  # scenario prefix the upstream table groups by
    pair_role: str | None = None  # token overflow: "overflow" | "recovery"
    time_resolution_s: float | None = None  # 1.0 when times come from upstream `time` fields
    utc_offset_s: float | None = None  # upstream: host-local − UTC used for test.log times
    utc_offset_source: str | None = None  # "aiperf start_time" | "previous.log" | "this machine…"
    clients_with_records: int | None = None  # aiperf: clients with profile_export.jsonl
    has_test_log: bool = False
    has_events: bool = False
    excluded_records: int = 0  # impossible records left out of every metric (sum of excluded)
    excluded: list[Excluded] = field(default_factory=list)
    server: list[ServiceServer] = field(default_factory=list)  # empty: nothing was scraped
    # Set by the reader, dropped from JSON: the request rows behind the metrics.
    requests: RequestTable | None = field(default=None, repr=False)

    __test__ = False  # not a pytest class, despite the name

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (schema ``ftctl.parse/v2``, see ftctl.commands.parse)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "requests":
                continue
            value = getattr(self, f.name)
            if isinstance(value, LoadMetrics):
                value = asdict(value)
            elif f.name == "loads":
                value = {k: asdict(v) for k, v in value.items()}
            elif f.name in ("excluded", "server"):
                value = [asdict(e) for e in value]
            elif isinstance(value, Path):
                value = str(value)
            data[f.name] = value
        return data
