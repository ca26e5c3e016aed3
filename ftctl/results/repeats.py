"""Repeated runs (``ftctl run --repeat N``): a test's runs T#1..T#N as one distribution.

The headline figures of a test (``headline``) are the ones ``compare`` sets side by side; over
the runs of one test each becomes ``{runs, min, median, mean, max}`` of the runs that have it
(a run that did not recover has no recovery time and is counted in ``missing``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ftctl.layout import split_repeat
from ftctl.results.model import TestResult


def headline(result: TestResult) -> dict[str, float | None]:
    """The figures of one test that compare and the repeat summary show (None: not known)."""
    overall = result.overall
    rec = overall.recovery
    phases = overall.phases
    whole = phases.get("overall")
    return {
        "recovery_time_s": None
        if rec is None
        else (0.0 if rec.no_visible_impact else rec.recovery_time_s),
        "failed": float(overall.failed),
        "failed_attempts": float(overall.failed_attempts),
        "retried_requests": float(overall.retried_requests),
        "downtime_s": None if rec is None else rec.downtime_s,
        "success_rate_before": phases["before"].success_rate if "before" in phases else None,
        "success_rate_after": phases["after"].success_rate if "after" in phases else None,
        "success_rate_overall": whole.success_rate if whole else None,
        "latency_p50_s": whole.latency_s.get("p50") if whole else None,
        "latency_p99_s": whole.latency_s.get("p99") if whole else None,
        "throughput_rps": overall.throughput_rps,
        "startup_s": result.startup_s,
        "pod_recovery_s": result.pod_recovery_s,
        "excluded_records": float(result.excluded_records),
    }


def distribution(values: list[float | None]) -> dict[str, Any]:
    """runs (with a value), missing (without), min, median, mean, max (None when no run has one)."""
    known = [v for v in values if v is not None]
    stats: dict[str, Any] = {"runs": len(known), "missing": len(values) - len(known)}
    if not known:
        return {**stats, "min": None, "median": None, "mean": None, "max": None}
    return {
        **stats,
        "min": min(known),
        "median": statistics.median(known),
        "mean": statistics.fmean(known),
        "max": max(known),
    }


@dataclass
class RepeatGroup:
    """The runs of one test: its base name, the runs in repeat order, each figure's spread."""

    test: str
    runs: list[TestResult] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.runs]

    def metrics(self) -> dict[str, dict[str, Any]]:
        rows = [headline(r) for r in self.runs]
        return {key: distribution([row[key] for row in rows]) for key in rows[0]} if rows else {}

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "runs": self.names, "metrics": self.metrics()}


def by_test(results: list[TestResult]) -> dict[str, RepeatGroup]:
    """Results keyed by base test name (``T#i`` → ``T``), runs in repeat order; a name without
    a repeat index is a group of its own one run."""
    groups: dict[str, RepeatGroup] = {}
    keyed = sorted(((split_repeat(r.name), i, r) for i, r in enumerate(results)), key=_order)
    for (base, _index), _, result in keyed:
        groups.setdefault(base, RepeatGroup(base)).runs.append(result)
    return groups


def _order(item: tuple[tuple[str, int | None], int, TestResult]) -> tuple[str, int, int]:
    (base, index), position, _ = item
    return base, index or 0, position


def repeated(results: list[TestResult]) -> list[RepeatGroup]:
    """The groups of tests run more than once (``T#1``, ``T#2``, …)."""
    return [
        g
        for g in by_test(results).values()
        if len(g.runs) > 1 or any(split_repeat(r.name)[1] for r in g.runs)
    ]
