"""Server-side checks: judged on the scraped series, phase-aware, never a silent pass.

Windows of a series, from the first fault's T_f (DESIGN.md §5): ``before`` t < T_f;
``during`` T_f <= t < T_f + client recovery time (empty when the fault was not felt);
``after`` t >= T_f; ``overall`` every scrape. Without a fault only ``overall`` and
``before`` hold samples. A series that is missing, or has fewer than ``min_samples`` points
in its window, is inconclusive (exit 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from ftctl.events import FAULT_INJECTED
from ftctl.results.server import (
    PodSeries,
    increase,
    pod_points,
    read_server_series,
    slope_per_minute,
    window,
)
from ftctl.scenario.model import Check, ServerCheckKind

SERVER_KINDS: tuple[str, ...] = get_args(ServerCheckKind)
# What the shortcuts look at when the check names no metric (ai-dynamo 1.6.1 frontend names).
QUEUE_METRIC = "dynamo_frontend_queued_requests"
THROUGHPUT_METRIC = "dynamo_frontend_requests_total"
THROUGHPUT_LABELS = {"status": "success"}
UPTIME_METRIC = "dynamo_component_uptime_seconds"
REPLACED_AFTER_S = 5.0
_WORKER_ID = re.compile(r'worker_id="([0-9a-fA-F]+)"')

Verdict = tuple[str, str, float | None]  # (passed | failed | inconclusive, message, value)


@dataclass
class ServerContext:
    """The series of one result directory and the fault they are judged against."""

    pods: list[PodSeries]
    fault_ns: int | None = None
    fault_service: str | None = None
    fault_pod: str | None = None
    recovery_s: float | None = None
    pod_files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def read(cls, result_dir: Path, events: list[dict[str, Any]], overall: Any) -> ServerContext:
        fault = next((e for e in events if e.get("kind") == FAULT_INJECTED), None)
        rec = getattr(overall, "recovery", None)
        recovery_s = None
        if rec is not None:
            recovery_s = 0.0 if rec.no_visible_impact else rec.recovery_time_s
        return cls(
            pods=read_server_series(result_dir),
            fault_ns=fault.get("t_ns") if fault else None,
            fault_service=fault.get("service") if fault else None,
            fault_pod=fault.get("pod") if fault else None,
            recovery_s=recovery_s,
        )

    def of(self, service: str | None) -> list[PodSeries]:
        return [p for p in self.pods if p.service == service]

    def bounds(self, phase: str) -> tuple[int | None, int | None] | None:
        """(start, end) of a phase's window; None when the phase does not exist here."""
        if phase == "overall":
            return None, None
        if self.fault_ns is None:
            return (None, None) if phase == "before" else None
        if phase == "before":
            return None, self.fault_ns
        if phase == "after":
            return self.fault_ns, None
        if self.recovery_s is None:  # not recovered: the whole rest is "during"
            return self.fault_ns, None
        return self.fault_ns, self.fault_ns + int(self.recovery_s * 1e9)


def _range(value: float, check: Check, what: str, unit: str = "") -> Verdict:
    if check.min is not None and value < check.min:
        return "failed", f"{what} {value:.4g}{unit} < min {check.min:g}{unit}", value
    if check.max is not None and value > check.max:
        return "failed", f"{what} {value:.4g}{unit} > max {check.max:g}{unit}", value
    return "passed", f"{what} {value:.4g}{unit}", value


def _aggregate(series: list[list[tuple[int, float]]], agg: str) -> float:
    points = [v for pod in series for _, v in pod]
    if agg == "max":
        return max(points)
    if agg == "min":
        return min(points)
    if agg == "mean":
        return sum(points) / len(points)
    if agg == "last":
        return sum(pod[-1][1] for pod in series if pod)
    if agg == "increase":
        return sum(increase(pod) for pod in series)
    # rate: each pod's increase over its own span, summed (pods scrape at their own times)
    total = 0.0
    for pod in series:
        if len(pod) >= 2 and pod[-1][0] > pod[0][0]:
            total += increase(pod) / ((pod[-1][0] - pod[0][0]) / 1e9)
    return total


def _metric(check: Check, ctx: ServerContext) -> Verdict:
    pods = ctx.of(check.service)
    if not pods:
        return "inconclusive", f"no series scraped for service '{check.service}'", None
    bounds = ctx.bounds(check.phase)
    if bounds is None:
        return "inconclusive", f"no '{check.phase}' window: the run has no fault", None
    labels = dict(check.labels)
    series = [window(pod_points(p, check.metric or "", labels), *bounds) for p in pods]
    count = sum(len(s) for s in series)
    agg = check.agg or "max"
    if count < check.min_samples:
        return (
            "inconclusive",
            f"{check.metric}: {count} samples in '{check.phase}' (need {check.min_samples})",
            None,
        )
    return _range(_aggregate(series, agg), check, f"{check.metric} {agg} ({check.phase})")


def _worker_ids(pod: PodSeries, before_ns: int) -> set[int]:
    ids = set()
    for scrape in pod.scrapes:
        if scrape.ok and scrape.t_ns < before_ns:
            for key in scrape.samples:
                match = _WORKER_ID.search(key)
                if match:
                    ids.add(int(match.group(1), 16))
    return ids


def _routes_to(scrape_keys: list[str], ids: set[int]) -> bool:
    # The frontend labels workers in decimal, a worker labels itself in hex (ai-dynamo 1.6.1).
    for key in scrape_keys:
        for match in re.finditer(r'worker_id="([0-9a-fA-F]+)"', key):
            text = match.group(1)
            if int(text, 16) in ids or (text.isdigit() and int(text) in ids):
                return True
    return False


def _worker_removed(check: Check, ctx: ServerContext) -> Verdict:
    if ctx.fault_ns is None or ctx.fault_pod is None:
        return "inconclusive", "no fault in this run", None
    killed = next((p for p in ctx.pods if p.pod == ctx.fault_pod), None)
    ids = _worker_ids(killed, ctx.fault_ns) if killed else set()
    if not ids:
        return "inconclusive", f"no worker_id known for {ctx.fault_pod} before the fault", None
    frontends = ctx.of(check.service)
    after = [s for p in frontends for s in p.scrapes if s.ok and s.t_ns >= ctx.fault_ns]
    if not after:
        return "inconclusive", f"no scrape of {check.service} after the fault", None
    for scrape in sorted(after, key=lambda s: s.t_ns):
        if not _routes_to(list(scrape.samples), ids):
            value = (scrape.t_ns - ctx.fault_ns) / 1e9
            return _range(value, check, f"{ctx.fault_pod} dropped by {check.service} after", "s")
    return "failed", f"{check.service} still lists {ctx.fault_pod} at its last scrape", None


def _queue_drains(check: Check, ctx: ServerContext) -> Verdict:
    if ctx.fault_ns is None:
        return "inconclusive", "no fault in this run", None
    name = check.metric or QUEUE_METRIC
    pods = ctx.of(check.service)
    points = sorted(pt for p in pods for pt in pod_points(p, name, dict(check.labels)))
    before = [v for t, v in points if t < ctx.fault_ns]
    after = [(t, v) for t, v in points if t >= ctx.fault_ns]
    if len(before) < check.min_samples or not after:
        return "inconclusive", f"{name}: {len(before)} samples before, {len(after)} after", None
    baseline = max(before)
    grew = False
    for t, v in after:
        grew = grew or v > baseline
        if grew and v <= baseline:
            return _range(
                (t - ctx.fault_ns) / 1e9, check, f"{name} back to {baseline:g} after", "s"
            )
    if not grew:
        return "passed", f"{name} never rose above {baseline:g} after the fault", 0.0
    return "failed", f"{name} still above {baseline:g} at the last scrape", None


def _throughput(check: Check, ctx: ServerContext) -> Verdict:
    if ctx.fault_ns is None:
        return "inconclusive", "no fault in this run", None
    name = check.metric or THROUGHPUT_METRIC
    labels = dict(check.labels) or THROUGHPUT_LABELS
    rates = []
    for bounds in ((None, ctx.fault_ns), (ctx.fault_ns, None)):
        series = [window(pod_points(p, name, labels), *bounds) for p in ctx.of(check.service)]
        if sum(len(s) for s in series) < max(2, check.min_samples):
            return "inconclusive", f"{name}: too few samples on one side of the fault", None
        rates.append(_aggregate(series, "rate"))
    before, after = rates
    if before <= 0:
        return "inconclusive", f"{name}: no throughput before the fault", None
    return _range(after / before, check, f"{name} rate after/before ({after:.3g}/{before:.3g}/s)")


def _memory_growth(check: Check, ctx: ServerContext) -> Verdict:
    pods = ctx.of(check.service)
    slopes = []
    for pod in pods:
        points = [(r["t_ns"], r["rss_bytes"] / 1e6) for r in pod.resources if r.get("ok")]
        if len(points) >= max(2, check.min_samples):
            slope = slope_per_minute(points)
            if slope is not None:
                slopes.append((slope, pod.pod))
    if not slopes:
        return "inconclusive", f"no resource samples for service '{check.service}'", None
    slope, pod = max(slopes)
    return _range(slope, check, f"RSS growth of {pod}", " MB/min")


def _restarts(check: Check, ctx: ServerContext) -> Verdict:
    pods = ctx.of(check.service)
    if not pods:
        return "inconclusive", f"no series scraped for service '{check.service}'", None
    last_ns = max((s.t_ns for p in ctx.pods for s in p.scrapes), default=0)
    found = []
    for pod in pods:
        # A restart resets the process: its tree's CPU seconds or its uptime gauge drop.
        cpu = [(r["t_ns"], r["cpu_s"]) for r in pod.resources if r.get("ok")]
        uptime = pod_points(pod, UPTIME_METRIC)
        if any(_drops(series) for series in (cpu, uptime)):
            found.append(f"{pod.pod} restarted")
        # A replaced pod stops being scraped well before the run's last scrape.
        if pod.scrapes and pod.scrapes[-1].t_ns < last_ns - int(REPLACED_AFTER_S * 1e9):
            found.append(f"{pod.pod} replaced")
    if found:
        return "failed", f"{check.service}: " + ", ".join(found), float(len(found))
    return "passed", f"no restart of {check.service} ({len(pods)} pods)", 0.0


def _drops(points: list[tuple[int, float]]) -> bool:
    return any(b < a for (_, a), (_, b) in zip(points, points[1:], strict=False))


_DISPATCH = {
    "metric": _metric,
    "worker_removed_after_fault": _worker_removed,
    "queue_drains_after_fault": _queue_drains,
    "no_throughput_collapse": _throughput,
    "memory_growth": _memory_growth,
    "no_engine_restart": _restarts,
}


def evaluate_server(check: Check, ctx: ServerContext) -> Verdict:
    """(status, message, value) of one server-side check."""
    return _DISPATCH[check.kind](check, ctx)
