"""Tables of parsed results: upstream legacy group table, aiperf Metric|Value, ftctl phases."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftctl.results.model import FaultMetrics, LoadMetrics, Recovery, TestResult
    from ftctl.results.repeats import RepeatGroup

FORMATS = ("fancy", "markdown", "json", "csv")
_TABLEFMT = {"fancy": "fancy_grid", "markdown": "github", "html": "html"}  # html: escaped


def _tabulate(
    rows: list[list[Any]],
    headers: list[str],
    fmt: str,
    floatfmt: str = ".2f",
    stralign: str = "left",
) -> str:
    from tabulate import tabulate

    if fmt == "markdown":  # a stacked header would break a markdown table
        headers = [h.replace("\n", " ") for h in headers]
    return tabulate(
        rows,
        headers=headers,
        tablefmt=_TABLEFMT[fmt],
        floatfmt=floatfmt,
        missingval="N/A",
        stralign=stralign,
    )


def _count(value: int | None) -> int | None:
    """A count of requests: an integer (upstream's table printed 149.00; ftctl prints 149)."""
    return None if value is None else int(value)


def _failure_rank(result: TestResult) -> tuple[int, str, int, int]:
    from ftctl.results.parse import FAILURE_ORDER

    failure = result.failure or ""
    rank = FAILURE_ORDER.index(failure) if failure in FAILURE_ORDER else len(FAILURE_ORDER)
    role = {"overflow": 0, "recovery": 1}.get(result.pair_role or "", 0)
    return rank, failure, role, result.repeat or 0


def ordered(results: list[TestResult]) -> list[TestResult]:
    """Results grouped by scenario prefix, rows in the failure-table order, pairs adjacent,
    repeats (``T#i``) in repeat order."""
    return sorted(results, key=lambda r: (r.group or "", *_failure_rank(r)))


def _failure_label(result: TestResult) -> str:
    label = result.failure or result.name
    label = f"{label} ({result.pair_role})" if result.pair_role else label
    return f"{label} #{result.repeat}" if result.repeat else label


UPSTREAM_LEGEND = (
    "Before/After above: the upstream two-way split (before = ended at or before the fault, "
    "after = the rest, i.e. ftctl's during + after). Attempts over the same split:"
)


def _split_attempts(result: TestResult) -> str:
    """``before: attempts 149, failed 0, retried requests 0; after: …`` (upstream split)."""
    parts = []
    for label, key in (("before", "upstream_before"), ("after", "upstream_after")):
        phase = result.overall.phases.get(key)
        if phase is None:
            continue
        parts.append(
            f"{label}: attempts {phase.attempts}, failed attempts {phase.failed_attempts}, "
            f"retried requests {phase.retried_requests}"
        )
    return "; ".join(parts) or "no attempts"


def legacy_group_tables(results: list[TestResult], fmt: str, sla: float | None = None) -> str:
    """Upstream legacy table per test group (``Test Group: <prefix>``), REFERENCE §4.

    Before/After use the upstream two-way split (before = ended ≤ T_f, after = the rest, so
    ftctl's "during" is in it), said in a legend under each table; latency is the mean over
    successful requests; Recovery is the client-perceived recovery time (README, metric
    notes). The table itself is upstream's, column for column; the attempts over the same
    split follow it, one line per row. A ``Recovery (logs)`` column is added when upstream
    log-based figures exist.
    """
    blocks: list[str] = []
    groups: dict[str, list[TestResult]] = {}
    for result in ordered(results):
        groups.setdefault(result.group or result.name, []).append(result)
    with_logs = any(r.upstream_log_recovery_s is not None for r in results)
    headers = ["Failure", "Startup", "Success\nBefore", "Failed\nBefore", "Success\nAfter"]
    headers += ["Failed\nAfter", "Latency\nBefore", "Latency\nAfter"]
    if sla is not None:
        headers += ["Violations\nBefore", "Violations\nAfter"]
    headers += ["Recovery"] + (["Recovery\n(logs)"] if with_logs else [])
    for group, members in groups.items():
        rows = []
        for result in members:
            before = result.overall.phases.get("upstream_before")
            after = result.overall.phases.get("upstream_after")
            row: list[Any] = [_failure_label(result), result.startup_s]
            row += [
                _count(before.ok) if before else None,
                _count(before.failed) if before else None,
                _count(after.ok) if after else None,
                _count(after.failed) if after else None,
                before.latency_s["mean"] if before else None,
                after.latency_s["mean"] if after else None,
            ]
            if sla is not None:
                row += [
                    _count(before.sla_violations) if before else None,
                    _count(after.sla_violations) if after else None,
                ]
            recovery = result.overall.recovery
            row.append(recovery.recovery_time_s if recovery else None)
            if with_logs:
                row.append(result.upstream_log_recovery_s)
            rows.append(row)
        table = _tabulate(rows, headers, fmt, stralign="center")
        attempts = [f"  {_failure_label(r)}: {_split_attempts(r)}" for r in members]
        blocks.append(f"Test Group: {group}\n{table}\n{UPSTREAM_LEGEND}\n" + "\n".join(attempts))
    return "\n\n".join(blocks)


def _seconds(value: float | None, digits: int = 2) -> str | None:
    return None if value is None else f"{value:.{digits}f} sec"


def aiperf_summary_table(result: TestResult, fmt: str, sla: float | None = None) -> str:
    """The upstream aiperf ``Metric | Value`` table of one test (REFERENCE §4)."""
    metrics = result.overall
    overall = metrics.phases.get("overall")
    latency = overall.latency_s if overall else {}
    recovery = metrics.recovery
    rows: list[list[Any]] = [
        ["Test Directory", result.name],
        ["Number of Clients", metrics.clients],
        ["=== Deployment Metrics ===", ""],
        ["Startup Time", _seconds(result.startup_s)],
        ["Recovery Time", _seconds(recovery.recovery_time_s if recovery else None)],
    ]
    if result.upstream_log_recovery_s is not None:
        rows.append(["Recovery Time (upstream logs)", _seconds(result.upstream_log_recovery_s)])
    if result.pod_recovery_s is not None:
        rows.append(["Pod Recovery Time", _seconds(result.pod_recovery_s)])
    rate = overall.success_rate if overall else None
    rows += [
        ["=== Request Metrics ===", ""],
        ["Total Requests", metrics.requests],
        ["Successful Requests", metrics.ok],
        ["Failed Requests", metrics.failed],
        ["Success Rate", None if rate is None else f"{rate * 100:.2f}%"],
        ["Total Attempts", metrics.total_attempts],
        ["Failed Attempts", metrics.failed_attempts],
        ["Retried Requests", metrics.retried_requests],
        ["=== Latency Metrics (seconds) ===", ""],
        ["Mean Latency", _fixed(latency.get("mean"))],
    ]
    if sla is not None:
        violations = overall.sla_violations if overall else None
        status = "N/A" if violations is None else ("PASS" if violations == 0 else "FAIL")
        rows.append(["SLA Status", f"{status} ({violations} over {sla:g} s)"])
    rows += [
        ["P50 Latency", _fixed(latency.get("p50"))],
        ["P90 Latency", _fixed(latency.get("p90"))],
        ["P99 Latency", _fixed(latency.get("p99"))],
    ]
    if overall and (overall.ttft_mean_s is not None or overall.itl_mean_s is not None):
        rows += [
            ["=== Token Metrics ===", ""],
            ["TTFT (mean)", _ms(overall.ttft_mean_s)],
            ["ITL (mean)", _ms(overall.itl_mean_s)],
        ]
    rows += [
        ["=== Throughput Metrics ===", ""],
        ["Total Throughput", _rps(metrics.throughput_rps)],
        ["Avg Client Throughput", _rps(metrics.avg_client_throughput_rps)],
    ]
    table = _tabulate(rows, ["Metric", "Value"], fmt)
    theirs = sum(
        m.aiperf_summary_failed
        for m in result.loads.values()
        if m.aiperf_summary_failed is not None
    )
    if any(m.aiperf_summary_failed is not None for m in result.loads.values()) and (
        theirs != metrics.failed
    ):
        table += (
            f"\nFailed requests: {metrics.failed} here, {theirs} in aiperf's own summary "
            "(a stream cut by an error event counts as failed here)"
        )
    return table


def _fixed(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value * 1000:.2f} ms"


def _rps(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f} req/s"


PHASE_LABELS = {
    "before": "before (ended before the fault)",
    "during": "during (in flight at the fault)",
    "after": "after (started at or after it)",
    "overall": "overall",
}


def _percent(rate: float | None) -> str | None:
    return None if rate is None else f"{rate * 100:.1f}%"


def phase_table(metrics: LoadMetrics, fmt: str) -> str:
    """ftctl's phase table: before/during/after/overall, requests and attempts, p50, p99."""
    headers = ["Phase", "Requests", "Failed", "Success\nrate", "Attempts", "Failed\nattempts"]
    headers += ["Retried\nrequests", "Attempt\nsuccess", "p50 (s)", "p99 (s)", "TTFT (s)"]
    rows = []
    names = ("before", "during", "after", "overall") if metrics.recovery else ("overall",)
    # Shown when the endpoint recorded failed forwards (the kubernetes port-forward).
    endpoint = any(p.endpoint_failures is not None for p in metrics.phases.values())
    if endpoint:
        headers.append("Endpoint\nfailures")
    for name in names:
        phase = metrics.phases.get(name)
        if phase is None:
            continue
        rows.append(
            [
                PHASE_LABELS[name] if metrics.recovery else name,
                phase.requests,
                phase.failed,
                _percent(phase.success_rate),
                phase.attempts,
                phase.failed_attempts,
                phase.retried_requests,
                _percent(phase.attempt_success_rate),
                phase.latency_s["p50"],
                phase.latency_s["p99"],
                phase.ttft_mean_s,
            ]
            + ([phase.endpoint_failures] if endpoint else [])
        )
    return _tabulate(rows, headers, fmt, floatfmt=".3f")


def counts_line(metrics: LoadMetrics) -> str:
    """``requests 720, failed 3; attempts 726, failed attempts 9, retried requests 6``."""
    return (
        f"requests {metrics.requests}, failed {metrics.failed}; attempts "
        f"{metrics.total_attempts}, failed attempts {metrics.failed_attempts}, retried requests "
        f"{metrics.retried_requests}"
    )


def recovery_phrase(recovery: Recovery) -> str:
    """``2.500 s after the fault (first error +0.100 s, downtime …)`` or ``NOT RECOVERED (…)``."""
    if recovery.no_visible_impact:
        return "0.000 s (no visible impact: no attempt failed after the fault)"
    failed = (
        f"{recovery.failed_requests_after_fault} failed requests and "
        f"{recovery.failed_attempts_after_fault} failed attempts during + after the fault"
    )
    spans = (
        f"first error +{recovery.time_to_first_error_s:.3f} s, downtime "
        f"{recovery.downtime_s:.3f} s, failure span {recovery.failure_span_s:.3f} s"
    )
    if recovery.recovered:
        return (
            f"{recovery.recovery_time_s:.3f} s after the fault ({spans}, {failed}, "
            f"window {recovery.window_s:.3f} s)"
        )
    return f"NOT RECOVERED ({spans}, {failed})"


FAULT_LEGEND = (
    "Per fault: before = ended before this fault, started at or after the previous one; "
    "during = in flight at this fault; after = started at or after it; during and after end "
    "before the next fault (a request in flight at the next fault is that fault's during). "
    "Recovery counts the attempts started before the next fault."
)


def _pod_back_s(result: TestResult, fault: FaultMetrics) -> float | None:
    """This fault's pod recovery: the first pod back at or after it and before the next."""
    back = [
        t
        for t in result.pod_recovered_ns
        if t >= fault.t_ns and (fault.next_ns is None or t < fault.next_ns)
    ]
    return (min(back) - fault.t_ns) / 1e9 if back else None


def fault_table(result: TestResult, metrics: LoadMetrics, fmt: str) -> str:
    """One block of rows per fault (before/during/after), requests and attempts, recovery."""
    headers = ["Fault", "Phase", "Requests", "Failed", "Attempts", "Failed\nattempts"]
    headers += ["Retried\nrequests", "Success\nrate", "Recovery\n(s)", "Downtime\n(s)"]
    headers += ["Pod back\n(s)"]
    rows = []
    for fault in metrics.faults:
        rec = fault.recovery
        recovery_s = None
        if rec is not None:
            # A text column (it may say "not recovered"): floatfmt does not reach it.
            recovery_s = "not recovered" if not rec.recovered else f"{rec.recovery_time_s:.3f}"
        at = "" if fault.at_s is None else f" at +{fault.at_s:.1f} s"
        for position, name in enumerate(("before", "during", "after")):
            phase = fault.phases[name]
            first = position == 0
            rows.append(
                [
                    f"#{fault.index}{at}" if first else "",
                    name,
                    phase.requests,
                    phase.failed,
                    phase.attempts,
                    phase.failed_attempts,
                    phase.retried_requests,
                    _percent(phase.success_rate),
                    recovery_s if first else "",
                    (rec.downtime_s if rec else None) if first else "",
                    _pod_back_s(result, fault) if first else "",
                ]
            )
    table = _tabulate(rows, headers, fmt, floatfmt=".3f")
    lines = [
        f"  fault #{f.index}: Recovery: {recovery_phrase(f.recovery)}"
        for f in metrics.faults
        if f.recovery is not None
    ]
    return "\n".join([table, FAULT_LEGEND, *lines])


def recovery_line(result: TestResult, metrics: LoadMetrics | None = None) -> str:
    """One line: recovery, time to first error, downtime, failure span, window, pod/log figures.

    Every figure is the one defined in the README's metric notes; failures "after the fault"
    are those of the during + after phases (failed attempts that ended at or after the fault).
    """
    metrics = metrics or result.overall
    recovery = metrics.recovery
    parts: list[str] = []
    if recovery is None:
        if result.fault_times_ns:  # a fault, but no metrics to place it in
            parts.append("Recovery: not measured (no per-request records)")
        elif result.planned_faults == 0 or (result.failure == "none" and not result.planned_faults):
            parts.append("Recovery: no fault in this test")
        elif result.planned_faults:
            parts.append(
                f"Recovery: no fault time ({result.planned_faults} fault events ran but none "
                "recorded a fault_injected event)"
            )
        else:
            parts.append("Recovery: no fault time (no fault_injected event or test.log marker)")
    else:
        parts.append("Recovery: " + recovery_phrase(recovery))
    if result.fault_time_source and recovery is not None:
        parts.append(f"fault time from {result.fault_time_source}")
    resumed = (
        result.fault_resume_times_ns.get(result.fault_times_ns[0])
        if result.fault_times_ns and getattr(result, "fault_resume_times_ns", None)
        else None
    )
    if resumed is not None:  # a stall or partition: it ended later than it began
        held = (resumed - result.fault_times_ns[0]) / 1e9
        since = ""
        if recovery is not None and recovery.recovery_time_s is not None:
            # as recovery_from_resume_s, for these metrics: 0 when recovered before the end
            since = f", recovery {max(0.0, recovery.recovery_time_s - held):.3f} s after it"
        parts.append(f"fault ended (resume/heal) +{held:.3f} s{since}")
    if result.pod_recovery_s is not None:
        parts.append(f"pod recovery {result.pod_recovery_s:.3f} s")
    if result.upstream_log_recovery_s is not None:
        parts.append(
            f"{result.upstream_log_recovery_method}: {result.upstream_log_recovery_s:.2f} s"
        )
    line = "; ".join(parts)
    lag = metrics.dispatch_lag_ms
    if lag:
        line += (
            f"\nOpen loop: {lag['requests']} scheduled requests, dispatch lag p50 "
            f"{lag['p50']:.2f} ms, p99 {lag['p99']:.2f} ms, max {lag['max']:.2f} ms"
        )
    return line


def _short_metric(name: str) -> str:
    return name.removeprefix("dynamo_frontend_").removeprefix("dynamo_component_")


def server_table(result: TestResult, fmt: str) -> str:
    """One row per service: scrapes, key gauges before -> after the fault, RSS and CPU."""
    rows = []
    for svc in result.server:
        gauges = []
        for name, phases in svc.gauges.items():
            before, after = phases.get("before"), phases.get("after")
            if before and after:
                gauges.append(
                    f"{_short_metric(name)} {before['mean']:.2g} -> {after['mean']:.2g}"
                    f" (max {after['max']:g})"
                )
            else:
                gauges.append(f"{_short_metric(name)} mean {phases['overall']['mean']:.2g}")
        rows.append(
            [
                svc.service,
                svc.pods,
                f"{svc.scrapes - svc.failed_scrapes}/{svc.scrapes}",
                "; ".join(gauges) or None,
                _fixed(svc.rss_max_mb),
                _fixed(svc.cpu_s),
            ]
        )
    headers = ["Service", "Pods", "Scrapes ok", "Mean before -> after fault", "RSS max MB", "CPU s"]
    return _tabulate(rows, headers, fmt)


def render_text(results: list[TestResult], fmt: str, sla: float | None = None) -> str:
    """Fancy or markdown text for every result: group/summary tables, then phases + recovery."""
    out: list[str] = []
    legacy = [r for r in results if r.kind == "legacy"]
    if legacy:
        out.append(legacy_group_tables(legacy, fmt, sla))
    for result in ordered(results):
        title = f"== {result.name} ({result.kind})"
        if result.pair_role:
            title += f" — token overflow, {result.pair_role} phase"
        out.append(title)
        if result.kind == "aiperf":
            out.append(aiperf_summary_table(result, fmt, sla))
        for name, metrics in result.loads.items():
            if len(result.loads) > 1:
                out.append(f"Load: {name}")
            out.append(counts_line(metrics))
            out.append(phase_table(metrics, fmt))
            out.append(recovery_line(result, metrics))
            if len(metrics.faults) > 1:
                out.append(f"{len(metrics.faults)} faults; the phases above are the first's:")
                out.append(fault_table(result, metrics, fmt))
        if len(result.loads) > 1:
            out.append("All loads:")
            out.append(counts_line(result.overall))
            out.append(phase_table(result.overall, fmt))
            out.append(recovery_line(result))
            if len(result.overall.faults) > 1:
                out.append(fault_table(result, result.overall, fmt))
        if result.server:
            out.append("Server side (scraped /metrics and processes):")
            out.append(server_table(result, fmt))
        out.extend(f"warning: {w}" for w in result.warnings)
    from ftctl.results.repeats import repeated

    for group in repeated(results):
        out.append(repeat_table(group, fmt))
    return "\n\n".join(out)


def repeat_table(group: RepeatGroup, fmt: str) -> str:
    """One test run N times (``T#1..T#N``): each headline figure's spread over the runs."""
    rows = []
    for key, stats in group.metrics().items():
        rows.append(
            [key, f"{stats['runs']}/{stats['runs'] + stats['missing']}"]
            + [stats[s] for s in ("min", "median", "mean", "max")]
        )
    headers = ["Metric", "Runs", "Min", "Median", "Mean", "Max"]
    title = f"== {group.test}: {len(group.runs)} runs ({', '.join(group.names)})"
    note = "Runs: the runs that have the figure (a run that did not recover has no recovery time)."
    return f"{title}\n{_tabulate(rows, headers, fmt, floatfmt='.4g')}\n{note}"


CSV_COLUMNS = [
    "test",
    "kind",
    "group",
    "failure",
    "load",
    "phase",
    "requests",
    "ok",
    "failed",
    "success_rate",
    "attempts",
    "failed_attempts",
    "retried_requests",
    "attempt_success_rate",
    *(f"latency_{s}_s" for s in ("mean", "min", "max", "p50", "p90", "p95", "p99")),
    "ttft_mean_s",
    "itl_mean_s",
    "sla_violations",
    "recovery_time_s",
    "time_to_first_error_s",
    "downtime_s",
    "failure_span_s",
    "recovered",
    "startup_s",
    "pod_recovery_s",
    "upstream_log_recovery_s",
    "throughput_rps",
]


def render_csv(results: list[TestResult]) -> str:
    """One CSV row per test × load × phase (the load "overall" pools every load); with several
    faults also per fault × phase, the phase named ``fault<k>:<phase>``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in ordered(results):
        loads = dict(result.loads)
        loads["overall"] = result.overall
        for load_name, metrics in loads.items():
            rows = [(name, phase, metrics.recovery) for name, phase in metrics.phases.items()]
            if len(metrics.faults) > 1:  # fault<k>:<phase>, with that fault's recovery
                rows += [
                    (f"fault{f.index}:{name}", phase, f.recovery)
                    for f in metrics.faults
                    for name, phase in f.phases.items()
                ]
            for phase_name, phase, recovery in rows:
                writer.writerow(
                    [
                        result.name,
                        result.kind,
                        result.group,
                        result.failure,
                        load_name,
                        phase_name,
                        phase.requests,
                        phase.ok,
                        phase.failed,
                        phase.success_rate,
                        phase.attempts,
                        phase.failed_attempts,
                        phase.retried_requests,
                        phase.attempt_success_rate,
                        *(phase.latency_s[s] for s in ("mean", "min", "max")),
                        *(phase.latency_s[s] for s in ("p50", "p90", "p95", "p99")),
                        phase.ttft_mean_s,
                        phase.itl_mean_s,
                        phase.sla_violations,
                        recovery.recovery_time_s if recovery else None,
                        recovery.time_to_first_error_s if recovery else None,
                        recovery.downtime_s if recovery else None,
                        recovery.failure_span_s if recovery else None,
                        recovery.recovered if recovery else None,
                        result.startup_s,
                        result.pod_recovery_s,
                        result.upstream_log_recovery_s,
                        metrics.throughput_rps,
                    ]
                )
    return buffer.getvalue()
