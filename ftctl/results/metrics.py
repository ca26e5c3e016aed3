"""Metrics of DESIGN.md §5 as pure functions over a RequestTable (numpy, vectorised)."""

from __future__ import annotations

import numpy as np

from ftctl.results.common import NS_PER_S as _NS
from ftctl.results.model import (
    LATENCY_STATS,
    AttemptTable,
    FaultMetrics,
    LoadMetrics,
    PhaseStats,
    Recovery,
    RequestTable,
)


def unknown_end(table: RequestTable | AttemptTable) -> np.ndarray:
    """Failed requests (or attempts) whose end time is not known.

    aiperf 0.13 stamps a request that failed with an HTTP error with ``request_end_ns ==
    request_start_ns`` (seen in every such record of its real output), so a zero-duration
    failure tells when it was sent, not when it failed.
    """
    return ~table.ok & (table.end_ns == table.start_ns)


def latest_end(table: RequestTable | AttemptTable) -> np.ndarray:
    """End times, with an unknown end replaced by the latest plausible one for classification:
    start + the longest successful request of the table (start itself when none succeeded).
    """
    unknown = unknown_end(table)
    if not unknown.any():
        return table.end_ns
    ok = table.ok
    bound = int((table.end_ns[ok] - table.start_ns[ok]).max()) if ok.any() else 0
    return np.where(unknown, table.start_ns + bound, table.end_ns)


def phase_masks(table: RequestTable | AttemptTable, t_f_ns: int | None) -> dict[str, np.ndarray]:
    """Boolean masks of the phases of every request (or attempt) relative to the fault time T_f.

    before: ended before T_f; during: started before T_f and ended at or after it; after:
    started at or after T_f. The upstream two-way split: upstream_before = ended ≤ T_f,
    upstream_after = the rest. Without a fault every request is "before" (the fault never came).
    A failure whose end is unknown (see ``unknown_end``) counts as ended at ``latest_end``: one
    sent shortly before T_f was in flight at T_f as far as anyone can tell.
    """
    n = len(table)
    everything = np.ones(n, bool)
    if t_f_ns is None:
        nothing = np.zeros(n, bool)
        return {
            "before": everything,
            "during": nothing,
            "after": nothing,
            "overall": everything,
            "upstream_before": everything,
            "upstream_after": nothing,
        }
    end_ns = latest_end(table)
    before = end_ns < t_f_ns
    after = table.start_ns >= t_f_ns
    upstream_before = end_ns <= t_f_ns
    return {
        "before": before,
        "during": ~before & ~after,
        "after": after,
        "overall": everything,
        "upstream_before": upstream_before,
        "upstream_after": ~upstream_before,
    }


def latency_stats(latency_s: np.ndarray) -> dict[str, float | None]:
    """mean/min/max/p50/p90/p95/p99 of pooled latencies (linear interpolation); None if empty."""
    values = latency_s[~np.isnan(latency_s)]
    if values.size == 0:
        return dict.fromkeys(LATENCY_STATS)
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return {
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
    }


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def phase_stats(
    table: RequestTable,
    mask: np.ndarray,
    sla_s: float | None = None,
    attempt_mask: np.ndarray | None = None,
) -> PhaseStats:
    """Counts, success rate and pooled latency of the successful requests selected by ``mask``.

    success_rate = ok / requests; sla_violations = successful requests with latency > sla_s;
    retried_requests = selected requests with more than one attempt. The attempts are those
    selected by ``attempt_mask`` over ``table.attempts()`` (an attempt's phase is decided by
    its own start and end, as a request's is; default: the attempts of the selected requests):
    attempt_success_rate = (attempts − failed attempts) / attempts.
    """
    requests = int(mask.sum())
    good = mask & table.ok
    ok = int(good.sum())
    latency = table.latency_s[good]
    rows = table.attempts()
    tries, _failed = table.attempt_counts()
    if attempt_mask is None:
        attempt_mask = mask[rows.request]
    attempts = int(attempt_mask.sum())
    failed_attempts = int((attempt_mask & ~rows.ok).sum())
    return PhaseStats(
        requests=requests,
        ok=ok,
        failed=requests - ok,
        success_rate=(ok / requests) if requests else None,
        attempts=attempts,
        failed_attempts=failed_attempts,
        retried_requests=int((tries[mask] > 1).sum()),
        attempt_success_rate=((attempts - failed_attempts) / attempts) if attempts else None,
        latency_s=latency_stats(latency),
        ttft_mean_s=_mean(table.ttft_s[good]),
        itl_mean_s=_mean(table.itl_s[good]),
        sla_violations=None if sla_s is None else int((latency > sla_s).sum()),
    )


def recovery(table: RequestTable, t_f_ns: int, window_s: float = 10.0) -> Recovery:
    """Client-perceived recovery after the fault at ``t_f_ns``, measured on attempts.

    The definitions are those of the README's metric notes. A failed attempt is *after the
    fault* when it ended at or after T_f (an unknown end, see ``unknown_end``, counts as its
    latest plausible end); its failure time is f = max(start, T_f). With F the first and L the
    last failure time:

    - no failed attempt after the fault → recovery 0 s, no visible impact;
    - time_to_first_error_s = F − T_f; failure_span_s = L − F;
    - R = the start of the first successful attempt started at or after F such that every
      attempt started in [R, R + W] succeeded (W = ``window_s``, reported shortened to the last
      attempt start); recovery_time_s = R − T_f (≥ time_to_first_error_s); no such R → not
      recovered (None);
    - downtime_s = the length of the union of the intervals [f, s(f)) over every failure, where
      s(f) is the start of the first successful attempt started at or after f (the end of the
      load when none did): the time after T_f during which no attempt that started succeeded.
    """
    attempts = table.attempts()
    window_ns = int(window_s * _NS)
    failed_late = ~attempts.ok & (latest_end(attempts) >= t_f_ns)
    failed_after = int(failed_late.sum())
    failed_requests = int((~table.ok & (latest_end(table) >= t_f_ns)).sum())
    if failed_after == 0:
        return Recovery(0.0, None, 0.0, 0.0, 0, failed_requests, window_s, True, True)
    fail_at = np.sort(np.maximum(attempts.start_ns[failed_late], t_f_ns))
    first, last = int(fail_at[0]), int(fail_at[-1])
    ok_starts = np.sort(attempts.start_ns[attempts.ok])
    load_end = int(max(attempts.end_ns.max(), last))
    # Downtime: s(f) is non-decreasing in f, so the intervals merge in one sweep.
    after = np.append(ok_starts, load_end)[np.searchsorted(ok_starts, fail_at, side="left")]
    after = np.maximum(after, fail_at)
    covered = np.maximum(fail_at, np.concatenate(([first], after[:-1])))
    downtime_ns = int(np.clip(after - covered, 0, None).sum())
    result = Recovery(
        None,
        (first - t_f_ns) / _NS,
        downtime_ns / _NS,
        (last - first) / _NS,
        failed_after,
        failed_requests,
        window_s,
        recovered=False,
        no_visible_impact=False,
    )
    candidates = ok_starts[ok_starts >= first]
    if candidates.size == 0:
        return result
    fail_starts = np.sort(attempts.start_ns[~attempts.ok])
    # The first failed attempt starting at or after each candidate R: R qualifies when it is
    # beyond R + W (or there is none).
    index = np.searchsorted(fail_starts, candidates, side="left")
    next_fail = np.append(fail_starts, np.iinfo(np.int64).max)[index]
    good = next_fail > candidates + window_ns
    if not good.any():
        return result
    r_ns = int(candidates[int(np.argmax(good))])
    last_start = int(attempts.start_ns.max())
    result.recovery_time_s = (r_ns - t_f_ns) / _NS
    result.window_s = min(window_s, max(0.0, (last_start - r_ns) / _NS))
    result.recovered = True
    return result


def throughput(table: RequestTable) -> tuple[float | None, dict[str, float], float | None]:
    """Successful requests per second: total (over the load wall time) and per client.

    Wall time = last end − first start; per client likewise over its own requests. Returns
    (total, {client: rps}, mean of the per-client rates).
    """
    if len(table) == 0:
        return None, {}, None
    wall_s = (int(table.end_ns.max()) - int(table.start_ns.min())) / _NS
    total = (int(table.ok.sum()) / wall_s) if wall_s > 0 else None
    clients, inverse = np.unique(table.client, return_inverse=True)
    ok_count = np.bincount(inverse, weights=table.ok.astype(np.float64), minlength=clients.size)
    first = np.full(clients.size, np.iinfo(np.int64).max, np.int64)
    last = np.full(clients.size, np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, inverse, table.start_ns)
    np.maximum.at(last, inverse, table.end_ns)
    per_client: dict[str, float] = {}
    for i, client in enumerate(clients.tolist()):
        span = (int(last[i]) - int(first[i])) / _NS
        if span > 0:
            per_client[str(client)] = float(ok_count[i]) / span
    mean = float(np.mean(list(per_client.values()))) if per_client else None
    return total, per_client, mean


def fault_phase_masks(
    table: RequestTable | AttemptTable,
    t_f_ns: int,
    previous_ns: int | None,
    next_ns: int | None,
) -> dict[str, np.ndarray]:
    """Phases of one fault among several, bounded by its neighbours (see ``FaultMetrics``).

    before: ended before T_f and started at or after the previous fault; during: started
    before T_f, ended at or after it and before the next fault; after: started at or after T_f
    and ended before the next fault; overall: any of the three. An unknown end counts as
    ``latest_end``. During + after of every fault partition the requests that ended at or
    after the first fault.
    """
    end_ns = latest_end(table)
    start_ns = table.start_ns
    until = np.ones(len(table), bool) if next_ns is None else end_ns < next_ns
    since = np.ones(len(table), bool) if previous_ns is None else start_ns >= previous_ns
    before = (end_ns < t_f_ns) & since
    during = (start_ns < t_f_ns) & (end_ns >= t_f_ns) & until
    after = (start_ns >= t_f_ns) & until
    return {"before": before, "during": during, "after": after, "overall": before | during | after}


def _started_before(table: RequestTable, limit_ns: int) -> RequestTable:
    """The requests, and of them the attempts, that started before ``limit_ns``."""
    import dataclasses

    sub = table.select(table.start_ns < limit_ns)
    rows = sub.attempt_rows
    if rows is None:
        return sub
    keep = rows.start_ns < limit_ns
    kept = AttemptTable(rows.request[keep], rows.start_ns[keep], rows.end_ns[keep], rows.ok[keep])
    return dataclasses.replace(sub, attempt_rows=kept)


def fault_metrics(
    table: RequestTable,
    fault_times_ns: list[int],
    *,
    sla_s: float | None = None,
    window_s: float = 10.0,
) -> list[FaultMetrics]:
    """Phases and recovery of every fault (time order), each bounded by the next fault."""
    times = sorted(fault_times_ns)
    attempts = table.attempts()
    first_start = int(table.start_ns.min()) if len(table) else None
    out: list[FaultMetrics] = []
    for index, t_f in enumerate(times):
        previous = times[index - 1] if index else None
        following = times[index + 1] if index + 1 < len(times) else None
        masks = fault_phase_masks(table, t_f, previous, following)
        attempt_masks = fault_phase_masks(attempts, t_f, previous, following)
        scope = table if following is None else _started_before(table, following)
        out.append(
            FaultMetrics(
                index=index + 1,
                t_ns=t_f,
                at_s=None if first_start is None else (t_f - first_start) / _NS,
                next_ns=following,
                phases={
                    phase: phase_stats(table, mask, sla_s, attempt_masks[phase])
                    for phase, mask in masks.items()
                },
                recovery=recovery(scope, t_f, window_s) if len(scope) else None,
            )
        )
    return out


def load_metrics(
    name: str,
    table: RequestTable,
    t_f_ns: int | None,
    *,
    sla_s: float | None = None,
    window_s: float = 10.0,
    clients: int | None = None,
    fault_times_ns: list[int] | None = None,
) -> LoadMetrics:
    """Every metric of one load: phases, recovery (when there is a fault), throughput.

    ``t_f_ns`` sets the load's phases (the first fault); ``fault_times_ns`` (every fault,
    default ``[t_f_ns]``) gives the per-fault figures of ``fault_metrics``.
    """
    if fault_times_ns is None:
        fault_times_ns = [] if t_f_ns is None else [t_f_ns]
    masks = phase_masks(table, t_f_ns)
    attempt_masks = phase_masks(table.attempts(), t_f_ns)
    total, per_client, mean = throughput(table)
    ok = int(table.ok.sum())
    counts = table.attempt_counts()
    wall = (int(table.end_ns.max()) - int(table.start_ns.min())) / _NS if len(table) else None
    return LoadMetrics(
        name=name,
        clients=clients if clients is not None else int(np.unique(table.client).size),
        requests=len(table),
        ok=ok,
        failed=len(table) - ok,
        total_attempts=int(counts[0].sum()),
        failed_attempts=int(counts[1].sum()),
        retried_requests=int((counts[0] > 1).sum()),
        phases={
            phase: phase_stats(table, mask, sla_s, attempt_masks[phase])
            for phase, mask in masks.items()
        },
        recovery=None if t_f_ns is None else recovery(table, t_f_ns, window_s),
        throughput_rps=total,
        client_throughput_rps=per_client,
        avg_client_throughput_rps=mean,
        wall_time_s=wall,
        dispatch_lag_ms=dispatch_lag(table),
        faults=fault_metrics(table, fault_times_ns, sla_s=sla_s, window_s=window_s)
        if len(table)
        else [],
    )


def dispatch_lag(table: RequestTable) -> dict[str, float] | None:
    """Open loop: how late requests were sent against their schedule (start − scheduled).

    Reported so that a client that fell behind is visible (no coordinated omission): requests,
    p50, p99 and max in ms over the requests that had a schedule; None when none had one.
    """
    if table.scheduled_ns is None:
        return None
    has = table.scheduled_ns >= 0
    if not has.any():
        return None
    lag_ms = (table.start_ns[has] - table.scheduled_ns[has]) / 1e6
    p50, p99 = np.percentile(lag_ms, [50, 99])
    return {
        "requests": int(has.sum()),
        "p50": float(p50),
        "p99": float(p99),
        "max": float(lag_ms.max()),
    }
