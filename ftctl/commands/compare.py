"""``ftctl compare``: deltas of recovery time, success rates and latencies between two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ftctl.commands import Output
from ftctl.errors import UsageError
from ftctl.reports.markdown import test_dirs

FORMATS = ("fancy", "markdown", "json")


def _parse_all(path: Path) -> dict[str, Any]:
    from ftctl.results import parse_result_dir

    return {d.name: parse_result_dir(d) for d in test_dirs(path)}


def _notes(results: list[Any]) -> list[str]:
    from ftctl.results.sanity import excluded_notes

    return excluded_notes(results)


def _metric_rows(result: Any) -> dict[str, float | None]:
    overall = result.overall
    rec = overall.recovery
    phases = overall.phases
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
        "success_rate_overall": phases["overall"].success_rate if "overall" in phases else None,
        "latency_p50_s": phases["overall"].latency_s.get("p50") if "overall" in phases else None,
        "latency_p99_s": phases["overall"].latency_s.get("p99") if "overall" in phases else None,
        "throughput_rps": overall.throughput_rps,
        "startup_s": result.startup_s,
        "pod_recovery_s": result.pod_recovery_s,
        "excluded_records": float(result.excluded_records),
    }


def _fmt(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.4g}"


def compare(dir_a: Path, dir_b: Path, *, fmt: str = "fancy") -> Output:
    """Side by side: per test present in both, the client each used (legacy | aiperf, as
    parsed), each metric of A, of B, and B − A.

    Notes: the warnings for stderr (impossible records excluded).
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    runs_a, runs_b = _parse_all(dir_a), _parse_all(dir_b)
    common = sorted(set(runs_a) & set(runs_b))
    if not common and len(runs_a) == 1 and len(runs_b) == 1:
        common = [None]  # two single tests with different names: compare them anyway
    blocks = []
    for name in common:
        a = runs_a[name] if name else next(iter(runs_a.values()))
        b = runs_b[name] if name else next(iter(runs_b.values()))
        metrics_a, metrics_b = _metric_rows(a), _metric_rows(b)
        rows = [["client", a.kind, b.kind, "same" if a.kind == b.kind else "differs"]]
        for key in metrics_a:
            va, vb = metrics_a[key], metrics_b[key]
            delta = None if va is None or vb is None else vb - va
            rows.append([key, _fmt(va), _fmt(vb), "N/A" if delta is None else f"{delta:+.4g}"])
        if fmt == "json":
            blocks.append(
                json.dumps(
                    {
                        "test": name or f"{a.name} vs {b.name}",
                        "client": {"a": a.kind, "b": b.kind},
                        "a": metrics_a,
                        "b": metrics_b,
                    }
                )
            )
            continue
        title = name or f"{a.name} vs {b.name}"
        table = tabulate(
            rows,
            headers=["Metric", "A", "B", "B − A"],
            tablefmt="fancy_grid" if fmt == "fancy" else "github",
        )
        blocks.append(f"== {title}\n{table}")
    only = sorted(set(runs_a) ^ set(runs_b)) if common != [None] else []
    if only and fmt != "json":
        blocks.append("only in one run: " + ", ".join(only))
    return Output("\n\n".join(blocks), notes=_notes([*runs_a.values(), *runs_b.values()]))
