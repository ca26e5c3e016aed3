"""One test directory → TestResult: detect, read every load, place the fault, compute metrics."""

from __future__ import annotations

import re
from pathlib import Path

from ftctl.errors import ParseError
from ftctl.events import (
    DEPLOY_START,
    ENDPOINT_FAILURE,
    EVENT_START,
    EVENTS_FILE,
    FAULT_EVENT_KINDS,
    FAULT_INJECTED,
    FAULT_RESUMED,
    FAULT_VERIFIED,
    LOAD_CLOCKS,
    LOAD_POD_FAILED,
    READY,
)
from ftctl.events import read_events as _read_events
from ftctl.layout import METRICS_SUFFIX, split_repeat
from ftctl.results import aiperf, upstream
from ftctl.results.common import NS_PER_S as _NS
from ftctl.results.detect import detect_kind, load_dirs
from ftctl.results.files import is_regular
from ftctl.results.legacy import read_legacy_dir, valid_ns
from ftctl.results.metrics import load_metrics
from ftctl.results.model import (
    LATENCY_STATS,
    Excluded,
    LoadMetrics,
    PhaseStats,
    RequestTable,
    TestResult,
)
from ftctl.results.server import summarize_server

# Failure names in the order of the upstream failure table (REFERENCE §2): table row order.
FAILURE_ORDER = (
    "none",
    "frontend",
    "frontend_pod",
    "decode_worker",
    "decode_worker_pod",
    "prefill_worker",
    "prefill_worker_pod",
    "vllm_decode_engine_core",
    "vllm_prefill_engine_core",
    "sglang_decode_scheduler",
    "sglang_decode_detokenizer",
    "sglang_prefill_scheduler",
    "sglang_prefill_detokenizer",
    "trtllm_decode_engine_core",
    "trtllm_prefill_engine_core",
    "token_overflow",
)
PAIR_SUFFIXES = ("_overflow", "_recovery")


def split_name(directory_name: str) -> tuple[str, str | None, str | None]:
    """(group, failure, pair role) of a test directory name.

    ``test_fault_scenario[vllm-agg-tp-1-dp-2-decode_worker_pod]`` → ("vllm-agg-tp-1-dp-2",
    "decode_worker_pod", None); ``…-token_overflow_recovery`` → (…, "token_overflow",
    "recovery"). Unknown failures split at the last ``-``.
    """
    name = directory_name
    match = re.fullmatch(r"[^\[]*\[(.*)\]", name)
    if match:
        name = match.group(1)
    role = None
    for suffix in PAIR_SUFFIXES:
        if name.endswith(suffix) and not name.endswith("-token" + suffix):
            name, role = name[: -len(suffix)], suffix[1:]
            break
    for failure in sorted(FAILURE_ORDER, key=len, reverse=True):
        if name == failure:
            return "", failure, role
        if name.endswith("-" + failure):
            return name[: -len(failure) - 1], failure, role
    if "-" in name:
        group, failure = name.rsplit("-", 1)
        return group, failure, role
    return name, None, role


def cluster_load_warnings(event: dict) -> list[str]:
    """What the tables say about a cluster load's pods: one that died, a clock known badly.

    ``load_pod_failed``: the pod, its index and clients, why, and the records it left (they
    count). ``load_clocks``: a pod whose clock offset was read with more uncertainty, or
    drifted more between start and end, than ``warn_ns`` (the resolution recovery needs).
    """
    load = event.get("load", "default")
    if event.get("kind") == LOAD_POD_FAILED:
        clients = event.get("clients") or []
        which = f"{clients[0]}-{clients[-1]}" if len(clients) > 1 else ",".join(map(str, clients))
        return [
            f"load '{load}': Job pod {event.get('pod')} (index {event.get('index')}, client(s) "
            f"{which}) died before it finished ({event.get('reason')}, exit "
            f"{event.get('exit_code')}); its {event.get('records', 0)} records still count"
        ]
    out = []
    limit = event.get("warn_ns") or 100_000_000
    for pod in event.get("pods") or []:
        if not isinstance(pod, dict):
            continue
        spread = pod.get("clock_uncertainty_ns") or 0
        start, end = pod.get("clock_offset_ns"), pod.get("end_clock_offset_ns")
        drift = abs(end - start) if isinstance(start, int) and isinstance(end, int) else 0
        if max(spread, drift) > limit:
            out.append(
                f"load '{load}': clock of Job pod {pod.get('pod')} known to +/-"
                f"{spread / 1e6:.0f} ms, drift {drift / 1e6:.0f} ms between start and end: "
                f"above the {limit / 1e6:.0f} ms the recovery times need"
            )
        lag = pod.get("start_lag_ns")
        if isinstance(lag, int) and lag > limit:
            out.append(
                f"load '{load}': Job pod {pod.get('pod')} started {lag / 1e6:.0f} ms after the "
                "load's start time (its release came late)"
            )
    return out


def _events(
    test_dir: Path, result: TestResult, endpoint_ns: list[int] | None = None
) -> tuple[int, int] | None:
    """Fault times, startup and pod recovery from ftctl's events.jsonl (epoch ns).

    Returns the span (first, last event) that places the run in time, None without events.
    Two timelines are impossible and left out with a warning: ready before deploy start (no
    startup time) and a pod recovered before the first fault (that recovery is ignored).
    """
    path = test_dir / EVENTS_FILE
    if not is_regular(path):  # a FIFO would block the read forever
        result.warnings.append(f"{path}: not a regular file; skipped")
        return None
    events, warnings = _read_events(path)
    result.warnings.extend(warnings)
    events = [e for e in events if valid_ns(e["t_ns"])]
    reasons: dict[str, int] = {}
    first: dict[str, int] = {}
    for event in events:
        kind = event.get("kind")
        if isinstance(kind, str):
            first.setdefault(kind, event["t_ns"])
        if kind == FAULT_INJECTED:
            result.fault_times_ns.append(event["t_ns"])
        elif kind == FAULT_RESUMED and valid_ns(event.get("fault_t_ns")):
            result.fault_resume_times_ns[event["fault_t_ns"]] = event["t_ns"]
        elif kind == ENDPOINT_FAILURE and endpoint_ns is not None:
            endpoint_ns.append(event["t_ns"])
        elif kind in (LOAD_POD_FAILED, LOAD_CLOCKS):
            result.warnings.extend(cluster_load_warnings(event))
        if kind == EVENT_START and event.get("event") in FAULT_EVENT_KINDS:
            result.planned_faults = (result.planned_faults or 0) + 1
    if events and result.planned_faults is None:
        result.planned_faults = 0
    if result.fault_times_ns:
        result.fault_time_source = "events"
    if DEPLOY_START in first and READY in first:
        if first[READY] < first[DEPLOY_START]:
            reasons["ready before deploy start"] = 1
        else:
            result.startup_s = (first[READY] - first[DEPLOY_START]) / _NS
    if result.fault_times_ns:
        t_f = result.fault_times_ns[0]
        recovered = [
            e["pod_recovered_ns"]
            for e in events
            if e.get("kind") == FAULT_VERIFIED and valid_ns(e.get("pod_recovered_ns"))
        ]
        early = sum(1 for r in recovered if r < t_f)
        if early:
            reasons["pod recovered before the fault"] = early
        recovered = [r for r in recovered if r >= t_f]
        result.pod_recovered_ns = sorted(recovered)
        if recovered:
            result.pod_recovery_s = (min(recovered) - t_f) / _NS
    if reasons:
        excluded = Excluded(str(path), sum(reasons.values()), reasons)
        result.excluded.append(excluded)
        result.warnings.append(excluded.message())
    if not events:
        return None
    times = [e["t_ns"] for e in events]
    return min(times), max(times)


def _log_span(test_log: upstream.TestLog) -> tuple[int, int] | None:
    """Span of the test.log.txt markers (host-local seconds read as UTC) in ns."""
    marks = [t for t in (test_log.deploy_start_s, test_log.ready_s, *test_log.fault_s) if t]
    if not marks:
        return None
    return int(min(marks) * _NS), int(max(marks) * _NS)


def _aiperf_offset_s(loads: list[aiperf.AiperfLoad]) -> float | None:
    """Host UTC offset from aiperf: its summary ``start_time`` is host-local, records are epoch."""
    for load in loads:
        if not len(load.table):
            continue
        for summary in load.summaries.values():
            start = summary.get("start_time")
            local = upstream.naive_epoch_s(start) if isinstance(start, str) else None
            if local is not None:
                return upstream.round_offset_s(local, int(load.table.start_ns.min()) / _NS)
    return None


def _summary_only_metrics(name: str, load: aiperf.AiperfLoad) -> LoadMetrics:
    """Counts (and what can be pooled exactly) from summaries when no per-request file exists."""
    ok = failed = 0
    latency_sum = latency_count = 0.0
    lows: list[float] = []
    highs: list[float] = []
    for choice in load.choices:
        ok += choice.ok
        failed += choice.failed
    for summary in load.summaries.values():
        mean = aiperf.summary_seconds(summary, "request_latency", "avg")
        metric = aiperf.summary_metric(summary, "request_latency")
        count = metric.get("count") if isinstance(metric, dict) else None
        if mean is not None and isinstance(count, int | float):
            latency_sum += mean * count
            latency_count += count
        for stat, sink in (("min", lows), ("max", highs)):
            value = aiperf.summary_seconds(summary, "request_latency", stat)
            if value is not None:
                sink.append(value)
    latency: dict[str, float | None] = dict.fromkeys(LATENCY_STATS)
    if latency_count:
        latency["mean"] = latency_sum / latency_count
    if lows:
        latency["min"], latency["max"] = min(lows), max(highs) if highs else None
    if len(load.summaries) == 1:  # one client: its percentiles are the pooled ones
        (summary,) = load.summaries.values()
        for stat in ("p50", "p90", "p95", "p99"):
            latency[stat] = aiperf.summary_seconds(summary, "request_latency", stat)
    requests = ok + failed
    # aiperf never retries a request: each request is one attempt.
    overall = PhaseStats(
        requests=requests,
        ok=ok,
        failed=failed,
        success_rate=ok / requests if requests else None,
        attempts=requests,
        failed_attempts=failed,
        attempt_success_rate=ok / requests if requests else None,
        latency_s=latency,
    )
    return LoadMetrics(
        name=name, clients=len(load.choices), requests=requests, ok=ok, failed=failed,
        total_attempts=requests, failed_attempts=failed, phases={"overall": overall},
    )  # fmt: skip


def parse_test_dir(
    test_dir: Path,
    *,
    force_parser: str | None = None,
    sla: float | None = None,
    recovery_window: float = 10.0,
) -> TestResult:
    """Parse one test directory (see ``ftctl.results.parse_result_dir``)."""
    if not test_dir.is_dir():
        raise ParseError(f"{test_dir}: not a directory")
    kind, warnings = detect_kind(test_dir, force_parser)
    base, repeat = split_repeat(test_dir.name)
    group, failure, role = split_name(base)
    result = TestResult(name=test_dir.name, path=test_dir, kind=kind, warnings=list(warnings))
    result.group, result.failure, result.pair_role = group, failure, role
    result.repeat = repeat
    result.has_events = (test_dir / EVENTS_FILE).exists()
    result.has_test_log = (test_dir / upstream.TEST_LOG).exists()
    endpoint_ns: list[int] = []
    span = _events(test_dir, result, endpoint_ns) if result.has_events else None

    test_log = None
    if not result.has_events and result.has_test_log:
        test_log = upstream.read_test_log(test_dir / upstream.TEST_LOG, result.warnings)
        result.startup_s = test_log.startup_s
        span = _log_span(test_log)

    tables: dict[str, RequestTable] = {}
    clients: dict[str, int] = {}
    summary_only: dict[str, LoadMetrics] = {}
    aiperf_loads: dict[str, aiperf.AiperfLoad] = {}
    naive_local_times = False
    local_tables: set[str] = set()  # loads whose times are host-local read as UTC
    for name, directory in load_dirs(test_dir).items():
        if kind == "legacy":
            table, count, derived = read_legacy_dir(directory, result.warnings, span)
            if count == 0 and name != "default":
                continue
            naive_local_times |= derived
            if derived:
                local_tables.add(name)
            tables[name], clients[name] = table, count
        else:
            load = aiperf.read_aiperf_dir(directory, result.warnings, span)
            if not load.choices and name != "default":
                continue
            aiperf_loads[name] = load
            result.was_cancelled |= load.was_cancelled
            clients[name] = len(load.choices)
            if load.clients_with_records:
                tables[name] = load.table
            elif load.choices:
                summary_only[name] = _summary_only_metrics(name, load)
    if naive_local_times:
        result.time_resolution_s = 1.0
        result.warnings.append(
            "request times derived from the upstream `time` field (host-local, 1 s resolution) "
            "and total_time"
        )

    if test_log is not None and test_log.fault_s:
        offset = _place_upstream_fault(test_dir, result, test_log, aiperf_loads)
        # Host-local client times move to UTC with the fault, so phases are unchanged and
        # every time this result carries is UTC.
        for name in local_tables:
            tables[name] = tables[name].shifted(-int(offset * _NS))

    t_f = result.fault_times_ns[0] if result.fault_times_ns else None
    for name, table in tables.items():
        result.loads[name] = load_metrics(
            name,
            table,
            t_f,
            sla_s=sla,
            window_s=recovery_window,
            clients=clients[name],
            fault_times_ns=result.fault_times_ns,
        )
    result.loads.update(summary_only)
    for name, load in aiperf_loads.items():
        metrics = result.loads.get(name)
        if metrics is not None:
            metrics.attempts = {str(c.client): c.attempts for c in load.choices}
            metrics.chosen_attempt = {str(c.client): c.attempt for c in load.choices}
            counts = [aiperf.summary_counts(sm) for sm in load.summaries.values()]
            if counts and all(c is not None for c in counts):
                metrics.aiperf_summary_failed = sum(c[1] for c in counts if c is not None)
        result.clients_with_records = (result.clients_with_records or 0) + (
            load.clients_with_records
        )
    result.loads = dict(sorted(result.loads.items(), key=lambda kv: kv[0] != "default"))

    pooled = RequestTable.concat(list(tables.values()))
    if tables:
        result.overall = load_metrics(
            "overall",
            pooled,
            t_f,
            sla_s=sla,
            window_s=recovery_window,
            clients=sum(clients[n] for n in tables),
            fault_times_ns=result.fault_times_ns,
        )
    for metrics in summary_only.values():  # clients with only a summary: counts still add up
        if not tables:
            result.overall = LoadMetrics(
                name="overall", phases={"overall": metrics.phases["overall"]}
            )
            result.overall.clients = metrics.clients
            result.overall.requests, result.overall.ok = metrics.requests, metrics.ok
            result.overall.failed = metrics.failed
            result.overall.total_attempts = metrics.total_attempts
            result.overall.failed_attempts = metrics.failed_attempts
            continue
        result.overall.clients += metrics.clients
        result.overall.requests += metrics.requests
        result.overall.ok += metrics.ok
        result.overall.failed += metrics.failed
        result.overall.total_attempts += metrics.total_attempts
        result.overall.failed_attempts += metrics.failed_attempts
    if summary_only and t_f is not None:
        result.warnings.append(
            "no per-request records (profile_export.jsonl) for some clients: their requests are "
            "counted overall but not placed before/during/after the fault"
        )
    resumed = result.fault_resume_times_ns.get(t_f) if t_f is not None else None
    recovery = result.overall.recovery
    if resumed is not None and recovery is not None and recovery.recovery_time_s is not None:
        result.recovery_from_resume_s = max(
            0.0,
            recovery.recovery_time_s - (resumed - t_f) / _NS,  # type: ignore[operator]
        )
    if endpoint_ns:  # one endpoint serves every load: per load only when there is one
        for metrics in [result.overall, *(result.loads.values() if len(result.loads) == 1 else ())]:
            _count_endpoint_failures(metrics, endpoint_ns, t_f)
    result.requests = pooled
    if any(test_dir.glob(f"*/*{METRICS_SUFFIX}")):
        result.server = summarize_server(test_dir, t_f)
    result.excluded.extend(pooled.excluded)
    result.excluded_records = sum(e.count for e in result.excluded)
    if sum(clients.values()) == 0:
        raise ParseError(
            f"{test_dir}: no {kind} client results found"
            + (" (forced with --force-parser)" if force_parser else "")
        )
    if result.overall.requests == 0:
        result.warnings.append(f"{test_dir}: no requests found")
    return result


def _count_endpoint_failures(metrics: LoadMetrics, times_ns: list[int], t_f: int | None) -> None:
    """Put the endpoint's failed connections in the phases: before T_f, or at/after it."""
    counts = {"overall": len(times_ns)}
    if t_f is not None:
        counts["before"] = sum(1 for t in times_ns if t < t_f)
        counts["after"] = len(times_ns) - counts["before"]
    for name, phase in metrics.phases.items():
        phase.endpoint_failures = counts.get(name)


def _place_upstream_fault(
    test_dir: Path,
    result: TestResult,
    test_log: upstream.TestLog,
    aiperf_loads: dict[str, aiperf.AiperfLoad],
) -> float:
    """Fault time (UTC) and log-based recovery of an upstream directory (test.log.txt markers).

    The markers are host-local; aiperf records and container logs are UTC, so the host offset
    is inferred first and the fault times are stored in UTC. Returns the offset (local − UTC,
    seconds), by which the caller moves host-local legacy client times to UTC too.
    """
    fault_local = test_log.fault_s[0]
    offset, source = None, None
    if aiperf_loads:
        offset, source = _aiperf_offset_s(list(aiperf_loads.values())), "aiperf start_time"
    if offset is None:
        offset, source = upstream.infer_offset_from_logs(test_dir, fault_local), "previous.log"
    if offset is None:
        offset, source = upstream.machine_offset_s(fault_local), "this machine's time zone"
    result.fault_times_ns = [int((t - offset) * _NS) for t in test_log.fault_s]
    result.fault_time_source = "test.log (1 s resolution)"
    result.utc_offset_s, result.utc_offset_source = offset, source
    if source == "this machine's time zone":
        result.warnings.append(
            "host UTC offset of test.log.txt guessed from this machine's time zone "
            f"({offset / 3600:+.2f} h): UTC-based times may be off by whole hours"
        )
    fault_utc = fault_local - offset
    if result.kind == "legacy":
        result.upstream_log_recovery_s = upstream.ready_recovery_s(test_dir, fault_utc)
        result.upstream_log_recovery_method = (
            "upstream: first ready log line after the fault − fault time (test.log, 1 s)"
        )
    else:
        result.upstream_log_recovery_s = upstream.restart_gap_s(test_dir)
        result.upstream_log_recovery_method = (
            "upstream: container restart gap (first line of the current log − last line of "
            ".previous.log)"
        )
    return offset
